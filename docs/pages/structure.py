"""docs/structure.md's results section: the random-structure grid of ``results/full``.

Each network is one graph trained once (seed 0), so graphs are the replicate unit here:
intervals are over networks (accuracy means), bootstrap over networks (correlations) or
corrected resampled t over cross-validation folds (R^2).
"""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats as st

from pages.common import (
    CELL_NAMES,
    CELLS,
    ci,
    display,
    load_manifest,
    markdown_table,
    missing,
    provenance,
    within,
)
from sparsernn.analysis import (
    beyond_size,
    correlations,
    interval_verdict,
    mean_ci,
    published_correlations,
    published_mean_accuracy,
    published_r2,
    study_protocol,
)
from sparsernn.experiments import load_results

#: Margins for "no difference" claims: accuracy (WS vs BA) and R^2 (topology vs size).
ACCURACY_MARGIN = 0.02
R2_MARGIN = 0.05
#: Cross-validation of the prediction section: 5 folds x 5 repeats.
FOLDS, REPEATS = 5, 5


def render(folder: Path) -> str:
    lines = ["## Results of the full random-structure grid", ""]
    if not (folder / "manifest.json").exists():
        return "\n".join([*lines, missing(folder, "make results-full")])
    df = load_results(folder).structure
    if df.empty:
        return "\n".join([*lines, missing(folder, "make results-full")])
    manifest = load_manifest(folder)
    corr, gains = _correlations(df), analyses(folder)[1]
    config = manifest["plans"]["structure"]["config"]
    s = config["structure"]
    per_cell = df.groupby("cell").size()
    lines += [
        *provenance(manifest, ["structure"], display(folder)),
        f"Protocol (SPEC 5): {s['n_graphs']} graphs per generator ({', '.join(s['generators'])})"
        f" per cell, {s['nodes'][0]}-{s['nodes'][1]} nodes, {s['epochs']} epochs, batch "
        f"{s['batch_size']}, gate layout {s['gate_layout']}, one network per graph (seed 0); "
        f"networks per cell: {', '.join(f'{CELL_NAMES[c]} {per_cell[c]}' for c in _cells(df))}."
        " The published figures pool 200 networks per cell from single runs.",
        "",
        "### Mean test accuracy",
        "",
        "95% Student t intervals over networks (n per cell and generator in brackets).",
        "",
        markdown_table(accuracy_table(df)),
        "",
        *generator_lines(df),
        "",
        *retrain_lines(df, folder.parent / RETRAIN_CSV, s["epochs"]),
        "### Correlation of graph properties with accuracy",
        "",
        "Pearson r over both generators pooled, as the study did, with a 95% percentile "
        "bootstrap interval over networks (1000 resamples); the published r in brackets.",
        "",
        markdown_table(correlation_table(df, corr)),
        "",
        *sign_lines(corr),
        "",
        "### Predicting accuracy from graph properties",
        "",
        "The study's protocol (MinMax scaling on all rows, one 90/10 split with random_state "
        "7, R^2 on the held-out 10%), ours beside the published value:",
        "",
        markdown_table(protocol_table(df)),
        "",
        f"Repeated {FOLDS}-fold cross-validation ({REPEATS} repeats, the scaler fit inside "
        "each fold) with the corrected resampled-t interval over folds; `gain` is the paired "
        "difference between all 23 properties and size alone (nodes, edges) for the same "
        f"regressor on the same folds. Verdict margin: {R2_MARGIN} R^2.",
        "",
        markdown_table(topology_table(gains)),
        "",
        *topology_lines(gains),
    ]
    return "\n".join(lines)


def _cells(df: pd.DataFrame) -> list[str]:
    return [c for c in CELLS if c in set(df["cell"])]


def _acc(values) -> tuple[float, float, float]:
    return mean_ci(np.asarray(values, float), bounds=(0, 1))


def accuracy_table(df: pd.DataFrame) -> pd.DataFrame:
    published = published_mean_accuracy().set_index("cell")["mean_accuracy"]
    generators = sorted(set(df["generator"]), reverse=True)  # ws before ba, as the study
    rows = []
    for cell in _cells(df):
        part = df[df["cell"] == cell]
        row = {"cell": CELL_NAMES[cell]}
        for gen in generators:
            grp = part[part["generator"] == gen]["test_accuracy"]
            row[gen.upper()] = f"{ci(*_acc(grp))} ({len(grp)})"
        mean, lo, hi = _acc(part["test_accuracy"])
        row["pooled"] = f"{ci(mean, lo, hi)} ({len(part)})"
        row["published"] = f"{published[cell]:.3f}"
        row["published in our interval?"] = within(float(published[cell]), lo, hi)
        row["at chance (< 0.6)"] = int((part["test_accuracy"] < 0.6).sum())
        rows.append(row)
    return pd.DataFrame(rows)


#: Networks at chance trained again outside the protocol (results/chase-lstm-ba/chase.py).
RETRAIN_CSV = Path("chase-lstm-ba") / "retrain.csv"
CHANCE = 0.6


def retrain_lines(df: pd.DataFrame, path: Path, epochs: int) -> list[str]:
    """What retraining the networks at chance showed: the stored result reproduced with the
    unit's own initialisation seed, and how many runs with other seeds learn. A paragraph
    only where the file exists; its verdict follows the share of other-seed runs that learn."""
    if not path.exists():
        return []
    runs = pd.read_csv(path)
    out = []
    for cell, part in runs.groupby("cell", sort=False):
        mine = df[df["cell"] == cell].set_index(["generator", "graph_id"])
        own = part[part["init"] == "unit"]
        other = part[part["init"] != "unit"]
        stored = mine.loc[list(zip(own["generator"], own["graph_id"], strict=True))]
        diff = np.abs(own["final_accuracy"].to_numpy() - stored["test_accuracy"].to_numpy())
        trees = int((stored["edges"] == stored["nodes"] - 1).sum())
        learn = other[other["final_accuracy"] >= CHANCE]["final_accuracy"]
        share = len(learn) / len(other)
        verdict = (
            "mostly the draw of the initialisation, not the graph" if share >= 2 / 3
            else "mostly the graph: other seeds fail too" if share <= 1 / 3
            else "both the graph and the draw of the initialisation"
        )  # fmt: skip
        span = f" (final accuracy {learn.min():.2f}-{learn.max():.2f})" if len(learn) else ""
        again = int((own["final_accuracy"] < CHANCE).sum())
        out.append(
            f"Networks at chance, trained again outside the protocol (`results/{RETRAIN_CSV}`): "
            f"the {len(own)} {CELL_NAMES[cell]} networks below {CHANCE} "
            f"({', '.join(sorted(set(own['generator'])))} graphs; {trees} of them trees, edges "
            f"= nodes - 1). With their own initialisation seed {again} of {len(own)} end below "
            f"{CHANCE} again (largest difference from the stored accuracy {diff.max():.3f}, at the "
            "3 decimals the file keeps); "
            f"with {other['init'].nunique()} other seeds each, {len(learn)} of {len(other)} "
            f"runs reach {CHANCE} or more{span}. At this budget ({epochs} epochs), ending at "
            f"chance is {verdict}."
        )
        out.append("")
    return out


def generator_lines(df: pd.DataFrame) -> list[str]:
    """WS minus BA per cell: Welch interval (different graphs, not paired) and a verdict."""
    if set(df["generator"]) != {"ws", "ba"}:
        return []
    parts = []
    for cell in _cells(df):
        ws = df[(df["cell"] == cell) & (df["generator"] == "ws")]["test_accuracy"].to_numpy(float)
        ba = df[(df["cell"] == cell) & (df["generator"] == "ba")]["test_accuracy"].to_numpy(float)
        if len(ws) < 2 or len(ba) < 2:
            continue
        diff = ws.mean() - ba.mean()
        res = st.ttest_ind(ws, ba, equal_var=False)
        lo, hi = res.confidence_interval(0.95)
        verdict = {
            "higher": "WS higher",
            "lower": "BA higher",
            "equivalent": f"no difference beyond +-{ACCURACY_MARGIN}",
            "inconclusive": "the data cannot tell",
        }[interval_verdict(lo, hi, ACCURACY_MARGIN)]
        parts.append(f"{CELL_NAMES[cell]} {diff:+.3f} [{lo:+.3f}, {hi:+.3f}] ({verdict})")
    if not parts:
        return []
    return [
        "WS minus BA mean accuracy, 95% Welch interval (different graphs, unpaired): "
        + "; ".join(parts)
        + "."
    ]


def _correlations(df: pd.DataFrame) -> pd.DataFrame:
    features = list(dict.fromkeys(published_correlations()["feature"]))
    ours = correlations(df, features, by=("cell",), methods=("pearson",), n_boot=1000, seed=0)
    return ours.set_index(["cell", "feature"])


def correlation_table(df: pd.DataFrame, ours: pd.DataFrame) -> pd.DataFrame:
    pub = published_correlations().set_index(["cell", "feature"])["r"]
    rows = []
    for feature in dict.fromkeys(published_correlations()["feature"]):
        row = {"property": feature}
        for cell in _cells(df):
            r = ours.loc[(cell, feature)]
            row[CELL_NAMES[cell]] = (
                f"{r['r']:+.2f} [{r['ci_low']:+.2f}, {r['ci_high']:+.2f}] "
                f"({pub[(cell, feature)]:+.2f})"
            )
        rows.append(row)
    return pd.DataFrame(rows)


def sign_lines(ours: pd.DataFrame) -> list[str]:
    pub = published_correlations().set_index(["cell", "feature"])["r"]
    same = inside = excludes_zero = total = 0
    differ = []
    for (cell, feature), p in pub.items():
        if (cell, feature) not in ours.index:
            continue
        r = ours.loc[(cell, feature)]
        total += 1
        same += int(np.sign(r["r"]) == np.sign(p))
        inside += int(r["ci_low"] <= p <= r["ci_high"])
        excludes_zero += int(r["ci_low"] > 0 or r["ci_high"] < 0)
        if np.sign(r["r"]) != np.sign(p):
            differ.append(f"{CELL_NAMES[cell]} {feature}")
    n = int(ours["n"].iloc[0]) if len(ours) else 0
    return [
        f"Of the {total} published correlations, {same} have the same sign here"
        + (f" (differing: {', '.join(differ)})" if differ else "")
        + f"; {inside} published values lie inside our interval; {excludes_zero} of our "
        f"intervals exclude 0 (n = {n} networks per cell)."
    ]


def protocol_table(df: pd.DataFrame) -> pd.DataFrame:
    ours = study_protocol(df).set_index(["cell", "model"])
    pub = published_r2().set_index(["cell", "model"])["r2"]
    rows = []
    for cell in _cells(df):
        row = {"cell": CELL_NAMES[cell]}
        for model in ("bayesian_ridge", "random_forest", "adaboost"):
            row[model] = f"{ours.loc[(cell, model), 'r2']:.2f} ({pub[(cell, model)]:.2f})"
        row["test rows"] = int(ours.loc[(cell, "bayesian_ridge"), "n_test"])
        rows.append(row)
    return pd.DataFrame(rows)


def topology(df: pd.DataFrame) -> pd.DataFrame:
    return beyond_size(df, n_splits=FOLDS, n_repeats=REPEATS, random_state=0)


@functools.lru_cache(maxsize=4)
def analyses(folder: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The structure frame of ``folder`` and its :func:`topology` table, computed once per
    build (the README's summary reuses them; the cross-validation is the slow part)."""
    df = load_results(folder).structure
    return df, topology(df)


def topology_table(out: pd.DataFrame) -> pd.DataFrame:
    rows = []
    for r in out.itertuples(index=False):
        rows.append(
            {
                "cell": CELL_NAMES[r.cell],
                "regressor": r.model,
                "R^2, 23 properties": ci(r.r2_all, r.r2_all_ci_low, r.r2_all_ci_high, 2),
                "R^2, size only": ci(r.r2_size, r.r2_size_ci_low, r.r2_size_ci_high, 2),
                "gain": ci(r.gain, r.gain_ci_low, r.gain_ci_high, 2, sign=True),
                "verdict": _gain_verdict(r.gain_ci_low, r.gain_ci_high),
                "folds": r.n_folds,
            }
        )
    return pd.DataFrame(rows)


def _gain_verdict(lo: float, hi: float) -> str:
    return {
        "higher": "topology adds signal",
        "lower": "size alone predicts better",
        "equivalent": f"no gain beyond +-{R2_MARGIN}",
        "inconclusive": "cannot tell",
    }[interval_verdict(lo, hi, R2_MARGIN)]


def topology_lines(out: pd.DataFrame) -> list[str]:
    """One sentence: each cell's verdict, said once where the regressors agree, else each
    regressor's with its gain interval."""
    parts = []
    for cell in [c for c in CELL_NAMES if c in set(out["cell"])]:
        rows = list(out[out["cell"] == cell].itertuples())
        verdicts = [_gain_verdict(r.gain_ci_low, r.gain_ci_high) for r in rows]
        if len(set(verdicts)) == 1:
            both = "both regressors" if len(rows) == 2 else f"all {len(rows)} regressors"
            parts.append(f"{CELL_NAMES[cell]}: {verdicts[0]} ({both})")
            continue
        each = [
            f"{v} by {r.model} (gain {r.gain:+.2f} [{r.gain_ci_low:+.2f}, "
            f"{r.gain_ci_high:+.2f}])"
            for v, r in zip(verdicts, rows, strict=True)
        ]
        parts.append(f"{CELL_NAMES[cell]}: the regressors differ, {', '.join(each)}")
    text = "; ".join(parts)
    return [f"Does topology carry signal beyond size? By cell: {text}."]
