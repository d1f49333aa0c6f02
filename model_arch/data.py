"""The demo data: scikit-learn's 8×8 digits (1,797 images, shipped inside the wheel; nothing is downloaded).

Training and the end-to-end test both call ``digits_split`` with the same seed, so the test scores exactly the
images training held out.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class DigitsSplit:
    """Raw client-side values: ``x_*`` (n, 64) float32 pixels 0-16, ``y_*`` (n,) int64 labels 0-9."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray


def digits_split(test_fraction: float = 0.2, seed: int = 0) -> DigitsSplit:
    """A stratified train/test split of the digits, deterministic for a given seed."""
    from sklearn.datasets import load_digits  # training-only dependency, absent from the serving image
    from sklearn.model_selection import train_test_split

    digits = load_digits()
    x = digits.data.astype(np.float32)
    y = digits.target.astype(np.int64)
    x_train, x_test, y_train, y_test = train_test_split(x, y, test_size=test_fraction, random_state=seed, stratify=y)
    return DigitsSplit(x_train, y_train, x_test, y_test)
