"""The benchmark's stand-alone tools: ``python -m sparsernn.bench.compare_kernel_runs``.

(``python -m sparsernn.bench.profile_structure`` is run by tests/test_bench.py.)
"""

from __future__ import annotations

import pandas as pd
import pytest

from sparsernn.bench import compare_kernel_runs as compare


def _units(walls: list[float], accuracies: list[float]) -> pd.DataFrame:
    """Structure units of two cells, two graphs each, with the given times and accuracies."""
    n = len(walls)
    return pd.DataFrame(
        {
            "cell": ["gru", "gru", "lstm", "lstm"][:n],
            "generator": ["ws"] * n,
            "graph_id": [0, 1, 0, 1][:n],
            "seed": [0] * n,
            "nodes": [10] * n,
            "wall_s": walls,
            "test_accuracy": accuracies,
        }
    )


def test_paired_keeps_the_units_both_ran():
    native = _units([60.0, 60.0, 120.0, 120.0], [0.9, 0.8, 0.7, 0.6])
    torch_ = _units([120.0, 180.0, 240.0], [0.9, 0.8, 0.7])
    pairs = compare.paired(native, torch_)
    assert len(pairs) == 3
    assert {"wall_s_native", "wall_s_torch", "test_accuracy_native"} <= set(pairs.columns)


def test_speed_table_by_hand():
    native = _units([60.0, 60.0, 120.0, 120.0], [0.9, 0.8, 0.7, 0.6])
    torch_ = _units([120.0, 180.0, 240.0, 240.0], [0.9, 0.8, 0.7, 0.6])
    table = compare.speed_table(compare.paired(native, torch_)).set_index("cell")
    assert list(table.index) == ["gru", "lstm", "all"]
    assert table.loc["gru", "units"] == 2
    assert table.loc["gru", "PyTorch path, min"] == 5.0  # (120 + 180) s
    assert table.loc["gru", "compiled loop, min"] == 2.0
    assert table.loc["gru", "total ratio"] == 2.5
    assert table.loc["all", "total ratio"] == pytest.approx(780 / 360, abs=0.005)
    assert table.loc["all", "max |difference|"] == 0.0


def test_totals_table_sums_unit_minutes():
    native = _units([60.0, 60.0, 120.0, 120.0], [0.9, 0.8, 0.7, 0.6])
    totals = compare.totals_table(native).set_index("cell")
    assert totals.loc["lstm", "unit_minutes"] == 4.0
    assert totals.loc["gru", "mean_accuracy"] == pytest.approx(0.85)
