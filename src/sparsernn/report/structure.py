"""The report's random-structure and correlation sections."""

from __future__ import annotations

import pandas as pd

from sparsernn import analysis
from sparsernn.report import plots
from sparsernn.report.content import Block, Context, Paragraph, missing, note, notes
from sparsernn.report.frames import cell_sorted, group_mean_ci

__all__ = ["HOW_STRUCTURE", "structure", "correlations", "no_structure", "usable_features"]

#: How to produce random-structure results; {dir} is the study directory.
HOW_STRUCTURE = "run `sparsernn structure --out {dir}`"
_CORRELATION_COLUMNS = [
    "cell",
    "feature",
    *(f"{m}{s}" for m in ("pearson", "spearman") for s in ("", "_ci_low", "_ci_high")),
    "published",
    "difference",
    "n",
]


def no_structure(ctx: Context) -> list[Block] | None:
    """The "no random-structure runs" note when there are none, else None."""
    if ctx.structure.empty:
        how = HOW_STRUCTURE.format(dir=ctx.shell_where)
        return [
            missing(
                f"No random-structure runs in this study: {how}. (The correlations of graph "
                "properties with accuracy and the predictions from them follow from those runs.)"
            )
        ]
    return None


def usable_features(ctx: Context) -> tuple[list[str], list[Block]]:
    """The study features the structure results hold, and the notes to show first (constant
    accuracies, properties lacking); with no features to analyse, the notes say why."""
    lacking = no_structure(ctx)
    if lacking:
        return [], lacking
    present = [f for f in analysis.STUDY_FEATURES if f in ctx.structure.columns]
    if not present:
        return [], [missing("The structure results hold none of the study's graph properties.")]
    absent = [f for f in analysis.STUDY_FEATURES if f not in ctx.structure.columns]
    why = f"Graph properties missing from the results: {', '.join(absent)}." if absent else None
    return present, [*_constant(ctx), *note(why)]


def _constant(ctx: Context) -> list[Block]:
    """A warning naming the cells whose networks all reached the same accuracy (if any)."""
    acc = pd.to_numeric(ctx.structure["test_accuracy"], errors="coerce")
    spread = acc.groupby(ctx.structure["cell"]).agg(lambda s: s.max() - s.min())
    flat = [str(c) for c, v in spread.items() if v == 0]
    if not flat:
        return []
    return [
        missing(
            f"Every network of {', '.join(flat)} reached the same test accuracy (training too "
            "short or too little data?): correlations are undefined and R² is meaningless there "
            "(a constant predicted exactly scores R² = 1)."
        )
    ]


def structure(ctx: Context) -> list[Block]:
    """Mean accuracy per cell and generator beside the published means, and two plots."""
    lacking = no_structure(ctx)
    if lacking:
        return lacking
    df = ctx.structure
    per_gen = group_mean_ci(df, ["cell", "generator"], "test_accuracy")
    pooled = group_mean_ci(df, ["cell"], "test_accuracy").assign(generator=analysis.POOLED)
    ours = pd.concat([per_gen, pooled], ignore_index=True)
    pub = analysis.published_mean_accuracy().assign(generator=analysis.POOLED)
    table = ours.merge(pub, on=["cell", "generator"], how="left").rename(
        columns={"test_accuracy": "mean_accuracy", "mean_accuracy": "published"}
    )
    table["difference"] = table["mean_accuracy"] - table["published"]
    columns = ["cell", "generator", "mean_accuracy", "ci_low", "ci_high", "n"]
    out: list[Block] = [
        Paragraph(
            "Mean test accuracy of the random-structure networks with a 95% t-interval; "
            f'generator "{analysis.POOLED}" pools all generators, as the study\'s published means '
            "(200 graphs per cell, one run each) do."
        ),
        ctx.table(
            "structure_mean_accuracy",
            cell_sorted(table)[[*columns, "published", "difference"]],
            "Mean test accuracy",
        ),
    ]
    gens = sorted(df["generator"].astype(str).unique())
    if "file" in gens:
        out.append(_file_graphs(ctx, df))
    if len(gens) < 2 and gens != ["file"]:  # (the user's own graphs: nothing to add)
        out += note(
            f"Only one generator ({', '.join(gens)}) in this study; the study pooled "
            "Watts-Strogatz and Barabasi-Albert graphs. Add the other with "
            + HOW_STRUCTURE.format(dir=ctx.shell_where)
            + "."
        )
    scatter = "Accuracy against the six properties the study singled out, with least-squares lines"
    out.append(ctx.figure(plots.structure_accuracy(df), "Accuracy per cell and generator"))
    out.append(ctx.figure(plots.property_scatter(df), scatter))
    return out


def _file_graphs(ctx: Context, df: pd.DataFrame) -> Block:
    """Mean test accuracy per graph read from a file (``graphs_from``), over seeds."""
    files = df[df["generator"].astype(str) == "file"]
    cols = [c for c in ("nodes", "edges", "layers") if c in files.columns]
    table = files.groupby(["cell", "graph_id", "graph"], as_index=False).agg(
        mean_accuracy=("test_accuracy", "mean"),
        n=("test_accuracy", "size"),
        **{c: (c, "first") for c in cols},
    )
    table = cell_sorted(table, ["graph_id"])
    return ctx.table("structure_graphs", table, "Mean test accuracy per graph file (over seeds)")


def _published_correlations(corr: pd.DataFrame, key: list[str]) -> pd.DataFrame:
    """Pearson and Spearman r (with CIs) of the key features, generators pooled, beside the
    published Pearson r."""
    pooled = corr[(corr["generator"] == analysis.POOLED) & corr["feature"].isin(key)]
    wide: pd.DataFrame | None = None
    for method in ("pearson", "spearman"):
        part = pooled.loc[
            pooled["method"] == method, ["cell", "feature", "r", "ci_low", "ci_high", "n"]
        ]
        part = part.rename(
            columns={"r": method, "ci_low": f"{method}_ci_low", "ci_high": f"{method}_ci_high"}
        )
        wide = (
            part
            if wide is None
            else wide.merge(part.drop(columns="n"), on=["cell", "feature"], how="outer")
        )
    published = analysis.published_correlations().rename(columns={"r": "published"})
    assert wide is not None  # (two methods above)
    table = wide.merge(
        published[["cell", "feature", "published"]], on=["cell", "feature"], how="left"
    )
    table["difference"] = table["pearson"] - table["published"]
    order = {f: i for i, f in enumerate(key)}
    table = cell_sorted(table.assign(_f=table["feature"].map(order)), ["_f"]).drop(columns="_f")
    return table[_CORRELATION_COLUMNS]


def correlations(ctx: Context) -> list[Block]:
    """Correlation of each graph property with accuracy, bootstrap CIs, a heat map."""
    present, first = usable_features(ctx)
    if not present:
        return first
    corr = analysis.correlations(ctx.structure, features=present, n_boot=ctx.n_boot, seed=ctx.seed)
    out = [*first, *notes(corr)]
    if corr.empty:
        return [*out, missing("No correlations could be computed.")]
    key = [f for f in plots.KEY_FEATURES if f in present]
    out.append(
        Paragraph(
            "Correlation of each graph property with test accuracy, all generators pooled, with "
            f"{ctx.n_boot}-resample bootstrap 95% intervals."
            + ctx.published(
                " Published = the study's Pearson r (200 graphs per cell, one run); "
                "difference = our Pearson r - published."
            )
        )
    )
    caption = "Correlation with accuracy: the six published properties"
    out.append(ctx.table("correlations_published", _published_correlations(corr, key), caption))
    undefined = corr.loc[corr["note"].astype(str) != "", "note"].value_counts()
    if len(undefined):
        reasons = "; ".join(f"{n} row(s): {reason}" for reason, n in undefined.items())
        out += note(f"r is undefined (n/a) in {reasons}.")
    heatmap = "Pearson r of every study property with accuracy (generators pooled)"
    out.append(ctx.table("correlations_all", corr, show=False))
    out.append(ctx.figure(plots.correlation_heatmap(corr), heatmap))
    return out
