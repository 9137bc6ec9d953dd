"""The language-model section of docs/methods.md, computed from ``results/lm`` alone
(:func:`lm_section`; ``make docs`` splices it into the page).

``RESULTS_DIR`` holds what ``examples/char_lm_grid.py`` writes: ``points.csv`` (one row per
seed x method x sparsity, the dense model as sparsity 0) and ``manifest.json``. Every number
and the verdict come from those files: bits per character as the mean over seeds with a 95%
t-interval (the seed is the replicate unit: one initialisation and batch order, shared by all
methods of that seed), and each method's difference from the dense model paired by seed.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from sparsernn.analysis import mean_ci
from sparsernn.report import markdown_table

#: A sparse model "tolerates" its pruning when its bpc is within this of the dense model's.
MARGIN_BPC = 0.05
#: The study's claim: more than this fraction of the weights can be pruned.
CLAIM_SPARSITY = 0.6


def _interval(values) -> tuple[float, float, float]:
    return mean_ci([float(v) for v in values])


def _cell(values, n_seeds: int) -> str:
    """``mean [lo, hi]``, and ``(n = k)`` where fewer than the grid's seeds are in."""
    mean, lo, hi = _interval(values)
    text = f"{mean:.3f}" if pd.isna(lo) else f"{mean:.3f} [{lo:.3f}, {hi:.3f}]"
    return text if len(values) == n_seeds else f"{text} (n = {len(values)})"


def _paired(points: pd.DataFrame) -> pd.DataFrame:
    """Per method and sparsity: bpc minus the dense bpc of the same seed, over seeds."""
    dense = points[points["method"] == "dense"].set_index("seed")["bpc"]
    rows = []
    sparse = points[points["method"] != "dense"]
    for (method, sparsity), group in sparse.groupby(["method", "sparsity"], sort=False):
        diff = (group.set_index("seed")["bpc"] - dense).dropna()
        mean, lo, hi = _interval(diff)
        rows.append(
            {
                "method": method,
                "sparsity": sparsity,
                "n": len(diff),
                "mean": mean,
                "lo": lo,
                "hi": hi,
                "achieved": group["achieved_sparsity"].mean(),
            }  # fmt: skip
        )
    return pd.DataFrame(rows).sort_values(["method", "sparsity"], kind="stable")


def _difference(row) -> str:
    """``+0.099 [+0.074, +0.125]`` (just the mean when the interval is unknown)."""
    if pd.isna(row.lo):
        return f"{row.mean:+.3f}"
    return f"{row.mean:+.3f} [{row.lo:+.3f}, {row.hi:+.3f}]"


def _status(row) -> str:
    """``tolerated`` / ``not tolerated`` / ``cannot tell``, from the paired interval."""
    if pd.isna(row.lo):
        return "cannot tell"
    if row.hi <= MARGIN_BPC:
        return "tolerated"
    if row.lo > MARGIN_BPC:
        return "not tolerated"
    return "cannot tell"


def _verdict(paired: pd.DataFrame) -> str:
    """The answer to "is more than 60% pruning tolerated on real text?", from the intervals."""
    above = paired[paired["sparsity"] > CLAIM_SPARSITY].copy()
    if above.empty:
        return f"The grid has no sparsity above {CLAIM_SPARSITY:.0%}: it cannot answer."
    above["status"] = [_status(r) for r in above.itertuples()]
    lines = []
    for method, group in above.groupby("method", sort=False):
        ok = group[group["status"] == "tolerated"]
        if not ok.empty:
            lines.append(f"{method}: tolerated up to {ok['sparsity'].max():.0%}")
            continue
        each = [f"{r.sparsity:.0%} {r.status} ({_difference(r)})" for r in group.itertuples()]
        lines.append(f"{method}: " + "; ".join(each))
    statuses = set(above["status"])
    if "tolerated" in statuses:
        answer = "**Yes**: more than 60% pruning is tolerated on real text"
    elif statuses == {"not tolerated"}:
        answer = "**No**: no method tolerates more than 60% pruning on real text"
    else:
        answer = "**The intervals cannot tell** whether more than 60% pruning is tolerated"
    n = int(paired["n"].max()) if len(paired) else 0
    return (
        f"{answer} (margin: within {MARGIN_BPC} bpc of the dense model, judged by the 95% "
        f"t-interval of the difference paired by seed, n = {n} seeds).\n\n"
        + "\n".join(f"- {line}" for line in lines)
        + "\n"
    )


def _commit(recorded: str) -> str:
    """The short commit, saying so when the run's tree had uncommitted changes (``+dirty``)."""
    commit, _, dirty = recorded.partition("+")
    return commit[:12] + (" with uncommitted changes" if dirty else "")


def lm_section(results_dir: str | Path) -> str:
    """The Markdown section: setup, bpc table, paired differences and the verdict."""
    results_dir = Path(results_dir)
    points = pd.read_csv(results_dir / "points.csv")
    manifest = json.loads((results_dir / "manifest.json").read_text())
    cfg = manifest["config"]
    n_seeds = points["seed"].nunique()
    sparsities = sorted(points.loc[points["method"] != "dense", "sparsity"].unique())
    methods = [m for m in points["method"].unique() if m != "dense"]
    dense = points[points["method"] == "dense"]["bpc"]
    table = {
        "method": ["dense", *methods],
        "0%": [_cell(dense, n_seeds)] + ["(dense)"] * len(methods),
    }
    for s in sparsities:
        column = ["-"]
        for method in methods:
            values = points[(points["method"] == method) & (points["sparsity"] == s)]["bpc"]
            column.append(_cell(values, n_seeds) if len(values) else "-")
        table[f"{s:.0%}"] = column
    paired = _paired(points)
    diffs = paired.assign(
        sparsity=[f"{s:.0%}" for s in paired["sparsity"]],
        achieved=[f"{a:.3f}" for a in paired["achieved"]],
        difference=[_difference(r) for r in paired.itertuples()],
        verdict=[_status(r) for r in paired.itertuples()],
    )[["method", "sparsity", "achieved", "n", "difference", "verdict"]]
    hours = manifest["train_cpu_s"] / 3600
    return (
        "## Does it hold on real text? A character-level language model\n\n"
        "The study's Reber-grammar finding is that more than 60% of the recurrent weights can "
        "be pruned with little loss. Here the same question is asked of a character-level "
        "language model on real text, written as a user writes one "
        "(`examples/char_lm.py`: Embedding -> 2-layer `nn.LSTM` -> Linear, own training "
        "loop, `sparsernn.sparsify` added): trained on "
        f"{manifest['train_chars']:,} characters of {len(manifest['train_files'])} Python "
        f"standard-library modules, scored in bits per character (bpc) on "
        f"{manifest['held_out_chars']:,} held-out characters "
        f"({', '.join(manifest['held_out_files'])}). Hidden size {cfg['hidden_size']}, "
        f"{cfg['steps']} Adam steps of {cfg['batch_size']} x {cfg['seq_len']} characters. "
        "Magnitude pruning trains dense for half the steps, prunes once and fine-tunes; RigL "
        "trains sparse from the start, regrowing by gradient. Sparsity counts the LSTM's "
        "weight matrices (every gate block pruned to the asked fraction); embedding and "
        "output layer stay dense. Each seed is one initialisation and batch order shared by "
        "all methods.\n\n"
        f"### Held-out bpc, mean [95% t-interval] over {n_seeds} seeds (lower is better)\n\n"
        + markdown_table(pd.DataFrame(table))
        + "\n### Difference from the dense model of the same seed (bpc)\n\n"
        + markdown_table(diffs)
        + "\n### Verdict\n\n"
        + _verdict(paired)
        + f"\nMeasured {manifest['date'][:10]} at commit {_commit(manifest['commit'])} "
        f"(Python {manifest['python']}, torch {manifest['torch']}, {manifest['cpu']}, "
        f"{manifest['threads']} thread per run; {hours:.2f} CPU-hours of training in all). "
        "Data: `results/lm/points.csv`, `results/lm/manifest.json`; rerun with "
        "`python examples/char_lm_grid.py --steps "
        f"{cfg['steps']}`.\n"
    )
