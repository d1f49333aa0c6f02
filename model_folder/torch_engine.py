"""The PyTorch engine: the weights loaded safely into their architecture, on the chosen device and threads,
followed by the output head that serving answers from.

``model_folder.engines`` imports this module only when PyTorch serves, so a worker that serves an ONNX export never
imports torch (a large share of a worker's start-up time and memory). The ONNX export
(``model_folder.onnx_export``) holds the same ``ServingGraph``, so both runtimes answer the same values.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from model_folder.engines import EngineOptions
from model_folder.locate import ModelSource
from model_folder.weights import load_model


def output_head(logits: torch.Tensor, classification: bool) -> torch.Tensor:
    """What serving answers from a model's output: float32, softmax over the labels for classification."""
    y = logits.float()
    return torch.softmax(y, dim=1) if classification else y


class ServingGraph(nn.Module):
    """The model plus the output head serving applies: what the ONNX export holds."""

    def __init__(self, model: nn.Module, classification: bool) -> None:
        super().__init__()
        self.model = model
        self.classification = classification

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return output_head(self.model(x), self.classification)


class TorchEngine:
    """The model in eval mode on its device, followed by the output head."""

    name = "torch"

    def __init__(self, model: nn.Module, device: torch.device, classification: bool, channels_last: bool) -> None:
        self.model = model
        self.device = device
        self.classification = classification
        self.channels_last = channels_last

    def __call__(self, chunk: np.ndarray) -> np.ndarray:
        if not chunk.flags.writeable:  # a view of a request body (.npy): torch wants memory it may own
            chunk = chunk.copy()
        with torch.inference_mode():
            x = torch.from_numpy(chunk).to(self.device)
            if self.channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            return output_head(self.model(x), self.classification).cpu().numpy()


def load_torch_engine(options: EngineOptions, source: ModelSource) -> TorchEngine:
    """Load ``source`` onto the device ``options.device`` selects, with ``options.threads`` torch threads.

    Raises:
        ModelFolderError: the weights cannot be loaded safely (see ``model_folder.weights.load_model``).
        RuntimeError: ``SERVING_DEVICE=cuda`` on a host without a GPU.
    """
    device = select_device(options.device)
    torch.set_num_threads(options.threads)
    model = load_model(source.manifest, source.weights, device, options.trust)
    channels_last = use_channels_last(options.channels_last, source.manifest.input.shape)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    return TorchEngine(model, device, source.manifest.output.kind == "classification", channels_last)


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
    """``auto``: on for image input (channels, height, width), where convolutions run faster on CPU."""
    return setting == "on" or (setting == "auto" and len(input_shape) == 3)
