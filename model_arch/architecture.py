"""What the template needs to know about one kind of model: how to rebuild it, and what it takes and gives.

Each module in ``model_arch/`` defines ``ARCHITECTURE = Architecture(...)``; ``model_arch.registry`` lists them.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from model_arch.spec import InputSpec, OutputSpec


@dataclass(frozen=True)
class Architecture:
    """How to rebuild one kind of model, and what it takes and gives when no manifest says otherwise."""

    name: str
    model_class: type[nn.Module]
    config_class: type
    input_spec: InputSpec
    output_spec: OutputSpec

    def build(self, config: dict[str, Any] | None = None) -> nn.Module:
        """A fresh, untrained model from a config dict (``None`` or ``{}``: the defaults).

        Raises:
            ValueError: the dict names fields the config class does not have.
        """
        config = dict(config or {})
        known = {f.name for f in dataclasses.fields(self.config_class)}
        unknown = sorted(set(config) - known)
        if unknown:
            raise ValueError(
                f"config for architecture {self.name!r} has unknown field(s) {unknown}; "
                f"{self.config_class.__name__} has {sorted(known)}"
            )
        return self.model_class(self.config_class(**config))

    def default_config(self) -> dict[str, Any]:
        return dataclasses.asdict(self.config_class())


def output_head(logits: torch.Tensor, classification: bool) -> torch.Tensor:
    """What serving answers from a model's output: float32, softmax over the labels for classification. The
    PyTorch runtime applies it after the model; the ONNX export (``model_arch.onnx_export``) contains it."""
    y = logits.float()
    return torch.softmax(y, dim=1) if classification else y
