"""Print docs/structure.md's run tables from study directories (Markdown on stdout).

    python docs/make_structure_doc.py DIR [--interleaved DIR2]

``DIR`` holds a random-structure study (``sparsernn structure ... --out DIR``); ``DIR2`` the
same graphs trained with ``--gate-layout interleaved``. Every number comes from the results
stores and from ``sparsernn.analysis.published``; nothing is typed in by hand.
"""

from __future__ import annotations

import argparse

import numpy as np
import pandas as pd

from sparsernn.analysis import correlations, mean_ci, published_correlations
from sparsernn.analysis.published import published_mean_accuracy
from sparsernn.experiments.results import load_results
from sparsernn.report import markdown_table
from sparsernn.report.plots import KEY_FEATURES

CELLS = ["rnn_tanh", "rnn_relu", "gru", "lstm"]
PUBLISHED_FEATURES = list(KEY_FEATURES)  # the six properties the study correlated


def _ci(values: np.ndarray) -> tuple[str, float, float]:
    mean, lo, hi = mean_ci(values, bounds=(0, 1))
    return f"{mean:.3f} [{lo:.3f}, {hi:.3f}]", lo, hi


def accuracy_table(df: pd.DataFrame) -> pd.DataFrame:
    """Mean accuracy per generator and pooled, the published mean and whether it is inside."""
    published = published_mean_accuracy().set_index("cell")["mean_accuracy"]
    rows = []
    generators = sorted(set(df["generator"]), reverse=True)  # ws before ba, as in the study
    for cell in [c for c in CELLS if c in set(df["cell"])]:
        part = df[df["cell"] == cell]
        row = {"cell": cell}
        for gen in generators:
            grp = part[part["generator"] == gen]
            acc = grp["test_accuracy"].to_numpy(float)
            row[gen.upper()] = f"{_ci(acc)[0]} (n={len(grp)})" if len(grp) else "-"
        text, lo, hi = _ci(part["test_accuracy"].to_numpy(float))
        row["pooled"] = f"{text} (n={len(part)})"
        row["published (200)"] = f"{published[cell]:.3f}"
        row["published inside?"] = "yes" if lo <= published[cell] <= hi else "no"
        row["chance (< 0.6)"] = int((part["test_accuracy"] < 0.6).sum())
        rows.append(row)
    return pd.DataFrame(rows)


def correlation_table(df: pd.DataFrame) -> pd.DataFrame:
    """Pooled Pearson r with test accuracy, ours (published), and whether the sign agrees."""
    ours = correlations(df, PUBLISHED_FEATURES, methods=("pearson",), n_boot=0)
    ours = ours[ours["generator"] == "all"].set_index(["cell", "feature"])["r"]
    pub = published_correlations().set_index(["cell", "feature"])["r"]
    rows = []
    for feature in PUBLISHED_FEATURES:
        row = {"property": feature}
        for cell in [c for c in CELLS if c in set(df["cell"])]:
            r, p = ours.get((cell, feature), np.nan), pub[(cell, feature)]
            sign = "" if np.isnan(r) or np.sign(r) == np.sign(p) else " (sign differs)"
            row[cell] = f"{r:.2f} ({p:.2f}){sign}"
        rows.append(row)
    return pd.DataFrame(rows)


def layout_table(blocked: pd.DataFrame, interleaved: pd.DataFrame) -> pd.DataFrame:
    """Same graphs, both gate layouts: means and the paired difference (interleaved - blocked)."""
    keys = ["cell", "generator", "graph_id", "seed"]
    both = blocked.merge(interleaved, on=keys, suffixes=("_blocked", "_interleaved"))
    rows = []
    for (cell, gen), grp in both.groupby(["cell", "generator"]):
        diff = (grp["test_accuracy_interleaved"] - grp["test_accuracy_blocked"]).to_numpy(float)
        mean, lo, hi = mean_ci(diff)
        rows.append(
            {
                "cell": cell,
                "generator": gen,
                "n": len(grp),
                "blocked": _ci(grp["test_accuracy_blocked"].to_numpy(float))[0],
                "interleaved": _ci(grp["test_accuracy_interleaved"].to_numpy(float))[0],
                "paired difference": f"{mean:+.3f} [{lo:+.3f}, {hi:+.3f}]",
            }
        )
    return pd.DataFrame(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("study_dir")
    parser.add_argument("--interleaved", default=None)
    args = parser.parse_args()
    df = load_results(args.study_dir).structure
    print(f"{len(df)} networks\n")
    print(markdown_table(accuracy_table(df)))
    print(markdown_table(correlation_table(df)))
    if args.interleaved:
        inter = load_results(args.interleaved).structure
        print(markdown_table(accuracy_table(inter)))
        print(markdown_table(correlation_table(inter)))
        print(markdown_table(layout_table(df, inter)))
    times = df["wall_s"].to_numpy(float)
    q = np.percentile(times, [10, 50, 90])
    print(f"unit time: 10th {q[0]:.0f} s, median {q[1]:.0f} s, 90th {q[2]:.0f} s")


if __name__ == "__main__":
    main()
