"""Tasks: seeded generators of (sequence, target) data that the models, ``fit`` and studies share.

================= ======== ============================== =========================
task              inputs   target                         difficulty knob (default)
================= ======== ============================== =========================
reber             tokens   valid string? (2 classes)      -- (the study's, SPEC 2.1)
embedded_reber    tokens   valid string? (2 classes)      --
adding            2 values bin of the marked sum (10)     sequence length (50)
adding_regression 2 values the marked sum (real, MSE)     sequence length (50)
copy              tokens   the first k=5 symbols (8 each) delay before recall (20)
parity            bits     odd number of ones? (2)        string length (50)
digits            8 values digit (10 classes)             -- (scikit-learn's 1797)
================= ======== ============================== =========================

:func:`task_data` builds any task from a :class:`~sparsernn.data.DataSpec` (its ``task`` and
``difficulty``); :func:`model_fields` gives the model fields it needs; docs/tasks.md has
the chance levels and what a dense GRU reaches. This package sits above :mod:`sparsernn.data`
(which knows grammars, not tasks): it checks a spec's task against its registry
(:func:`check_spec`) and caps a finite task's size (:func:`spec_fields`).

>>> from sparsernn.tasks import make_task
>>> train, test = make_task("parity", n=100, difficulty=10, seed=0)
>>> train.inputs.shape, test.inputs.shape, train.n_classes
((75, 10), (25, 10), 2)
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import numpy as np

from sparsernn._seed import derive_seed
from sparsernn.data import Dataset, DataSpec, encode, make_dataset, read_csv
from sparsernn.data.reber import GRAMMARS
from sparsernn.errors import ConfigError
from sparsernn.tasks.base import TaskData, split
from sparsernn.tasks.digits import N_DIGITS, digits
from sparsernn.tasks.memory import adding, adding_regression, copy_memory, parity

__all__ = [
    "TASKS",
    "DIFFICULTY",
    "GRAMMAR_TASKS",
    "SHAPES",
    "TaskShape",
    "N_DIGITS",
    "TaskData",
    "adding",
    "adding_regression",
    "chance_level",
    "check_spec",
    "copy_memory",
    "digits",
    "make_task",
    "model_fields",
    "parity",
    "spec_fields",
    "split",
    "strings_task",
    "task_data",
]

#: The tasks whose data are grammar strings: a :class:`~sparsernn.data.DataSpec` builds them
#: (its ``grammar`` field names which), and the study's rules apply (last padded step).
GRAMMAR_TASKS = tuple(GRAMMARS)  # ("reber", "embedded_reber")

#: What each task's difficulty knob sets (None: it has none).
DIFFICULTY: dict[str, str | None] = {
    "reber": None,
    "embedded_reber": None,
    "adding": "length",
    "adding_regression": "length",
    "copy": "delay",
    "parity": "length",
    "digits": None,
}


@dataclasses.dataclass(frozen=True)
class TaskShape:
    """What a task's data declare, known without generating them: the model fields it needs.

    ``inputs`` is ``"tokens"`` (codes below ``vocab_size``) or ``"real"`` (``input_size``
    values per step); ``n_classes`` per output position (0: a regression target), with
    ``n_outputs`` positions. No task's shape depends on its difficulty knob.
    """

    inputs: str
    n_classes: int
    n_outputs: int = 1
    vocab_size: int = 0
    input_size: int = 0


#: Each task's :class:`TaskShape` (what its :class:`TaskData` declare; a test checks them).
SHAPES: dict[str, TaskShape] = {
    "reber": TaskShape("tokens", 2, vocab_size=128),
    "embedded_reber": TaskShape("tokens", 2, vocab_size=128),
    "adding": TaskShape("real", 10, input_size=2),
    "adding_regression": TaskShape("real", 0, input_size=2),
    "copy": TaskShape("tokens", 8, n_outputs=5, vocab_size=11),
    "parity": TaskShape("tokens", 2, vocab_size=3),
    "digits": TaskShape("real", 10, input_size=8),
}


def strings_task(dataset: Dataset) -> TaskData:
    """A :class:`~sparsernn.data.Dataset` of strings as token data (ASCII codes, 2 classes).

    Models read these at the last PADDED step of each batch, as the study did (SPEC 3).
    """
    lengths = dataset.lengths
    return TaskData(
        encode(dataset.strings), lengths, np.asarray(dataset.labels, dtype=np.int64),
        n_classes=2, vocab_size=128, name=dataset.name, last_step="padded",
    )


def _grammar(name: str) -> Callable[..., tuple[TaskData, TaskData]]:
    def make(n: int, difficulty: int | None, seed: int, test_fraction: float):
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
    "adding": _generated(adding, DIFFICULTY["adding"]),
    "adding_regression": _generated(adding_regression, DIFFICULTY["adding_regression"]),
    "copy": _generated(copy_memory, DIFFICULTY["copy"]),
    "parity": _generated(parity, DIFFICULTY["parity"]),
    "digits": _generated(digits, DIFFICULTY["digits"]),
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


def check_spec(spec: DataSpec) -> None:
    """Refuse a spec whose task is not in the registry, whose difficulty its task has no knob
    for, or that asks a finite task for more examples than it has (:func:`spec_fields` caps
    them where specs are read)."""
    name = spec.task_name
    if name not in DIFFICULTY:
        raise ConfigError(
            f"DataSpec.task: unknown task {name!r}; valid tasks: {', '.join(DIFFICULTY)}"
        )
    if spec.difficulty is not None and DIFFICULTY[name] is None:
        raise ConfigError(
            f"DataSpec.difficulty: the {name} task has no difficulty knob; leave it unset"
        )
    if name == "digits" and spec.n_strings > N_DIGITS:
        raise ConfigError(
            f"DataSpec.n_strings={spec.n_strings}: the digits task has {N_DIGITS} examples; "
            f"ask for at most {N_DIGITS} (sparsernn.tasks.spec_fields caps it)"
        )


def spec_fields(raw: dict[str, Any]) -> dict[str, Any]:
    """Raw :class:`~sparsernn.data.DataSpec` fields (TOML, the CLI, a store) with a finite
    task's ``n_strings`` capped at its size (``digits``: 1797, also when ``n_strings`` is
    absent), so that asking for more gives the one spec, and run key, of all its examples."""
    n = raw.get("n_strings", DataSpec.n_strings)
    if raw.get("task") == "digits" and isinstance(n, int) and not isinstance(n, bool):
        return {**raw, "n_strings": min(n, N_DIGITS)}
    return raw


def task_data(spec: DataSpec) -> tuple[TaskData, TaskData]:
    """The (train, test) :class:`TaskData` ``spec`` describes: for the grammar tasks the
    study's strings (:func:`~sparsernn.data.make_dataset`, exactly as before tasks existed) as
    :func:`strings_task` encodes them, else the task's data with ``spec.n_strings`` examples,
    ``spec.difficulty`` and ``spec.seed``. What the studies and ``sparsernn train`` train on."""
    check_spec(spec)
    if spec.task_name in GRAMMAR_TASKS:
        train, test = make_dataset(spec)
        return strings_task(train), strings_task(test)
    return make_task(
        spec.task_name, spec.n_strings, difficulty=spec.difficulty, seed=spec.seed,
        test_fraction=spec.test_fraction,
    )


def model_fields(spec: DataSpec) -> dict[str, Any]:
    """The :class:`~sparsernn.models.ModelConfig` fields a model of ``spec``'s task needs
    (input layer and head), read from its :data:`SHAPES` entry without generating data; empty
    for the grammar tasks, whose model is the study's."""
    check_spec(spec)
    if spec.task_name in GRAMMAR_TASKS:
        return {}
    shape = SHAPES[spec.task_name]
    fields: dict[str, Any] = {
        "n_classes": max(shape.n_classes, 1),
        "n_outputs": shape.n_outputs,
        "regression": shape.n_classes == 0,
    }
    if shape.inputs == "tokens":
        fields["vocab_size"] = shape.vocab_size
    else:
        fields["input_size"] = shape.input_size
    return fields


def chance_level(spec: DataSpec) -> float:
    """What always answering the most frequent class scores on ``spec``'s test data (for a
    regression: the mean squared error of always answering the mean target)."""
    if spec.from_files:
        share = float(np.mean(read_csv(spec.test_csv).labels))  # type: ignore[arg-type]
        return max(share, 1.0 - share)
    if spec.task_name in GRAMMAR_TASKS:
        return max(spec.valid_fraction, 1.0 - spec.valid_fraction)
    return task_data(spec)[1].chance()
