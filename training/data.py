"""The demo data, shipped inside scikit-learn's wheel (nothing is downloaded): the 8×8 digits (1,797 images), the
wine measurements (178 rows, 13 named features, 3 classes) and the Linnerud exercise data (20 rows, 3 named
features, 3 targets).

Training and the end-to-end test both call ``digits_split`` with the same seed, so the test scores exactly the
images training held out.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Split:
    """Raw client-side values, as a client would send them: ``x_*`` (n, features) float32, ``y_*`` the targets
    (digits: (n,) int64 labels 0-9; Linnerud: (n, 3) float32)."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray


def digits_split(test_fraction: float = 0.2, seed: int = 0) -> Split:
    """A stratified train/test split of the digits, deterministic for a given seed."""
    from sklearn.datasets import load_digits  # training-only dependency, absent from the serving image
    from sklearn.model_selection import train_test_split

    digits = load_digits()
    x = digits.data.astype(np.float32)
    y = digits.target.astype(np.int64)
    x_train, x_test, y_train, y_test = train_test_split(x, y, test_size=test_fraction, random_state=seed, stratify=y)
    return Split(x_train, y_train, x_test, y_test)


def wine_split(test_fraction: float = 0.25, seed: int = 0) -> Split:
    """A stratified train/test split of scikit-learn's wine data (178 rows, 13 raw measurements, 3 classes)."""
    from sklearn.datasets import load_wine
    from sklearn.model_selection import train_test_split

    data = load_wine()
    x, y = data.data.astype(np.float32), data.target.astype(np.int64)
    x_train, x_test, y_train, y_test = train_test_split(x, y, test_size=test_fraction, random_state=seed, stratify=y)
    return Split(x_train, y_train, x_test, y_test)


def linnerud_split(test_rows: int = 4, seed: int = 0) -> Split:
    """A train/test split of the Linnerud data (20 rows), deterministic for a given seed."""
    from sklearn.datasets import load_linnerud

    data = load_linnerud()
    order = np.random.default_rng(seed).permutation(len(data.data))
    x, y = data.data.astype(np.float32)[order], data.target.astype(np.float32)[order]
    return Split(x[test_rows:], y[test_rows:], x[:test_rows], y[:test_rows])
