"""The ``prune`` command's summary: which epoch each tolerated sparsity is judged at, and no
amount that the grid does not hold."""

from __future__ import annotations

import types

import pandas as pd

from sparsernn.report import summaries

# seed 0/1 of one GRU base (accuracy 1.0); amounts 20, 40; epochs 0, 1, 2.
_ACC = {
    (0, "both", 20): (1.00, 1.00, 1.00),
    (0, "both", 40): (0.90, 1.00, 1.00),  # fails right after pruning, recovers in 1 epoch
    (1, "both", 20): (0.95, 0.95, 1.00),  # below the grid until the last epoch
    (1, "both", 40): (0.99, 0.99, 1.00),  # within tolerance, but 20 below it is not
}


def _fake_results() -> types.SimpleNamespace:
    rows = [
        {"cell": "gru", "seed": s, "target": t, "method": "magnitude", "amount": float(a)}
        | {"epoch": e, "accuracy": acc, "loss": 0.0}
        for (s, t, a), accs in _ACC.items()
        for e, acc in enumerate(accs)
    ]
    base = pd.DataFrame({"cell": ["gru"] * 2, "seed": [0, 1], "base_accuracy": [1.0, 1.0]})
    return types.SimpleNamespace(
        pruning=pd.DataFrame(rows), base=base, base_curves=pd.DataFrame()
    )


def test_summary_names_the_epoch_and_says_below_the_grid(tmp_path, monkeypatch):
    monkeypatch.setattr(summaries, "load_results", lambda _: _fake_results())
    monkeypatch.setattr(summaries, "_save_plots", lambda *a: None)
    tables = summaries.pruning_summary(tmp_path, tolerance=0.01)
    table = tables["tolerated_sparsity"].set_index(["cell", "target", "method"])
    row = table.loc[("gru", "both", "magnitude")]
    assert list(table.columns) == [
        "after pruning (epoch 0)",
        "after 1 retraining epoch",
        "after 2 retraining epochs",
    ]
    # seed 0: 20 then 40 fails -> 20; seed 1: 20 fails -> below the grid, never "0".
    assert row["after pruning (epoch 0)"] == "20, <20"
    assert row["after 1 retraining epoch"] == "40, <20"
    assert row["after 2 retraining epochs"] == "40, 40"
    long = pd.read_csv(tmp_path / "tolerated_sparsity.csv")
    assert sorted(long["epoch"].unique()) == [0, 1, 2]
    assert (long["n_below_grid"] == [1, 1, 0]).all()
