"""The PyTorch engine: the weights loaded safely into their architecture, on the chosen device and threads,
followed by the output head that serving answers from.

``model_folder.engines`` imports this module only when PyTorch serves, so a worker that serves an ONNX export never
imports torch (a large share of a worker's start-up time and memory). The ONNX export
(``model_folder.onnx_export``) holds the same ``ServingGraph``, so both runtimes answer the same values.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch
from torch import nn

from model_arch.spec import OutputSpec
from model_folder.engines import MASK_INPUT, Batch, EngineOptions
from model_folder.locate import ModelSource
from model_folder.manifest import ModelFolderError
from model_folder.weights import load_model

logger = logging.getLogger(__name__)
LAYOUT_TOLERANCE = 1e-4  # channels-last must answer like the default layout, within float32 reordering


def output_head(output: Any, spec: OutputSpec, mask: torch.Tensor | None = None) -> torch.Tensor:
    """What serving answers from a model's output: the tensor ``spec.select`` names (for a ``forward`` that returns
    a tuple or a dict), as float32, through a softmax over the labels for classification, a sigmoid per label for
    multilabel; for an embedding, pooled over its tokens as ``spec.pooling`` says (``mask``: the attention mask,
    ``(rows, tokens)``, for mean pooling) and L2-normalised if ``spec.normalize``.

    Raises:
        ModelFolderError: the output is not one tensor and ``select`` does not name one in it.
    """
    y = select_output(output, spec.select).float()
    if spec.kind == "classification":
        return torch.softmax(y, dim=1)
    if spec.kind == "embedding":
        return embedding_head(y, spec, mask)
    return torch.sigmoid(y) if spec.kind == "multilabel" else y


def embedding_head(hidden: torch.Tensor, spec: OutputSpec, mask: torch.Tensor | None) -> torch.Tensor:
    """``(rows, tokens, dimensions)`` -> ``(rows, dimensions)`` by ``spec.pooling`` (a model that pools itself
    answers ``(rows, dimensions)`` already), then L2-normalised if ``spec.normalize``."""
    if spec.pooling == "cls":
        hidden = hidden[:, 0]
    elif spec.pooling == "mean":
        if mask is None:
            raise ModelFolderError("mean pooling needs the model's attention_mask input, and the model has none")
        weights = mask.to(hidden.dtype).unsqueeze(-1)  # (rows, tokens, 1): 1 for a text's tokens, 0 for padding
        hidden = (hidden * weights).sum(dim=1) / weights.sum(dim=1).clamp(min=1.0)
    if spec.normalize:
        hidden = torch.nn.functional.normalize(hidden, p=2.0, dim=1)
    return hidden


def select_output(output: Any, select: int | str | None) -> torch.Tensor:
    """The scores inside what ``forward`` returned."""
    if select is None and isinstance(output, torch.Tensor):
        return output
    found = _describe_output(output)
    try:
        chosen = output[select] if select is not None and isinstance(output, (tuple, list, Mapping)) else None
    except (IndexError, KeyError, TypeError):
        chosen = None
    if isinstance(chosen, torch.Tensor):
        return chosen
    if select is None:
        fix = "name the tensor that holds the scores in the output spec: OutputSpec(..., select=0) for a tuple's "
        fix += "first item, select='logits' for a dict's key"
    else:
        fix = f"select={select!r} names no tensor in it; choose an index or key from those listed"
    raise ModelFolderError(f"the model's forward returned {found}, not one tensor of scores: {fix}")


def _describe_output(output: Any) -> str:
    def one(value: Any) -> str:
        return f"Tensor{tuple(value.shape)}" if isinstance(value, torch.Tensor) else type(value).__name__

    if isinstance(output, Mapping):
        return "a dict {" + ", ".join(f"{k!r}: {one(v)}" for k, v in output.items()) + "}"
    if isinstance(output, (tuple, list)):
        return f"a {type(output).__name__} of {len(output)}: (" + ", ".join(one(v) for v in output) + ")"
    return one(output)


class ServingGraph(nn.Module):
    """The model plus the output head serving applies: what the ONNX export holds. It takes the model's inputs in
    ``forward`` order (``input_names``), and hands the one named ``attention_mask`` to the head for mean pooling."""

    def __init__(self, model: nn.Module, output: OutputSpec, input_names: tuple[str, ...] = ("x",)) -> None:
        super().__init__()
        self.model = model
        self.output = output
        self.mask_index = input_names.index(MASK_INPUT) if MASK_INPUT in input_names else None

    def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
        mask = None if self.mask_index is None else inputs[self.mask_index]
        return output_head(self.model(*inputs), self.output, mask)


class TorchEngine:
    """The model in eval mode on its device, followed by the output head. Takes one array (a one-input model) or
    the inputs by name (``{"input_ids": ..., "attention_mask": ...}``), passed to ``forward`` in ``input_names``
    order."""

    name = "torch"

    def __init__(
        self,
        model: nn.Module,
        device: torch.device,
        output: OutputSpec,
        channels_last: bool,
        input_names: tuple[str, ...] = ("x",),
    ) -> None:
        self.model = model
        self.device = device
        self.output = output
        self.channels_last = channels_last
        self.input_names = input_names

    def __call__(self, chunk: Batch) -> np.ndarray:
        arrays = [chunk[name] for name in self.input_names] if isinstance(chunk, Mapping) else [chunk]
        with torch.inference_mode():
            # a view of a request body (.npy) is read-only: torch wants memory it may own
            tensors = [torch.from_numpy(a if a.flags.writeable else a.copy()).to(self.device) for a in arrays]
            if self.channels_last:
                tensors[0] = tensors[0].contiguous(memory_format=torch.channels_last)
            mask = tensors[self.input_names.index(MASK_INPUT)] if MASK_INPUT in self.input_names else None
            return output_head(self.model(*tensors), self.output, mask).cpu().numpy()


def load_torch_engine(options: EngineOptions, source: ModelSource) -> TorchEngine:
    """Load ``source`` onto the device ``options.device`` selects, with ``options.threads`` torch threads.

    Raises:
        ModelFolderError: the weights cannot be loaded safely (see ``model_folder.weights.load_model``), or
            ``CHANNELS_LAST=on`` and the model does not run in that layout.
        RuntimeError: ``SERVING_DEVICE=cuda`` on a host without a GPU.
    """
    device = select_device(options.device)
    torch.set_num_threads(options.threads)
    model = load_model(source.manifest, source.weights, device, options.trust)
    names = tuple(spec.name for spec in source.manifest.inputs)
    engine = TorchEngine(model, device, source.manifest.output, channels_last=False, input_names=names)
    if len(names) == 1 and use_channels_last(options.channels_last, source.manifest.input.shape):
        engine = _with_channels_last(engine, source, forced=options.channels_last == "on")
    return engine


def _with_channels_last(engine: TorchEngine, source: ModelSource, forced: bool) -> TorchEngine:
    """The engine in channels-last layout, if the model runs in it and answers as in the default layout; else the
    engine as it was (``CHANNELS_LAST=auto``), or a start-up failure that says why (``CHANNELS_LAST=on``).

    A ``forward`` that calls ``x.view(...)`` on a convolution's output (common in tutorials) fails in channels-last
    layout, whose strides ``view`` cannot reinterpret; ``x.reshape`` or ``x.flatten(1)`` works in both."""
    from model_folder.onnx_export import check_batches  # torch-free; the same seeded rows the export is checked on

    batch = check_batches(source.manifest.input)[1]
    try:
        expected = engine(batch)
    except Exception:  # the model fails in its own layout too: warm-up reports that, with its own message
        return engine
    fast = TorchEngine(engine.model.to(memory_format=torch.channels_last), engine.device, engine.output, True)
    try:
        difference = float(np.max(np.abs(fast(batch) - expected)))
        problem = None if difference <= LAYOUT_TOLERANCE else f"answers differ by {difference:.1e}"
    except Exception as err:  # any failure in the other layout only means: not this layout
        problem = f"{type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}"
    if problem is None:
        return fast
    engine.model = engine.model.to(memory_format=torch.contiguous_format)
    if forced:
        raise ModelFolderError(
            f"CHANNELS_LAST=on, but {source.weights} does not run in channels-last layout ({problem}). Set "
            "CHANNELS_LAST=auto (checks and falls back) or off; or, in the model's forward, use x.reshape(...) or "
            "x.flatten(1) where it uses x.view(...)."
        )
    logger.info("channels-last off for %s: in that layout %s (the default layout serves it)", source.weights, problem)
    return engine


def select_device(requested: str) -> torch.device:
    """``auto``: CUDA when available, else CPU. ``cpu`` forces CPU. ``cuda`` requires a GPU.

    Raises:
        RuntimeError: ``cuda`` was requested on a host without one.
    """
    if requested == "cpu":
        return torch.device("cpu")
    if torch.cuda.is_available():
        return torch.device("cuda")
    if requested == "cuda":
        raise RuntimeError(
            "SERVING_DEVICE=cuda but torch.cuda.is_available() is False on this instance: use a GPU "
            "instance type with a CUDA build of torch, or set SERVING_DEVICE=auto or cpu."
        )
    return torch.device("cpu")


def use_channels_last(setting: str, input_shape: tuple[int, ...]) -> bool:
    """``auto``: tried for image input (channels, height, width), where convolutions run faster on CPU; kept only
    where the model runs in that layout and answers alike (``_with_channels_last``)."""
    return setting == "on" or (setting == "auto" and len(input_shape) == 3)
