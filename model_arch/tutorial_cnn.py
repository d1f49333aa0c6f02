"""A CNN written the way tutorials write it, served as it is: a constructor without arguments, ``x.view(...)`` to
flatten, and a ``forward`` that returns ``(logits, features)``.

Nothing in the class knows about the template. The specs below are all it takes: ``OutputSpec(select=0)`` names
the logits in the tuple, and the input spec's ``subtract``/``divide`` hold the per-channel mean and standard
deviation, which training fits on its data and writes into the manifest (``training.train.train_tutorial_cnn``).
``x.view`` cannot run in PyTorch's channels-last layout, so serving checks the layout at start-up and keeps the
default one for this model (``model_folder.torch_engine``).
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import nn

from model_arch.architecture import Architecture
from model_arch.spec import InputSpec, OutputSpec

INPUT_SPEC = InputSpec(
    name="pixels",
    shape=(1, 8, 8),
    minimum=0.0,
    maximum=16.0,
    subtract=[0.0],  # per channel; training writes the training set's mean and standard deviation
    divide=[1.0],
    description="One 8×8 grayscale digit image, pixel intensities 0-16 as in sklearn.datasets.load_digits.",
)
OUTPUT_SPEC = OutputSpec(kind="classification", labels=tuple(range(10)), select=0)


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 16, 3, padding=1)
        self.conv2 = nn.Conv2d(16, 32, 3, padding=1)
        self.pool = nn.MaxPool2d(2, 2)
        self.fc1 = nn.Linear(32 * 4 * 4, 64)
        self.fc2 = nn.Linear(64, 10)

    def forward(self, x):
        x = F.relu(self.conv1(x))
        x = self.pool(F.relu(self.conv2(x)))
        x = x.view(-1, 32 * 4 * 4)
        features = F.relu(self.fc1(x))
        return self.fc2(features), features


ARCHITECTURE = Architecture(name="tutorial_cnn", model_class=Net, input_spec=INPUT_SPEC, output_spec=OUTPUT_SPEC)
