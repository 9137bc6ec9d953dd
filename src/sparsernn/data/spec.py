"""The study's data recipe (:class:`DataSpec`) and :func:`make_dataset`, which builds it.

The study's set is 25,000 strings with lengths 11..53, split 18,750 train / 6,250 test: 12,500
distinct walks of the Reber grammar and 12,500 distinct walks of eight alternative grammars (the
same automaton with other letters on its inner edges, SPEC 2.1), which :class:`DataSpec`'s
defaults reproduce.

Examples
--------
>>> from sparsernn.data import DataSpec, make_dataset
>>> train, test = make_dataset(DataSpec(n_strings=100, seed=1))
>>> len(train), len(test), int(train.labels.sum()), int(test.labels.sum())
(75, 25, 38, 12)
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from sparsernn._seed import derive_seed, rng
from sparsernn.config import Config, key_field
from sparsernn.data.dataset import Dataset, read_csv
from sparsernn.data.negatives import (
    NEGATIVE_KINDS,
    STUDY_ALTERNATIVES,
    alternative_kind,
    alternative_walks,
    make_negatives,
)
from sparsernn.data.reber import GRAMMARS, REBER_LETTERS, get_grammar, reber_variant
from sparsernn.errors import ConfigError

__all__ = ["DataSpec", "make_dataset"]

_VALID_KIND = "valid"
# Sampling rounds (each asks for the number still missing) before giving up on unique strings.
_MAX_ROUNDS = 50


# --------------------------------------------------------------------------------------- spec
#: The numeric fields :meth:`DataSpec.normalise` turns from numpy numbers into plain ones.
_NUMBERS: dict[str, type] = {
    "n_strings": int, "min_length": int, "max_length": int, "seed": int,
    "valid_fraction": float, "test_fraction": float,
}
#: Names the first negative kinds had; a legacy three-number mix means these shares.
_LEGACY_KINDS = ("iid_foreign", "broken_transition", "edit")
_RENAMED = {"foreign": "iid_foreign", "transition": "broken_transition"}


def _pairs(value: Any, where: str) -> list[tuple[Any, Any]]:
    """A mapping or a sequence of (name, number) pairs as a list of pairs."""
    if isinstance(value, Mapping):
        return list(value.items())
    if isinstance(value, (tuple, list)) and all(
        isinstance(p, (tuple, list)) and len(p) == 2 for p in value
    ):
        return [tuple(p) for p in value]
    raise ConfigError(f"DataSpec.{where}={value!r} must map names to numbers, e.g. {{name = 1.0}}")


def _normalise_mix(mix: Any) -> tuple[tuple[str, float], ...]:
    if (
        isinstance(mix, (tuple, list))
        and len(mix) == 3
        and not any(isinstance(m, (tuple, list)) for m in mix)
    ):  # legacy (foreign, transition, edit) shares
        mix = dict(zip(_LEGACY_KINDS, mix, strict=True))
    shares: dict[str, float] = {}
    for kind, share in _pairs(mix, "negative_mix"):
        if kind in _RENAMED:
            raise ConfigError(
                f"DataSpec.negative_mix: kind {kind!r} is now called {_RENAMED[kind]!r}"
            )
        if kind not in NEGATIVE_KINDS:
            raise ConfigError(
                f"DataSpec.negative_mix: unknown negative kind {kind!r}; "
                f"valid kinds: {', '.join(NEGATIVE_KINDS)}"
            )
        try:
            share = float(share)
        except (TypeError, ValueError):
            raise ConfigError(f"DataSpec.negative_mix[{kind}]={share!r} must be a number") from None
        if not share >= 0.0:
            raise ConfigError(f"DataSpec.negative_mix[{kind}]={share} must be >= 0")
        shares[kind] = shares.get(kind, 0.0) + share
    if abs(sum(shares.values()) - 1.0) > 1e-6:
        raise ConfigError(
            f"DataSpec.negative_mix={shares} must be shares of {', '.join(NEGATIVE_KINDS)} "
            "summing to 1"
        )
    return tuple((k, shares[k]) for k in NEGATIVE_KINDS if shares.get(k, 0.0) > 0.0)


def _check_canonical(value: Any, canonical: tuple[tuple[str, float], ...], name: str) -> None:
    """Refuse pairs that are valid but not canonical (a mapping, a list, an integer share, another
    order): they would give the same data another run key."""
    same = (
        isinstance(value, tuple)
        and all(isinstance(p, tuple) and type(p[1]) is float for p in value)
        and value == canonical
    )
    if not same:
        raise ConfigError(
            f"DataSpec.{name}={value!r}: give the canonical pairs {canonical!r} "
            "(DataSpec.from_dict accepts a mapping)"
        )


def _normalise_alternatives(alts: Any) -> tuple[tuple[str, float], ...]:
    out: list[tuple[str, float]] = []
    for letters, weight in _pairs(alts, "alternative_grammars"):
        reber_variant(letters)  # validates the letters
        if letters == REBER_LETTERS:
            raise ConfigError(
                f"DataSpec.alternative_grammars: {letters!r} are the real grammar's letters, "
                "so its walks are valid strings; change at least one letter"
            )
        try:
            weight = float(weight)
        except (TypeError, ValueError):
            raise ConfigError(
                f"DataSpec.alternative_grammars[{letters}]={weight!r} must be a number"
            ) from None
        if not weight > 0.0:
            raise ConfigError(f"DataSpec.alternative_grammars[{letters}]={weight} must be > 0")
        if any(letters == seen for seen, _ in out):
            raise ConfigError(f"DataSpec.alternative_grammars: {letters!r} is listed twice")
        out.append((letters, weight))
    if not out:
        raise ConfigError("DataSpec.alternative_grammars is empty; give at least one grammar")
    return tuple(out)


@dataclasses.dataclass(frozen=True)
class DataSpec(Config):
    """How to build a data set; the defaults reproduce the study's (SPEC 2.1).

    Attributes
    ----------
    grammar : str
        ``"reber"`` or ``"embedded_reber"``.
    n_strings : int
        Total number of unique strings (train + test).
    valid_fraction : float
        Fraction of valid strings, in (0, 1).
    negative_mix : pairs (kind, share)
        Shares of the negative kinds summing to 1 (a mapping is accepted): ``alternative``
        (the study's: walks of alternative grammars), ``iid_foreign``, ``broken_transition``
        and ``edit`` (see :mod:`sparsernn.data.negatives`). Default: all ``alternative``.
    alternative_grammars : pairs (letters, weight)
        The alternative grammars of the ``alternative`` share: the ten inner-edge letters of
        each (:func:`~sparsernn.data.reber.reber_variant`) and the weight that splits the share
        among them. Default: the study's eight, weighted by the number of strings each gave.
    min_length, max_length : int
        Length range of every string (walks outside it are rejected).
    test_fraction : float
        Fraction of strings in the test part, in (0, 1).
    seed : int
        Seed of every random choice.
    train_csv, test_csv : str or None
        Use these files (the study's CSV format) instead of generating data; both or neither.
        A run's identity then depends on the files' content, not their paths
        (:meth:`fingerprint`).
    task : str or None
        The task (:data:`sparsernn.tasks.TASKS`) when it is not a grammar's: None (default)
        means the grammar task ``grammar`` names (``"reber"``, the study's, or
        ``"embedded_reber"``, which build the grammar strings above); another task generates
        its own data with ``n_strings`` examples, ``seed`` and ``test_fraction``, and ignores
        the string fields. :attr:`task_name` is the task either way. :meth:`from_dict` (TOML,
        the CLI) also takes a grammar's name here and moves it to ``grammar``. This layer
        knows grammars, not tasks: :mod:`sparsernn.tasks` checks the name and ``difficulty``
        (:func:`~sparsernn.tasks.check_spec`) and caps a finite task's ``n_strings``
        (:func:`~sparsernn.tasks.spec_fields`) where specs are read and used.
    difficulty : int or None
        The task's difficulty knob (:data:`sparsernn.tasks.DIFFICULTY`: sequence length or
        delay); None keeps its default. ``task`` and ``difficulty`` came after run keys
        existed: each is a :func:`~sparsernn.config.key_field`, left out of :meth:`to_dict`
        at its default, so the study's configs and run keys are unchanged.

    The constructor only validates: a mapping or a legacy three-number ``negative_mix``, a
    path object, numpy numbers or a grammar's name as ``task`` are made canonical by
    :meth:`from_dict` (:meth:`normalise`), so that one data set has one config and one key.
    """

    grammar: str = "reber"
    n_strings: int = 25000
    valid_fraction: float = 0.5
    negative_mix: tuple[tuple[str, float], ...] = (("alternative", 1.0),)
    alternative_grammars: tuple[tuple[str, float], ...] = STUDY_ALTERNATIVES
    min_length: int = 11
    max_length: int = 53
    test_fraction: float = 0.25
    seed: int = 0
    train_csv: str | None = None
    test_csv: str | None = None
    task: str | None = key_field(None)
    difficulty: int | None = key_field(None)

    @classmethod
    def normalise(cls, data: dict[str, Any]) -> dict[str, Any]:
        """Raw fields made canonical (see the class docstring); invalid ones raise."""
        task = data.get("task")
        if task in GRAMMARS:  # one name for one grammar: ``grammar`` names it
            if task != "reber":  # "reber", the default task, leaves ``grammar`` as given
                data["grammar"] = task
            data["task"] = None
        for name in ("train_csv", "test_csv"):
            if isinstance(data.get(name), os.PathLike):
                data[name] = os.fspath(data[name])
        for name, kind in _NUMBERS.items():
            value = data.get(name)
            if isinstance(value, (np.integer, np.floating)) and not isinstance(value, bool):
                data[name] = kind(value)
        if "negative_mix" in data:
            data["negative_mix"] = _normalise_mix(data["negative_mix"])
        if "alternative_grammars" in data:
            data["alternative_grammars"] = _normalise_alternatives(data["alternative_grammars"])
        return data

    def __post_init__(self) -> None:
        self._check_task()
        if (self.train_csv is None) != (self.test_csv is None):
            raise ConfigError(
                "DataSpec.train_csv/test_csv: give both files (train and test) or neither"
            )
        for name in ("train_csv", "test_csv"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, str) or not value):
                raise ConfigError(
                    f"DataSpec.{name}={value!r} must be a file path as text (str(path))"
                )
        if self.grammar not in GRAMMARS:
            raise ConfigError(
                f"DataSpec.grammar: unknown grammar {self.grammar!r}; "
                f"valid grammars: {', '.join(sorted(GRAMMARS))}"
            )
        self._check_numbers()
        _check_canonical(self.negative_mix, _normalise_mix(self.negative_mix), "negative_mix")
        _check_canonical(
            self.alternative_grammars,
            _normalise_alternatives(self.alternative_grammars),
            "alternative_grammars",
        )
        self._check_lengths()

    def _check_numbers(self) -> None:
        """The integer and fraction fields: plain numbers in range."""
        for name in ("n_strings", "min_length", "max_length", "seed"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int):
                raise ConfigError(f"DataSpec.{name}={value!r} must be an integer")
        if self.n_strings < 4:
            raise ConfigError(f"DataSpec.n_strings={self.n_strings} must be >= 4")
        if self.seed < 0:
            raise ConfigError(f"DataSpec.seed={self.seed} must be >= 0")
        for name in ("valid_fraction", "test_fraction"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, float):
                raise ConfigError(f"DataSpec.{name}={value!r} must be a number in (0, 1)")
            if not 0.0 < value < 1.0:
                raise ConfigError(f"DataSpec.{name}={value} must lie in the open range (0, 1)")
        n_valid = round(self.n_strings * self.valid_fraction)
        if not 1 <= n_valid <= self.n_strings - 1:
            raise ConfigError(
                f"DataSpec.valid_fraction={self.valid_fraction} gives {n_valid} valid of "
                f"{self.n_strings} strings; both classes need at least one string"
            )

    def _check_lengths(self) -> None:
        """The length range: some string of ``grammar`` must fit it."""
        g = get_grammar(self.grammar)
        if self.min_length < 1:
            raise ConfigError(f"DataSpec.min_length={self.min_length} must be >= 1")
        if self.max_length < self.min_length:
            raise ConfigError(
                f"DataSpec.max_length={self.max_length} must be >= min_length={self.min_length}"
            )
        if not g.achievable_lengths(self.min_length, self.max_length):
            raise ConfigError(
                f"DataSpec.min_length/max_length: no {self.grammar} string has a length in "
                f"[{self.min_length}, {self.max_length}] (shortest is {g.shortest_length}); "
                "widen the range"
            )

    def _check_task(self) -> None:
        """Validate the form of ``task``/``difficulty`` (a grammar is named by ``grammar``;
        :func:`sparsernn.tasks.check_spec` checks them against the task registry)."""
        if self.task in GRAMMARS:
            raise ConfigError(
                f"DataSpec.task={self.task!r} is a grammar: give grammar={self.task!r} and "
                "leave task unset (DataSpec.from_dict moves it)"
            )
        if self.task is not None and (not isinstance(self.task, str) or not self.task):
            raise ConfigError(f"DataSpec.task={self.task!r} must be a task's name")
        if self.task is not None and self.train_csv is not None:
            raise ConfigError(
                f"DataSpec.task={self.task!r} generates its own data; CSV files are "
                "grammar strings (leave task unset, or drop train_csv/test_csv)"
            )
        if self.difficulty is not None and (
            isinstance(self.difficulty, bool) or not isinstance(self.difficulty, int)
        ):
            raise ConfigError(f"DataSpec.difficulty={self.difficulty!r} must be an integer")

    @property
    def task_name(self) -> str:
        """The task these data are: :attr:`task`, or for the grammar tasks :attr:`grammar`."""
        return self.grammar if self.task is None else self.task

    @property
    def from_files(self) -> bool:
        """True when the data come from :attr:`train_csv`/:attr:`test_csv`, not the generator."""
        return self.train_csv is not None

    def fingerprint(self) -> dict[str, Any]:
        """:meth:`to_dict` with each CSV path replaced by ``{"sha256": <hex of its content>}``.

        This is what identifies the data in a run key: an edited file is a new study, a moved
        or renamed one is not.

        Raises
        ------
        DataError
            If a file is missing or not a valid data set (the one-line error of :func:`read_csv`).
        """
        out = self.to_dict()
        for name in ("train_csv", "test_csv"):
            path = getattr(self, name)
            if path is not None:
                read_csv(path)  # refuses malformed files before anything runs
                digest = hashlib.sha256(Path(path).read_bytes()).hexdigest()
                out[name] = {"sha256": digest}
        return out

    @property
    def n_valid(self) -> int:
        """Number of valid strings: ``round(n_strings * valid_fraction)``."""
        return round(self.n_strings * self.valid_fraction)

    @property
    def n_negatives(self) -> dict[str, int]:
        """Number of negatives of each kind (largest-remainder rounding of the mix).

        The ``alternative`` share is split further among :attr:`alternative_grammars` by their
        weights; those negatives are keyed by :func:`~sparsernn.data.negatives.alternative_kind`
        (``"alt_" + letters``). At the study's size this gives exactly its 2000/500/.../1500.
        """
        kinds = [k for k, _ in self.negative_mix]
        counts = _apportion(self.n_strings - self.n_valid, [s for _, s in self.negative_mix])
        out: dict[str, int] = {}
        for kind, count in zip(kinds, counts, strict=True):
            if kind != "alternative":
                out[kind] = count
                continue
            weights = np.array([w for _, w in self.alternative_grammars])
            split = _apportion(count, (weights / weights.sum()).tolist())
            for (letters, _), c in zip(self.alternative_grammars, split, strict=True):
                out[alternative_kind(letters)] = c
        return out

    @property
    def n_test(self) -> int:
        """Number of test strings: ``round(n_strings * test_fraction)``, at least 1 each side."""
        return min(max(round(self.n_strings * self.test_fraction), 1), self.n_strings - 1)


def _apportion(total: int, shares: Sequence[float]) -> list[int]:
    """Split ``total`` by ``shares`` into integers summing to ``total`` (largest remainder)."""
    exact = [total * s for s in shares]
    counts = [int(np.floor(x)) for x in exact]
    order = sorted(range(len(shares)), key=lambda i: (-(exact[i] - counts[i]), i))
    for i in order[: total - sum(counts)]:
        counts[i] += 1
    return counts


# ------------------------------------------------------------------------------- make_dataset
def _unique_draws(
    draw: Callable[[int], list[str]], n: int, seen: set[str], what: str, spec: DataSpec
) -> list[str]:
    """Call ``draw(k)`` until ``n`` strings not in ``seen`` are collected (adds them to seen)."""
    out: list[str] = []
    for _ in range(_MAX_ROUNDS):
        missing = n - len(out)
        if missing == 0:
            return out
        for s in draw(missing + missing // 10 + 1):
            if s not in seen:
                seen.add(s)
                out.append(s)
                if len(out) == n:
                    return out
    raise ConfigError(
        f"DataSpec: found only {len(out)} of {n} distinct {what} strings for grammar "
        f"{spec.grammar} with lengths [{spec.min_length}, {spec.max_length}] after "
        f"{_MAX_ROUNDS} rounds; widen the length range or lower n_strings"
    )


def make_dataset(spec: DataSpec | None = None) -> tuple[Dataset, Dataset]:
    """Build the (train, test) data sets described by ``spec`` (default: the study's).

    With ``spec.train_csv``/``test_csv`` set, the two files are read instead.

    All strings are unique (so train and test are disjoint); the valid/invalid balance is kept
    in both parts (stratified split); the order is shuffled. The same spec always gives the same
    data: valid strings, each negative kind, and the shuffle use independent seeded streams.

    Raises
    ------
    ConfigError
        If the grammar and length range cannot provide enough distinct strings.
    """
    spec = DataSpec() if spec is None else spec
    if spec.from_files:
        return read_csv(spec.train_csv), read_csv(spec.test_csv)  # type: ignore[arg-type]
    strings, kinds = _draw_strings(spec)
    labels = np.array([k == _VALID_KIND for k in kinds], dtype=np.int64)
    gen_split = rng(derive_seed(spec.seed, "data", "split"))
    order = gen_split.permutation(len(strings))
    labels = labels[order]
    full = Dataset(
        strings=[strings[i] for i in order.tolist()],
        labels=labels,
        kinds=[kinds[i] for i in order.tolist()],
    )
    in_test = _stratified_test_rows(labels, spec.n_test, gen_split)
    train, test = full[~in_test], full[in_test]
    train.name, test.name = f"{spec.grammar}/train", f"{spec.grammar}/test"
    return train, test


def _draw_strings(spec: DataSpec) -> tuple[list[str], list[str]]:
    """All distinct strings of ``spec`` with their kinds: valid walks, then each negative kind."""
    g = get_grammar(spec.grammar)
    lo, hi = spec.min_length, spec.max_length
    # The first n_valid distinct strings of the study's sampler (walk + length rejection).
    positives = g.sample_unique(spec.n_valid, derive_seed(spec.seed, "data", "valid"), lo, hi)
    seen: set[str] = set(positives)
    strings = list(positives)
    kinds = [_VALID_KIND] * len(positives)
    n_negatives = spec.n_negatives
    for letters, _ in spec.alternative_grammars:  # the study's kind: one grammar at a time
        kind = alternative_kind(letters)
        if not n_negatives.get(kind):
            continue
        seed = derive_seed(spec.seed, "data", "alternative", letters)
        found = alternative_walks(
            g, letters, n_negatives[kind], seed, min_length=lo, max_length=hi, exclude=seen
        )
        seen.update(found)
        strings += found
        kinds += [kind] * len(found)
    for kind, count in n_negatives.items():
        if count == 0 or kind not in NEGATIVE_KINDS:
            continue
        gen = rng(derive_seed(spec.seed, "data", kind))

        def draw(k: int, kind: str = kind, gen: np.random.Generator = gen) -> list[str]:
            return make_negatives(kind, g, k, gen, valid=positives, min_length=lo, max_length=hi)

        found = _unique_draws(draw, count, seen, f"{kind}-negative", spec)
        strings += found
        kinds += [kind] * len(found)
    return strings, kinds


def _stratified_test_rows(labels: np.ndarray, n_test: int, gen: np.random.Generator) -> np.ndarray:
    """A boolean mask of ``n_test`` rows keeping the valid share of ``labels`` (seeded)."""
    pos, neg = np.flatnonzero(labels == 1), np.flatnonzero(labels == 0)
    n_test_pos = min(max(round(n_test * len(pos) / len(labels)), 0), len(pos))
    n_test_neg = min(n_test - n_test_pos, len(neg))
    in_test = np.zeros(len(labels), dtype=bool)
    in_test[gen.choice(pos, size=n_test_pos, replace=False)] = True
    in_test[gen.choice(neg, size=n_test_neg, replace=False)] = True
    return in_test
