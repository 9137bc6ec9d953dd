"""The sparse benchmark section: a smoke run of a tiny grid (structure, report, the generated
crossover module), and its arithmetic (crossovers, the projection) on numbers set by hand."""

import json
import math

import pytest

from sparsernn.bench import command
from sparsernn.bench.sparse import SparseBenchConfig, run_sparse_benchmark
from sparsernn.bench.sparse_report import (
    auto_line,
    auto_vs_dense,
    bundle_limit,
    crossover_json,
    crossover_sparsity,
    crossovers,
    format_sparse_report,
    projection,
    split_alone,
    targets,
)
from sparsernn.errors import ConfigError
from sparsernn.nn.sparse_path import load_crossover

TINY = SparseBenchConfig.quick(
    cells=("lstm",),
    hidden_sizes=(8,),
    sparsities=(0.5, 0.9),
    batch_sizes=(1, 3),
    steps=4,
    warmup=0,
    repeats=1,
    amounts=(80, 90),
    study_repeats=1,
    n_strings=120,
)


@pytest.fixture(scope="module")
def results():
    return json.loads(json.dumps(run_sparse_benchmark(TINY)))  # as a saved JSON reads back


def test_smoke_run_has_every_row_and_report(results):
    grid = results["grid"]
    assert [(r["batch"], r["phase"]) for r in grid] == [
        (1, "infer"), (1, "train"), (3, "infer"), (3, "train")
    ]  # fmt: skip
    for row in grid:
        assert set(row["ms"]) == {"dense", "masked", "sparse@0.5", "sparse@0.9"}
        assert all(v > 0 for v in row["ms"].values())
        wb = row["weight_bytes"]
        assert wb["sparse@0.9"] < wb["sparse@0.5"] < wb["dense"]
    (study,) = results["study"]
    assert study["n_models"] == 6 and len(study["points"]) == 6
    assert {"dense", "masked", "batched", "sparse/both/90"} <= set(study["ms"])
    (trial,) = [r for r in results["torch_sparse"] if r["batch"] == 1]
    assert set(trial["ms"]) == {"dense", "torch.sparse", "compiled"}
    assert 0 < trial["block_fill"] <= 1
    report = format_sparse_report(results)
    assert "Crossover" in report and "Targets (issue 24)" in report
    assert results["meta"]["commit"] and results["meta"]["date"]


def test_generated_crossover_file_is_what_the_lookup_reads(results, tmp_path):
    path = tmp_path / "sparse_crossover.json"
    path.write_text(crossover_json(results))
    table, where = load_crossover(path)
    assert set(table["lstm"]) == {"infer", "train", "bundle"}
    assert set(table["lstm"]["train"][8]) == {1, 3}
    assert all(0 <= d <= 1 for d in table["lstm"]["infer"][8].values())
    assert where["commit"] == results["meta"]["commit"]
    assert load_crossover(tmp_path / "missing.json")[0] == {}


def _row(ref, times, against="masked"):
    return {"ms": {against: ref, **{f"sparse@{s}": t for s, t in times.items()}}}


def test_crossover_interpolates_between_the_last_slower_and_first_faster_point():
    # slower at 0.5 (ratio 2), faster at 0.9 (ratio 1/2): log ratios +-log 2 -> halfway
    assert crossover_sparsity(_row(10.0, {0.5: 20.0, 0.9: 5.0})) == pytest.approx(0.7)
    assert crossover_sparsity(_row(10.0, {0.5: 9.0, 0.9: 5.0})) == 0.5  # no extrapolation
    assert crossover_sparsity(_row(10.0, {0.5: 20.0, 0.9: 11.0})) is None
    # faster at 0.8 but slower again at 0.9: only the tail that stays faster counts
    assert crossover_sparsity(_row(10.0, {0.5: 20.0, 0.8: 9.0, 0.9: 11.0})) is None
    grid = [{**_row(10.0, {0.5: 20.0, 0.9: 5.0}), "cell": "gru", "phase": "train",
             "hidden": 50, "batch": 32}]  # fmt: skip
    assert crossovers(grid) == {"gru": {"train": {50: {32: pytest.approx(0.3)}}}}


def _study(cell, batched, masked, points):
    """A study row: the batched step of all points and each point's (density, sparse ms)."""
    ms = {"batched": batched, "masked": masked, "dense": 1.0}
    rows = []
    for i, (density, t) in enumerate(points):
        ms[f"sparse/both/{i}"] = t
        rows.append({"target": "both", "amount": i, "density": density})
    return {"cell": cell, "batch": 32, "n_models": len(points), "ms": ms,
            "eval_ms": {k: 0.0 for k in ms}, "points": rows}  # fmt: skip


def test_projection_by_hand():
    """GRU (bundled): 3 points at 3 ms together = 1 ms each; the 0.1-density point runs alone at
    0.5 ms; the others stay batched, at 0.8 of the all-points step. LSTM (one by one): masked
    2 ms, sparse 1 ms where auto's crossover (0.3) allows."""
    gru = _study("gru", 3.0, 9.9, [(0.1, 0.5), (0.6, 1.5), (0.9, 0.9)])
    assert bundle_limit(gru) == 0.1  # 0.9 is faster too, but not every point below it
    table = {"gru": {"train": {50: {32: 0.5}}}, "lstm": {"train": {50: {32: 0.3}}}}
    assert split_alone(gru, table) == ([0], [1, 2])
    gru["batched_kept_scale"] = 0.8
    lstm = _study("lstm", 99.0, 2.0, [(0.2, 1.0), (0.5, 1.0)])
    proj = projection([gru, lstm], table)
    hours = 10 * math.ceil(18_750 / 32) / 3.6e6  # per ms of step, 10 epochs, no evaluation
    assert proj["cells"]["gru"]["today_h"] == pytest.approx(3.0 * hours)
    assert proj["cells"]["gru"]["sparse_h"] == pytest.approx((3.0 * 0.8 + 0.5) * hours)
    assert proj["cells"]["lstm"]["today_h"] == pytest.approx(4.0 * hours)
    assert proj["cells"]["lstm"]["sparse_h"] == pytest.approx(3.0 * hours)
    assert proj["speedup"] == pytest.approx(7.0 / 5.9)


def test_targets_name_goal_and_ratio(results):
    rows = targets(results)
    assert any("training step 3x50 lstm at 90%" in r["target"] for r in rows)
    assert all(r["met"] == (r["ratio"] is not None and r["ratio"] >= r["goal"]) for r in rows)


def test_bad_config_is_refused():
    with pytest.raises(ConfigError, match="sparsities"):
        SparseBenchConfig(sparsities=(0.5, 1.0))
    assert command.main(["--section", "sparse", "--cells", "nope"]) == 2


def test_auto_is_checked_against_the_table_held_at_the_start():
    """The package's table (an earlier run's) applied to this run's times: a pruned variant
    it sends to the sparse path that was slower here shows as a ratio above 1."""
    ms = {"masked": 10.0, "sparse@0": 8.0, "sparse@0.5": 12.0, "sparse@0.9": 5.0}
    row = {"cell": "gru", "hidden": 50, "batch": 32, "phase": "train", "ms": ms}
    start = {"table": {"gru": {"train": {"50": {"32": 0.6}}}}, "measured": "then", "commit": "c"}
    results = {"grid": [row], "meta": {"crossover_at_start": start}}
    assert auto_vs_dense(results) == pytest.approx(1.2)  # 0.5 sparse: sent there, 12 ms > 10
    assert "1.20x" in auto_line(results) and "commit c" in auto_line(results)
    assert auto_vs_dense({"grid": [row], "meta": {}}) is None
