"""What every task yields: :class:`TaskData`, arrays of inputs and targets with their meaning.

A task is a seeded generator of (sequence, target) pairs. Inputs are either token codes
(``(N, T)`` int64, 0 = padding, read through an embedding as the study's strings are) or real
values (``(N, T, F)`` float32, read through a linear input layer). Targets are one class per
sequence (``(N,)`` int64), one class per output position (``(N, K)`` int64: the copy task), or a
real number (``(N,)`` float32: the adding problem as regression).
"""

from __future__ import annotations

import dataclasses
from typing import Literal

import numpy as np

from sparsernn._seed import SeedLike, rng
from sparsernn.errors import DataError

__all__ = ["TaskData", "split"]

InputKind = Literal["tokens", "real"]


@dataclasses.dataclass(eq=False)
class TaskData:
    """One part (train or test) of a task's data.

    Attributes
    ----------
    inputs : ndarray
        ``(N, T)`` int64 token codes (0 = padding) or ``(N, T, F)`` float32 values.
    lengths : ndarray of int64, shape (N,)
        True length of each sequence (the rest of ``inputs`` is padding).
    targets : ndarray
        ``(N,)`` int64 classes, ``(N, K)`` int64 classes per position, or ``(N,)`` float32.
    n_classes : int
        Classes per output position; 0 for a regression target.
    vocab_size : int
        Token codes are below this (tokens only; 0 for real inputs).
    name : str
    last_step : str
        Which step a model reads its answer from: ``"own"`` (each sequence's own last step,
        the default) or ``"padded"`` (the last padded step of its batch: the study's rule for
        its strings, kept for them, see :func:`sparsernn.tasks.strings_task`).
    """

    inputs: np.ndarray
    lengths: np.ndarray
    targets: np.ndarray
    n_classes: int
    vocab_size: int = 0
    name: str = ""
    last_step: str = "own"

    def __post_init__(self) -> None:
        if self.last_step not in ("own", "padded"):
            raise DataError(f"last_step={self.last_step!r}; choose 'own' or 'padded'")
        n = len(self.inputs)
        if len(self.lengths) != n or len(self.targets) != n:
            raise DataError(
                f"task data {self.name!r}: {n} inputs, {len(self.lengths)} lengths and "
                f"{len(self.targets)} targets; give one of each per example"
            )
        if self.input_kind == "tokens" and self.vocab_size < 2:
            raise DataError(f"task data {self.name!r}: token inputs need vocab_size >= 2")

    def __len__(self) -> int:
        return len(self.inputs)

    @property
    def input_kind(self) -> InputKind:
        """``"tokens"`` for integer codes read by an embedding, ``"real"`` for values."""
        return "tokens" if np.issubdtype(self.inputs.dtype, np.integer) else "real"

    @property
    def input_size(self) -> int:
        """Features per step of real inputs (1 for tokens, which an embedding widens)."""
        return int(self.inputs.shape[2]) if self.inputs.ndim == 3 else 1

    @property
    def n_outputs(self) -> int:
        """Output positions per sequence: K for ``(N, K)`` targets, else 1."""
        return int(self.targets.shape[1]) if self.targets.ndim == 2 else 1

    @property
    def regression(self) -> bool:
        """True when the target is a real number (no classes)."""
        return self.n_classes == 0

    def chance(self) -> float:
        """Accuracy of always answering the most frequent class (per position for K outputs).

        For regression: the mean squared error of always answering the mean target.
        """
        if self.regression:
            return float(np.mean((self.targets - self.targets.mean()) ** 2))
        t = self.targets.reshape(len(self), -1)
        shares = [np.bincount(t[:, k], minlength=self.n_classes).max() / len(self) for k in
                  range(t.shape[1])]
        return float(np.mean(shares))

    def subset(self, index: np.ndarray, name: str | None = None) -> TaskData:
        """The examples at ``index`` (an integer array) as a new TaskData."""
        return dataclasses.replace(
            self,
            inputs=self.inputs[index],
            lengths=self.lengths[index],
            targets=self.targets[index],
            name=self.name if name is None else name,
        )


def split(data: TaskData, test_fraction: float, seed: SeedLike) -> tuple[TaskData, TaskData]:
    """A seeded (train, test) split; classes keep their shares when there is one target."""
    gen = rng(seed)
    n = len(data)
    n_test = min(max(round(n * test_fraction), 1), n - 1)
    if data.regression or data.targets.ndim != 1:
        order = gen.permutation(n)
        test, train = order[:n_test], order[n_test:]
    else:
        test_parts = []
        for c in np.unique(data.targets):
            rows = gen.permutation(np.flatnonzero(data.targets == c))
            test_parts.append(rows[: round(len(rows) * n_test / n)])
        test = np.sort(np.concatenate(test_parts))
        train = np.setdiff1d(np.arange(n), test)
        test, train = gen.permutation(test), gen.permutation(train)
    name = data.name or "task"
    return data.subset(train, f"{name}/train"), data.subset(test, f"{name}/test")
