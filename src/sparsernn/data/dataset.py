"""Labelled string data sets (:class:`Dataset`), their CSV format and ASCII encoding.

On disk a data set is a CSV with header ``string,valid`` (optionally a leading unnamed index
column); :class:`~sparsernn.data.spec.DataSpec` describes how to generate one.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import os
from collections import Counter
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from sparsernn._files import atomic_write_bytes
from sparsernn.errors import ConfigError, DataError

__all__ = ["Dataset", "read_csv", "write_csv", "encode"]


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


def _read_text(path: Path) -> str:
    """The file's text (UTF-8, an optional BOM dropped); one-line errors for unreadable files."""
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
    return text


def _columns(header: list[str], path: Path) -> tuple[int, int]:
    """Positions of the ``string`` and ``valid`` columns in ``header``."""
    names = [h.strip() for h in header]
    missing = [c for c in ("string", "valid") if c not in names]
    if missing:
        raise DataError(
            f"{path}: header {','.join(header)!r} lacks column(s) {', '.join(missing)}; "
            "the file needs a header with columns 'string' and 'valid'"
        )
    return names.index("string"), names.index("valid")


def _data_rows(reader: Any, path: Path) -> Iterator[tuple[int, list[str]]]:
    """(1-based data row, fields) for each non-blank row after the header."""
    row = 0
    while True:
        try:
            fields = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            raise DataError(
                f"{path}: data row {row + 1} (line {reader.line_num}): malformed CSV ({exc}); "
                "fix the quoting"
            ) from None
        if fields:  # blank lines are skipped
            row += 1
            yield row, fields


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
    reader = csv.reader(io.StringIO(_read_text(path), newline=""))
    try:
        header = next(reader)
    except csv.Error as exc:
        raise DataError(f"{path}: line 1: malformed CSV header ({exc}); fix the header") from None
    i_str, i_val = _columns(header, path)
    strings: list[str] = []
    labels: list[int] = []
    for row, fields in _data_rows(reader, path):
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
