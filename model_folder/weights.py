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

import datetime
import importlib
import json
import logging
import pickle
import re
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from model_arch.registry import get_architecture
from model_folder import formats
from model_folder.formats import TRUST_NOTHING, TrustPolicy
from model_folder.manifest import (
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


# --------------------------------------------------------------------------------------------- writing


def write_model_folder(
    model: nn.Module,
    out_dir: str | Path,
    *,
    architecture: str,
    config: dict[str, Any],
    metrics: dict[str, Any] | None = None,
) -> Manifest:
    """Save ``model``'s state_dict and its manifest into ``out_dir`` (created if needed).

    The weights are moved to the CPU first, so a model trained on a GPU loads on any host.
    Returns the manifest that was written.
    """
    arch = get_architecture(architecture)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    state_dict = {key: tensor.detach().cpu() for key, tensor in model.state_dict().items()}
    weights_path = out_dir / WEIGHTS_NAME
    torch.save(state_dict, weights_path)
    manifest = Manifest(
        architecture=arch.name,
        config=json.loads(json.dumps(config)),  # as it will read back: tuples become lists
        input=arch.input_spec,
        output=arch.output_spec,
        weights_file=WEIGHTS_NAME,
        weights_sha256=sha256_of(weights_path),
        torch_version=torch.__version__.split("+")[0],
        metrics=metrics or {},
        created_utc=datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
    )
    write_manifest(out_dir, manifest)
    return manifest


# --------------------------------------------------------------------------------------------- reading


def manifest_for_bare_weights(weights_path: str | Path, architecture: str) -> Manifest:
    """A manifest for a weights file that came without one: ``architecture`` at its default config."""
    arch = get_architecture(architecture)
    return Manifest(
        architecture=arch.name,
        config=arch.default_config(),
        input=arch.input_spec,
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
            f"{weights_path} is an ONNX model on its own. This template serves PyTorch weights, and runs an ONNX "
            "export of them only beside the weights it came from, so that it can be checked against them. "
            "Register the PyTorch state_dict the ONNX file was exported from instead (then add the export with "
            "python -m model_folder.onnx_export FOLDER)."
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
        raise ModelFolderError(
            f"{weights_path} does not fit architecture {arch.name!r} with config {manifest.config}:\n"
            + "\n".join(f"  - {p}" for p in problems)
            + "\nCheck that the manifest's architecture and config (or MODEL_ARCHITECTURE, for a file without a "
            "manifest) are the ones the weights were trained with."
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
        missing = [name for name in needs if name not in trusted_globals]
        raise ModelFolderError(
            f"{weights_path} is not plain weights: it needs {missing} to load, and loading those runs code "
            "from the model folder, which this template refuses by default. Most likely it is a whole pickled "
            "nn.Module (torch.save(model)). Fix it either way:\n"
            "  1. " + RESAVE_HINT + "\n"
            "  2. or, if you trust this file and these classes are importable in the scoring code, set\n"
            f"     TRUSTED_PICKLE_GLOBALS={','.join(sorted(set(needs) | set(trusted_globals)))}"
        ) from err
    except (RuntimeError, EOFError, zipfile.BadZipFile, OSError) as err:
        raise _unreadable(weights_path, err) from err


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
            "module.path.ClassName, and ship its module with the scoring code."
        ) from err


def unsafe_globals(weights_path: Path, err: Exception | None = None) -> list[str]:
    """The globals a pickle needs beyond tensors, read without running it (empty if it cannot be inspected)."""
    try:
        return sorted(torch.serialization.get_unsafe_globals_in_checkpoint(str(weights_path)))
    except Exception:  # legacy format or damaged file: fall back to the name in torch's refusal, if any
        return sorted(re.findall(r"GLOBAL ([\w.]+)", str(err))) if err else []


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
    detail = err if isinstance(err, str) else f"{type(err).__name__}: {(str(err) or 'no detail').splitlines()[0]}"
    return ModelFolderError(
        f"{weights_path} could not be loaded ({detail}). It may be truncated by an incomplete upload, or not be "
        "a PyTorch model file: this template reads torch.save state_dicts and checkpoints, safetensors, and "
        "(opted in) TorchScript and torch.export programs. Register the file again from the training job's "
        "outputs, or re-save it as a state_dict."
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
