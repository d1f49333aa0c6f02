"""A model that misbehaves on purpose, for the fault tests (tests/test_faults.py).

It is saved whole (``torch.save(model)``) and served through ``TRUSTED_PICKLE_GLOBALS``, the template's opt-in
for pickled modules, so a real server process runs it: imported there as ``tests.fault_models``.
"""

from __future__ import annotations

import time

import torch
from torch import nn

from model_arch.digits_cnn import DigitsCNN


class FaultyDigits(nn.Module):
    """The demo CNN, except that a row of all 16s raises, and a row of all 8s sleeps ``sleep_s`` seconds."""

    def __init__(self, inner: DigitsCNN, sleep_s: float = 3.0) -> None:
        super().__init__()
        self.inner = inner
        self.sleep_s = sleep_s

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        rows = x.reshape(len(x), -1)  # pixels scaled to [0, 1]: 16 -> 1.0, 8 -> 0.5
        if bool((rows == 1.0).all(dim=1).any()):
            raise RuntimeError("injected fault: a row of all 16s")
        if bool((rows == 0.5).all(dim=1).any()):
            time.sleep(self.sleep_s)
        return self.inner(x)
