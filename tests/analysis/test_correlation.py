"""Tests for sparsernn.analysis.correlation on synthetic data with known correlations."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from sparsernn.analysis import STUDY_FEATURES, correlations
from sparsernn.errors import ConfigError, DataError


def _frame(n: int = 60, seed: int = 0) -> pd.DataFrame:
    """Two cells, two generators; accuracy = 0.5 + 0.01 * nodes exactly, other features noise."""
    r = np.random.default_rng(seed)
    rows = []
    for cell in ("gru", "lstm"):
        for i in range(n):
            row = {f: r.normal() for f in STUDY_FEATURES}
            row["nodes"] = int(r.integers(10, 51))
            row.update(cell=cell, generator=("ws", "ba")[i % 2], graph_id=i, seed=0)
            row["test_accuracy"] = 0.5 + 0.01 * row["nodes"]
            rows.append(row)
    return pd.DataFrame(rows)


def test_determining_feature_has_r_one_in_every_group():
    out = correlations(_frame(), features=["nodes", "degree_var"], n_boot=200)
    nodes = out[out["feature"] == "nodes"]
    # 2 cells x (2 generators + pooled) x 2 methods
    assert len(nodes) == 12
    assert nodes["r"].to_numpy() == pytest.approx(1.0, abs=1e-9)
    assert (nodes["ci_low"] > 0.999).all()
    assert set(out["generator"]) == {"ws", "ba", "all"}
    pooled = out[(out["generator"] == "all") & (out["feature"] == "nodes")]
    assert (pooled["n"] == 60).all()
    assert list(out.columns) == [
        "cell",
        "generator",
        "feature",
        "method",
        "r",
        "p_value",
        "ci_low",
        "ci_high",
        "n",
        "note",
    ]


def test_noise_feature_ci_contains_r_and_zero():
    out = correlations(_frame(), features=["degree_var"], methods=["pearson"], n_boot=300)
    pooled = out[out["generator"] == "all"]
    # independent noise, n = 60: |r| < 0.4 and the 95% bootstrap CI contains r and 0
    assert (pooled["r"].abs() < 0.4).all()
    assert ((pooled["ci_low"] <= pooled["r"]) & (pooled["r"] <= pooled["ci_high"])).all()
    assert ((pooled["ci_low"] < 0) & (pooled["ci_high"] > 0)).all()


def test_constant_feature_and_tiny_groups_give_nan_with_note():
    df = _frame(n=20)
    df["layers"] = 3
    out = correlations(df, features=["layers"], n_boot=50)
    assert out["r"].isna().all()
    assert (out["note"] == "constant feature").all()

    tiny = _frame(n=4).query("cell == 'gru'")  # 2 rows per generator, 4 pooled
    out = correlations(tiny, features=["nodes"], methods=["pearson"], n_boot=50)
    per_gen = out[out["generator"] != "all"]
    assert per_gen["r"].isna().all()
    assert per_gen["note"].str.startswith("fewer than 3 rows").all()
    assert out.loc[out["generator"] == "all", "r"].notna().all()


def test_nan_rows_dropped_pairwise_and_reproducible():
    df = _frame(n=30)
    df.loc[0, "nodes"] = np.nan
    a = correlations(df, features=["nodes", "degree_var"], n_boot=100, seed=5)
    b = correlations(df, features=["nodes", "degree_var"], n_boot=100, seed=5)
    pd.testing.assert_frame_equal(a, b)
    row = a[(a.cell == "gru") & (a.generator == "all") & (a.feature == "nodes")].iloc[0]
    assert row["n"] == 29


def test_by_cell_only_and_empty_input():
    out = correlations(_frame(n=20), features=["nodes"], by=("cell",), n_boot=0)
    assert list(out["cell"]) == ["gru", "gru", "lstm", "lstm"]
    assert out["ci_low"].isna().all()
    empty = correlations(_frame().iloc[:0], features=["nodes"])
    assert empty.empty and "no rows" in empty.attrs["note"]


def test_bad_input_raises_clear_errors():
    with pytest.raises(DataError, match="missing_col"):
        correlations(_frame(n=5), features=["missing_col"])
    with pytest.raises(ConfigError):
        correlations(_frame(n=5), features=["nodes"], methods=["kendall"])
