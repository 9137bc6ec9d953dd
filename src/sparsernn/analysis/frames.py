"""The conventions every analysis function follows, as small helpers.

A missing column is a :class:`~sparsernn.errors.DataError` naming it (:func:`require_columns`);
an analysis that cannot run on the given rows (no rows, one generator, fewer rows than folds)
returns an empty frame with the right columns and the reason in ``frame.attrs["note"]``
(:func:`empty_frame`, :func:`with_notes`) instead of raising; a confidence level lies strictly
between 0 and 1 (:func:`check_confidence`); an interval reads ``1.0 [0.5, 1.5]``
(:func:`format_ci`).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np
import pandas as pd

from sparsernn.errors import ConfigError, DataError

__all__ = ["check_confidence", "empty_frame", "format_ci", "require_columns", "with_notes"]


def check_confidence(confidence: float) -> float:
    """``confidence`` as a float, or a ConfigError unless it lies strictly between 0 and 1."""
    if not 0.0 < float(confidence) < 1.0:
        raise ConfigError(f"confidence must be between 0 and 1 (e.g. 0.95), not {confidence!r}")
    return float(confidence)


def require_columns(df: pd.DataFrame, columns: Iterable[str], what: str) -> None:
    """Raise DataError naming the columns ``what`` needs that ``df`` lacks."""
    if not isinstance(df, pd.DataFrame):
        raise DataError(f"{what} needs a pandas DataFrame, not {type(df).__name__}")
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise DataError(
            f"{what} needs column(s) {', '.join(missing)}; "
            f"the frame has {', '.join(map(str, df.columns)) or 'no columns'}"
        )


def empty_frame(columns: Sequence[str], note: str) -> pd.DataFrame:
    """An empty frame with ``columns`` and the reason it is empty in ``attrs['note']``."""
    out = pd.DataFrame({c: pd.Series(dtype=object) for c in columns})
    out.attrs["note"] = note
    return out


def with_notes(df: pd.DataFrame, notes: Sequence[str]) -> pd.DataFrame:
    """Attach ``notes`` (joined by '; ') to ``df.attrs['note']`` when there are any."""
    if notes:
        df.attrs["note"] = "; ".join(notes)
    return df


def format_ci(mean: float, lo: float, hi: float, digits: int = 1) -> str:
    """``'1.0 [0.5, 1.5]'``; just the mean when the interval is undefined."""
    if np.isnan(mean):
        return "nan"
    if np.isnan(lo) or np.isnan(hi):
        return f"{mean:.{digits}f}"
    return f"{mean:.{digits}f} [{lo:.{digits}f}, {hi:.{digits}f}]"
