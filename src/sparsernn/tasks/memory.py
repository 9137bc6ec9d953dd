"""Generated tasks that need memory: the adding problem, copy memory and parity.

Each is a pure function of its size, its difficulty knob and a seed, so the same arguments
always give the same data. The difficulty knob is the sequence length (adding, parity) or the
delay between seeing and recalling (copy).
"""

from __future__ import annotations

import numpy as np

from sparsernn._seed import SeedLike, rng
from sparsernn.errors import ConfigError
from sparsernn.tasks.base import TaskData

__all__ = ["adding", "adding_regression", "copy_memory", "parity"]


def _positive(name: str, value: int, least: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < least:
        raise ConfigError(f"{name}={value!r} must be an integer >= {least}")
    return int(value)


def adding(n: int, length: int = 50, *, n_bins: int | None = 10, seed: SeedLike = 0) -> TaskData:
    """Hochreiter & Schmidhuber's adding problem: add the two marked numbers of a sequence.

    Each step carries two values: a number drawn from U(0, 1) and a marker that is 1 at exactly
    two steps, one in each half of the sequence. The target is the sum of the two marked numbers
    (in [0, 2]); with ``n_bins`` it is the index of its bin among ``n_bins`` equal bins of
    [0, 2] (a classification), with ``n_bins=None`` the sum itself (a regression).
    """
    n, length = _positive("n", n), _positive("length", length, 2)
    gen = rng(seed)
    values = gen.random((n, length), dtype=np.float32)
    half = length // 2
    first = gen.integers(0, half, size=n)
    second = gen.integers(half, length, size=n)
    markers = np.zeros((n, length), dtype=np.float32)
    rows = np.arange(n)
    markers[rows, first] = 1.0
    markers[rows, second] = 1.0
    total = values[rows, first] + values[rows, second]
    if n_bins is None:
        targets, n_classes = total.astype(np.float32), 0
    else:
        n_bins = _positive("n_bins", n_bins, 2)
        targets = np.minimum((total / (2.0 / n_bins)).astype(np.int64), n_bins - 1)
        n_classes = n_bins
    inputs = np.stack([values, markers], axis=2)  # (N, T, 2)
    lengths = np.full(n, length, dtype=np.int64)
    return TaskData(inputs, lengths, targets, n_classes=n_classes, name="adding")


def adding_regression(n: int, length: int = 50, *, seed: SeedLike = 0) -> TaskData:
    """The adding problem as a regression: the target is the marked sum itself (MSE loss)."""
    return adding(n, length, n_bins=None, seed=seed)


def copy_memory(
    n: int, k: int = 5, delay: int = 20, *, n_symbols: int = 8, seed: SeedLike = 0
) -> TaskData:
    """Copy memory: see ``k`` symbols, wait ``delay`` blank steps, then recall all ``k``.

    Tokens: symbols are codes ``1..n_symbols``, the blank is ``n_symbols + 1`` and the recall
    cue (the last step) is ``n_symbols + 2``. The target is the ``k`` symbols as classes
    ``0..n_symbols-1`` read from the network's final state, one output per position; accuracy
    is per symbol and chance is ``1 / n_symbols``.
    """
    n, k = _positive("n", n), _positive("k", k)
    delay, n_symbols = _positive("delay", delay, 0), _positive("n_symbols", n_symbols, 2)
    gen = rng(seed)
    symbols = gen.integers(0, n_symbols, size=(n, k))
    length = k + delay + 1
    inputs = np.full((n, length), n_symbols + 1, dtype=np.int64)
    inputs[:, :k] = symbols + 1
    inputs[:, -1] = n_symbols + 2
    lengths = np.full(n, length, dtype=np.int64)
    return TaskData(
        inputs, lengths, symbols.astype(np.int64), n_classes=n_symbols,
        vocab_size=n_symbols + 3, name="copy",
    )


def parity(
    n: int, length: int = 50, *, min_length: int | None = None, seed: SeedLike = 0
) -> TaskData:
    """Parity: is the number of ones in a bit string odd? (the running parity at its end).

    Bits are tokens 1 (a zero) and 2 (a one). Lengths are drawn uniformly from
    ``[min_length, length]`` (default: all ``length``); shorter strings are right-padded with 0.
    """
    n, length = _positive("n", n), _positive("length", length)
    lo = length if min_length is None else _positive("min_length", min_length)
    if lo > length:
        raise ConfigError(f"min_length={lo} must be <= length={length}")
    gen = rng(seed)
    lengths = gen.integers(lo, length + 1, size=n).astype(np.int64)
    bits = gen.integers(0, 2, size=(n, length))
    bits[np.arange(length)[None, :] >= lengths[:, None]] = 0
    inputs = np.where(np.arange(length)[None, :] < lengths[:, None], bits + 1, 0)
    targets = (bits.sum(axis=1) % 2).astype(np.int64)
    return TaskData(inputs.astype(np.int64), lengths, targets, n_classes=2, vocab_size=3,
                    name="parity")
