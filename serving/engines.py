"""The forward pass behind the predictor: ONNX Runtime on the model folder's ONNX export, or PyTorch.

``MODEL_RUNTIME`` chooses:

* ``auto`` (default): ONNX Runtime when the manifest records an ONNX export (``model_arch.onnx_export``; the
  demo's training writes one), the model is served on the CPU and ``onnxruntime`` is installed; else PyTorch.
* ``torch``: always PyTorch.
* ``onnx``: ONNX Runtime, or start-up fails and says what is missing.

A worker that serves the export never imports torch: it starts about 1.3 s sooner and uses a fraction of the
memory. Measured on 2 cores, one row through the demo CNN takes about 80 µs in PyTorch and 17 µs in ONNX
Runtime; 256 rows take 5.7 ms and 1.6 ms (README, "Speed"). The export was checked against the PyTorch weights
when it was written; at start-up its sha256 must match the manifest, and the manifest must record that it was
exported from the weights the manifest names. ``python -m serving.doctor`` compares its answers with the weights.

An engine maps model input ``(rows, *input shape)`` float32 to what ``Predictor.outputs`` returns:
probabilities (classification) or values (regression), ``(rows, outputs)`` float32.
"""

from __future__ import annotations

import importlib.util
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import numpy as np

from model_arch.manifest import Manifest, ModelFolderError, check_sha256
from model_arch.onnx_runtime import OnnxEngine
from serving.locate import ModelSource
from serving.settings import Settings, SettingsError

if TYPE_CHECKING:
    from serving.torch_engine import TorchEngine

logger = logging.getLogger(__name__)

NVIDIA_DEVICE = Path("/dev/nvidiactl")  # present in a container that has a GPU and its driver


class Engine(Protocol):
    name: str
    device: object  # "cpu" or a torch.device
    channels_last: bool

    def __call__(self, chunk: np.ndarray) -> np.ndarray: ...


def load_engine(settings: Settings, source: ModelSource, threads: int) -> OnnxEngine | TorchEngine:
    """The engine ``MODEL_RUNTIME`` asks for, for this model folder on this host.

    Raises:
        ModelFolderError: the ONNX export the manifest names is missing, altered or of other weights; the
            weights cannot be loaded; or ``MODEL_RUNTIME=onnx`` and ONNX Runtime cannot serve (it says why).
        SettingsError: ``WORKER_PRELOAD=true`` where the fork is not safe (``refuse_unsafe_preload``).
    """
    reason = onnx_unavailable(settings, source.manifest)
    if reason is not None and settings.runtime == "onnx":
        raise ModelFolderError(f"MODEL_RUNTIME=onnx, but {reason}. Unset MODEL_RUNTIME to serve with PyTorch.")
    if settings.preload:
        refuse_unsafe_preload(reason, threads)
    if reason is None:
        return load_onnx_engine(source, threads)
    if settings.runtime == "auto":
        logger.info("runtime torch: %s", reason)
    from serving.torch_engine import load_torch_engine  # torch is imported here, and only here

    return load_torch_engine(settings, source, threads)


def refuse_unsafe_preload(onnx_unavailable_reason: str | None, threads: int) -> None:
    """``WORKER_PRELOAD=true`` loads the model in the master process, and the workers are forks of it. A process
    forked from one that ran multi-threaded work inherits a thread pool without its threads, and hangs on its
    first request: measured with PyTorch, every worker did. ONNX Runtime with one thread per worker runs on the
    calling thread only, so its workers answer (measured: 200 of 200, and after a worker was killed and replaced),
    and the model's memory is shared: total PSS for 4 workers went from 320 to 146 MiB.

    Raises:
        SettingsError: preloading with the PyTorch runtime, or with more than one thread per worker.
    """
    if onnx_unavailable_reason is not None:
        raise SettingsError(
            "WORKER_PRELOAD=true runs init() in the server's master process before it forks the workers, and torch "
            "does not survive that fork: measured with this template, every worker hung on its first request. "
            f"PyTorch serves this model because {onnx_unavailable_reason}. Unset WORKER_PRELOAD (each worker then "
            "loads the model itself), or serve an ONNX export (python -m model_arch.onnx_export FOLDER)."
        )
    if threads > 1:
        raise SettingsError(
            f"WORKER_PRELOAD=true with {threads} threads per worker: ONNX Runtime's thread pool, made in the master "
            "process, would not survive the fork into the workers. Set TORCH_NUM_THREADS=1 (or WORKER_COUNT to the "
            "number of cores), or unset WORKER_PRELOAD."
        )


def onnx_unavailable(settings: Settings, manifest: Manifest, gpu_marker: Path = NVIDIA_DEVICE) -> str | None:
    """Why ONNX Runtime will not serve this model here, or None when it will."""
    if settings.runtime == "torch":
        return "MODEL_RUNTIME=torch"
    if manifest.onnx is None:
        return "the model folder has no ONNX export (python -m model_arch.onnx_export FOLDER adds one)"
    if settings.device == "cuda":
        return "SERVING_DEVICE=cuda, and this template runs ONNX Runtime on the CPU only"
    if settings.device == "auto" and gpu_marker.exists():
        return f"this instance has a GPU ({gpu_marker}), which PyTorch serves on; SERVING_DEVICE=cpu would use ONNX"
    if importlib.util.find_spec("onnxruntime") is None:
        return "onnxruntime is not installed (it is in pyproject.toml and environment/conda-cpu.yaml)"
    return None


def load_onnx_engine(source: ModelSource, threads: int) -> OnnxEngine:
    """A session over the manifest's ONNX export, after checking that it is the file, of the weights, it says.

    Raises:
        ModelFolderError: the export is missing, its sha256 differs, or it was exported from other weights.
    """
    export, weights = source.manifest.onnx, source.weights
    path = weights.parent / export.file
    if not path.is_file():
        raise ModelFolderError(
            f"the manifest next to {weights} names the ONNX export {export.file!r}, which is not in "
            f"{weights.parent}. Register the whole folder that training wrote, or set MODEL_RUNTIME=torch."
        )
    check_sha256(path, export.sha256)
    if export.weights_sha256 != source.manifest.weights_sha256:
        raise ModelFolderError(
            f"{path} was exported from weights with sha256 {export.weights_sha256 or '(not recorded)'}, but the "
            f"manifest's weights {weights.name} have sha256 {source.manifest.weights_sha256}: the export is not "
            f"of these weights. Export it again with python -m model_arch.onnx_export {weights.parent}, or set "
            "MODEL_RUNTIME=torch."
        )
    return OnnxEngine(path, threads)
