"""Find the model below ``AZUREML_MODEL_DIR``, whatever way it was registered.

Azure ML downloads a registered model to ``AZUREML_MODEL_DIR`` in a layout that depends on the registration:

* a folder keeps its name: ``$AZUREML_MODEL_DIR/model/manifest.json``
* a single file lands at the root: ``$AZUREML_MODEL_DIR/model.pt``
* a training job's outputs keep the job's folder: ``$AZUREML_MODEL_DIR/outputs/model.pt``
* a Hugging Face ``save_pretrained`` folder: ``config.json`` beside ``model.safetensors`` (``model_folder.hf_folder``)

So this module searches (a bounded number of levels and files), lets ``MODEL_PATH`` name the file or folder
explicitly, and when it cannot decide, fails with a message that lists what it found and says how to fix it.
Called once per worker by ``serving.startup``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from model_folder.formats import UNKNOWN, detect_format
from model_folder.hf_folder import is_transformers_folder, manifest_for_transformers_folder, transformers_weights
from model_folder.manifest import MANIFEST_NAME, Manifest, ModelFolderError, file_in_folder, read_manifest

MAX_DEPTH = 4  # folder levels searched below AZUREML_MODEL_DIR
MAX_FILES = 2000  # files examined before the search gives up
LISTING_LIMIT = 25  # entries shown in an error message
# Suffixes that mark a weights file even when its content is not a torch.save zip (so that loading it fails
# with a precise message instead of "nothing found"). Files in a known format are recognised whatever their name.
WEIGHTS_SUFFIXES = (".pt", ".pth", ".bin", ".ckpt", ".tar", ".safetensors", ".pt2", ".onnx")

OUTPUTS_EXPLAINED = (
    "A training job writes to ./outputs on the job's compute; that path does not exist in a deployment. "
    "Register the job's output folder as a model (or `az ml model create --path build/model`) and let this "
    "script find it under AZUREML_MODEL_DIR."
)


class ModelNotFoundError(ModelFolderError):
    """No single model could be chosen below ``AZUREML_MODEL_DIR``."""


@dataclass(frozen=True)
class ModelSource:
    """The weights file to load and the manifest that describes it (read, or made from the defaults)."""

    weights: Path
    manifest: Manifest
    has_manifest: bool


def locate_model(model_dir: str | None, model_path: str | None, architecture: str | None) -> ModelSource:
    """Choose the model to serve.

    Args:
        model_dir: the value of ``AZUREML_MODEL_DIR``.
        model_path: ``MODEL_PATH``: a file or folder, relative to ``model_dir`` or absolute; wins if set.
        architecture: the architecture a weights file without a manifest is loaded as.

    Raises:
        ModelNotFoundError: nothing loadable, or more than one candidate; the message lists what was found.
        ModelFolderError: a manifest that cannot be read.
    """
    if not model_dir:
        raise ModelNotFoundError(
            "AZUREML_MODEL_DIR is not set. Azure ML sets it to the folder the deployment's model was "
            "downloaded to; locally, start the server with `azmlinfsrv --model_dir DIR` or `make serve`. "
            + OUTPUTS_EXPLAINED
        )
    root = Path(model_dir)
    if not root.is_dir():
        raise ModelNotFoundError(
            f"AZUREML_MODEL_DIR={model_dir} is not a folder (it {'is a file' if root.exists() else 'does not exist'}"
            "). Check the deployment's `model:` setting, or the --model_dir you gave azmlinfsrv."
        )
    if model_path:
        return _explicit(root, model_path, architecture)

    manifests, weights = _search(root)
    # A manifest describes its own weights, so any manifest wins over loose weights files.
    if len(manifests) == 1:
        return _from_manifest(manifests[0].parent)
    if len(manifests) > 1:
        raise ModelNotFoundError(_ambiguity(root, "model folders (manifest.json)", manifests))
    if len(weights) == 1:
        return _bare_weights(weights[0], architecture)
    if len(weights) > 1:
        raise ModelNotFoundError(_ambiguity(root, "weights files", weights))
    raise ModelNotFoundError(
        f"No model found under AZUREML_MODEL_DIR={model_dir}.\n"
        f"Looked up to {MAX_DEPTH} folders deep for {MANIFEST_NAME} (a model folder written by "
        "model_folder.weights) or a PyTorch weights file (torch.save output, any name), and found:\n"
        f"{listing(root)}\n"
        "How to fix it:\n"
        "  - register the model folder that training wrote (make model: build/model; in a job: outputs/),\n"
        "  - or set MODEL_PATH to the file or folder, relative to AZUREML_MODEL_DIR.\n"
        f"  {OUTPUTS_EXPLAINED}"
    )


def model_identity(model_dir: str | None, manifest: Manifest) -> tuple[str, str]:
    """(name, version) of the deployed model, read from ``AZUREML_MODEL_DIR=.../<name>/<version>``.

    Outside that layout: the architecture's name, and the start of the weights' sha256 (or ``local``).
    """
    path = Path(model_dir or "")
    if path.name.isdigit() and path.parent.name:
        return path.parent.name, path.name
    return manifest.architecture, (manifest.weights_sha256 or "local")[:12]


def listing(root: Path, limit: int = LISTING_LIMIT) -> str:
    """Up to ``limit`` entries below ``root``, one indented relative path per line, folders ending in '/'."""
    lines = []
    for path in walk_model_dir(root):
        if len(lines) == limit:
            lines.append(f"  ... (listing stops after {limit} entries)")
            break
        suffix = "/" if path.is_dir() else f" ({path.stat().st_size:,} bytes)"
        lines.append(f"  {path.relative_to(root)}{suffix}")
    return "\n".join(lines) if lines else "  (nothing: the folder is empty)"


def is_weights_file(path: Path) -> bool:
    """A model file by content (see ``model_folder.formats``), whatever its name, or by a weights suffix."""
    return path.suffix.lower() in WEIGHTS_SUFFIXES or detect_format(path) != UNKNOWN


def _explicit(root: Path, model_path: str, architecture: str | None) -> ModelSource:
    target = Path(model_path) if os.path.isabs(model_path) else root / model_path
    if target.is_dir():
        if (target / MANIFEST_NAME).is_file():
            return _from_manifest(target)
        manifests, weights = _search(target)
        if len(manifests) + len(weights) == 1:
            return locate_model(str(target), None, architecture)
        raise ModelNotFoundError(
            f"MODEL_PATH={model_path} is the folder {target}, which holds "
            f"{len(manifests)} manifest(s) and {len(weights)} weights file(s):\n{listing(target)}\n"
            "Point MODEL_PATH at one file or at a folder holding exactly one model."
        )
    if target.is_file():
        if target.name == MANIFEST_NAME:
            return _from_manifest(target.parent)
        sibling = target.parent / MANIFEST_NAME
        if sibling.is_file() and read_manifest(target.parent).weights_file == target.name:
            return _from_manifest(target.parent)
        return _bare_weights(target, architecture)
    raise ModelNotFoundError(
        f"MODEL_PATH={model_path} does not exist (looked for {target}). AZUREML_MODEL_DIR={root} holds:\n"
        f"{listing(root)}\nSet MODEL_PATH relative to AZUREML_MODEL_DIR, or unset it to search."
    )


def _bare_weights(weights: Path, architecture: str | None) -> ModelSource:
    """A weights file without a manifest: the registered ``architecture`` at its default config, or, in a
    ``save_pretrained`` folder, the model its ``config.json`` describes. (Importing the registry imports torch, which
    only a PyTorch-served model needs; hence here, not at the top.)"""
    if is_transformers_folder(weights.parent) and architecture is None:
        return ModelSource(weights, manifest_for_transformers_folder(weights.parent), has_manifest=False)
    from model_folder.weights import manifest_for_bare_weights

    return ModelSource(weights, manifest_for_bare_weights(weights, architecture), has_manifest=False)


def _from_manifest(folder: Path) -> ModelSource:
    manifest = read_manifest(folder)
    try:
        weights = file_in_folder(folder, manifest.weights_file, "weights file")
    except ModelFolderError as err:
        raise ModelFolderError(f"{err}\nThe folder holds:\n{listing(folder)}") from None
    return ModelSource(weights, manifest, has_manifest=True)


def _search(root: Path) -> tuple[list[Path], list[Path]]:
    """Manifests and weights files below ``root``, in a stable order, bounded in depth and file count."""
    manifests, weights = [], []
    for seen, path in enumerate(p for p in walk_model_dir(root) if p.is_file()):
        if seen >= MAX_FILES:
            break
        if path.name == MANIFEST_NAME:
            manifests.append(path)
        elif is_weights_file(path):
            weights.append(path)
    # A save_pretrained folder's weights are the one file its loader would read; training_args.bin and the like beside
    # them are not a second model.
    weights = [
        path for path in weights if not is_transformers_folder(path.parent) or path == transformers_weights(path.parent)
    ]
    return manifests, weights


def walk_model_dir(root: Path):
    """Paths below ``root`` (files and folders), sorted, hidden entries skipped, at most MAX_DEPTH levels."""
    stack = [(root, 0)]
    while stack:
        folder, depth = stack.pop()
        try:
            entries = sorted(folder.iterdir(), key=lambda p: p.name, reverse=True)
        except OSError:
            continue
        for path in reversed(entries):
            if path.name.startswith("."):
                continue
            yield path
        if depth + 1 < MAX_DEPTH:
            stack.extend((p, depth + 1) for p in entries if p.is_dir() and not p.name.startswith("."))


def _ambiguity(root: Path, what: str, paths: list[Path]) -> str:
    names = "\n".join(f"  {p.relative_to(root)}" for p in paths[:LISTING_LIMIT])
    first = paths[0].relative_to(root)
    return (
        f"Found {len(paths)} {what} under AZUREML_MODEL_DIR={root} and cannot tell which to serve:\n{names}\n"
        f"Set MODEL_PATH to one of them, relative to AZUREML_MODEL_DIR (for example MODEL_PATH={first})."
    )
