"""Data as the training engine reads it: encoded once as tensors, batched in a seeded order.

:class:`~sparsernn.tasks.TaskData` is the one data type the engine takes (``fit``, ``evaluate``,
``train_many``, the studies; :func:`as_task_data` checks it). :class:`EncodedData` is the
engine's view of one as tensors on the model's device, made per call (zero-copy on CPU);
:func:`epoch_order` draws the batch order of one epoch (shuffled, optionally bucketed by
length). All serve :mod:`sparsernn.train`.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator

import numpy as np
import torch
from torch import Tensor

from sparsernn.data import Dataset
from sparsernn.errors import DataError
from sparsernn.tasks.base import TaskData

__all__ = ["EncodedData", "as_task_data", "epoch_order"]


class EncodedData:
    """The engine's view of a :class:`~sparsernn.tasks.TaskData`: its padded inputs, lengths
    and targets as tensors on one device (codes (N, T) or values (N, T, F); targets (N,),
    (N, K) or real; read at each sequence's own last step unless its ``last_step`` says
    otherwise). Made inside each engine call; not an input type.
    """

    def __init__(self, task: TaskData, device: torch.device | str = "cpu") -> None:
        if not isinstance(task, TaskData):
            raise TypeError(
                f"EncodedData takes a sparsernn.tasks.TaskData, not {type(task).__name__}"
            )
        if len(task) == 0:
            raise DataError("empty data set: nothing to train or evaluate on")
        self.inputs = torch.as_tensor(task.inputs, device=device)  # (N, T) or (N, T, F)
        self.lengths = torch.as_tensor(task.lengths, device=device)
        self.targets = torch.as_tensor(task.targets, device=device)  # (N,), (N, K)
        self.own_last_step = task.last_step == "own"
        self.n_outputs = task.n_outputs

    def __len__(self) -> int:
        return len(self.targets)

    @property
    def n_scored(self) -> int:
        """Answers scored per pass: one per example and output position."""
        return len(self) * self.n_outputs

    def batches(self, order: np.ndarray, batch_size: int) -> Iterator[tuple[Tensor, Tensor]]:
        """Yield ``(inputs (B, T_b, ...), targets (B, ...))``, each batch padded to its own
        longest sequence."""
        for inputs, targets, _ in self.batches_with_lengths(order, batch_size):
            yield inputs, targets

    def batches_with_lengths(
        self, order: np.ndarray, batch_size: int
    ) -> Iterator[tuple[Tensor, Tensor, Tensor | None]]:
        """:meth:`batches` with each batch's lengths (B,) for a model that reads every sequence
        at its own last step, or None where the model reads the last padded step."""
        lengths = self.lengths.cpu().numpy()
        for start in range(0, len(order), batch_size):
            idx = order[start : start + batch_size]
            t = int(lengths[idx].max())
            sel = torch.as_tensor(idx, device=self.inputs.device)
            own = self.lengths[sel] if self.own_last_step else None
            yield self.inputs[sel, :t], self.targets[sel], own


def epoch_order(
    n: int,
    lengths: np.ndarray,
    rng: np.random.Generator,
    *,
    shuffle: bool,
    bucket: bool,
    batch_size: int,
) -> np.ndarray:
    """One epoch's order of the ``n`` examples: shuffled (or as stored), and with ``bucket``
    sorted by length within chunks of 50 batches whose batches are then shuffled."""
    order = rng.permutation(n) if shuffle else np.arange(n)
    if not bucket:
        return order
    chunk = batch_size * 50
    parts = []
    for s in range(0, n, chunk):
        part = order[s : s + chunk]
        parts.append(part[np.argsort(lengths[part], kind="stable")])
    order = np.concatenate(parts)
    batches = [order[s : s + batch_size] for s in range(0, n, batch_size)]
    return np.concatenate([batches[i] for i in rng.permutation(len(batches))])


def as_task_data(data: TaskData, caller: str = "fit") -> TaskData:
    """``data`` checked to be the engine's one data type, :class:`~sparsernn.tasks.TaskData`
    (called first thing by each public function of :mod:`sparsernn.train`, named ``caller``).

    A :class:`~sparsernn.data.Dataset` of strings is still taken, with a FutureWarning, as
    :func:`sparsernn.tasks.strings_task` makes it (the same data, read the same way); anything
    else is a TypeError naming the fix.
    """
    if isinstance(data, TaskData):
        return data
    if isinstance(data, Dataset):
        from sparsernn.tasks import strings_task

        warnings.warn(
            f"{caller}() takes a sparsernn.tasks.TaskData; a Dataset of strings is converted "
            "for now but will be refused in 0.3: pass sparsernn.tasks.strings_task(dataset), "
            "or make both parts with sparsernn.tasks.task_data(spec)",
            FutureWarning,
            stacklevel=3,
        )
        return strings_task(data)
    raise TypeError(
        f"{caller}() takes a sparsernn.tasks.TaskData, not {type(data).__name__}: make one with "
        "sparsernn.tasks.task_data(spec), make_task(name, ...) or strings_task(dataset)"
    )

