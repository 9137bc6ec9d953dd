"""docs/tasks.md's measured section: what a dense 3x50 GRU reaches on each task
(``results/tasks``, written by docs/measure_tasks.py).

One model per task (seed 0), so the only interval available is over test examples: a
Clopper-Pearson interval of the accuracy (for ``copy``, over test sequences, not symbols,
since a sequence's five symbols are not independent). The verdict against chance is chosen by
that interval and a stated margin.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
from scipy import stats as st

from pages.common import display, markdown_table, missing

#: Within this much of chance counts as "at chance".
MARGIN = 0.05


def render(folder: Path) -> str:
    lines = ["## What a dense 3x50 GRU reaches (measured)", ""]
    if not (folder / "manifest.json").exists():
        return "\n".join([*lines, missing(folder, "make results-tasks")])
    m = json.loads((folder / "manifest.json").read_text(encoding="utf-8"))
    df = pd.read_csv(folder / "tasks.csv")
    s = m["settings"]
    commit = (m.get("commit") or "not recorded")[:7] + (
        " (uncommitted changes)" if m.get("dirty") else ""
    )
    lines += [
        f"Data: `{display(folder)}` (`docs/measure_tasks.py`, commit {commit}, "
        f"{m['started'][:16]} to {m['finished'][:16]} UTC, {m['cpu']}, {m['cores']} cores, "
        f"1 torch thread, Python {m['python']}, torch {m['torch']}). The study's base model "
        f"({s['cell'].upper()}, {s['model']}) from seed {s['seed']}, Adam (lr 1e-3, batch 32, "
        f"clip 5), {s['n_examples']} examples (75% train, 25% test; digits: all 1797), "
        f"{s['epochs']} epochs; test scores after the last epoch; minutes are wall time on that "
        "machine, shared with other work. One model per row (n = 1 training run): the "
        "interval is the 95% Clopper-Pearson interval over test examples, which covers the "
        "test sample, not training variability. Verdict margin: "
        f"{MARGIN} accuracy. For `adding_regression` the chance column is the MSE of always "
        "answering the mean, and the verdict compares the test MSE with it.",
        "",
        markdown_table(table(df)),
    ]
    return "\n".join(lines)


def table(df: pd.DataFrame) -> pd.DataFrame:
    rows = []
    for r in df.itertuples(index=False):
        name = r.task if pd.isna(r.difficulty) else f"{r.task} (difficulty {int(r.difficulty)})"
        rows.append(
            {
                "task": name,
                "train / test": f"{r.n_train} / {r.n_test}",
                "chance": f"{r.chance:.3f}",
                "test accuracy [95% CI]": _accuracy(r.test_accuracy, r.n_test),
                "test loss": f"{r.test_loss:.4f}",
                "verdict": _verdict(r),
                "minutes": f"{r.minutes:.1f}",
            }
        )
    return pd.DataFrame(rows)


def _interval(accuracy: float, n: int) -> tuple[float, float]:
    k = round(accuracy * n)
    ci = st.binomtest(k, n).proportion_ci(0.95, method="exact")
    return float(ci.low), float(ci.high)


def _accuracy(accuracy: float, n: int) -> str:
    lo, hi = _interval(accuracy, n)
    return f"{accuracy:.3f} [{lo:.3f}, {hi:.3f}]"


def _verdict(r) -> str:
    if r.task == "adding_regression":
        return "MSE below the mean's" if r.test_loss < r.chance else "no better than the mean"
    lo, hi = _interval(r.test_accuracy, r.n_test)
    if lo > r.chance + MARGIN:
        return "above chance"
    if lo >= r.chance - MARGIN and hi <= r.chance + MARGIN:
        return f"at chance, within +-{MARGIN}"
    return "cannot tell"
