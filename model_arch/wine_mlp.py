"""A tabular classifier for scikit-learn's wine data (13 measurements of very different scales, 3 cultivars), with a
constructor that takes keyword arguments, as most pasted classes do.

Its inputs are standardised per feature by the input spec, not inside the network: training fits the means and
standard deviations on its rows and writes them into the manifest as ``subtract`` and ``divide``
(``training.train.train_wine``), and serving applies the same numbers from there. A client sends raw measurements.
"""

from __future__ import annotations

import torch
from torch import nn

from model_arch.architecture import Architecture
from model_arch.spec import InputSpec, OutputSpec

FEATURES = (
    "alcohol",
    "malic_acid",
    "ash",
    "alcalinity_of_ash",
    "magnesium",
    "total_phenols",
    "flavanoids",
    "nonflavanoid_phenols",
    "proanthocyanins",
    "color_intensity",
    "hue",
    "od280/od315_of_diluted_wines",
    "proline",
)
INPUT_SPEC = InputSpec(
    name="measurements",
    shape=(len(FEATURES),),
    minimum=0.0,
    maximum=5000.0,
    names=FEATURES,
    description="The 13 measurements of one wine, as in sklearn.datasets.load_wine.",
)
OUTPUT_SPEC = OutputSpec(kind="classification", labels=("class_0", "class_1", "class_2"))


class WineMLP(nn.Module):
    def __init__(self, hidden: int = 32, classes: int = 3) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(len(FEATURES), hidden), nn.ReLU(), nn.Linear(hidden, classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # x: (batch, 13) float32, standardised by the input spec -> logits (batch, classes)
        return self.net(x)


ARCHITECTURE = Architecture(name="wine_mlp", model_class=WineMLP, input_spec=INPUT_SPEC, output_spec=OUTPUT_SPEC)
