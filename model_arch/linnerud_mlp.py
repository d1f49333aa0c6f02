"""The second example: a small MLP for scikit-learn's Linnerud data (tabular, named features, several outputs).

Three exercise counts in (Chins, Situps, Jumps), three body measurements out (Weight, Waist, Pulse). The model
carries its own normalisation as buffers, set from the training data, so its state_dict alone rebuilds the
whole prediction and a client sends raw counts. Served by the same, unchanged ``score.py`` as the digits CNN.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from model_arch.architecture import Architecture
from model_arch.spec import InputSpec, OutputSpec

FEATURES = ("Chins", "Situps", "Jumps")
TARGETS = ("Weight", "Waist", "Pulse")

INPUT_SPEC = InputSpec(
    name="exercises",
    shape=(len(FEATURES),),
    minimum=0.0,
    maximum=1000.0,
    names=FEATURES,
    description="Counts of three exercises, as in sklearn.datasets.load_linnerud.",
)
OUTPUT_SPEC = OutputSpec(kind="regression", names=TARGETS)


@dataclass(frozen=True)
class LinnerudMLPConfig:
    """Hyper-parameters that fix the architecture. The defaults are the demo model."""

    hidden: int = 16
    inputs: int = len(FEATURES)
    outputs: int = len(TARGETS)


class LinnerudMLP(nn.Module):
    """Standardise, one hidden layer, de-standardise; the statistics live in buffers (saved in the state_dict)."""

    def __init__(self, config: LinnerudMLPConfig | None = None) -> None:
        super().__init__()
        config = config or LinnerudMLPConfig()
        self.register_buffer("input_mean", torch.zeros(config.inputs))
        self.register_buffer("input_std", torch.ones(config.inputs))
        self.register_buffer("target_mean", torch.zeros(config.outputs))
        self.register_buffer("target_std", torch.ones(config.outputs))
        self.net = nn.Sequential(
            nn.Linear(config.inputs, config.hidden), nn.Tanh(), nn.Linear(config.hidden, config.outputs)
        )

    def set_statistics(self, x: torch.Tensor, y: torch.Tensor) -> None:
        """Fit the normalisation to training data: x (n, inputs), y (n, outputs), raw units."""
        self.input_mean.copy_(x.mean(0))
        self.input_std.copy_(x.std(0).clamp_min(1e-6))
        self.target_mean.copy_(y.mean(0))
        self.target_std.copy_(y.std(0).clamp_min(1e-6))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # x: (batch, 3) float32 raw counts -> (batch, 3) raw measurements
        z = self.net((x - self.input_mean) / self.input_std)
        return z * self.target_std + self.target_mean


ARCHITECTURE = Architecture(
    name="linnerud_mlp",
    model_class=LinnerudMLP,
    config_class=LinnerudMLPConfig,
    input_spec=INPUT_SPEC,
    output_spec=OUTPUT_SPEC,
)
