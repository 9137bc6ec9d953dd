"""Tests for sparsernn.analysis.stats: t-interval and bootstrap interval."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from sparsernn.analysis import STUDY_FEATURES, bootstrap_ci, mean_ci
from sparsernn.errors import ConfigError, DataError


def test_study_features_are_the_23_in_order():
    assert len(STUDY_FEATURES) == 23
    assert STUDY_FEATURES[:3] == ("layers", "nodes", "edges")
    assert STUDY_FEATURES[-1] == "edge_betweenness_std"
    assert len(set(STUDY_FEATURES)) == 23


def test_mean_ci_matches_hand_computed_t_interval():
    # mean 2, s = 1, half width = t_{0.975, 2} * 1 / sqrt(3) = 4.3027 * 0.57735 = 2.4841
    mean, lo, hi = mean_ci([1.0, 2.0, 3.0])
    assert mean == pytest.approx(2.0)
    assert hi - mean == pytest.approx(2.4841, abs=1e-3)
    assert mean - lo == pytest.approx(2.4841, abs=1e-3)


def test_mean_ci_bounds_clip_only_what_crosses_them():
    # accuracies near 1: the t-interval 0.9 -/+ 2.4841 * 0.05 would reach 1.024
    values = [0.85, 0.9, 0.95]
    mean, lo, hi = mean_ci(values)
    assert hi == pytest.approx(0.9 + 0.124205, abs=1e-4) and hi > 1
    m2, lo2, hi2 = mean_ci(values, bounds=(0, 1))
    assert (m2, lo2, hi2) == (mean, lo, 1.0)


def test_mean_ci_other_confidence_is_narrower():
    _, lo95, hi95 = mean_ci([1.0, 2.0, 3.0, 4.0])
    _, lo80, hi80 = mean_ci([1.0, 2.0, 3.0, 4.0], confidence=0.8)
    assert lo95 < lo80 < hi80 < hi95


def test_mean_ci_edge_cases():
    assert all(math.isnan(v) for v in mean_ci([]))
    mean, lo, hi = mean_ci([0.7])
    assert mean == 0.7 and math.isnan(lo) and math.isnan(hi)
    assert mean_ci([3.0, 3.0, 3.0]) == (3.0, 3.0, 3.0)
    assert mean_ci([1.0, np.nan, 3.0])[0] == pytest.approx(2.0)  # NaN dropped
    with pytest.raises(ConfigError):
        mean_ci([1.0, 2.0], confidence=95)


def _mean_stat(x, y):
    return float(np.mean(x))


def test_bootstrap_ci_covers_true_mean_and_is_reproducible():
    x = np.random.default_rng(0).normal(5.0, 1.0, size=400)
    lo, hi = bootstrap_ci(x, x, _mean_stat, n_boot=500, seed=1)
    # n = 400, sd 1: the 95% interval has half width about 0.1; it must cover the sample mean
    assert lo < x.mean() < hi
    assert 0.1 < hi - lo < 0.3
    assert bootstrap_ci(x, x, _mean_stat, n_boot=500, seed=1) == (lo, hi)


def test_bootstrap_ci_vectorized_equals_loop_and_y_optional():
    x = np.arange(30.0)
    loop = bootstrap_ci(x, None, lambda a: float(a.mean()), n_boot=200, seed=3)
    vec = bootstrap_ci(x, None, lambda a: a.mean(axis=1), n_boot=200, seed=3, vectorized=True)
    assert loop == pytest.approx(vec)


def test_bootstrap_ci_edge_cases():
    assert all(math.isnan(v) for v in bootstrap_ci([], [], _mean_stat, n_boot=10, seed=0))
    # every resample undefined -> NaN bounds, no exception
    nan_stat = bootstrap_ci([1.0, 2.0], [1.0, 2.0], lambda x, y: float("nan"), 20, seed=0)
    assert all(math.isnan(v) for v in nan_stat)
    with pytest.raises(DataError):
        bootstrap_ci([1.0, 2.0], [1.0], _mean_stat)
    with pytest.raises(ConfigError):
        bootstrap_ci([1.0, 2.0], [1.0, 2.0], _mean_stat, n_boot=0)


def test_corrected_cv_ci_hand_computed():
    from sparsernn.analysis import corrected_cv_ci

    # s^2 = 1/60, (1/4 + 1/3) * s^2 = 0.0097222, t(0.975, 3) = 3.18245 -> half width 0.31379
    mean, lo, hi = corrected_cv_ci([0.1, 0.3, 0.2, 0.4], test_to_train=1 / 3)
    assert mean == pytest.approx(0.25)
    assert lo == pytest.approx(0.25 - 0.31379, abs=1e-4)
    assert hi == pytest.approx(0.25 + 0.31379, abs=1e-4)
    assert corrected_cv_ci([0.5], 0.25)[1] != corrected_cv_ci([0.5], 0.25)[1]  # NaN: one score


def test_bootstrap_ci_is_the_percentile_interval_of_seeded_resamples():
    # the expectation, computed by hand: resample row indices with the same generator stream
    x = np.random.default_rng(5).normal(size=40)
    y = x + np.random.default_rng(6).normal(size=40)
    idx = np.random.default_rng(11).integers(0, 40, size=(300, 40))
    boot = [np.corrcoef(x[i], y[i])[0, 1] for i in idx]
    expected = np.quantile(boot, [0.05, 0.95])
    got = bootstrap_ci(x, y, lambda a, b: np.corrcoef(a, b)[0, 1], 300, seed=11, confidence=0.9)
    assert got == pytest.approx(tuple(expected), abs=1e-12)


def test_bootstrap_ci_drops_undefined_resamples():
    # a statistic undefined on a third of the resamples: the interval comes from the others
    x = np.arange(20.0)
    idx = np.random.default_rng(2).integers(0, 20, size=(90, 20))
    values = np.array([x[i].mean() for i in idx])
    values[::3] = np.nan

    def stat(a):
        return np.where(np.arange(len(a)) % 3 == 0, np.nan, a.mean(axis=1))

    got = bootstrap_ci(x, None, stat, 90, seed=2, vectorized=True)
    finite = values[np.isfinite(values)]
    assert got == pytest.approx(tuple(np.quantile(finite, [0.025, 0.975])))
    # more than half undefined: no interval
    assert all(
        math.isnan(v)
        for v in bootstrap_ci(
            x,
            None,
            lambda a: np.where(np.arange(len(a)) % 3 == 0, a.mean(axis=1), np.nan),
            90,
            seed=2,
            vectorized=True,
        )
    )
    assert all(math.isnan(v) for v in bootstrap_ci([1.0], None, np.mean, 10, seed=0))  # 1 row


# ------------------------------------------------------------------ seeds as replicates, verdicts
def test_over_seeds_averages_within_a_seed_before_the_interval():
    from sparsernn.analysis import over_seeds

    # 3 seeds x 4 sparsities: the interval is over the 3 seed means, not 12 rows.
    rows = [
        {"cell": "gru", "seed": s, "amount": a, "acc": 0.5 + 0.1 * s + 0.01 * a}
        for s in range(3)
        for a in range(4)
    ]
    out = over_seeds(pd.DataFrame(rows), "acc", ["cell"]).iloc[0]
    means = [0.515, 0.615, 0.715]  # 0.5 + 0.1 s + 0.01 * mean(0..3)
    assert out["n_seeds"] == 3 and out["per_seed"] == pytest.approx(tuple(means))
    half = 4.302652729911275 * 0.1 / 3**0.5  # t_{0.975, 2} * s / sqrt(3), s = 0.1
    assert out["mean"] == pytest.approx(0.615)
    assert (out["ci_low"], out["ci_high"]) == pytest.approx((0.615 - half, 0.615 + half))


@pytest.mark.parametrize(
    ("lo", "hi", "verdict"),
    [
        (0.001, 0.2, "higher"),
        (-0.2, -0.001, "lower"),
        (-0.009, 0.01, "equivalent"),  # inside +-0.01
        (-0.011, 0.005, "inconclusive"),  # reaches past the margin
        (float("nan"), float("nan"), "inconclusive"),  # one replicate: no interval
    ],
)
def test_interval_verdict(lo, hi, verdict):
    from sparsernn.analysis import interval_verdict

    assert interval_verdict(lo, hi, margin=0.01) == verdict
