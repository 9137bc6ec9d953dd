"""Tasks: seeded generators of (sequence, target) data that the models, ``fit`` and studies share.

========== ============ ============================== =============================
task       inputs       target                         difficulty knob (default)
========== ============ ============================== =============================
reber      tokens       valid string? (2 classes)      -- (the study's data, SPEC 2.1)
embedded_reber tokens   valid string? (2 classes)      --
adding     2 values     bin of the marked sum (10)     sequence length (50)
copy       tokens       the first k=5 symbols (8 each) delay before recall (20)
parity     bits         odd number of ones? (2)        string length (50)
digits     8 values     digit (10 classes)             -- (scikit-learn's 1797 images)
========== ============ ============================== =============================

>>> from sparsernn.tasks import make_task
>>> train, test = make_task("parity", n=100, difficulty=10, seed=0)
>>> train.inputs.shape, test.inputs.shape, train.n_classes
((75, 10), (25, 10), 2)
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from sparsernn._seed import derive_seed
from sparsernn.errors import ConfigError
from sparsernn.tasks.base import TaskData, split
from sparsernn.tasks.digits import N_DIGITS, digits
from sparsernn.tasks.memory import adding, copy_memory, parity

__all__ = [
    "TASKS",
    "N_DIGITS",
    "TaskData",
    "adding",
    "copy_memory",
    "digits",
    "make_task",
    "parity",
    "split",
    "strings_task",
]


def strings_task(dataset) -> TaskData:  # type: ignore[no-untyped-def]
    """A :class:`~sparsernn.data.Dataset` of strings as token data (ASCII codes, 2 classes)."""
    from sparsernn.data import encode

    lengths = dataset.lengths
    return TaskData(
        encode(dataset.strings), lengths, np.asarray(dataset.labels, dtype=np.int64),
        n_classes=2, vocab_size=128, name=dataset.name,
    )


def _grammar(name: str) -> Callable[..., tuple[TaskData, TaskData]]:
    def make(n: int, difficulty: int | None, seed: int, test_fraction: float):
        from sparsernn.data import DataSpec, make_dataset

        spec = DataSpec(grammar=name, n_strings=n, seed=seed, test_fraction=test_fraction)
        train, test = make_dataset(spec)
        return strings_task(train), strings_task(test)

    return make


def _generated(fn: Callable[..., TaskData], knob: str | None):
    def make(n: int, difficulty: int | None, seed: int, test_fraction: float):
        kwargs = {} if difficulty is None or knob is None else {knob: difficulty}
        if knob is None and difficulty is not None:
            raise ConfigError(f"the {fn.__name__} task has no difficulty knob; leave it unset")
        data = fn(n, seed=derive_seed(seed, "task", fn.__name__), **kwargs)
        return split(data, test_fraction, derive_seed(seed, "task", "split"))

    return make


#: Task name -> maker(n, difficulty, seed, test_fraction) -> (train, test).
TASKS: dict[str, Callable[..., tuple[TaskData, TaskData]]] = {
    "reber": _grammar("reber"),
    "embedded_reber": _grammar("embedded_reber"),
    "adding": _generated(adding, "length"),
    "copy": _generated(copy_memory, "delay"),
    "parity": _generated(parity, "length"),
    "digits": _generated(digits, None),
}


def make_task(
    name: str,
    n: int = 25000,
    *,
    difficulty: int | None = None,
    seed: int = 0,
    test_fraction: float = 0.25,
) -> tuple[TaskData, TaskData]:
    """The (train, test) data of task ``name`` with ``n`` examples in all.

    ``difficulty`` sets the task's knob (see the table above); None keeps its default.
    """
    try:
        maker = TASKS[name]
    except KeyError:
        raise ConfigError(
            f"unknown task {name!r}; valid tasks: {', '.join(TASKS)}"
        ) from None
    if not 0.0 < test_fraction < 1.0:
        raise ConfigError(f"test_fraction={test_fraction} must lie in (0, 1)")
    return maker(n, difficulty, seed, test_fraction)
