"""Correlation of graph properties with test accuracy, with bootstrap confidence intervals."""

from __future__ import annotations

import warnings
from collections.abc import Iterator, Sequence

import numpy as np
import pandas as pd
from scipy import stats as _st

from sparsernn._seed import derive_seed
from sparsernn.analysis.frames import check_confidence, empty_frame, require_columns
from sparsernn.analysis.stats import STUDY_FEATURES, bootstrap_ci
from sparsernn.errors import ConfigError

__all__ = ["correlations", "POOLED"]

#: Value of the ``generator`` column for the group that pools all generators of a cell.
POOLED = "all"

_METHODS = ("pearson", "spearman")
_RESULT_COLUMNS = ["feature", "method", "r", "p_value", "ci_low", "ci_high", "n", "note"]


def _pearson_rows(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pearson r of each row pair of ``a`` and ``b`` (shape (k, n)); NaN for constant rows."""
    ac = a - a.mean(axis=1, keepdims=True)
    bc = b - b.mean(axis=1, keepdims=True)
    den = np.sqrt((ac * ac).sum(axis=1) * (bc * bc).sum(axis=1))
    constant = (np.ptp(a, axis=1) == 0) | (np.ptp(b, axis=1) == 0)
    with np.errstate(invalid="ignore", divide="ignore"):
        r = (ac * bc).sum(axis=1) / den
    r[constant] = np.nan
    return np.clip(r, -1.0, 1.0)


def _spearman_rows(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Spearman rho of each row pair: Pearson r of average ranks."""
    return _pearson_rows(_st.rankdata(a, axis=1), _st.rankdata(b, axis=1))


_ROW_STAT = {"pearson": _pearson_rows, "spearman": _spearman_rows}


def _one(
    x: np.ndarray, y: np.ndarray, method: str, n_boot: int, seed: int | None, confidence: float
) -> dict[str, object]:
    """r, p-value and bootstrap CI of one feature/target pair (NaN pairs already removed)."""
    n = int(x.size)
    row: dict[str, object] = {
        "r": np.nan,
        "p_value": np.nan,
        "ci_low": np.nan,
        "ci_high": np.nan,
        "n": n,
        "note": "",
    }
    if n < 3:
        row["note"] = f"fewer than 3 rows (n={n})"
        return row
    if np.ptp(x) == 0:
        row["note"] = "constant feature"
        return row
    if np.ptp(y) == 0:
        row["note"] = "constant target"
        return row
    with warnings.catch_warnings():
        # Nearly constant inputs are legitimate here; the value is still reported.
        warnings.simplefilter("ignore", _st.NearConstantInputWarning)
        res = _st.pearsonr(x, y) if method == "pearson" else _st.spearmanr(x, y)
    row["r"] = float(res.statistic)
    row["p_value"] = float(res.pvalue)
    if n_boot > 0:
        row["ci_low"], row["ci_high"] = bootstrap_ci(
            x,
            y,
            _ROW_STAT[method],
            n_boot=n_boot,
            seed=seed,
            confidence=confidence,
            vectorized=True,
        )
    return row


def correlations(
    df: pd.DataFrame,
    features: Sequence[str] | None = None,
    target: str = "test_accuracy",
    by: Sequence[str] = ("cell", "generator"),
    methods: Sequence[str] = ("pearson", "spearman"),
    n_boot: int = 1000,
    seed: int | None = 0,
    confidence: float = 0.95,
) -> pd.DataFrame:
    """Correlation of each feature with ``target`` per group, long format.

    Parameters
    ----------
    df : DataFrame
        Structure results, one row per trained network.
    features : list of str, optional
        Columns to correlate; default the 23 study features (:data:`STUDY_FEATURES`).
    target : str, default "test_accuracy"
    by : sequence of str, default ("cell", "generator")
        Group keys. When ``"generator"`` is among them, a pooled group with
        ``generator == "all"`` is added for each combination of the other keys (the study
        pooled both generators).
    methods : sequence of {"pearson", "spearman"}
    n_boot : int, default 1000
        Bootstrap resamples of rows for the CI of r; 0 skips the CI.
    seed : int or None, default 0
        Each (group, feature, method) gets its own stream derived from ``seed``, so results do
        not depend on which groups are present.
    confidence : float, default 0.95

    Returns
    -------
    DataFrame
        Columns ``*by, feature, method, r, p_value, ci_low, ci_high, n, note``. Rows with a NaN
        in the feature or target are dropped pair-wise (``n`` counts the rows used). With fewer
        than 3 rows or a constant feature/target, ``r`` is NaN and ``note`` says why. The CI is
        the percentile bootstrap over resampled rows (constant resamples dropped).
    """
    by = [by] if isinstance(by, str) else list(by)
    features = list(STUDY_FEATURES if features is None else features)
    methods = _check_methods(methods, n_boot)
    confidence = check_confidence(confidence)
    require_columns(df, [*by, *features, target], "correlations")
    columns = [*by, *_RESULT_COLUMNS]
    if df.empty:
        return empty_frame(columns, "correlations: no rows")
    rows = []
    for key, sub in _groups(df, by):
        keys = dict(zip(by, key, strict=True))
        for feature, x, y in _pairs(sub, features, target):
            for method in methods:
                stream = None if seed is None else derive_seed(seed, *key, feature, method)
                res = _one(x, y, method, int(n_boot), stream, confidence)
                rows.append({**keys, "feature": feature, "method": method, **res})
    out = pd.DataFrame(rows, columns=columns).astype({"n": int})
    rest = [k for k in by if k != "generator"]
    if rest and "generator" in by:  # each cell's generators, then its pooled group
        out = out.sort_values(rest, kind="stable", ignore_index=True)
    return out


def _pairs(
    sub: pd.DataFrame, features: Sequence[str], target: str
) -> Iterator[tuple[str, np.ndarray, np.ndarray]]:
    """(feature, x, y) per feature, as floats, rows with a NaN in x or y dropped."""
    y_full = pd.to_numeric(sub[target], errors="coerce").to_numpy(float)
    for feature in features:
        x_full = pd.to_numeric(sub[feature], errors="coerce").to_numpy(float)
        ok = ~(np.isnan(x_full) | np.isnan(y_full))
        yield feature, x_full[ok], y_full[ok]


def _check_methods(methods: Sequence[str], n_boot: int) -> list[str]:
    """The correlation methods as a list; ConfigError for an unknown one or a negative n_boot."""
    unknown = [m for m in methods if m not in _METHODS]
    if unknown:
        raise ConfigError(f"unknown correlation method {unknown[0]!r}; use pearson or spearman")
    if int(n_boot) < 0:
        raise ConfigError(f"n_boot must be >= 0, not {n_boot!r}")
    return list(methods)


def _groups(df: pd.DataFrame, by: list[str]) -> list[tuple[tuple[object, ...], pd.DataFrame]]:
    """(key, rows) per group of ``by``; with ``generator`` in ``by``, also each pooled group
    (``generator == POOLED``) of the other keys."""
    if not by:
        return [((), df)]
    groups = [
        (key if isinstance(key, tuple) else (key,), sub)
        for key, sub in df.groupby(by, sort=True, dropna=False)
    ]
    if "generator" in by:
        rest = [k for k in by if k != "generator"]
        pos = by.index("generator")
        pooled = df.groupby(rest, sort=True, dropna=False) if rest else [((), df)]
        for key, sub in pooled:
            key = list(key) if isinstance(key, tuple) else [key]
            key.insert(pos, POOLED)
            groups.append((tuple(key), sub))
    return groups
