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
