"""The report's prediction section: accuracy predicted from graph properties, five ways."""

from __future__ import annotations

import pandas as pd

from sparsernn import analysis
from sparsernn.report import plots
from sparsernn.report.content import Block, Context, Heading, Paragraph, missing, note, notes
from sparsernn.report.frames import cell_sorted
from sparsernn.report.structure import usable_features

__all__ = ["prediction"]

_MAX_CV_FITS = 1000  # cap on model fits in the repeated cross-validation, all cells together
_CV_COLUMNS = ["cell", "model", "features", "r2_mean", "r2_ci_low", "r2_ci_high", "published"]
_CV_COLUMNS += ["n_folds", "n"]


def _cv_settings(ctx: Context, n_cells: int, n_min: int) -> tuple[int, int]:
    """(n_splits, n_repeats) for the repeated cross-validation, bounded by _MAX_CV_FITS."""
    n_splits = max(2, min(5, n_min // 2))
    repeats = ctx.n_repeats if n_min >= 50 else min(ctx.n_repeats, 3)
    n_models = len(analysis.MODELS) + len(analysis.BASELINES)
    cap = _MAX_CV_FITS // max(1, n_cells * n_models * n_splits)
    return n_splits, max(1, min(repeats, cap))


def prediction(ctx: Context) -> list[Block]:
    """The study's protocol, repeated cross-validation, transfer between generators,
    out-of-fold predictions and feature importance."""
    present, first = usable_features(ctx)
    if not present:
        return first
    sizes = ctx.structure.groupby("cell").size()
    n_splits, n_repeats = _cv_settings(ctx, len(sizes), int(sizes.min()))
    return [
        *first,
        Heading("The study's protocol"),
        *_protocol(ctx, present),
        Heading("Repeated cross-validation"),
        *_cross_validated(ctx, present, n_splits, n_repeats),
        Heading("Transfer between generators"),
        *_transfer(ctx, present),
        Heading("Predicted against actual"),
        *_predicted(ctx, present, n_splits),
        Heading("Feature importance"),
        *_importance(ctx, present),
    ]


def _protocol(ctx: Context, present: list[str]) -> list[Block]:
    proto = analysis.study_protocol(ctx.structure, features=present)
    out: list[Block] = [
        Paragraph(
            "MinMax scaling on all rows, one 90/10 split (random_state 7), R² on the 10%: "
            "exactly the study's protocol, and as noisy as its 10% test part is small."
        )
    ]
    if proto.empty:
        return [*out, missing("The study protocol could not run. " + proto.attrs.get("note", ""))]
    published = analysis.published_r2()
    table = analysis.compare(proto, published, on=["cell", "model"], value_ours="r2", how="left")
    table = table.merge(proto[["cell", "model", "n_train", "n_test"]], on=["cell", "model"])
    caption = "R² with the study's protocol"
    return [
        *out,
        ctx.table("prediction_study_protocol", cell_sorted(table), caption),
        *notes(proto),
    ]


def _cross_validated(
    ctx: Context, present: list[str], n_splits: int, n_repeats: int
) -> list[Block]:
    cv = analysis.cross_validated(
        ctx.structure,
        features=present,
        n_splits=n_splits,
        n_repeats=n_repeats,
        random_state=ctx.seed,
    )
    out: list[Block] = [
        Paragraph(
            f"{n_repeats} x {n_splits}-fold cross-validation (scaler refit in each fold), mean R² "
            "with a 95% interval over folds (Nadeau-Bengio corrected: folds share rows). "
            "Baselines: "
            "dummy_mean predicts the training mean; size_only is BayesianRidge on nodes and edges."
        )
    ]
    if cv.empty:
        return [*out, missing("Cross-validation could not run. " + cv.attrs.get("note", ""))]
    published = analysis.published_r2().rename(columns={"r2": "published"})
    table = cell_sorted(cv.merge(published, on=["cell", "model"], how="left"))[_CV_COLUMNS]
    caption = "Cross-validated R² (published: the study's single split)"
    return [*out, ctx.table("prediction_cross_validated", table, caption), *notes(cv)]


def _transfer(ctx: Context, present: list[str]) -> list[Block]:
    logo = analysis.leave_one_generator_out(ctx.structure, features=present, random_state=ctx.seed)
    if logo.empty:
        return note("Leave-one-generator-out could not run: " + logo.attrs.get("note", "no rows"))
    caption = "R² when testing on a generator left out of training"
    table = ctx.table("prediction_leave_one_generator_out", cell_sorted(logo), caption)
    return [table, *notes(logo)]


def _predicted(ctx: Context, present: list[str], n_splits: int) -> list[Block]:
    pva = analysis.predicted_vs_actual(
        ctx.structure, features=present, n_splits=n_splits, random_state=ctx.seed
    )
    caption = f"Out-of-fold predictions ({n_splits}-fold) against actual accuracy"
    return [*notes(pva), ctx.figure(plots.predicted_vs_actual(pva), caption)]


def _importance(ctx: Context, present: list[str]) -> list[Block]:
    imp: pd.DataFrame = analysis.feature_importances(
        ctx.structure, features=present, n_repeats=5, random_state=ctx.seed
    )
    listed = [] if imp.empty else [ctx.table("prediction_feature_importance", imp, show=False)]
    caption = "Random-forest permutation importance (drop in held-out R²)"
    return [*notes(imp), *listed, ctx.figure(plots.feature_importance(imp), caption)]
