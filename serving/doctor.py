"""Diagnose a model folder before (or after) a deployment fails: ``python -m serving.doctor [MODEL_DIR]``.

For the folder (default: ``$AZUREML_MODEL_DIR``) it prints the tree, each candidate file's detected format and
what loading it needs (architecture, globals, code, device), then runs the template's own start-up path on it
(the same search, the same safe loading, the same settings from the environment) and prints the verdict with
the exact fix. For a text model it also names the tokenizer (found, checksum, vocabulary, max length); for a
``save_pretrained`` folder, whether its model type and task are allowed, and, in the verdict, whether its
``config.json`` fits its weights. Exit code 0 when the template would serve it, 1 when not.
``make doctor MODEL_DIR=...`` runs it, and a failed start-up points here.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Mapping
from pathlib import Path

import torch

from model_arch.hf_text import MODEL_TYPES as HF_MODEL_TYPES
from model_arch.hf_text import NAME as HF_ARCHITECTURE
from model_arch.registry import ARCHITECTURES
from model_folder import formats
from model_folder.hf_folder import is_transformers_folder, manifest_for_transformers_folder, transformers_weights
from model_folder.locate import ModelSource, is_weights_file, listing, walk_model_dir
from model_folder.manifest import MANIFEST_NAME, ModelFolderError, read_manifest, sha256_of
from model_folder.onnx_export import TOLERANCE, largest_difference
from model_folder.tokenizer import load_text_encoder
from model_folder.torch_engine import load_torch_engine
from model_folder.weights import (
    ANSI_ESCAPE,
    CHECKPOINT_KEYS,
    WRAPPER_PREFIXES,
    state_dict_mismatch,
    unsafe_globals,
    unwrap_state_dict,
)
from serving.settings import Settings, SettingsError
from serving.startup import load_predictor


def diagnose(model_dir: str, environ: Mapping[str, str] | None = None) -> tuple[bool, str]:
    """(whether the template would serve ``model_dir`` with these settings, the report to print)."""
    env = dict(os.environ if environ is None else environ)
    env["AZUREML_MODEL_DIR"] = model_dir
    root = Path(model_dir)
    lines = [f"Model folder: {model_dir}"]
    if root.is_dir():
        lines += ["", "Files:", listing(root), "", "Candidates:"]
        files = [path for path in walk_model_dir(root) if path.is_file()]
        candidates = [path for path in files if path.name == MANIFEST_NAME or is_weights_file(path)]
        for path in candidates:
            lines.append(f"  {path.relative_to(root)}")
            try:
                facts = describe_file(path)
            except Exception as err:  # the doctor reports, it never crashes: the verdict below still runs
                facts = [f"could not be examined: {type(err).__name__}: {_first_line(err)}"]
            lines += [f"      {fact}" for fact in facts]
        if not candidates:
            lines.append("  (none)")
    ok, verdict = _verdict(env)
    lines += ["", "Verdict:", verdict]
    return ok, "\n".join(lines)


def describe_file(path: Path) -> list[str]:
    """What this file is and what loading it needs, found without running anything in it."""
    if path.name == MANIFEST_NAME:
        return _describe_manifest(path)
    file_format = formats.detect_format(path)
    facts = [f"format: {formats.DESCRIPTIONS[file_format]}"]
    if is_transformers_folder(path.parent) and path == transformers_weights(path.parent):
        return facts + _describe_transformers_folder(path.parent)
    if file_format in formats.CODE_FORMATS:
        facts.append(f"needs: no architecture class; runs its own code, so only with ALLOW_CODE_FORMATS={file_format}")
    elif file_format == formats.SAFETENSORS:
        header = formats.safetensors_header(path) or {}
        tensors = {k: v for k, v in header.items() if k != "__metadata__"}
        dtypes = sorted({v.get("dtype", "?") for v in tensors.values() if isinstance(v, dict)})
        facts.append(f"holds: {len(tensors)} tensors ({', '.join(dtypes)}); safe: plain tensor bytes")
        facts.append("needs: the architecture class (manifest, or MODEL_ARCHITECTURE)")
    elif file_format in (formats.TORCH_SAVE, formats.LEGACY_TORCH_SAVE):
        facts += _describe_pickle(path)
    elif file_format == formats.ONNX:
        facts.append(
            "served: by ONNX Runtime when the manifest beside it records it as the export of its weights "
            "(MODEL_RUNTIME); an ONNX file on its own is not"
        )
    return facts


def _describe_pickle(path: Path) -> list[str]:
    needs = unsafe_globals(path)
    if needs:
        whole_module = any(name.rpartition(".")[0].startswith("torch.nn.modules") for name in needs)
        return [
            f"needs globals: {needs}",
            "safe: no, unpickling it runs code"
            + (" (a whole pickled nn.Module)" if whole_module else "")
            + "; convert it once on your machine: python -m model_folder.convert FILE --architecture NAME "
            "--output-dir DIR --trusted",
        ]
    locations: set[str] = set()

    def record(storage, location):  # map_location hook: note where each tensor was saved, keep it on the CPU
        locations.add(location)
        return storage

    try:
        loaded = torch.load(path, map_location=record, weights_only=True)
    except Exception as err:  # the verdict below explains it; here only what was seen
        return [f"does not load with the safe loader: {type(err).__name__}: {_first_line(err)}"]
    facts = ["safe: tensors and plain containers only (weights_only=True loads it)"]
    if locations:
        facts.append(f"saved on: {', '.join(sorted(locations))} (mapped to the serving device when loaded)")
    facts.append(f"holds: {_layout(loaded)}")
    facts.append(_fitting_architectures(loaded, path))
    return facts


def _fitting_architectures(loaded: object, path: Path) -> str:
    """Which registered architectures, at their default config, the file's state_dict fits."""
    try:
        state_dict = unwrap_state_dict(loaded, path)
    except ModelFolderError:
        return "needs: a state_dict inside it; none found"
    fits, broken = [], []
    for name, arch in ARCHITECTURES.items():
        if arch.spec_only or name == HF_ARCHITECTURE:  # rebuilt from a folder's config.json, never by default
            continue
        try:
            model = arch.build(arch.default_config())
        except Exception as err:  # a pasted class that needs arguments: say so, and go on with the others
            broken.append(f"{name} ({_first_line(err)})")
            continue
        if not state_dict_mismatch(model, state_dict):
            fits.append(name)
    if broken:
        return _fits_text(fits) + f"; cannot be built at their default config, so not compared: {broken}"
    return _fits_text(fits)


def _fits_text(fits: list[str]) -> str:
    if fits:
        return f"needs: the architecture class; it fits {fits} at the default config (MODEL_ARCHITECTURE={fits[0]})"
    return (
        "needs: an architecture class that no registered one matches at its default config: add yours with "
        "`make new-model NAME=...` (or write a manifest naming its config), then set MODEL_ARCHITECTURE"
    )


def _layout(loaded: object) -> str:
    if not isinstance(loaded, Mapping):
        return type(loaded).__name__
    tensors = [v for v in loaded.values() if isinstance(v, torch.Tensor)]
    if tensors and len(tensors) == len(loaded):
        dtypes = sorted({str(t.dtype).replace("torch.", "") for t in tensors})
        prefixes = [p for p in WRAPPER_PREFIXES if all(str(k).startswith(p) for k in loaded)]
        prefix = f", keys prefixed {prefixes[0]!r} (stripped when loaded)" if prefixes else ""
        return f"a state_dict of {len(tensors)} tensors ({', '.join(dtypes)}){prefix}"
    for key in CHECKPOINT_KEYS:
        if isinstance(loaded.get(key), Mapping):
            return f"a checkpoint with the state_dict under {key!r}, beside {sorted(k for k in loaded if k != key)}"
    return f"a dict with keys {sorted(map(str, loaded))[:10]}, and no state_dict"


def _describe_manifest(path: Path) -> list[str]:
    try:
        manifest = read_manifest(path.parent)
    except ModelFolderError as err:
        return [f"unreadable manifest: {err}"]
    weights = path.parent / manifest.weights_file
    if not weights.is_file():
        checksum = "missing"
    elif manifest.weights_sha256 is None:
        checksum = "not recorded"
    else:
        checksum = "matches" if sha256_of(weights) == manifest.weights_sha256 else "DOES NOT MATCH"
    config = json.dumps(manifest.config)
    config = config if len(config) <= 200 else config[:197] + "..."
    facts = [
        f"manifest: architecture {manifest.architecture!r}, config {config}",
        f"weights: {manifest.weights_file} (sha256 {checksum}), saved with torch {manifest.torch_version}",
        *(_text_facts(path.parent, manifest) or [f"input: {manifest.input.describe_row()}"]),
    ]
    if manifest.input.image is not None:
        image = manifest.input.image
        normalise = "".join(
            f", {step} {_short_numbers(value)}"
            for step, value in (("subtract", manifest.input.subtract), ("divide by", manifest.input.divide))
            if value is not None
        )
        facts.append(f"image pipeline: {image.describe()}{normalise} (the same steps training ran)")
    facts.append(_output_fact(manifest.output))
    if manifest.onnx is not None:
        export = path.parent / manifest.onnx.file
        state = "matches" if export.is_file() and sha256_of(export) == manifest.onnx.sha256 else "DOES NOT MATCH"
        source = "these weights" if manifest.onnx.weights_sha256 == manifest.weights_sha256 else "OTHER weights"
        facts.append(
            f"onnx export: {manifest.onnx.file} (sha256 {state}), exported from {source}, largest difference "
            f"{manifest.onnx.max_abs_diff:.1e} when exported"
        )
    return facts


def _describe_transformers_folder(folder: Path) -> list[str]:
    """A save_pretrained folder: what config.json declares, whether the template serves that type and task, and the
    tokenizer it would use (the verdict then rebuilds the model and says whether config.json fits the weights)."""
    config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    model_type = config.get("model_type")
    allowed = "allowed" if model_type in HF_MODEL_TYPES else f"NOT served; allowed: {sorted(HF_MODEL_TYPES)}"
    facts = [
        f"save_pretrained folder: model_type {model_type!r} ({allowed}), architectures {config.get('architectures')}",
    ]
    try:
        manifest = manifest_for_transformers_folder(folder)
    except ModelFolderError as err:
        return [*facts, f"not servable: {_first_line(err)}"]
    facts.append(
        f"task: {manifest.config['task']}; rebuilt by transformers' own class from config.json, no remote code"
    )
    return facts + _text_facts(folder, manifest) + [_output_fact(manifest.output)]


def _text_facts(folder: Path, manifest) -> list[str]:
    """The inputs and the tokenizer of a text model: file, checksum, vocabulary, max length, padding."""
    tokenizer = manifest.tokenizer
    if tokenizer is None:
        return []
    facts = ["inputs: " + ", ".join(f"{spec.name} ({spec.describe_row()})" for spec in manifest.inputs)]
    path = folder / tokenizer.file
    if not path.is_file():
        return [*facts, f"tokenizer: {tokenizer.file} MISSING from the folder"]
    checksum = "not recorded"
    if tokenizer.sha256 is not None:
        checksum = "matches" if sha256_of(path) == tokenizer.sha256 else "DOES NOT MATCH"
    try:
        vocabulary = f"{load_text_encoder(folder, manifest).vocab_size} tokens"
    except ModelFolderError as err:
        vocabulary = f"NOT USABLE: {_first_line(err)}"
    facts.append(
        f"tokenizer: {tokenizer.file} (sha256 {checksum}), {vocabulary}, max_length {tokenizer.max_length} "
        f"(cut on the {tokenizer.truncation}), padding to the {tokenizer.padding.replace('_', ' ')}, pad token "
        f"{tokenizer.pad_token!r}; tokenizer.json's own truncation and padding settings are replaced by these"
    )
    return facts


def _output_fact(output) -> str:
    if output.kind == "embedding":
        return f"output: embedding of {output.dimensions} numbers, pooling {output.pooling or 'by the model'}" + (
            ", L2-normalised" if output.normalize else ""
        )
    return (
        f"output: {output.kind}"
        + (f", {len(output.labels)} labels {list(output.labels)[:10]}" if output.labelled else f" {output.names}")
        + (f", threshold {output.threshold:g}" if output.kind == "multilabel" else "")
    )


def _short_numbers(value: float | tuple[float, ...]) -> str:
    values = value if isinstance(value, tuple) else (value,)
    text = ", ".join(f"{v:.4g}" for v in values)
    return f"({text})" if isinstance(value, tuple) else text


def _verdict(env: Mapping[str, str]) -> tuple[bool, str]:
    """Run the scoring script's own start-up (find, load, warm up) with these settings."""
    try:
        predictor = load_predictor(Settings.from_env(env))
    except (ModelFolderError, SettingsError, RuntimeError) as err:
        return False, f"NOT SERVABLE as configured:\n{err}"
    except Exception as err:  # start-up would fail the same way: report it, never crash
        return False, f"NOT SERVABLE as configured: start-up raised {type(err).__name__}: {err}"
    architecture = predictor.manifest.architecture
    engine = predictor.engine
    verdict = f"OK: the template serves {predictor.weights} ({architecture}) with {engine.name} on {engine.device}."
    if engine.name != "onnxruntime":
        return True, verdict
    if predictor.manifest.onnx is None:  # the file itself is an ONNX graph, described by a spec-only architecture
        return True, f"{verdict[:-1]}: the file is the graph, described by the architecture's specs alone."
    verdict = f"{verdict[:-1]}, from its ONNX export {predictor.manifest.onnx.file}."
    # Start-up checks the export's checksums only; here its answers are compared with the weights themselves.
    source = ModelSource(predictor.weights, predictor.manifest, has_manifest=True)
    settings = Settings.from_env({**env, "MODEL_RUNTIME": "torch"})
    try:
        reference = load_torch_engine(settings.engine_options(threads=1), source)
        difference = largest_difference(engine, reference, predictor.manifest.inputs)
    except Exception as err:  # the weights fail where their export runs: say so, never crash
        return False, (
            f"NOT SERVABLE as configured:\n{predictor.weights.name} does not run with PyTorch to be compared with its "
            f"ONNX export ({type(err).__name__}: {_first_line(err)}); check it with MODEL_RUNTIME=torch."
        )
    if not difference <= TOLERANCE:
        return False, (
            f"NOT SERVABLE as configured:\n{predictor.manifest.onnx.file} answers differently from "
            f"{predictor.weights.name} (largest difference {difference:.2e}, more than {TOLERANCE:.0e}): the export "
            f"is not of these weights. Export it again with python -m model_folder.onnx_export "
            f"{predictor.weights.parent}, or set MODEL_RUNTIME=torch."
        )
    return True, f"{verdict}\nThe ONNX export answers like the weights: largest difference {difference:.1e}."


def _first_line(err: Exception) -> str:
    return ANSI_ESCAPE.sub("", str(err).splitlines()[0]) if str(err) else "no detail"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model_dir", nargs="?", default=os.environ.get("AZUREML_MODEL_DIR"))
    args = parser.parse_args(argv)
    if not args.model_dir:
        parser.error("give the model folder, or set AZUREML_MODEL_DIR")
    ok, report = diagnose(args.model_dir)
    print(report if sys.stdout.isatty() else ANSI_ESCAPE.sub("", report))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
