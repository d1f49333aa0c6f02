"""The model folder: the one module that both writes it (training) and reads it (serving).

A model folder is what gets registered in Azure ML and lands under ``AZUREML_MODEL_DIR``::

    model/
        manifest.json   architecture + config, input/output spec, weights file and its sha256, torch version
        model.pt        torch.save(model.state_dict())
        model.onnx      optional: the same model exported for ONNX Runtime (``model_folder.onnx_export``)

Keeping the saving and loading sides in one file is the point: the classic failure this template exists for
is a training script and a scoring script that drifted apart. A folder with only a state_dict (no manifest)
also loads, as the default architecture at its default config (``manifest_for_bare_weights``).

Loading is safe by default: ``torch.load(..., weights_only=True)`` only, and the architecture is looked up
by name in ``model_arch.registry``; nothing in a model folder can make this module import or run code.
"""

from __future__ import annotations

import dataclasses
import datetime
import importlib
import json
import logging
import pickle
import re
import shutil
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from model_arch.registry import get_architecture
from model_arch.spec import InputSpec, OutputSpec
from model_folder import formats
from model_folder.formats import TRUST_NOTHING, TrustPolicy
from model_folder.manifest import (
    DEFAULT_ARCHITECTURE,
    WEIGHTS_NAME,
    Manifest,
    ModelFolderError,
    check_sha256,
    sha256_of,
    write_manifest,
)

logger = logging.getLogger(__name__)

# Keys under which training loops commonly nest the state_dict in a checkpoint dict.
CHECKPOINT_KEYS = ("model_state_dict", "state_dict", "model")
# Key prefixes added by DataParallel/DistributedDataParallel and by torch.compile.
WRAPPER_PREFIXES = ("module.", "_orig_mod.")
RESAVE_HINT = (
    "re-save it from the training code as a plain state_dict:\n"
    "     model = model.to('cpu')\n"
    "     torch.save(model.state_dict(), 'outputs/model.pt')"
)
CONVERT_HINT = (
    "convert it once, on your own machine and outside any deployment: paste its class into model_arch/ "
    "(make new-model NAME=my_model, then replace the class), and run\n"
    "     python -m model_folder.convert {path} --architecture my_model --output-dir converted/ --trusted\n"
    "     which loads the file you trust, checks that its weights fit the class, and writes a model folder "
    "(state_dict, manifest, ONNX export) to register instead"
)
MISMATCH_LINES = 12  # differences listed in a refusal; a wrong config can differ in every tensor
ANSI_ESCAPE = re.compile(r"\x1b\[[0-9;]*m")  # torch puts bold text in some refusals; a log is not a terminal


# --------------------------------------------------------------------------------------------- writing


def write_model_folder(
    model: nn.Module,
    out_dir: str | Path,
    *,
    architecture: str,
    config: dict[str, Any],
    metrics: dict[str, Any] | None = None,
    input_spec: InputSpec | None = None,
    output_spec: OutputSpec | None = None,
    tokenizer_file: str | Path | None = None,
) -> Manifest:
    """Save ``model``'s state_dict and its manifest into ``out_dir`` (created if needed).

    A text model (its architecture has a ``tokenizer`` spec) needs ``tokenizer_file``, the tokenizer it was trained
    with: it is copied into the folder and its checksum recorded, so serving tokenizes exactly as training did.

    The weights are moved to the CPU first, so a model trained on a GPU loads on any host. ``input_spec`` and
    ``output_spec`` replace the architecture's for this folder: preprocessing fitted on the training data (per-feature
    means and standard deviations as ``subtract``/``divide``), labels known only then. Serving reads them from the
    manifest, so training and serving apply the same numbers. Returns the manifest that was written.
    """
    arch = get_architecture(architecture)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    state_dict = {key: tensor.detach().cpu() for key, tensor in model.state_dict().items()}
    weights_path = out_dir / WEIGHTS_NAME
    torch.save(state_dict, weights_path)
    tokenizer = arch.tokenizer
    if tokenizer is not None:
        if tokenizer_file is None:
            raise ValueError(f"architecture {arch.name!r} takes text: pass the tokenizer_file it was trained with")
        copied = out_dir / tokenizer.file
        if Path(tokenizer_file).resolve() != copied.resolve():
            shutil.copyfile(tokenizer_file, copied)
        tokenizer = dataclasses.replace(tokenizer, sha256=sha256_of(copied))
    inputs = arch.model_inputs if input_spec is None else (input_spec, *arch.model_inputs[1:])
    manifest = Manifest(
        architecture=arch.name,
        config=json.loads(json.dumps(config)),  # as it will read back: tuples become lists
        input=inputs[0],
        inputs=inputs,
        tokenizer=tokenizer,
        output=output_spec or arch.output_spec,
        weights_file=WEIGHTS_NAME,
        weights_sha256=sha256_of(weights_path),
        torch_version=torch.__version__.split("+")[0],
        metrics=metrics or {},
        created_utc=datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
    )
    write_manifest(out_dir, manifest)
    return manifest


# --------------------------------------------------------------------------------------------- reading


def manifest_for_bare_weights(weights_path: str | Path, architecture: str | None) -> Manifest:
    """A manifest for a weights file that came without one: ``architecture`` at its default config.

    A state_dict needs the class to load into: ``architecture``, or the demo's when None. A file that carries its own
    code or graph (TorchScript, ``torch.export``, ONNX) needs only its input and output: a spec-only architecture
    (``model_arch.architecture``), which ``MODEL_ARCHITECTURE`` must name.

    Raises:
        ModelFolderError: no architecture by that name, or one that does not suit the file.
    """
    weights_path = Path(weights_path)
    file_format = formats.detect_format(weights_path)
    self_contained = file_format in (*formats.CODE_FORMATS, formats.ONNX)
    description = formats.DESCRIPTIONS[file_format]
    description = ("an " if description[0] in "AEIOU" else "a ") + description
    if architecture is None and self_contained:
        raise ModelFolderError(
            f"{weights_path} is {description}: it carries its own code or graph, but not what a client sends it nor "
            "what its output means. Declare them, and nothing else, in a spec-only architecture: "
            "`make new-model NAME=my_model SPEC_ONLY=1`, edit its INPUT_SPEC and OUTPUT_SPEC (labels), and set "
            "MODEL_ARCHITECTURE=my_model in the deployment."
        )
    try:
        arch = get_architecture(architecture or DEFAULT_ARCHITECTURE)
    except KeyError as err:
        raise ModelFolderError(f"MODEL_ARCHITECTURE: {err.args[0]}") from None
    if arch.spec_only and not self_contained:
        raise ModelFolderError(
            f"MODEL_ARCHITECTURE={arch.name} declares specs only, for a file that carries its own code or graph, but "
            f"{weights_path} is {description}, which needs its architecture's class to load into. Name the "
            "architecture whose class it was saved from, or register the TorchScript, torch.export or ONNX file."
        )
    if arch.tokenizer is not None:
        raise ModelFolderError(
            f"{weights_path} came without its manifest.json, but architecture {arch.name!r} takes text, and its "
            "tokenizer file and settings are recorded in the manifest: register the whole folder training wrote."
        )
    return Manifest(
        architecture=arch.name,
        config=arch.default_config(),
        input=arch.input_spec,
        inputs=arch.model_inputs,
        output=arch.output_spec,
        weights_file=Path(weights_path).name,
    )


def load_model(
    manifest: Manifest, weights_path: str | Path, device: torch.device, trust: TrustPolicy = TRUST_NOTHING
) -> nn.Module:
    """Load the weights file onto ``device`` as a model in eval mode, by its detected format.

    State dicts, checkpoints and safetensors are loaded into the manifest's architecture (looked up by name);
    TorchScript and torch.export programs, and pickles that need globals, load only as ``trust`` allows.

    Raises:
        ModelFolderError: the checksum, the file, or its keys and shapes do not match, or the file needs a
            trust the operator did not give; the message says which and how to fix it.
    """
    weights_path = Path(weights_path)
    if manifest.weights_sha256 is not None:
        check_sha256(weights_path, manifest.weights_sha256)
    _warn_on_torch_version(manifest, weights_path)
    file_format = formats.detect_format(weights_path)
    if file_format in formats.CODE_FORMATS:
        return _load_program(weights_path, file_format, device, trust)
    if file_format == formats.SAFETENSORS:
        loaded = _read_safetensors(weights_path, device)
    elif file_format in (formats.TORCH_SAVE, formats.LEGACY_TORCH_SAVE):
        loaded = read_weights(weights_path, device, trust.pickle_globals)
    elif file_format == formats.ONNX:
        raise ModelFolderError(
            f"{weights_path} is an ONNX graph, which ONNX Runtime serves, not PyTorch: unset MODEL_RUNTIME=torch (and "
            "name a spec-only architecture with MODEL_ARCHITECTURE, see model_arch/architecture.py)."
        )
    else:
        raise _unreadable(weights_path, f"detected as: {formats.DESCRIPTIONS[file_format]}")
    if isinstance(loaded, nn.Module):  # a whole pickled module, possible only with TRUSTED_PICKLE_GLOBALS
        logger.info("%s is a whole pickled %s, loaded with trusted globals", weights_path, type(loaded).__name__)
        return loaded.to(device).eval()

    try:
        arch = get_architecture(manifest.architecture)
        model = arch.build(manifest.config)
    except (KeyError, ValueError, TypeError) as err:
        raise ModelFolderError(f"cannot rebuild the model described next to {weights_path}: {err}") from err
    state_dict = unwrap_state_dict(loaded, weights_path)
    problems = state_dict_mismatch(model, state_dict)
    if problems:
        shown = problems[:MISMATCH_LINES] + (
            [f"... ({len(problems) - MISMATCH_LINES} more)"] if len(problems) > MISMATCH_LINES else []
        )
        config_text = json.dumps(manifest.config)
        if len(config_text) > 200:
            config_text = config_text[:197] + "..."
        source = "config" if arch.name != "transformers" else f"config ({weights_path.parent / 'config.json'})"
        raise ModelFolderError(
            f"{weights_path} does not fit architecture {arch.name!r} with {source} {config_text}:\n"
            + "\n".join(f"  - {p}" for p in shown)
            + "\nCheck that the manifest's architecture and config (or MODEL_ARCHITECTURE, for a file without a "
            "manifest; config.json, for a save_pretrained folder) are the ones the weights were trained with."
        )
    model.load_state_dict(state_dict)  # copies into the model's own float32 parameters, whatever was saved
    return model.to(device).eval()


def read_weights(weights_path: Path, device: torch.device, trusted_globals: tuple[str, ...] = ()) -> Any:
    """``torch.load`` with ``weights_only=True``: tensors and plain containers, plus ``trusted_globals`` only.

    Raises:
        ModelFolderError: the file is damaged, or needs globals that the safe loader refuses (listed without
            running them, with the exact setting that would allow them).
    """
    allowed = [resolve_global(name) for name in trusted_globals]
    try:
        with torch.serialization.safe_globals(allowed):
            return torch.load(weights_path, map_location=device, weights_only=True)
    except pickle.UnpicklingError as err:
        needs = unsafe_globals(weights_path, err)
        if not needs:  # not a pickle that asks for globals: garbage or a damaged file
            raise _unreadable(weights_path, err) from err
        raise ModelFolderError(pickle_refusal(weights_path, needs, trusted_globals)) from err
    except (RuntimeError, EOFError, zipfile.BadZipFile, OSError) as err:
        raise _unreadable(weights_path, err) from err


def pickle_refusal(weights_path: Path, needs: list[str], trusted_globals: tuple[str, ...] = ()) -> str:
    """Why a pickle that needs ``needs`` is refused, and the fixes that work for it."""
    missing = [name for name in needs if name not in trusted_globals]
    modules = [name for name in needs if _is_module_class(name)]
    listed = ", ".join(missing)
    what = (
        f"a whole pickled nn.Module (torch.save(model)): it needs {listed} to load"
        if modules
        else f"not plain weights: it needs {listed} to load"
    )
    lines = [
        f"{weights_path} is {what}, and unpickling those runs code from the model folder, which this template "
        "refuses by default. Fix it one of these ways:",
        "  1. " + CONVERT_HINT.format(path=weights_path),
        "  2. or " + RESAVE_HINT,
    ]
    local = [name for name in needs if name.split(".")[0] in ("__main__", "__mp_main__")]
    if local:
        lines.append(
            f"  TRUSTED_PICKLE_GLOBALS cannot help here: {_bounded(local)} lived in the training script itself "
            "(__main__), which no deployment can import."
        )
    else:
        setting = ",".join(sorted(set(needs) | set(trusted_globals)))
        lines.append(
            "  3. or, if you trust this file and every class it names is importable from the scoring code "
            f"(model_arch/ is uploaded), set TRUSTED_PICKLE_GLOBALS={setting}"
        )
    return "\n".join(lines)


def _is_module_class(dotted_name: str) -> bool:
    """Whether a pickle global looks like a layer or model class (what a whole pickled module needs)."""
    module = dotted_name.rpartition(".")[0]
    return module.startswith("torch.nn.modules") or module.split(".")[0] in ("__main__", "__mp_main__")


def resolve_global(dotted_name: str) -> Any:
    """The object called ``dotted_name`` (``package.module.Name``), imported because the operator named it.

    Raises:
        ModelFolderError: the name cannot be imported.
    """
    module_name, _, attribute = dotted_name.rpartition(".")
    try:
        return getattr(importlib.import_module(module_name), attribute)
    except (ImportError, AttributeError, ValueError) as err:
        raise ModelFolderError(
            f"TRUSTED_PICKLE_GLOBALS names {dotted_name!r}, which cannot be imported ({err}). Name each class as "
            "module.path.ClassName, importable from the scoring code: a module in model_arch/ (uploaded with "
            "score.py), not one at the repository's top level (.amlignore leaves those out), nor __main__."
        ) from err


def unsafe_globals(weights_path: Path, err: Exception | None = None) -> list[str]:
    """The globals a pickle needs beyond tensors, read without running it (empty if it cannot be inspected)."""
    try:
        return sorted(torch.serialization.get_unsafe_globals_in_checkpoint(str(weights_path)))
    except Exception:  # the pre-1.6 format, or a damaged file: read the pickles' opcodes instead
        found = legacy_pickle_globals(weights_path) - SAFE_LEGACY_GLOBALS
        if found:
            return sorted(found)
        return sorted(re.findall(r"GLOBAL ([\w.]+)", str(err))) if err else []


# What every pre-1.6 torch.save file names, plain weights included: not code a model folder brings.
SAFE_LEGACY_GLOBALS = frozenset(
    {"collections.OrderedDict", "torch._utils._rebuild_tensor_v2", "torch._utils._rebuild_parameter"}
    | {f"torch.{kind}Storage" for kind in ("Float", "Double", "Half", "BFloat16", "Long", "Int", "Short", "Char")}
    | {"torch.ByteStorage", "torch.BoolStorage"}
)


def legacy_pickle_globals(weights_path: Path, limit: int = 64 * 1024 * 1024) -> set[str]:
    """Every ``module.name`` the pickles at the start of a pre-1.6 ``torch.save`` file refer to, read from their
    opcodes (``pickletools``), never executed. Stops at the raw tensor bytes that follow the pickles."""
    import io
    import pickletools

    found: set[str] = set()
    try:
        with open(weights_path, "rb") as f:
            stream = io.BytesIO(f.read(limit))
    except OSError:
        return found
    while stream.tell() < len(stream.getbuffer()):
        strings: list[str] = []
        try:
            for opcode, argument, _ in pickletools.genops(stream):
                if opcode.name in ("GLOBAL", "INST"):
                    found.add(str(argument).replace(" ", "."))
                elif opcode.name == "STACK_GLOBAL" and len(strings) >= 2:
                    found.add(f"{strings[-2]}.{strings[-1]}")
                elif isinstance(argument, str):
                    strings.append(argument)
        except Exception:  # the raw storage bytes after the last pickle, or a damaged file
            break
    return found


def _load_program(weights_path: Path, file_format: str, device: torch.device, trust: TrustPolicy) -> nn.Module:
    """TorchScript or torch.export: the file is the model, code included, so it loads only if allowed."""
    if file_format not in trust.code_formats:
        raise ModelFolderError(
            f"{weights_path} is a {formats.DESCRIPTIONS[file_format]}. Loading it runs the code inside it, "
            f"so this template refuses it unless the operator opts in. Fix it either way:\n"
            "  1. " + RESAVE_HINT + "\n"
            f"  2. or, if you trust this file, set ALLOW_CODE_FORMATS={file_format}"
        )
    try:
        if file_format == formats.TORCHSCRIPT:
            return torch.jit.load(str(weights_path), map_location=device).eval()
        # An exported program keeps the train/eval behaviour it was exported with; .eval() is not supported.
        return torch.export.load(str(weights_path)).module().to(device)
    except Exception as err:  # torch raises many kinds here; all mean "this program does not load"
        raise _unreadable(weights_path, err) from err


def _read_safetensors(weights_path: Path, device: torch.device) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file  # safe by design: a JSON header and raw tensor bytes

    try:
        return load_file(str(weights_path), device=str(device))
    except Exception as err:  # safetensors raises its own SafetensorError for damaged files
        raise _unreadable(weights_path, err) from err


def _unreadable(weights_path: Path, err: Exception | str) -> ModelFolderError:
    if isinstance(err, str):
        detail = err
    else:
        detail = f"{type(err).__name__}: {ANSI_ESCAPE.sub('', (str(err) or 'no detail').splitlines()[0])}"
    return ModelFolderError(
        f"{weights_path} could not be loaded ({detail}). This template reads torch.save state_dicts and "
        "checkpoints, safetensors, ONNX files and (opted in) TorchScript and torch.export programs. If the file is one "
        "of those, it is damaged or was cut short (compare its size with the one training wrote, and register it "
        "again); if it is a whole pickled module or another kind of pickle, " + CONVERT_HINT.format(path=weights_path)
    )


def state_dict_mismatch(model: nn.Module, state_dict: Mapping[str, Any]) -> list[str]:
    """Short, readable differences between ``model``'s parameters and ``state_dict`` (empty when they fit)."""
    expected = model.state_dict()
    problems = []
    missing = [key for key in expected if key not in state_dict]
    unexpected = [key for key in state_dict if key not in expected]
    if missing:
        problems.append(f"missing keys ({len(missing)}): {_bounded(missing)}")
    if unexpected:
        problems.append(f"unexpected keys ({len(unexpected)}): {_bounded(unexpected)}")
    for key, tensor in expected.items():
        given = state_dict.get(key)
        if isinstance(given, torch.Tensor) and given.shape != tensor.shape:
            problems.append(
                f"size mismatch for {key}: file has {tuple(given.shape)}, model expects {tuple(tensor.shape)}"
            )
    return problems


def unwrap_state_dict(loaded: Any, weights_path: Path) -> dict[str, torch.Tensor]:
    """The flat ``{name: tensor}`` mapping inside a state_dict or a training checkpoint dict."""
    if isinstance(loaded, Mapping) and not _is_tensor_mapping(loaded):
        for key in CHECKPOINT_KEYS:
            if _is_tensor_mapping(loaded.get(key)):
                logger.info("using the state_dict under checkpoint key %r in %s", key, weights_path)
                loaded = loaded[key]
                break
    if not _is_tensor_mapping(loaded):
        shape = (
            f"a dict with keys {_bounded([str(k) for k in loaded])}"
            if isinstance(loaded, Mapping)
            else type(loaded).__name__
        )
        raise ModelFolderError(
            f"{weights_path} holds {shape}, not a state_dict (a mapping of parameter names to tensors) "
            f"nor a checkpoint with one under {list(CHECKPOINT_KEYS)}; " + RESAVE_HINT
        )
    state_dict = dict(loaded)
    for prefix in WRAPPER_PREFIXES:
        if state_dict and all(key.startswith(prefix) for key in state_dict):
            logger.info("stripping the %r prefix from every key in %s", prefix, weights_path)
            state_dict = {key[len(prefix) :]: value for key, value in state_dict.items()}
    return state_dict


def _is_tensor_mapping(value: Any) -> bool:
    return (
        isinstance(value, Mapping)
        and len(value) > 0
        and all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in value.items())
    )


def _warn_on_torch_version(manifest: Manifest, weights_path: Path) -> None:
    running = torch.__version__.split("+")[0]
    saved = manifest.torch_version
    if saved and saved.split(".")[:2] != running.split(".")[:2]:
        logger.warning(
            "%s was saved with torch %s and is served with torch %s; state_dicts usually load across "
            "versions, but pin the same version in environment/ to be sure",
            weights_path,
            saved,
            running,
        )


def _bounded(items: list[str], limit: int = 8) -> str:
    shown = ", ".join(items[:limit])
    return shown + (f", ... ({len(items) - limit} more)" if len(items) > limit else "")
