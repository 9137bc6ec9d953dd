"""Labelled string data sets: the study's recipe (:class:`DataSpec`), CSV IO and ASCII encoding.

The study's set is 25,000 strings with lengths 11..53, split 18,750 train / 6,250 test: 12,500
distinct walks of the Reber grammar and 12,500 distinct walks of eight alternative grammars (the
same automaton with other letters on its inner edges, SPEC 2.1), which :class:`DataSpec`'s
defaults reproduce. On disk it is a CSV with header ``string,valid`` (optionally a leading
unnamed index column).

Examples
--------
>>> from sparsernn.data import DataSpec, make_dataset
>>> train, test = make_dataset(DataSpec(n_strings=100, seed=1))
>>> len(train), len(test), int(train.labels.sum()), int(test.labels.sum())
(75, 25, 38, 12)
"""

from __future__ import annotations

import csv
import dataclasses
import hashlib
import io
import os
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from sparsernn._files import atomic_write_bytes
from sparsernn._seed import derive_seed, rng
from sparsernn.config import Config
from sparsernn.data.negatives import (
    NEGATIVE_KINDS,
    STUDY_ALTERNATIVES,
    alternative_kind,
    alternative_walks,
    make_negatives,
)
from sparsernn.data.reber import GRAMMARS, REBER_LETTERS, get_grammar, reber_variant
from sparsernn.errors import ConfigError, DataError

__all__ = ["DataSpec", "Dataset", "make_dataset", "read_csv", "write_csv", "encode"]

_VALID_KIND = "valid"
# Sampling rounds (each asks for the number still missing) before giving up on unique strings.
_MAX_ROUNDS = 50


# --------------------------------------------------------------------------------------- spec
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

    def __post_init__(self) -> None:
        if (self.train_csv is None) != (self.test_csv is None):
            raise ConfigError(
                "DataSpec.train_csv/test_csv: give both files (train and test) or neither"
            )
        for name in ("train_csv", "test_csv"):
            value = getattr(self, name)
            if value is not None:
                if not isinstance(value, (str, os.PathLike)) or not str(value):
                    raise ConfigError(f"DataSpec.{name}={value!r} must be a file path")
                object.__setattr__(self, name, os.fspath(value))
        if self.grammar not in GRAMMARS:
            raise ConfigError(
                f"DataSpec.grammar: unknown grammar {self.grammar!r}; "
                f"valid grammars: {', '.join(sorted(GRAMMARS))}"
            )
        for name in ("n_strings", "min_length", "max_length", "seed"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
                raise ConfigError(f"DataSpec.{name}={value!r} must be an integer")
            object.__setattr__(self, name, int(value))
        if self.n_strings < 4:
            raise ConfigError(f"DataSpec.n_strings={self.n_strings} must be >= 4")
        if self.seed < 0:
            raise ConfigError(f"DataSpec.seed={self.seed} must be >= 0")
        for name in ("valid_fraction", "test_fraction"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float, np.floating)):
                raise ConfigError(f"DataSpec.{name}={value!r} must be a number in (0, 1)")
            if not 0.0 < float(value) < 1.0:
                raise ConfigError(f"DataSpec.{name}={value} must lie in the open range (0, 1)")
            object.__setattr__(self, name, float(value))
        n_valid = round(self.n_strings * self.valid_fraction)
        if not 1 <= n_valid <= self.n_strings - 1:
            raise ConfigError(
                f"DataSpec.valid_fraction={self.valid_fraction} gives {n_valid} valid of "
                f"{self.n_strings} strings; both classes need at least one string"
            )
        object.__setattr__(self, "negative_mix", _normalise_mix(self.negative_mix))
        object.__setattr__(
            self, "alternative_grammars", _normalise_alternatives(self.alternative_grammars)
        )
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


# ------------------------------------------------------------------------------------ dataset
@dataclasses.dataclass(eq=False)
class Dataset:
    """Strings with 0/1 labels (1 = valid), and optionally each string's kind.

    Attributes
    ----------
    strings : list of str
    labels : ndarray of int64, shape (N,)
        1 for valid strings, 0 for invalid ones.
    kinds : list of str or None
        ``"valid"`` or a negative kind per string; None when unknown (read from CSV).
    name : str
    """

    strings: list[str]
    labels: np.ndarray
    kinds: list[str] | None = None
    name: str = ""

    def __post_init__(self) -> None:
        self.strings = list(self.strings)
        labels = np.asarray(self.labels)
        if labels.ndim != 1 or labels.shape[0] != len(self.strings):
            raise DataError(
                f"dataset {self.name!r}: {labels.shape} labels for {len(self.strings)} strings; "
                "pass one label per string"
            )
        if labels.size and not np.isin(labels, (0, 1)).all():
            raise DataError(f"dataset {self.name!r}: labels must be 0 or 1")
        self.labels = labels.astype(np.int64)
        if self.kinds is not None:
            self.kinds = list(self.kinds)
            if len(self.kinds) != len(self.strings):
                raise DataError(
                    f"dataset {self.name!r}: {len(self.kinds)} kinds for "
                    f"{len(self.strings)} strings; pass one kind per string or None"
                )

    def __len__(self) -> int:
        return len(self.strings)

    def __getitem__(self, index: Any) -> Any:
        """``ds[i]`` is ``(string, label)``; a slice, index array or bool mask gives a Dataset."""
        if isinstance(index, (int, np.integer)):
            return self.strings[index], int(self.labels[index])
        if isinstance(index, slice):
            idx = np.arange(len(self))[index]
        else:
            idx = np.asarray(index)
            if idx.dtype == bool:
                if idx.shape != (len(self),):
                    raise IndexError(f"boolean mask of shape {idx.shape} for {len(self)} strings")
                idx = np.flatnonzero(idx)
            elif idx.size == 0:
                idx = idx.astype(np.int64)
            elif not np.issubdtype(idx.dtype, np.integer):
                raise IndexError(f"cannot index a Dataset with {idx.dtype} values")
        pick = idx.tolist()
        return Dataset(
            strings=[self.strings[i] for i in pick],
            labels=self.labels[idx],
            kinds=None if self.kinds is None else [self.kinds[i] for i in pick],
            name=self.name,
        )

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Dataset):
            return NotImplemented
        return (
            self.strings == other.strings
            and np.array_equal(self.labels, other.labels)
            and self.kinds == other.kinds
            and self.name == other.name
        )

    __hash__ = None  # type: ignore[assignment]

    @property
    def lengths(self) -> np.ndarray:
        """String lengths, shape (N,)."""
        return np.fromiter(map(len, self.strings), dtype=np.int64, count=len(self.strings))

    def summary(self) -> dict[str, Any]:
        """Counts and length statistics: n, n_valid, n_invalid, length min/max/mode, kinds.

        ``length_mode`` is the smallest most frequent length; lengths are None when empty.
        """
        lengths = self.lengths
        mode = None
        if lengths.size:
            counts = np.bincount(lengths)
            mode = int(np.argmax(counts))
        return {
            "name": self.name,
            "n": len(self),
            "n_valid": int(self.labels.sum()),
            "n_invalid": int(len(self) - self.labels.sum()),
            "length_min": int(lengths.min()) if lengths.size else None,
            "length_max": int(lengths.max()) if lengths.size else None,
            "length_mode": mode,
            "kinds": None if self.kinds is None else dict(sorted(Counter(self.kinds).items())),
        }


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
    g = get_grammar(spec.grammar)
    lo, hi = spec.min_length, spec.max_length
    seen: set[str] = set()

    # The first n_valid distinct strings of the study's sampler (walk + length rejection).
    positives = g.sample_unique(spec.n_valid, derive_seed(spec.seed, "data", "valid"), lo, hi)
    seen.update(positives)
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

    labels = np.array([k == _VALID_KIND for k in kinds], dtype=np.int64)
    gen_split = rng(derive_seed(spec.seed, "data", "split"))
    order = gen_split.permutation(len(strings))
    labels = labels[order]
    pos, neg = np.flatnonzero(labels == 1), np.flatnonzero(labels == 0)
    n_test_pos = min(max(round(spec.n_test * len(pos) / len(strings)), 0), len(pos))
    n_test_neg = min(spec.n_test - n_test_pos, len(neg))
    in_test = np.zeros(len(strings), dtype=bool)
    in_test[gen_split.choice(pos, size=n_test_pos, replace=False)] = True
    in_test[gen_split.choice(neg, size=n_test_neg, replace=False)] = True
    full = Dataset(
        strings=[strings[i] for i in order.tolist()],
        labels=labels,
        kinds=[kinds[i] for i in order.tolist()],
    )
    train, test = full[~in_test], full[in_test]
    train.name, test.name = f"{spec.grammar}/train", f"{spec.grammar}/test"
    return train, test


# ------------------------------------------------------------------------------------ CSV IO
def _check_string(s: str, where: str) -> None:
    if s == "":
        raise DataError(f"{where}: empty string; remove the row or fill in the string")
    for pos, ch in enumerate(s):
        if ord(ch) >= 128:
            raise DataError(
                f"{where}: character {ch!r} (code {ord(ch)}) at position {pos + 1} is not ASCII "
                "(code >= 128); the model's vocabulary has 128 codes, so replace or remove it"
            )


def read_csv(path: str | os.PathLike[str]) -> Dataset:
    """Read a data set in the study's CSV format (header ``string,valid``, labels 0/1).

    A leading unnamed index column (as pandas writes with ``index=True``) and other extra
    columns are ignored. Errors name the file, the 1-based data row (header excluded) with its
    line number in the file, the problem and the fix.

    Raises
    ------
    DataError
        Missing or empty file, missing ``string``/``valid`` column, a label other than 0/1, an
        empty string, a non-ASCII character, or a row with the wrong number of fields.
    """
    path = Path(path)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise DataError(f"{path}: no such file; check the path") from None
    except IsADirectoryError:
        raise DataError(f"{path}: is a directory, not a CSV file; pass the file's path") from None
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise DataError(
            f"{path}: line {line}: bytes are not UTF-8 text; save the file as UTF-8/ASCII"
        ) from None
    if not text.strip():
        raise DataError(f"{path}: file is empty; expected a header 'string,valid' and data rows")
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = next(reader)
    except csv.Error as exc:
        raise DataError(f"{path}: line 1: malformed CSV header ({exc}); fix the header") from None
    names = [h.strip() for h in header]
    missing = [c for c in ("string", "valid") if c not in names]
    if missing:
        raise DataError(
            f"{path}: header {','.join(header)!r} lacks column(s) {', '.join(missing)}; "
            "the file needs a header with columns 'string' and 'valid'"
        )
    i_str, i_val = names.index("string"), names.index("valid")
    strings: list[str] = []
    labels: list[int] = []
    row = 0
    while True:
        try:
            fields = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:
            raise DataError(
                f"{path}: data row {row + 1} (line {reader.line_num}): malformed CSV ({exc}); "
                "fix the quoting"
            ) from None
        if not fields:  # a blank line
            continue
        row += 1
        where = f"{path}: data row {row} (line {reader.line_num})"
        if len(fields) != len(header):
            raise DataError(
                f"{where}: {len(fields)} fields but the header has {len(header)}; "
                "fix the row's commas (quote strings containing commas)"
            )
        label = fields[i_val].strip()
        if label not in ("0", "1"):
            raise DataError(f"{where}: label {label!r} in column 'valid' is not 0 or 1; fix it")
        _check_string(fields[i_str], where)
        strings.append(fields[i_str])
        labels.append(int(label))
    if not strings:
        raise DataError(f"{path}: header but no data rows; add rows 'string,valid'")
    return Dataset(strings, np.asarray(labels, dtype=np.int64), kinds=None, name=path.stem)


def write_csv(dataset: Dataset, path: str | os.PathLike[str]) -> Path:
    """Write ``dataset`` as CSV with header ``string,valid`` (no index column), atomically.

    The rows go to a temporary file in the same folder that then replaces ``path``, so an
    existing file is never left half-written. Returns the path written.

    Raises
    ------
    DataError
        If a string is empty or not ASCII (it could not be read back); nothing is written.
    """
    path = Path(path)
    for i, s in enumerate(dataset.strings):
        _check_string(s, f"{path}: dataset row {i + 1}")
    labels = np.asarray(dataset.labels).tolist()
    parent = path.parent if str(path.parent) else Path(".")
    if not parent.is_dir():
        raise DataError(f"{path}: folder {parent} does not exist; create it first")
    text = io.StringIO(newline="")
    writer = csv.writer(text, lineterminator="\n")
    writer.writerow(("string", "valid"))
    writer.writerows(zip(dataset.strings, (int(v) for v in labels), strict=True))
    # The old file's mode, or what open() would give (mkstemp alone would make it 0600).
    return atomic_write_bytes(path, text.getvalue().encode("ascii"), mkdir=False)


# ----------------------------------------------------------------------------------- encoding
def encode(strings: Sequence[str], vocab_size: int = 128) -> np.ndarray:
    """Character codes of ``strings``, right zero-padded to the longest: shape (N, T_max), int64.

    Code 0 is the padding index, so a NUL character is rejected along with codes >= vocab_size.

    Raises
    ------
    DataError
        If a character's code is 0 or >= ``vocab_size``.
    """
    if isinstance(vocab_size, bool) or not isinstance(vocab_size, (int, np.integer)):
        raise ConfigError(f"vocab_size={vocab_size!r} must be an integer >= 2")
    if vocab_size < 2:
        raise ConfigError(f"vocab_size={vocab_size} must be >= 2 (code 0 is padding)")
    strings = list(strings)
    lengths = np.fromiter(map(len, strings), dtype=np.int64, count=len(strings))
    width = int(lengths.max()) if lengths.size else 0
    out = np.zeros((len(strings), width), dtype=np.int64)  # (N, T_max)
    if width == 0:
        return out
    joined = "".join(strings).encode("utf-32-le", errors="surrogatepass")
    codes = np.frombuffer(joined, dtype=np.uint32).astype(np.int64)
    bad = np.flatnonzero((codes >= vocab_size) | (codes == 0))
    if bad.size:
        k = int(bad[0])
        row = int(np.searchsorted(np.cumsum(lengths), k, side="right"))
        col = k - int(lengths[:row].sum())
        code = int(codes[k])
        problem = "is 0, the padding index" if code == 0 else f"is >= vocab_size={vocab_size}"
        raise DataError(
            f"strings[{row}] ({strings[row][:40]!r}): character {chr(code)!r} at index {col} "
            f"has code {code}, which {problem}; remove or replace it"
        )
    out[np.arange(width)[None, :] < lengths[:, None]] = codes
    return out
