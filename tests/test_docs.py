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
