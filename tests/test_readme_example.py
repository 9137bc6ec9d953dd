"""The README's first Python example runs as printed (on fewer strings and one epoch), so the
public API it shows cannot drift from the code without a failing test."""

from __future__ import annotations

import contextlib
import io
import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"


def first_python_block(text: str) -> str:
    blocks = re.findall(r"```python\n(.*?)```", text, flags=re.S)
    assert blocks, "the README has no Python example"
    return blocks[0]


def test_readme_training_example_runs_and_prints_metrics():
    code = first_python_block(README.read_text())
    assert "n_strings=2000" in code and "epochs=3" in code  # the sizes shrunk below
    small = code.replace("n_strings=2000", "n_strings=120").replace("epochs=3", "epochs=1")
    small = small.replace("progress=True", "progress=False")
    out, scope = io.StringIO(), {"__name__": "readme_example"}
    with contextlib.redirect_stdout(out):
        exec(compile(small, str(README), "exec"), scope)
    assert "'accuracy'" in out.getvalue() and "'loss'" in out.getvalue()  # evaluate's dict
    report = scope["sparsity_report"](scope["model"])
    h2h = report[report["kind"] == "h2h"]
    # the example's global 80% threshold over the h2h matrices, as the comment says
    assert 1 - h2h["kept"].sum() / h2h["size"].sum() == pytest.approx(0.8, abs=0.01)
    assert (report[report["kind"] == "i2h"]["sparsity"] == 0).all()
