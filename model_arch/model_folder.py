"""The model folder: the one module that both writes it (training) and reads it (serving).

A model folder is what gets registered in Azure ML and lands under ``AZUREML_MODEL_DIR``::

    model/
        manifest.json   architecture + config, input/output spec, weights file and its sha256, torch version
        model.pt        torch.save(model.state_dict())

Keeping the saving and loading sides in one file is the point: the classic failure this template exists for
is a training script and a scoring script that drifted apart. A folder with only a state_dict (no manifest)
also loads, as the default architecture at its default config (``manifest_for_bare_weights``).

Loading is safe by default: ``torch.load(..., weights_only=True)`` only, and the architecture is looked up
by name in ``model_arch.registry``; nothing in a model folder can make this module import or run code.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import logging
import pickle
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from model_arch.registry import get_architecture
from model_arch.spec import InputSpec, OutputSpec

logger = logging.getLogger(__name__)

MANIFEST_NAME = "manifest.json"
WEIGHTS_NAME = "model.pt"
FORMAT_VERSION = 1
# Keys under which training loops commonly nest the state_dict in a checkpoint dict.
CHECKPOINT_KEYS = ("model_state_dict", "state_dict", "model")
# Key prefixes added by DataParallel/DistributedDataParallel and by torch.compile.
WRAPPER_PREFIXES = ("module.", "_orig_mod.")
RESAVE_HINT = (
    "re-save it from the training code as a plain state_dict:\n"
    "    model = model.to('cpu')\n"
    "    torch.save(model.state_dict(), 'outputs/model.pt')"
)


class ModelFolderError(RuntimeError):
    """A model folder or weights file that cannot be served; the message says what was found and the fix."""


@dataclass(frozen=True)
class Manifest:
    """Everything needed to rebuild, check and serve the weights next to it."""

    architecture: str
    config: dict[str, Any]
    input: InputSpec
    output: OutputSpec
    weights_file: str = WEIGHTS_NAME
    weights_sha256: str | None = None
    torch_version: str | None = None
    metrics: dict[str, Any] = field(default_factory=dict)
    created_utc: str | None = None
    format_version: int = FORMAT_VERSION

    def to_dict(self) -> dict[str, Any]:
        return {
            "format_version": self.format_version,
            "architecture": self.architecture,
            "config": self.config,
            "input": self.input.to_dict(),
            "output": self.output.to_dict(),
            "weights": {"file": self.weights_file, "format": "state_dict", "sha256": self.weights_sha256},
            "torch_version": self.torch_version,
            "metrics": self.metrics,
            "created_utc": self.created_utc,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Manifest:
        version = data.get("format_version")
        if version != FORMAT_VERSION:
            raise ValueError(f"format_version is {version!r}; this code reads version {FORMAT_VERSION}")
        weights = data["weights"]
        return cls(
            architecture=data["architecture"],
            config=dict(data.get("config") or {}),
            input=InputSpec.from_dict(data["input"]),
            output=OutputSpec.from_dict(data["output"]),
            weights_file=weights["file"],
            weights_sha256=weights.get("sha256"),
            torch_version=data.get("torch_version"),
            metrics=dict(data.get("metrics") or {}),
            created_utc=data.get("created_utc"),
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
    (out_dir / MANIFEST_NAME).write_text(json.dumps(manifest.to_dict(), indent=2) + "\n")
    return manifest


# --------------------------------------------------------------------------------------------- reading


def read_manifest(folder: str | Path) -> Manifest:
    """The manifest in ``folder``.

    Raises:
        ModelFolderError: missing, not JSON, or missing fields; the message names the file.
    """
    path = Path(folder) / MANIFEST_NAME
    try:
        return Manifest.from_dict(json.loads(path.read_text()))
    except FileNotFoundError:
        raise ModelFolderError(f"{path} does not exist") from None
    except (ValueError, KeyError, TypeError) as err:
        raise ModelFolderError(
            f"{path} is not a valid model manifest ({type(err).__name__}: {err}). "
            "Write it with model_arch.model_folder.write_model_folder, or delete it to serve the weights "
            "as the default architecture."
        ) from err


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


def load_model(manifest: Manifest, weights_path: str | Path, device: torch.device) -> nn.Module:
    """Rebuild the manifest's architecture, load the weights safely onto ``device``, and put it in eval mode.

    Raises:
        ModelFolderError: the checksum, the file, or its keys and shapes do not match; the message says
            which and how to fix it.
    """
    weights_path = Path(weights_path)
    if manifest.weights_sha256 is not None:
        actual = sha256_of(weights_path)
        if actual != manifest.weights_sha256:
            raise ModelFolderError(
                f"{weights_path} does not match its manifest: sha256 is {actual}, manifest says "
                f"{manifest.weights_sha256}. The weights were replaced or corrupted after the folder was "
                "written; register the folder exactly as training wrote it."
            )
    _warn_on_torch_version(manifest, weights_path)
    try:
        arch = get_architecture(manifest.architecture)
        model = arch.build(manifest.config)
    except (KeyError, ValueError, TypeError) as err:
        raise ModelFolderError(f"cannot rebuild the model described next to {weights_path}: {err}") from err

    state_dict = _unwrap_state_dict(read_weights(weights_path, device), weights_path)
    problems = state_dict_mismatch(model, state_dict)
    if problems:
        raise ModelFolderError(
            f"{weights_path} does not fit architecture {arch.name!r} with config {manifest.config}:\n"
            + "\n".join(f"  - {p}" for p in problems)
            + "\nCheck that the manifest's architecture and config are the ones the weights were trained with."
        )
    model.load_state_dict(state_dict)  # copies into the model's own float32 parameters, whatever was saved
    return model.to(device).eval()


def read_weights(weights_path: Path, device: torch.device) -> Any:
    """``torch.load`` with ``weights_only=True``: tensors and plain containers only, never a code object.

    Raises:
        ModelFolderError: the file is not a torch.save archive, is truncated, or needs globals that the safe
            loader refuses (listed without running them).
    """
    try:
        return torch.load(weights_path, map_location=device, weights_only=True)
    except pickle.UnpicklingError as err:
        needs = _unsafe_globals(weights_path)
        if not needs:  # not a pickle that asks for globals: garbage or a damaged file
            raise _unreadable(weights_path, err) from err
        raise ModelFolderError(
            f"{weights_path} is not plain weights: it needs {needs or 'Python objects'} to load, and loading "
            "those would run code from the model folder, which this template refuses. Most likely it is a "
            "whole pickled nn.Module (torch.save(model)); " + RESAVE_HINT
        ) from err
    except (RuntimeError, EOFError, zipfile.BadZipFile, OSError) as err:
        raise _unreadable(weights_path, err) from err


def _unreadable(weights_path: Path, err: Exception) -> ModelFolderError:
    detail = str(err).splitlines()[0] if str(err) else "no detail"
    return ModelFolderError(
        f"{weights_path} could not be read as a torch.save file ({type(err).__name__}: {detail}). It may be "
        "truncated by an incomplete upload or not be a PyTorch file; register it again from the training "
        "job's outputs."
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


def sha256_of(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _unwrap_state_dict(loaded: Any, weights_path: Path) -> dict[str, torch.Tensor]:
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


def _unsafe_globals(weights_path: Path) -> list[str]:
    """The globals a pickle needs, read without running it (empty if the file cannot be inspected)."""
    try:
        return torch.serialization.get_unsafe_globals_in_checkpoint(str(weights_path))
    except Exception:  # inspection is best effort: the refusal itself already happened
        return []


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
