"""ONNX Runtime sessions and their forward pass, and the check that an export answers like the weights it came from.

Used by ``model_arch.onnx_export`` (when it writes the export) and ``serving.engines`` (when it serves it).
Imports neither torch nor, until a session is made, onnxruntime.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np

from model_arch.spec import InputSpec

TOLERANCE = 1e-4  # float32 outputs of the two runtimes; measured differences are about 4e-6
CHECK_ROWS = (1, 7, 64)
INPUT_NAME = "x"
Forward = Callable[[np.ndarray], np.ndarray]


def largest_difference(first: Forward, second: Forward, spec: InputSpec) -> float:
    """The largest absolute difference between two forward passes (numpy in, numpy out) on the check batches;
    infinite if their output shapes differ."""
    largest = 0.0
    for batch in check_batches(spec):
        a, b = first(batch), second(batch)
        if a.shape != b.shape:
            return float("inf")
        largest = max(largest, float(np.max(np.abs(a - b))))
    return largest


def check_batches(spec: InputSpec, seed: int = 0) -> list[np.ndarray]:
    """Model input at ``CHECK_ROWS`` rows, uniform over the spec's value range (0-1 where it has none)."""
    rng = np.random.default_rng(seed)
    low = spec.minimum if spec.minimum is not None else 0.0
    high = spec.maximum if spec.maximum is not None else 1.0
    return [spec.preprocess(rng.uniform(low, high, (rows, spec.size))) for rows in CHECK_ROWS]


def onnx_session(path: Path, threads: int):
    """An ONNX Runtime CPU session with ``threads`` intra-op threads (the worker's share of the cores)."""
    import onnxruntime  # only where ONNX is used: serving with MODEL_RUNTIME=torch never imports it

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    # Idle threads would otherwise spin waiting for work, taking CPU from the other worker processes.
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.log_severity_level = 3  # errors only
    return onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


class OnnxEngine:
    """A forward pass over an ONNX file: model input in, the graph's output out (for an export, already through
    its output head). ``serving.engines`` serves with it; ``model_arch.onnx_export`` checks an export with it."""

    name = "onnxruntime"
    device = "cpu"
    channels_last = False

    def __init__(self, path: Path, threads: int) -> None:
        self._session = onnx_session(path, threads)
        self._input = self._session.get_inputs()[0].name

    def __call__(self, chunk: np.ndarray) -> np.ndarray:
        return self._session.run(None, {self._input: np.ascontiguousarray(chunk)})[0]
