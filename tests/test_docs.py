"""Every results page is what ``make docs`` writes from ``results/``: none can drift from its
data, and none holds a number typed by hand."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _generate():
    spec = importlib.util.spec_from_file_location("docs_generate", ROOT / "docs" / "generate.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["docs_generate"] = module
    spec.loader.exec_module(module)
    return module


def test_every_results_page_is_regenerated_byte_for_byte():
    built = _generate().build(ROOT)
    stale = [p.relative_to(ROOT).as_posix() for p, (old, new) in built.items() if old != new]
    assert not stale, f"{stale} differ from what make docs writes from results/; run make docs"


def test_a_section_is_spliced_between_its_markers_only():
    generate = _generate()
    begin, end = generate.BEGIN.format("x"), generate.END.format("x")
    text = f"head\n{begin}\nold\n{end}\ntail\n"
    assert generate.splice(text, "x", "new", "t.md") == f"head\n{begin}\nnew\n{end}\ntail\n"
    with pytest.raises(SystemExit, match="t.md"):
        generate.splice("no markers\n", "x", "new", "t.md")


def test_a_partial_grid_is_left_out_of_the_pruning_page():
    """A grid still running (amounts 30-100% missing) must not read as 'tolerated up to 20%'."""
    import pandas as pd

    sys.path.insert(0, str(ROOT / "docs"))
    try:
        from pages.pruning import _completeness, complete_grids
    finally:
        sys.path.remove(str(ROOT / "docs"))
    rows = [
        {"cell": "lstm", "seed": seed, "target": "both", "amount": a, "epoch": e, "accuracy": 1.0}
        for seed, amounts in ((0, (10, 20, 30)), (1, (10, 20)))
        for a in amounts
        for e in range(3)
    ]
    rows.pop()  # seed 1 lacks its last epoch at 20%
    pruning = pd.DataFrame(rows)
    kept = complete_grids(pruning, [10, 20, 30], last=2)
    assert set(kept["seed"]) == {0} and len(kept) == 9
    assert complete_grids(pruning, [10, 20, 30, 40], last=2).empty
    assert complete_grids(pruning, [10, 20], last=2)["seed"].nunique() == 1  # seed 1 epoch gap
    assert "1 of the 2" in _completeness(1, 2)[0] and _completeness(2, 2) == []


def test_the_topology_sentence_follows_each_regressors_gain_interval():
    """Agreeing regressors give one verdict per cell; differing ones are each named with the
    interval that decided it (the page once printed 'cannot tell / topology adds signal')."""
    import pandas as pd

    sys.path.insert(0, str(ROOT / "docs"))
    try:
        from pages.structure import topology_lines
    finally:
        sys.path.remove(str(ROOT / "docs"))

    def row(cell, regressor, lo, hi):
        return {"cell": cell, "model": regressor, "gain": (lo + hi) / 2,
                "gain_ci_low": lo, "gain_ci_high": hi}  # fmt: skip

    out = pd.DataFrame([row("lstm", "bayesian_ridge", 0.09, 0.49),
                        row("lstm", "random_forest", -0.47, 0.74),
                        row("gru", "bayesian_ridge", 0.68, 0.85),
                        row("gru", "random_forest", 0.16, 0.44)])  # fmt: skip
    (line,) = topology_lines(out)
    assert "GRU: topology adds signal (both regressors)" in line
    assert ("LSTM: the regressors differ, topology adds signal by bayesian_ridge (gain +0.29 "
            "[+0.09, +0.49]), cannot tell by random_forest (gain +0.14 [-0.47, +0.74])") in line
    assert line.index("GRU") < line.index("LSTM")  # the study's cell order
    flipped = out.assign(gain_ci_low=-out["gain_ci_high"], gain_ci_high=-out["gain_ci_low"])
    assert "GRU: size alone predicts better (both regressors)" in topology_lines(flipped)[0]


def test_the_retrained_networks_paragraph_follows_its_data(tmp_path):
    """Reproduction figure and verdict come from the retraining table: the verdict turns with
    the share of other-seed runs that learn."""
    import pandas as pd

    sys.path.insert(0, str(ROOT / "docs"))
    try:
        from pages.structure import retrain_lines
    finally:
        sys.path.remove(str(ROOT / "docs"))
    df = pd.DataFrame({"cell": "lstm", "generator": "ba", "graph_id": [1, 2],
                       "test_accuracy": [0.5, 0.51], "nodes": [10, 12],
                       "edges": [9, 20]})  # fmt: skip

    def runs(others):
        rows = [{"cell": "lstm", "generator": "ba", "graph_id": g, "init": "unit",
                 "final_accuracy": a} for g, a in ((1, 0.5), (2, 0.53))]  # fmt: skip
        rows += [{"cell": "lstm", "generator": "ba", "graph_id": g, "init": f"alt{i}",
                  "final_accuracy": a} for g, accs in zip((1, 2), others, strict=True)
                 for i, a in enumerate(accs)]  # fmt: skip
        path = tmp_path / "r.csv"
        pd.DataFrame(rows).to_csv(path, index=False)
        return retrain_lines(df, path, 15)[0]

    text = runs([(0.9, 0.8, 0.5), (0.85, 0.7, 0.9)])
    assert "the 2 LSTM networks below 0.6 (ba graphs; 1 of them trees" in text
    assert "2 of 2 end below 0.6 again (largest difference from the stored accuracy 0.020" in text
    assert "5 of 6 runs reach 0.6 or more (final accuracy 0.70-0.90)" in text
    assert text.endswith("mostly the draw of the initialisation, not the graph.")
    assert runs([(0.5, 0.5, 0.5), (0.5, 0.5, 0.9)]).endswith("other seeds fail too.")
    assert runs([(0.9, 0.9, 0.9), (0.5, 0.5, 0.5)]).endswith("the draw of the initialisation.")
    assert "both the graph" in runs([(0.9, 0.9, 0.9), (0.5, 0.5, 0.5)])
    assert retrain_lines(df, tmp_path / "absent.csv", 15) == []
