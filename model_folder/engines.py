"""Which runtime serves a model folder here, and the engine that runs it: ONNX Runtime on the folder's ONNX export,
or PyTorch on its weights.

``choose_runtime`` turns the operator's wishes (``MODEL_RUNTIME``, ``SERVING_DEVICE``) and the folder's contents into
a ``RuntimeChoice``: the runtime, and the reason in words (logged at start-up and shown by the doctor).
``load_engine`` then loads it. ``MODEL_RUNTIME``:

* ``auto`` (default): ONNX Runtime when the manifest records an ONNX export (``model_folder.onnx_export``; the
  demo's training writes one), the model is served on the CPU and ``onnxruntime`` is installed; else PyTorch.
* ``torch``: always PyTorch.
* ``onnx``: ONNX Runtime, or start-up fails and says what is missing.

A worker that serves the export never imports torch: it starts sooner, uses a fraction of the memory, and the
forward pass is faster on CPU (``docs/performance.md``). The export was checked against the weights when it was
written; at start-up its checksums are checked again (``onnx_export.verified_export``).

An engine maps model input ``(rows, *input shape)`` float32 to ``(rows, outputs)`` float32: probabilities
(classification), values (regression) or vectors (embedding). A model with several inputs (a text model's
``input_ids`` and ``attention_mask``) takes them by name, as a dict of arrays of the same number of rows (a
``Batch``). Called by ``serving.startup``.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Protocol

import numpy as np

from model_folder.formats import TRUST_NOTHING, TrustPolicy
from model_folder.locate import ModelSource
from model_folder.manifest import Manifest, ModelFolderError

NVIDIA_DEVICE = Path("/dev/nvidiactl")  # present in a container that has a GPU and its driver
ONNX_RUNTIME = "onnxruntime"
TORCH = "torch"
MASK_INPUT = "attention_mask"  # the input an embedding's mean pooling averages over
Batch = np.ndarray | Mapping[str, np.ndarray]  # one input's array, or each input's array by name


class Engine(Protocol):
    name: str
    device: object  # "cpu" or a torch.device
    channels_last: bool

    def __call__(self, chunk: Batch) -> np.ndarray: ...


def batch_rows(batch: Batch) -> int:
    """The rows in a batch (every named input has as many)."""
    return len(next(iter(batch.values()))) if isinstance(batch, Mapping) else len(batch)


def batch_slice(batch: Batch, start: int, stop: int) -> Batch:
    """Rows ``start`` to ``stop`` of every input."""
    if isinstance(batch, Mapping):
        return {name: array[start:stop] for name, array in batch.items()}
    return batch[start:stop]


@dataclass(frozen=True)
class EngineOptions:
    """What the operator asked for (``serving.settings`` reads these from the environment).

    Attributes:
        runtime: ``auto``, ``torch`` or ``onnx`` (``MODEL_RUNTIME``).
        device: ``auto``, ``cpu`` or ``cuda`` (``SERVING_DEVICE``).
        threads: intra-op threads for either runtime.
        channels_last: ``auto``, ``on`` or ``off`` (PyTorch only; ``CHANNELS_LAST``).
        trust: the code-carrying formats and pickle globals the operator allowed by name.
    """

    runtime: str = "auto"
    device: str = "auto"
    threads: int = 1
    channels_last: str = "auto"
    trust: TrustPolicy = TRUST_NOTHING


@dataclass(frozen=True)
class RuntimeChoice:
    """The runtime that serves the model here, and why, in words for the start-up log and the doctor."""

    runtime: Literal["onnxruntime", "torch"]
    reason: str

    @property
    def is_onnx(self) -> bool:
        return self.runtime == ONNX_RUNTIME


def choose_runtime(options: EngineOptions, manifest: Manifest, gpu_marker: Path = NVIDIA_DEVICE) -> RuntimeChoice:
    """The runtime ``options`` ask for, for this model folder on this host.

    Raises:
        ModelFolderError: ``MODEL_RUNTIME=onnx`` and ONNX Runtime cannot serve here (the message says why).
    """
    if manifest.onnx is None and manifest.weights_file.lower().endswith(".onnx"):
        if options.runtime == "torch":
            raise ModelFolderError(
                f"MODEL_RUNTIME=torch, but the model file {manifest.weights_file} is an ONNX graph, which only ONNX "
                "Runtime runs. Unset MODEL_RUNTIME."
            )
        return RuntimeChoice(ONNX_RUNTIME, "the model file is an ONNX graph (a spec-only architecture describes it)")
    blocker = _onnx_blocker(options, manifest, gpu_marker)
    if blocker is None:
        return RuntimeChoice(ONNX_RUNTIME, "the model folder has an ONNX export and the model is served on the CPU")
    if options.runtime == "onnx":
        raise ModelFolderError(f"MODEL_RUNTIME=onnx, but {blocker}. Unset MODEL_RUNTIME to serve with PyTorch.")
    return RuntimeChoice(TORCH, blocker)


def load_engine(choice: RuntimeChoice, options: EngineOptions, source: ModelSource) -> Engine:
    """The engine for ``choice``: an ONNX Runtime session over the verified export, or the PyTorch model.

    Raises:
        ModelFolderError: the export or the weights do not match the manifest, or cannot be loaded.
        RuntimeError: ``SERVING_DEVICE=cuda`` on a host without a GPU.
    """
    if choice.is_onnx:
        from model_folder.onnx_engine import OnnxEngine
        from model_folder.onnx_export import verified_export

        if source.manifest.onnx is None:  # the weights file is itself an ONNX graph, from elsewhere
            return OnnxEngine(source.weights, options.threads, head=source.manifest.output)
        return OnnxEngine(verified_export(source.weights, source.manifest), options.threads)
    from model_folder.torch_engine import load_torch_engine  # torch is imported here, and only here

    return load_torch_engine(options, source)


def _onnx_blocker(options: EngineOptions, manifest: Manifest, gpu_marker: Path) -> str | None:
    """Why ONNX Runtime will not serve this model here, or None when it will."""
    if options.runtime == "torch":
        return "MODEL_RUNTIME=torch"
    if manifest.onnx is None:
        return "the model folder has no ONNX export (python -m model_folder.onnx_export FOLDER adds one)"
    if options.device == "cuda":
        return "SERVING_DEVICE=cuda, and this template runs ONNX Runtime on the CPU only"
    if options.device == "auto" and gpu_marker.exists():
        return f"this instance has a GPU ({gpu_marker}), which PyTorch serves on; SERVING_DEVICE=cpu would use ONNX"
    if importlib.util.find_spec("onnxruntime") is None:
        return "onnxruntime is not installed (it is in pyproject.toml and environment/conda-cpu.yaml)"
    return None
