"""The image example: a small CNN that tells circles, squares, triangles and crosses apart in RGB pictures.

Clients send the picture itself (PNG, JPEG or WEBP: a raw body, a multipart upload, base64 in JSON, or V2
``BYTES``); the input spec's ``ImageSpec`` turns it into the network's input, and its per-channel ``subtract`` and
``divide`` (the training pictures' mean and standard deviation, fitted by ``training.train.train_shapes``) normalise
it. The pictures are drawn by ``training.data.shapes_images``: nothing is downloaded.
"""

from __future__ import annotations

import torch
from torch import nn

from model_arch.architecture import Architecture
from model_arch.images import ImageSpec
from model_arch.spec import InputSpec, OutputSpec

INPUT_SPEC = InputSpec(
    name="image",
    shape=(3, 32, 32),
    minimum=0.0,
    maximum=255.0,
    subtract=[127.5, 127.5, 127.5],  # per channel; training writes the training pictures' mean and std
    divide=[64.0, 64.0, 64.0],
    description="An RGB picture of one shape; resized so its shorter side is 32, then its centre cropped to 32×32.",
    image=ImageSpec(mode="RGB", resize=32, interpolation="bilinear", center_crop=True),
)
OUTPUT_SPEC = OutputSpec(kind="classification", labels=("circle", "square", "triangle", "cross"))


class ShapesCNN(nn.Module):
    def __init__(self, width: int = 16, classes: int = 4) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, width, 3, padding=1), nn.BatchNorm2d(width), nn.ReLU(), nn.MaxPool2d(2),  # (b, w, 16, 16)
            nn.Conv2d(width, 2 * width, 3, padding=1), nn.BatchNorm2d(2 * width), nn.ReLU(), nn.MaxPool2d(2),  # 8×8
            nn.Conv2d(2 * width, 4 * width, 3, padding=1), nn.ReLU(), nn.AdaptiveMaxPool2d(1),
        )  # fmt: skip
        self.classifier = nn.Linear(4 * width, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # x: (batch, 3, 32, 32) float32, normalised per channel -> logits (batch, classes)
        return self.classifier(self.features(x).flatten(1))


ARCHITECTURE = Architecture(name="shapes_cnn", model_class=ShapesCNN, input_spec=INPUT_SPEC, output_spec=OUTPUT_SPEC)
