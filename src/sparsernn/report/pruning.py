"""The report's pruning section: base models, tolerated sparsity, recovery, GRU after pruning."""

from __future__ import annotations

import numpy as np
import pandas as pd

from sparsernn import analysis
from sparsernn.report import plots
from sparsernn.report.content import Block, Context, Heading, Paragraph, missing, note, notes
from sparsernn.report.frames import cell_sorted, group_mean_ci, target_rank

__all__ = ["HOW_PRUNING", "pruning"]

#: How to produce pruning results; {dir} is the study directory.
HOW_PRUNING = "run `sparsernn prune --out {dir}`"
_TOLERATED_COLUMNS = ["cell", "target", "epoch", "tolerated", "ci_low", "ci_high"]
_TOLERATED_COLUMNS += ["published_safe", "difference", "n_seeds"]


def _with_base(ctx: Context) -> tuple[pd.DataFrame, pd.DataFrame, str | None]:
    """Pruning rows that have a base accuracy, the base table, and a note on any dropped."""
    res = ctx.results
    base = res.base[["cell", "seed", "base_accuracy"]].copy()
    base["base_accuracy"] = pd.to_numeric(base["base_accuracy"], errors="coerce")
    known = set(zip(base["cell"], base["seed"], strict=True))
    has = [(c, s) in known for c, s in zip(res.pruning["cell"], res.pruning["seed"], strict=True)]
    pruning = res.pruning.loc[has]
    dropped = None
    if len(pruning) < len(res.pruning):
        n = len(res.pruning) - len(pruning)
        dropped = f"{n} pruning rows have no base model and are left out"
    return pruning, base, dropped


def pruning(ctx: Context) -> list[Block]:
    """Base models, then (with pruning runs) tolerated sparsity, recovery, and their plots."""
    res = ctx.results
    how = HOW_PRUNING.format(dir=ctx.shell_where) + "."
    if res.base.empty and res.pruning.empty:
        return [missing("No base models or pruning runs in this study: " + how)]
    out: list[Block] = []
    if not res.base.empty:
        out += [Heading("Base models"), *_base_accuracy(ctx)]
    if res.pruning.empty:
        return [*out, missing("No pruning runs in this study: " + how)]
    runs, base, dropped = _with_base(ctx)
    out += note(dropped)
    if runs.empty:
        return [*out, missing("No pruning run has its base model in this study: " + how)]
    methods = _methods(runs)
    if methods != ["magnitude"]:
        out += [Heading("Sparsity methods"), *_method_table(ctx, runs)]
    if len(methods) > 1:  # the study's tables compare one method with the published figures
        shown = "magnitude" if "magnitude" in methods else methods[0]
        runs = runs[runs["method"].fillna("magnitude") == shown]
        out += note(f"The tables and plots below use the {shown} method's runs only.")
    out += [Heading("Tolerated sparsity"), *_tolerated(ctx, runs, base)]
    out += [Heading("Retraining epochs to recover"), *_recovery(ctx, runs, base)]
    if "gru" in set(runs["cell"]):
        out += [Heading("GRU accuracy right after pruning"), *_post_prune(ctx, runs)]
    band = f"amber band: within {ctx.tolerance:g} of the base model"
    return [
        *out,
        Heading("Plots"),
        ctx.figure(
            plots.pruning_accuracy(runs, base, ctx.tolerance),
            f"Test accuracy against pruning amount (mean over seeds, 95% CI; {band})",
        ),
        ctx.figure(
            plots.recovery_curves(runs, base, ctx.tolerance),
            f"Recovery of the amounts that cost more than {ctx.tolerance:g} "
            "accuracy (amber band: tolerance)",
        ),
    ]


def _base_table(base: pd.DataFrame) -> pd.DataFrame:
    """Our base accuracy per cell (mean, CI) beside the published one, with seeds, epochs and
    the mean epoch time."""
    ours = group_mean_ci(base, ["cell"], "base_accuracy")
    by_cell = base["cell"]
    extra = pd.DataFrame(
        {
            "n_seeds": base.groupby("cell")["seed"].nunique(),
            "epochs": pd.to_numeric(base["epochs"], errors="coerce").groupby(by_cell).max(),
            "mean_epoch_time_s": pd.to_numeric(base["mean_epoch_time"], errors="coerce")
            .groupby(by_cell)
            .mean(),
        }
    ).reset_index(names="cell")
    table = analysis.compare(
        ours, analysis.published_base_accuracy(), on="cell", value_ours="base_accuracy", how="left"
    )
    table = table.merge(ours[["cell", "ci_low", "ci_high"]], on="cell").merge(extra, on="cell")
    columns = ["cell", "ours", "ci_low", "ci_high", "published", "difference", "n_seeds"]
    return cell_sorted(table[[*columns, "epochs", "mean_epoch_time_s"]])


def _base_accuracy(ctx: Context) -> list[Block]:
    base = ctx.results.base.copy()
    for column in ("epochs", "mean_epoch_time"):  # absent from stores of older versions
        if column not in base.columns:
            base[column] = np.nan
    caption = "Base-model test accuracy (published: one run, 50 epochs)"
    out: list[Block] = [ctx.table("pruning_base_accuracy", _base_table(base), caption)]
    epochs = pd.to_numeric(base["epochs"], errors="coerce").dropna()
    if len(epochs) and epochs.max() != 50:
        out += note(
            f"Our base models trained for {int(epochs.max())} epoch(s); the study "
            "trained 50, so accuracies are comparable only for a full run."
        )
    if not ctx.unpublished:
        out += note("Published epoch times (Tesla K80): 31 s for RNN, 44-47 s for LSTM/GRU.")
    if not ctx.results.base_curves.empty:
        curves = plots.training_curves(ctx.results.base_curves)
        out.append(ctx.figure(curves, "Base-model training curves (mean over seeds, 95% CI)"))
    return out


def _tolerated_at(ctx: Context, runs: pd.DataFrame, base: pd.DataFrame, epoch: int):
    """Tolerated sparsity at ``epoch`` beside the published safe amount (or the note why
    there is none)."""
    agg = analysis.tolerated_sparsity(runs, base, ctx.tolerance, epoch)
    if agg.empty:
        return agg.attrs.get("note", f"nothing at epoch {epoch}")
    keys = ["cell", "target"]
    cmp = analysis.compare(
        agg,
        analysis.published_safe_pruning(),
        on=keys,
        value_ours="tolerated_mean",
        value_published="safe_percent",
        how="left",
    )
    ci = agg[[*keys, "tolerated_ci_low", "tolerated_ci_high", "n_seeds"]]
    return cmp.merge(ci, on=keys).assign(epoch=epoch)


def _tolerated(ctx: Context, runs: pd.DataFrame, base: pd.DataFrame) -> list[Block]:
    last = int(pd.to_numeric(runs["epoch"]).max())
    found = [_tolerated_at(ctx, runs, base, e) for e in sorted({0, min(1, last), last})]
    parts = [f for f in found if isinstance(f, pd.DataFrame)]
    why = [f for f in found if isinstance(f, str)]
    out: list[Block] = [
        Paragraph(
            "Tolerated = the largest pruning amount (%) whose test accuracy is within "
            f"{ctx.tolerance:g} of the base model's, judged right after pruning (epoch 0) and "
            "after retraining; mean over seeds with a 95% t-interval."
            + ctx.published(
                ' Published = the study\'s "safe" amount (one run); difference = ours - published.'
            )
        )
    ]
    if not parts:
        return [*out, missing("No pruning results to judge. " + "; ".join(why))]
    names = {"ours": "tolerated", "published": "published_safe"}
    names.update(tolerated_ci_low="ci_low", tolerated_ci_high="ci_high")
    table = pd.concat(parts, ignore_index=True).rename(columns=names)[_TOLERATED_COLUMNS]
    table = cell_sorted(table.assign(_t=target_rank(table)), ["_t", "epoch"]).drop(columns="_t")
    out.append(ctx.table("pruning_tolerated", table, "Tolerated sparsity (%)"))
    return [*out, *(b for text in why for b in note(text))]


def _recovery(ctx: Context, runs: pd.DataFrame, base: pd.DataFrame) -> list[Block]:
    agg = analysis.epochs_to_recover(runs, base, ctx.tolerance)
    if agg.empty:
        return notes(agg) or [missing("No pruning results to judge.")]
    long = cell_sorted(agg.assign(_t=target_rank(agg)), ["_t", "amount"]).drop(columns="_t")
    wide = long.pivot_table(
        index=["cell", "target"], columns="amount", values="epochs", aggfunc="first", sort=False
    )
    wide.columns = [f"{float(a):g}%" for a in wide.columns]
    wide = wide.reset_index()
    wide = cell_sorted(wide.assign(_t=target_rank(wide)), ["_t"]).drop(columns="_t").fillna("–")
    return [
        Paragraph(
            f"Retraining epochs until test accuracy is back within {ctx.tolerance:g} of the base "
            'model (0 = not needed; mean [95% CI] over the seeds that recover; "never" = not '
            "within the recorded epochs)."
        ),
        ctx.table("pruning_recovery", wide, "Epochs to recover, per pruning amount"),
        ctx.table("pruning_recovery_long", long, show=False),
        *notes(agg),
    ]


def _methods(runs: pd.DataFrame) -> list[str]:
    """The sparsity methods of the pruning rows (stores from before methods: magnitude)."""
    if "method" not in runs.columns:
        return ["magnitude"]
    return sorted(set(runs["method"].fillna("magnitude")))


def _method_table(ctx: Context, runs: pd.DataFrame) -> list[Block]:
    """Accuracy after the last retraining epoch per cell, method and sparsity, over seeds."""
    point = ["cell", "seed", "method", "target", "amount"]
    last = runs[runs["epoch"] == runs.groupby(point)["epoch"].transform("max")]
    table = group_mean_ci(last, ["cell", "target", "amount", "method"], "accuracy")
    table = cell_sorted(table, ["target", "amount", "method"])
    caption = (
        "Test accuracy after each method's last retraining epoch, mean over seeds with a 95% "
        "t-interval (docs/methods.md says what each method trains)"
    )
    return [ctx.table("pruning_methods", table, caption)]


def _post_prune(ctx: Context, runs: pd.DataFrame) -> list[Block]:
    if ctx.unpublished:  # the table is a comparison at the published amounts only
        return []
    at0 = runs[runs["epoch"] == 0]
    ours = at0.groupby(["cell", "target", "amount"], as_index=False)["accuracy"].mean()
    published = analysis.published_post_prune()
    published = published.assign(amount=published["amount"].astype(float))
    table = analysis.compare(
        ours, published, on=["cell", "target", "amount"], value_ours="accuracy", how="inner"
    )
    if table.empty:
        return note("None of the amounts the study reported for GRU (80-100%) were run.")
    caption = "GRU test accuracy right after pruning, before retraining (mean over seeds)"
    return [ctx.table("pruning_post_prune", table, caption)]
