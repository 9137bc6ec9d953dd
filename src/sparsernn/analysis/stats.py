"""Small statistics helpers shared by the analysis modules, and the study's feature names.

The conventions every analysis function follows (missing columns, empty results with a note)
are checked by the helpers of :mod:`sparsernn.analysis.frames`.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats as _st

from sparsernn._seed import SeedLike, rng
from sparsernn.analysis.frames import check_confidence, empty_frame, require_columns
from sparsernn.errors import ConfigError, DataError
from sparsernn.graphs.properties import STUDY_FEATURES  # the study's 23, in its order

__all__ = [
    "STUDY_FEATURES",
    "mean_ci",
    "bootstrap_ci",
    "corrected_cv_ci",
    "over_seeds",
    "interval_verdict",
    "VERDICTS",
]


def mean_ci(
    values: Iterable[float],
    confidence: float = 0.95,
    bounds: tuple[float, float] | None = None,
) -> tuple[float, float, float]:
    """Mean and Student-t confidence interval of the mean.

    Parameters
    ----------
    values : iterable of float
        Sample; NaNs are dropped first.
    confidence : float, default 0.95
        Two-sided coverage of the interval.

    Returns
    -------
    (mean, lo, hi) : tuple of float
        ``mean -/+ t_{(1+confidence)/2, n-1} * s / sqrt(n)`` with ``s`` the sample standard
        deviation (n-1). With no values all three are NaN; with one value the mean is that value
        and ``lo`` and ``hi`` are NaN (the spread is unknown, not zero). With n >= 2 equal
        values the interval collapses to the mean.
    bounds : (low, high), optional
        The range the variable cannot leave (an accuracy: ``(0, 1)``); the interval is clipped
        to it, since a symmetric t-interval near a bound can cross it.

    Examples
    --------
    >>> m, lo, hi = mean_ci([1.0, 2.0, 3.0])
    >>> round(m, 3), round(lo, 3), round(hi, 3)
    (2.0, -0.484, 4.484)
    """
    confidence = check_confidence(confidence)
    x = np.asarray(values if isinstance(values, np.ndarray | pd.Series) else list(values), float)
    x = x[~np.isnan(x)]
    n = x.size
    if n == 0:
        return (float("nan"),) * 3
    mean = float(x.mean())
    if n == 1:
        return mean, float("nan"), float("nan")
    sem = float(x.std(ddof=1)) / float(np.sqrt(n))
    half = float(_st.t.ppf((1.0 + confidence) / 2.0, n - 1)) * sem
    lo, hi = mean - half, mean + half
    if bounds is not None:
        lo, hi = max(lo, bounds[0]), min(hi, bounds[1])
    return mean, lo, hi


def bootstrap_ci(
    x: Sequence[float] | np.ndarray,
    y: Sequence[float] | np.ndarray | None,
    statistic: Callable[..., float | np.ndarray],
    n_boot: int = 1000,
    seed: SeedLike = None,
    confidence: float = 0.95,
    vectorized: bool = False,
) -> tuple[float, float]:
    """Percentile bootstrap interval of ``statistic(x, y)``, resampling (x, y) pairs together.

    Parameters
    ----------
    x, y : array-like
        Paired samples of equal length; ``y`` may be None, then ``statistic(x)`` is used.
    statistic : callable
        ``statistic(x, y) -> float``. With ``vectorized=True`` it receives arrays of shape
        ``(n_boot, n)`` and must return an array of shape ``(n_boot,)`` (much faster).
    n_boot : int, default 1000
        Number of resamples.
    seed : int, numpy Generator or None
        Randomness of the resampling.
    confidence : float, default 0.95
        Two-sided coverage.

    Returns
    -------
    (lo, hi) : tuple of float
        Percentiles of the finite bootstrap statistics (:func:`scipy.stats.bootstrap`,
        ``method="percentile"``, the same ``seed`` giving the same interval). Resamples where
        the statistic is undefined (NaN, e.g. a constant resample for a correlation) are
        dropped; if fewer than half are finite, or there are fewer than 2 rows, both bounds
        are NaN.
    """
    confidence = check_confidence(confidence)
    if int(n_boot) < 1:
        raise ConfigError(f"n_boot must be a positive integer, not {n_boot!r}")
    data = [np.asarray(x, dtype=float)] + ([] if y is None else [np.asarray(y, dtype=float)])
    if data[-1].shape != data[0].shape:
        shapes = " and ".join(str(a.shape) for a in data)
        raise DataError(f"x and y must have the same length, got {shapes}")
    if data[0].shape[0] < 2:  # no spread to resample (scipy refuses such a sample)
        return float("nan"), float("nan")
    res = _bootstrap(data, statistic, int(n_boot), rng(seed), confidence, vectorized)
    boot = np.asarray(res.bootstrap_distribution, dtype=float).reshape(-1)
    finite = boot[np.isfinite(boot)]
    if finite.size < 0.5 * int(n_boot):
        return float("nan"), float("nan")
    lo, hi = res.confidence_interval.low, res.confidence_interval.high
    if finite.size < boot.size:  # scipy would propagate the NaNs: take the finite ones
        alpha = (1.0 - confidence) / 2.0
        lo, hi = np.quantile(finite, [alpha, 1.0 - alpha])
    return float(lo), float(hi)


def _bootstrap(
    data: list[np.ndarray],
    statistic: Callable[..., float | np.ndarray],
    n_boot: int,
    generator: np.random.Generator,
    confidence: float,
    vectorized: bool,
) -> Any:
    """:func:`scipy.stats.bootstrap` over paired rows, quiet about undefined resamples."""

    def _rows(*samples: np.ndarray, axis: int = -1) -> np.ndarray:
        return np.asarray(statistic(*samples), dtype=float)  # samples are (n_boot, n) here

    with np.errstate(invalid="ignore", divide="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", _st.DegenerateDataWarning)  # NaN resamples: caller
        return _st.bootstrap(
            data,
            _rows if vectorized else statistic,
            n_resamples=n_boot,
            vectorized=bool(vectorized),
            paired=True,
            confidence_level=confidence,
            method="percentile",
            rng=generator,
        )


# ----------------------------------------------------------------------------- shared helpers


def corrected_cv_ci(
    scores: Iterable[float], test_to_train: float, confidence: float = 0.95
) -> tuple[float, float, float]:
    """Mean and confidence interval of repeated cross-validation scores, corrected for overlap.

    Fold scores share training rows, so the plain t-interval is too narrow. Nadeau & Bengio's
    (2003) corrected resampled t uses the variance ``(1/J + n_test/n_train) * s^2`` for ``J``
    scores; for K-fold, ``test_to_train = 1 / (K - 1)``.

    Examples
    --------
    >>> m, lo, hi = corrected_cv_ci([0.1, 0.3, 0.2, 0.4], test_to_train=1 / 3)
    >>> round(m, 3), round(lo, 3), round(hi, 3)
    (0.25, -0.064, 0.564)
    """
    confidence = check_confidence(confidence)
    x = np.asarray(list(scores), float)
    x = x[~np.isnan(x)]
    if x.size == 0:
        return (float("nan"),) * 3
    mean = float(x.mean())
    if x.size == 1:
        return mean, float("nan"), float("nan")
    half = _st.t.ppf((1 + confidence) / 2, x.size - 1) * np.sqrt(
        (1 / x.size + test_to_train) * x.var(ddof=1)
    )
    return mean, mean - float(half), mean + float(half)


#: What :func:`interval_verdict` can conclude about a difference.
VERDICTS = ("higher", "lower", "equivalent", "inconclusive")


def interval_verdict(lo: float, hi: float, margin: float) -> str:
    """What a confidence interval ``[lo, hi]`` of a difference (A - B) supports.

    ``"higher"`` / ``"lower"``: the interval excludes 0 (A above / below B). ``"equivalent"``:
    it includes 0 but lies inside ``[-margin, margin]``, so any difference is smaller than the
    margin (an equivalence test at the interval's level). ``"inconclusive"``: it includes 0 and
    reaches beyond the margin, or is undefined (NaN, e.g. from one replicate): the data cannot
    tell. "No difference" is never concluded without a margin.

    Examples
    --------
    >>> interval_verdict(0.01, 0.03, 0.02), interval_verdict(-0.01, 0.015, 0.02)
    ('higher', 'equivalent')
    >>> interval_verdict(-0.01, 0.05, 0.02)
    'inconclusive'
    """
    if not float(margin) >= 0:
        raise ConfigError(f"margin must be >= 0, not {margin!r}")
    if np.isnan(lo) or np.isnan(hi):
        return "inconclusive"
    if lo > 0:
        return "higher"
    if hi < 0:
        return "lower"
    if -margin <= lo and hi <= margin:
        return "equivalent"
    return "inconclusive"


def over_seeds(
    df: pd.DataFrame,
    value: str,
    by: Sequence[str],
    seed: str = "seed",
    confidence: float = 0.95,
    bounds: tuple[float, float] | None = None,
) -> pd.DataFrame:
    """Mean and t-interval of ``value`` per group, with seeds as the replicate unit.

    Rows of one seed within a group (e.g. several sparsities of one base model) are averaged
    first, so the interval is over independent replicates: ``n_seeds`` is its n, not the
    number of rows.

    Returns
    -------
    DataFrame
        ``*by, mean, ci_low, ci_high, n_seeds, per_seed`` (``per_seed``: the seeds' means in
        seed order, so a reader sees the spread that the interval summarises).
    """
    confidence = check_confidence(confidence)
    require_columns(df, [*by, seed, value], "over_seeds")
    columns = [*by, "mean", "ci_low", "ci_high", "n_seeds", "per_seed"]
    if df.empty:
        return empty_frame(columns, "over_seeds: no rows")
    seeds = df.groupby([*by, seed], sort=True)[value].mean().reset_index()
    rows = []
    for keys, part in seeds.groupby(list(by), sort=True):
        values = part.sort_values(seed)[value].to_numpy(float)
        mean, lo, hi = mean_ci(values, confidence, bounds)
        keys = keys if isinstance(keys, tuple) else (keys,)
        rows.append([*keys, mean, lo, hi, len(values), tuple(values.tolist())])
    return pd.DataFrame(rows, columns=columns)
