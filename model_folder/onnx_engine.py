"""The ONNX Runtime engine: a CPU session over an ONNX file, and its forward pass.

Used by ``model_folder.engines`` (serving) and ``model_folder.onnx_export`` (checking an export when it is written).
Imports neither torch nor, until a session is made, onnxruntime.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

INPUT_NAME = "x"  # the export's input name (model_folder.onnx_export)


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
    its output head). ``model_folder.engines`` serves with it; ``model_folder.onnx_export`` checks an export with it."""

    name = "onnxruntime"
    device = "cpu"
    channels_last = False

    def __init__(self, path: Path, threads: int) -> None:
        self._session = onnx_session(path, threads)
        self._input = self._session.get_inputs()[0].name

    def __call__(self, chunk: np.ndarray) -> np.ndarray:
        return self._session.run(None, {self._input: np.ascontiguousarray(chunk)})[0]
