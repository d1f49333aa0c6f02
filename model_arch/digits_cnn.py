"""The demo architecture: a small CNN for scikit-learn's 8×8 digit images (pixel values 0-16).

``DigitsCNN(DigitsCNNConfig())`` rebuilds exactly the model that training saved at its defaults, which is
what lets a bare ``torch.save(model.state_dict(), "outputs/model.pt")`` serve without a manifest.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from model_arch.architecture import Architecture
from model_arch.images import ImageSpec
from model_arch.spec import InputSpec, OutputSpec

# What a client sends for one image, and how it becomes the network's input.
INPUT_SPEC = InputSpec(
    name="pixels",
    shape=(1, 8, 8),
    minimum=0.0,
    maximum=16.0,
    divide=16.0,
    description="One 8×8 grayscale digit image, pixel intensities 0-16 as in sklearn.datasets.load_digits.",
    # Or a picture of a digit (PNG, JPEG, WEBP), light on dark as the data is: averaged down to 8×8 in 4×4-style
    # boxes (how the data set's images were made from 32×32 bitmaps), its 0-255 values brought to the data's 0-16.
    image=ImageSpec(mode="L", resize=(8, 8), interpolation="box", scale=16 / 255),
)
OUTPUT_SPEC = OutputSpec(kind="classification", labels=tuple(range(10)))


@dataclass(frozen=True)
class DigitsCNNConfig:
    """Hyper-parameters that fix the architecture. The defaults are the demo model."""

    channels: tuple[int, int] = (16, 32)
    hidden: int = 64
    dropout: float = 0.1
    num_classes: int = 10

    def __post_init__(self) -> None:
        # JSON has no tuples: accept the list a manifest gives back.
        object.__setattr__(self, "channels", tuple(self.channels))


class DigitsCNN(nn.Module):
    """Two 3×3 conv layers, one 2×2 max-pool, two linear layers."""

    def __init__(self, config: DigitsCNNConfig | None = None) -> None:
        super().__init__()
        config = config or DigitsCNNConfig()
        c1, c2 = config.channels
        self.features = nn.Sequential(
            nn.Conv2d(1, c1, kernel_size=3, padding=1),
            nn.ReLU(),
            nn.Conv2d(c1, c2, kernel_size=3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),  # (batch, c2, 4, 4)
        )
        self.classifier = nn.Sequential(
            nn.Flatten(),
            nn.Linear(c2 * 4 * 4, config.hidden),
            nn.ReLU(),
            nn.Dropout(config.dropout),
            nn.Linear(config.hidden, config.num_classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # x: (batch, 1, 8, 8) float32, pixels scaled to [0, 1] -> logits (batch, num_classes)
        return self.classifier(self.features(x))


ARCHITECTURE = Architecture(
    name="digits_cnn",
    model_class=DigitsCNN,
    config_class=DigitsCNNConfig,
    input_spec=INPUT_SPEC,
    output_spec=OUTPUT_SPEC,
)
