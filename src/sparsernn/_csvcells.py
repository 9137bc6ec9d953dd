"""CSV cells a spreadsheet cannot run: text that would start a formula is kept as text.

A graph's name, a failure message or any other text a user supplies can reach a CSV file we
write; a spreadsheet opening it runs a cell that starts with ``=``, ``+``, ``-``, ``@``, a tab
or a carriage return as a formula (OWASP, "CSV injection"). :func:`csv_safe` prefixes such
cells with ``'``, which spreadsheets read as "text follows", and also every cell that already
starts with ``'``, so that :func:`csv_restore` gives back exactly what was written: the
export of a study reads back equal to its store.
"""

from __future__ import annotations

import re
from typing import Any

import pandas as pd

#: What a spreadsheet reads as the start of a formula (OWASP's list: = + - @ tab CR).
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
_NUMBER = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")


def protect(value: Any) -> Any:
    """``value`` with ``'`` in front if it is text a spreadsheet would run (or text that
    starts with ``'``); numbers, and text that is a plain number, unchanged."""
    if not isinstance(value, str):
        return value
    if value.startswith("'") or (value.startswith(FORMULA_START) and not _NUMBER.fullmatch(value)):
        return "'" + value
    return value


def unprotect(value: Any) -> Any:
    """The inverse of :func:`protect`."""
    return value[1:] if isinstance(value, str) and value.startswith("'") else value


def _map_text(df: pd.DataFrame, fn) -> pd.DataFrame:
    out = df.copy()
    for i in range(out.shape[1]):
        column = out.iloc[:, i]
        if column.dtype == object or pd.api.types.is_string_dtype(column):
            out.iloc[:, i] = column.map(fn)
    out.columns = [fn(str(c)) for c in out.columns]
    return out


def csv_safe(df: pd.DataFrame) -> pd.DataFrame:
    """``df`` with every text cell and column name passed through :func:`protect`; number
    columns untouched. Write it with ``to_csv``."""
    return _map_text(df, protect)


def csv_restore(df: pd.DataFrame) -> pd.DataFrame:
    """A frame read from a :func:`csv_safe` CSV, its text as it was before."""
    return _map_text(df, unprotect)
