"""Tests for sparsernn.analysis.pruning (hand-built results, answers written by hand) and
sparsernn.analysis.published."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from sparsernn.analysis import (
    compare,
    epochs_to_recover,
    published_base_accuracy,
    published_correlations,
    published_mean_accuracy,
    published_post_prune,
    published_r2,
    published_safe_pruning,
    tolerated_sparsity,
)
from sparsernn.errors import ConfigError, DataError

# accuracy at epochs 0, 1, 2 per (seed, target, amount); tolerance 0.01.
# seed 0: base 1.00 -> bar 0.99; seed 1: base 0.95 -> bar 0.94.
_ACC = {
    (0, "both", 10): (1.00, 1.00, 1.00),  # ok at once
    (0, "both", 20): (0.99, 1.00, 1.00),  # exactly at the bar: counts as ok
    (0, "both", 30): (0.95, 0.985, 0.99),  # recovers at epoch 2 (tie)
    (0, "both", 40): (0.50, 0.60, 0.70),  # never
    (1, "both", 10): (0.95, 0.95, 0.95),  # ok
    (1, "both", 20): (0.90, 0.94, 0.95),  # fails, recovers at epoch 1 (tie)
    (1, "both", 30): (0.945, 0.95, 0.95),  # ok again after a failure (non-monotone)
    (1, "both", 40): (0.50, 0.50, 0.50),  # never
    (0, "h2h", 10): (0.90, 0.995, 1.00),  # recovers at epoch 1
    (1, "h2h", 10): (0.50, 0.60, 0.70),  # never
}


def _results() -> tuple[pd.DataFrame, pd.DataFrame]:
    rows = [
        {
            "cell": "gru",
            "seed": seed,
            "target": target,
            "amount": amount,
            "epoch": e,
            "accuracy": acc,
            "loss": 0.0,
        }
        for (seed, target, amount), accs in _ACC.items()
        for e, acc in enumerate(accs)
    ]
    base = pd.DataFrame({"cell": ["gru", "gru"], "seed": [0, 1], "base_accuracy": [1.0, 0.95]})
    return pd.DataFrame(rows), base


def test_tolerated_sparsity_per_seed_every_amount_up_to_it_and_first_failure():
    results, base = _results()
    out = tolerated_sparsity(results, base, per_seed=True).set_index(["seed", "target"])
    assert out.loc[(0, "both"), "tolerated"] == 20  # 20 is a tie -> ok; 30 fails
    assert out.loc[(0, "both"), "first_failure"] == 30
    assert out.loc[(0, "both"), "largest_within"] == 20
    # The study's reading: 30 is within tolerance, but 20 below it is not, so 10 is tolerated.
    assert out.loc[(1, "both"), "tolerated"] == 10
    assert out.loc[(1, "both"), "first_failure"] == 20
    assert out.loc[(1, "both"), "largest_within"] == 30  # the other reading, labelled
    assert not out.loc[(1, "both"), "below_grid"]
    # Nothing within tolerance: 0 (the unpruned model), flagged as below the grid.
    assert out.loc[(0, "h2h"), "tolerated"] == 0 and out.loc[(0, "h2h"), "below_grid"]
    assert out.loc[(0, "h2h"), "first_failure"] == 10
    assert pd.isna(out.loc[(0, "h2h"), "largest_within"])


def test_tolerated_sparsity_is_every_amount_when_none_fails():
    results, base = _results()
    ok = results[(results["seed"] == 0) & (results["target"] == "both") & (results["amount"] <= 20)]
    out = tolerated_sparsity(ok, base, per_seed=True)
    assert out["tolerated"].tolist() == [20.0] and out["first_failure"].isna().all()


def test_tolerated_sparsity_aggregate_t_interval():
    results, base = _results()
    out = tolerated_sparsity(results, base).set_index("target")
    row = out.loc["both"]
    # [20, 10]: mean 15, s = 7.071, sem = 5, t_{0.975,1} = 12.706 -> half width 63.53,
    # the low end clipped at 0 (no amount is negative)
    assert row["tolerated_mean"] == 15
    assert row["tolerated_ci_low"] == 0.0
    assert row["tolerated_ci_high"] == pytest.approx(15 + 63.53, abs=0.01)
    assert row["n_seeds"] == 2 and row["n_below_grid"] == 0 and row["per_seed"] == "20, 10"
    assert out.loc["h2h", "per_seed"] == "<10, <10" and out.loc["h2h", "n_below_grid"] == 2
    assert list(out.columns) == [
        "cell",
        "tolerated_mean",
        "tolerated_ci_low",
        "tolerated_ci_high",
        "n_seeds",
        "n_below_grid",
        "per_seed",
    ]


def test_tolerated_sparsity_after_retraining_and_missing_epoch():
    results, base = _results()
    out = tolerated_sparsity(results, base, epoch=1, per_seed=True).set_index(["seed", "target"])
    assert out.loc[(0, "both"), "tolerated"] == 20  # 30 at epoch 1 is 0.985 < 0.99
    assert out.loc[(1, "both"), "tolerated"] == 30
    assert out.loc[(1, "both"), "first_failure"] == 40  # 20 is a tie at epoch 1
    empty = tolerated_sparsity(results, base, epoch=7)
    assert empty.empty and "epoch 7" in empty.attrs["note"]


def test_epochs_to_recover_per_seed():
    results, base = _results()
    out = epochs_to_recover(results, base, per_seed=True).set_index(["seed", "target", "amount"])
    expected = {
        (0, "both", 10): 0,
        (0, "both", 20): 0,
        (0, "both", 30): 2,
        (1, "both", 10): 0,
        (1, "both", 20): 1,
        (1, "both", 30): 0,
        (0, "h2h", 10): 1,
    }
    for key, epochs in expected.items():
        assert out.loc[key, "epochs"] == epochs, key
        assert out.loc[key, "recovered"]
    for key in [(0, "both", 40), (1, "both", 40), (1, "h2h", 10)]:
        assert math.isnan(out.loc[key, "epochs"]) and not out.loc[key, "recovered"]


def test_epochs_to_recover_aggregate_and_display():
    results, base = _results()
    out = epochs_to_recover(results, base).set_index(["target", "amount"])
    assert out.loc[("both", 10), "epochs"] == "0.0 [0.0, 0.0]"
    # [0, 1]: mean 0.5, sem 0.5, half width 12.706 * 0.5 = 6.353; clipped at 0 epochs
    assert out.loc[("both", 20), "epochs"] == "0.5 [0.0, 6.9]"
    assert out.loc[("both", 20), "ci_low"] == 0.0
    assert out.loc[("both", 20), "ci_high"] == pytest.approx(6.853, abs=1e-3)
    assert out.loc[("both", 30), "epochs_mean"] == 1.0
    assert out.loc[("both", 40), "epochs"] == "never"
    assert out.loc[("both", 40), "n_recovered"] == 0
    assert math.isnan(out.loc[("both", 40), "epochs_mean"])
    assert out.loc[("h2h", 10), "epochs"] == "1.0; never (1/2 seeds)"
    assert out.loc[("h2h", 10), "n_recovered"] == 1 and out.loc[("h2h", 10), "n_seeds"] == 2


def test_boundary_tie_survives_float_rounding():
    # 0.52 - 0.05 == 0.47000000000000003 in floats; an accuracy of 0.47 is a tie and counts.
    results = pd.DataFrame(
        {
            "cell": ["rnn_tanh"],
            "seed": [0],
            "target": ["i2h"],
            "amount": [50],
            "epoch": [0],
            "accuracy": [0.47],
            "loss": [0.0],
        }
    )
    base = pd.DataFrame({"cell": ["rnn_tanh"], "seed": [0], "base_accuracy": [0.52]})
    assert tolerated_sparsity(results, base, tolerance=0.05)["tolerated_mean"].iloc[0] == 50
    assert epochs_to_recover(results, base, tolerance=0.05)["epochs"].iloc[0] == "0.0"


def test_bad_input_raises():
    results, base = _results()
    with pytest.raises(DataError, match="base_accuracy for cell gru, seed 1"):
        tolerated_sparsity(results, base.iloc[:1])
    with pytest.raises(DataError, match="duplicate"):
        epochs_to_recover(pd.concat([results, results.iloc[:1]]), base)
    with pytest.raises(DataError, match="accuracy"):
        tolerated_sparsity(results.drop(columns=["accuracy"]), base)
    with pytest.raises(ConfigError):
        tolerated_sparsity(results, base, tolerance=-0.1)
    assert epochs_to_recover(results.iloc[:0], base).empty


# ------------------------------------------------------------------------------- published


def test_published_tables():
    safe = published_safe_pruning()
    assert len(safe) == 12
    assert safe.set_index(["cell", "target"]).loc[("lstm", "h2h"), "safe_percent"] == 90
    assert published_base_accuracy().set_index("cell").loc["rnn_tanh", "base_accuracy"] == 0.937
    assert published_mean_accuracy().set_index("cell").loc["rnn_relu", "mean_accuracy"] == 0.778
    corr = published_correlations().set_index(["cell", "feature"])
    assert len(corr) == 24
    assert corr.loc[("lstm", "source_nodes"), "r"] == 0.57  # order tanh/ReLU/LSTM/GRU
    assert corr.loc[("gru", "closeness_var"), "r"] == -0.67
    assert published_r2().set_index(["cell", "model"]).loc[("gru", "random_forest"), "r2"] == 0.88
    post = published_post_prune().set_index(["target", "amount"])
    assert post.loc[("h2h", 100), "accuracy"] == 0.573 and (post["epoch"] == 0).all()


def test_compare_against_published_safe_pruning():
    results, base = _results()
    ours = tolerated_sparsity(results, base)
    table = compare(
        ours,
        published_safe_pruning(),
        on=["cell", "target"],
        value_ours="tolerated_mean",
        value_published="safe_percent",
    )
    assert list(table.columns) == ["cell", "target", "ours", "published", "difference"]
    row = table.set_index(["cell", "target"]).loc[("gru", "both")]
    assert row["ours"] == 15 and row["published"] == 80 and row["difference"] == -65
    assert table["ours"].isna().sum() == 10  # other cells/targets: not run
    with pytest.raises(DataError):
        compare(
            pd.concat([ours, ours]),
            published_safe_pruning(),
            on=["cell", "target"],
            value_ours="tolerated_mean",
            value_published="safe_percent",
        )
