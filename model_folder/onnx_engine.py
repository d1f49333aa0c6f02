"""The ONNX Runtime engine: a CPU session over an ONNX file, and its forward pass.

Used by ``model_folder.engines`` (serving) and ``model_folder.onnx_export`` (checking an export when it is written).
Imports neither torch nor, until a session is made, onnxruntime.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np

from model_arch.spec import OutputSpec

INPUT_NAME = "x"  # a one-input export's input name (model_folder.onnx_export); several inputs keep their spec names


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
    """A forward pass over an ONNX file: model input in, ``(rows, outputs)`` float32 out.

    The template's own export already ends in the output head. A graph from elsewhere (a spec-only architecture)
    gets it here: the output that ``head.select`` names (an index, or an output's name), softmax for
    classification. ``model_folder.engines`` serves with it; ``model_folder.onnx_export`` checks an export with it.
    """

    name = "onnxruntime"
    device = "cpu"
    channels_last = False

    def __init__(self, path: Path, threads: int, head: OutputSpec | None = None) -> None:
        self._session = onnx_session(path, threads)
        self._input = self._session.get_inputs()[0].name
        self._types = {
            i.name: (np.int64 if i.type == "tensor(int64)" else np.float32) for i in self._session.get_inputs()
        }
        self._head = head
        self._output = None if head is None else _output_index(self._session, head.select, path)

    def __call__(self, chunk: np.ndarray | Mapping[str, np.ndarray]) -> np.ndarray:
        if isinstance(chunk, Mapping) and len(chunk) == 1:  # one input, whatever its spec calls it
            chunk = next(iter(chunk.values()))
        if isinstance(chunk, Mapping):  # several inputs, by the names the graph gives them
            feeds = {name: np.ascontiguousarray(chunk[name], dtype=kind) for name, kind in self._types.items()}
        else:
            feeds = {self._input: np.ascontiguousarray(chunk, dtype=self._types[self._input])}
        outputs = self._session.run(None, feeds)
        if self._head is None:
            return outputs[0]
        y = np.asarray(outputs[self._output], dtype=np.float32)
        if self._head.kind == "embedding":
            return _embedding_head(y, self._head, chunk.get("attention_mask") if isinstance(chunk, Mapping) else None)
        if self._head.kind == "multilabel":
            return 1 / (1 + np.exp(-y))
        if self._head.kind != "classification":
            return y
        exp = np.exp(y - y.max(axis=1, keepdims=True))
        return exp / exp.sum(axis=1, keepdims=True)


def _embedding_head(hidden: np.ndarray, head: OutputSpec, mask: np.ndarray | None) -> np.ndarray:
    """``model_folder.torch_engine.embedding_head``, in numpy, for a graph from elsewhere."""
    if head.pooling == "cls":
        hidden = hidden[:, 0]
    elif head.pooling == "mean":
        weights = np.ones(hidden.shape[:2], np.float32) if mask is None else mask.astype(np.float32)
        hidden = (hidden * weights[..., None]).sum(axis=1) / np.maximum(weights.sum(axis=1, keepdims=True), 1.0)
    if head.normalize:
        hidden = hidden / np.maximum(np.linalg.norm(hidden, axis=1, keepdims=True), 1e-12)
    return hidden.astype(np.float32)


def _output_index(session, select: int | str | None, path: Path) -> int:
    """Which of the graph's outputs holds the scores."""
    names = [output.name for output in session.get_outputs()]
    if select is None and len(names) == 1:
        return 0
    if isinstance(select, int) and select < len(names):
        return select
    if isinstance(select, str) and select in names:
        return names.index(select)
    from model_folder.manifest import ModelFolderError

    raise ModelFolderError(
        f"{path} has outputs {names}; name the one that holds the scores in the output spec: "
        "OutputSpec(..., select=0) by position, or select='<output name>'"
    )
