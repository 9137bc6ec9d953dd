"""scikit-learn's bundled 8x8 digits read row by row: a length-8 sequence of 8 values.

The data ship with scikit-learn (no download): 1797 images, 10 classes, pixel values 0..16
scaled to [0, 1].
"""

from __future__ import annotations

import warnings

import numpy as np

from sparsernn._seed import SeedLike, rng
from sparsernn.errors import ConfigError
from sparsernn.tasks.base import TaskData

__all__ = ["N_DIGITS", "digits"]

#: Number of images in scikit-learn's digits data set.
N_DIGITS = 1797


def digits(n: int | None = None, *, seed: SeedLike = 0) -> TaskData:
    """``n`` of the digits images (all 1797 by default) as sequences of their 8 pixel rows.

    A larger ``n`` is capped at 1797 with a warning that says so. With ``n`` below 1797 a
    seeded random subset is taken.
    """
    if n is not None and (isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 2):
        raise ConfigError(f"n={n!r} must be an integer >= 2")
    from sklearn.datasets import load_digits  # here: importing scikit-learn takes a second

    images, labels = load_digits(return_X_y=True)
    if n is not None and n > N_DIGITS:
        warnings.warn(
            f"the digits task has {N_DIGITS} examples; using all {N_DIGITS}, not {n}",
            stacklevel=2,
        )
        n = None
    index = np.arange(N_DIGITS) if n is None else np.sort(rng(seed).permutation(N_DIGITS)[:n])
    inputs = (images[index] / 16.0).astype(np.float32).reshape(len(index), 8, 8)
    lengths = np.full(len(index), 8, dtype=np.int64)
    return TaskData(inputs, lengths, labels[index].astype(np.int64), n_classes=10, name="digits")
