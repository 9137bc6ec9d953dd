"""Figures of a study's results: pandas DataFrames in, :class:`matplotlib.figure.Figure` out.

Figures are built without :mod:`matplotlib.pyplot` (no global state, nothing is shown) and
render with the Agg canvas; :func:`to_png` turns one into PNG bytes. Every cell keeps its
colour across all figures (:data:`CELL_COLORS`). Empty or unusable input never raises: the
figure then says "no data" and why.
"""

from __future__ import annotations

import io
import math
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import pandas as pd
from matplotlib import colormaps
from matplotlib.artist import Artist
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch
from matplotlib.ticker import MaxNLocator

from sparsernn.analysis import mean_ci
from sparsernn.nn.cells import MODES

__all__ = [
    "CELL_ORDER",
    "CELL_COLORS",
    "KEY_FEATURES",
    "cell_color",
    "no_data",
    "to_png",
    "pruning_accuracy",
    "recovery_curves",
    "training_curves",
    "structure_accuracy",
    "property_scatter",
    "correlation_heatmap",
    "predicted_vs_actual",
    "feature_importance",
]

#: Cells in the order figures list them.
CELL_ORDER: tuple[str, ...] = MODES
#: One fixed colour per cell (matplotlib's tab10 blue, orange, green, red).
CELL_COLORS: dict[str, str] = {
    "rnn_tanh": "#1f77b4",
    "rnn_relu": "#ff7f0e",
    "gru": "#2ca02c",
    "lstm": "#d62728",
}
#: The six properties whose correlation with accuracy the study published.
KEY_FEATURES: tuple[str, ...] = (
    "nodes",
    "edges",
    "source_nodes",
    "closeness_var",
    "nodes_betweenness_var",
    "degree_var",
)

_EXTRA_COLORS = ("#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf")
_TARGET_ORDER = ("both", "i2h", "h2h")
_GENERATOR_ORDER = ("ws", "ba", "er")
_GENERATOR_NAMES = {"ws": "Watts-Strogatz", "ba": "Barabasi-Albert", "er": "Erdos-Renyi"}


# ----------------------------------------------------------------------------- helpers


def cell_color(cell: str) -> str:
    """The colour of ``cell``; unknown cells get a stable colour from a spare palette."""
    if cell in CELL_COLORS:
        return CELL_COLORS[cell]
    return _EXTRA_COLORS[sum(map(ord, str(cell))) % len(_EXTRA_COLORS)]


def _ordered(values: Iterable[object], order: Sequence[str]) -> list:
    """Distinct ``values``: those named in ``order`` first (in that order), then the rest sorted."""
    present = list(dict.fromkeys(v for v in values if not _isna(v)))
    known = [v for v in order if v in present]
    return known + sorted((v for v in present if v not in order), key=str)


def _isna(value: object) -> bool:
    try:
        return bool(pd.isna(value))
    except (TypeError, ValueError):
        return False


def _figure(width: float, height: float) -> Figure:
    fig = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(fig)
    return fig


#: Attribute set on the figures of :func:`no_data` (its text), so a report can replace them.
NO_DATA_ATTR = "sparsernn_no_data"


def no_data(message: str = "no data", title: str | None = None) -> Figure:
    """A small figure that only says ``message`` (used for every empty input)."""
    fig = _figure(6.0, 2.0)
    ax = fig.add_subplot()
    ax.set_axis_off()
    text = "no data" if message == "no data" else f"no data: {message}"
    ax.text(0.5, 0.5, text, ha="center", va="center", wrap=True, fontsize=11, color="#555555")
    if title:
        ax.set_title(title)
    setattr(fig, NO_DATA_ATTR, text)
    return fig


def to_png(fig: Figure, dpi: int = 100) -> bytes:
    """Render ``fig`` to PNG bytes with the Agg canvas."""
    buf = io.BytesIO()
    if not isinstance(fig.canvas, FigureCanvasAgg):
        FigureCanvasAgg(fig)
    fig.savefig(buf, format="png", dpi=dpi)
    return buf.getvalue()


def _missing(df: object, columns: Sequence[str]) -> str | None:
    """Why ``df`` cannot be plotted (not a frame, missing columns, no rows), or None."""
    if not isinstance(df, pd.DataFrame):
        return f"expected a DataFrame, got {type(df).__name__}"
    lacking = [c for c in columns if c not in df.columns]
    if lacking:
        return f"missing column(s) {', '.join(lacking)}"
    if df.empty:
        return "no rows"
    return None


def _numeric(df: pd.DataFrame, columns: Sequence[str]) -> pd.DataFrame:
    """A copy with ``columns`` coerced to float and rows with a NaN in any of them dropped."""
    out = df.copy()
    for c in columns:
        out[c] = pd.to_numeric(out[c], errors="coerce")
    return out.dropna(subset=list(columns))


def _grid(n: int, max_cols: int = 3) -> tuple[int, int]:
    cols = min(max_cols, max(n, 1))
    return math.ceil(max(n, 1) / cols), cols


def _mean_band(values: pd.Series) -> tuple[float, float, float]:
    """Mean and 95% t-interval of a group's values (NaN bounds for a single value)."""
    return mean_ci(values.to_numpy(float), 0.95)


def _line_with_band(ax, x, groups: pd.DataFrame, value: str, **style) -> None:
    """Plot the mean of ``value`` per ``x``; shade the 95% CI where there is more than one seed."""
    stats = [(key, *_mean_band(sub[value])) for key, sub in groups.groupby(x, sort=True)]
    if not stats:
        return
    xs, means, lo, hi = (np.array(v, dtype=float) for v in zip(*stats, strict=True))
    ax.plot(xs, means, **style)
    if np.isfinite(lo).any():
        ax.fill_between(xs, lo, hi, color=style.get("color"), alpha=0.15, linewidth=0)


def _cell_legend(cells: Sequence[str]) -> list[Line2D]:
    return [Line2D([], [], color=cell_color(c), lw=2, label=c) for c in cells]


# ----------------------------------------------------------------------------- pruning


#: The tolerance band below a base accuracy: amber, clearly visible under lines and CI bands.
TOLERANCE_BAND = {"color": "#f0a000", "alpha": 0.3, "lw": 0, "zorder": 0}


def _tolerance_handle(tolerance: float) -> Patch:
    style: dict[str, Any] = {k: v for k, v in TOLERANCE_BAND.items() if k != "zorder"}
    return Patch(label=f"tolerance band (base - {tolerance:g})", **style)


def pruning_accuracy(
    pruning: pd.DataFrame, base: pd.DataFrame, tolerance: float | None = None
) -> Figure:
    """Test accuracy against pruning amount, one panel per target, one colour per cell.

    Line styles: dotted = right after pruning (epoch 0), dash-dot = after one retraining epoch,
    solid = after the last retraining epoch. Lines are means over seeds with a shaded 95%
    t-interval when there are several seeds; a dashed horizontal line marks each cell's mean
    base accuracy, and with ``tolerance`` an amber band the tolerance below it.
    """
    why = _missing(pruning, ["cell", "target", "amount", "epoch", "accuracy"])
    if why:
        return no_data(why, "accuracy after pruning")
    df = _numeric(pruning, ["amount", "epoch", "accuracy"])
    if df.empty:
        return no_data("no numeric accuracy values", "accuracy after pruning")
    base_means: dict[str, float] = {}
    if _missing(base, ["cell", "base_accuracy"]) is None:
        b = _numeric(base, ["base_accuracy"])
        base_means = b.groupby("cell")["base_accuracy"].mean().to_dict()
    targets = _ordered(df["target"], _TARGET_ORDER)
    cells = _ordered(df["cell"], CELL_ORDER)
    fig = _figure(4.6 * len(targets), 4.2)
    axes = fig.subplots(1, len(targets), sharey=True, squeeze=False)[0]
    last_epochs: set[int] = set()
    styles_used: set[str] = set()
    for ax, target in zip(axes, targets, strict=True):
        for cell in cells:
            sub = df[(df["target"] == target) & (df["cell"] == cell)]
            if sub.empty:
                continue
            color = cell_color(cell)
            last = int(sub["epoch"].max())
            last_epochs.add(last)
            for epoch, style in ((0, ":"), (1, "-."), (last, "-")):
                if epoch > last or (epoch == 1 and last == 1 and style == "-."):
                    continue
                at = sub[sub["epoch"] == epoch]
                _line_with_band(
                    ax, "amount", at, "accuracy", color=color, ls=style, marker="o", ms=3, lw=1.5
                )
                styles_used.add(style if epoch else ":")
                if epoch == last:
                    break
            if cell in base_means:
                ax.axhline(base_means[cell], color=color, ls="--", lw=0.9, alpha=0.7)
                if tolerance:
                    b = base_means[cell]
                    ax.axhspan(b - tolerance, b, **TOLERANCE_BAND)
        ax.set_title(f"target: {target}")
        ax.set_xlabel("pruned weights (%)")
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("test accuracy")
    handles: list[Artist] = [*_cell_legend(cells), *_epoch_legend(styles_used, last_epochs)]
    if base_means:
        handles.append(Line2D([], [], color="black", ls="--", lw=0.9, label="base model"))
        if tolerance:
            handles.append(_tolerance_handle(tolerance))
    axes[-1].legend(handles=handles, fontsize=8, loc="lower left")
    return fig


def _epoch_legend(styles_used: set[str], last_epochs: set[int]) -> list[Line2D]:
    """Legend entries of the line styles used: after pruning, 1 and the last retraining epoch."""
    last_text = "/".join(str(e) for e in sorted(last_epochs - {0}))
    labels = {
        ":": "after pruning",
        "-.": "after 1 retraining epoch",
        "-": f"after {last_text} retraining epoch(s)",
    }
    return [
        Line2D([], [], color="black", ls=style, label=label)
        for style, label in labels.items()
        if style in styles_used
    ]


def recovery_curves(pruning: pd.DataFrame, base: pd.DataFrame, tolerance: float = 0.01) -> Figure:
    """Accuracy against retraining epoch for the amounts that hurt, per (cell, target) panel.

    An amount "hurts" when its mean accuracy right after pruning is below the cell's mean base
    accuracy minus ``tolerance``. The amber band is the tolerance below the base accuracy.
    """
    title = "recovery during retraining"
    why = _missing(pruning, ["cell", "target", "amount", "epoch", "accuracy"]) or _missing(
        base, ["cell", "base_accuracy"]
    )
    if why:
        return no_data(why, title)
    df = _numeric(pruning, ["amount", "epoch", "accuracy"])
    base_means = _numeric(base, ["base_accuracy"]).groupby("cell")["base_accuracy"].mean()
    df = df[df["cell"].isin(base_means.index)]
    if df.empty:
        return no_data("no pruning results with a base accuracy", title)
    cells = _ordered(df["cell"], CELL_ORDER)
    targets = _ordered(df["target"], _TARGET_ORDER)
    panels = [(c, t, _hurt(df, c, t, base_means[c] - tolerance)) for c in cells for t in targets]
    all_amounts = {a for _, _, hurt in panels for a in hurt}
    if not all_amounts:
        return no_data(f"no pruning amount lowered accuracy by more than {tolerance:g}", title)
    amounts = sorted(all_amounts)
    cmap = colormaps["viridis"]
    shade = {a: cmap(i / max(len(amounts) - 1, 1) * 0.9) for i, a in enumerate(amounts)}
    fig = _figure(3.6 * len(targets), 2.8 * len(cells) + 0.6)
    axes = fig.subplots(len(cells), len(targets), sharex=True, sharey=True, squeeze=False)
    for (cell, target, hurt), ax in zip(panels, axes.ravel(), strict=True):
        b = float(base_means[cell])
        ax.axhspan(b - tolerance, b, **TOLERANCE_BAND)
        ax.axhline(b, color=cell_color(cell), ls="--", lw=0.9)
        sub = df[(df["cell"] == cell) & (df["target"] == target)]
        for amount in hurt:
            at = sub[sub["amount"] == amount]
            _line_with_band(
                ax, "epoch", at, "accuracy", color=shade[amount], marker="o", ms=3, lw=1.4
            )
        if not hurt:
            ax.text(0.5, 0.5, "no amount hurt", transform=ax.transAxes, ha="center", color="#555")
        ax.set_title(f"{cell}, {target}", fontsize=10, color=cell_color(cell))
        ax.grid(alpha=0.3)
    for ax in axes[-1]:
        ax.set_xlabel("retraining epoch (0 = after pruning)")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    for ax in axes[:, 0]:
        ax.set_ylabel("test accuracy")
    handles: list[Artist] = [
        Line2D([], [], color=shade[a], marker="o", label=f"{a:g}%") for a in amounts
    ]
    handles.append(_tolerance_handle(tolerance))
    fig.legend(
        handles=handles,
        loc="outside lower center",
        ncols=min(len(handles), 10),
        fontsize=8,
        title="pruned",
    )
    return fig


def _hurt(df: pd.DataFrame, cell: str, target: str, threshold: float) -> list[float]:
    """The amounts whose mean accuracy right after pruning is below ``threshold``, sorted."""
    sub = df[(df["cell"] == cell) & (df["target"] == target)]
    post = sub[sub["epoch"] == 0].groupby("amount")["accuracy"].mean()
    return sorted(float(a) for a in post.index[post < threshold])


# ----------------------------------------------------------------------------- base models


def training_curves(base_curves: pd.DataFrame) -> Figure:
    """Base models: test accuracy and train loss per epoch, per cell (mean over seeds, 95% CI)."""
    title = "base-model training"
    why = _missing(base_curves, ["cell", "epoch", "test_accuracy"])
    if why:
        return no_data(why, title)
    panels = [("test_accuracy", "test accuracy")]
    if "train_loss" in base_curves.columns:
        panels.append(("train_loss", "train loss"))
    df = _numeric(base_curves, ["epoch", "test_accuracy"])
    if df.empty:
        return no_data("no numeric values", title)
    cells = _ordered(df["cell"], CELL_ORDER)
    fig = _figure(5.0 * len(panels), 3.8)
    axes = fig.subplots(1, len(panels), squeeze=False)[0]
    for ax, (column, label) in zip(axes, panels, strict=True):
        values = _numeric(df, [column])
        for cell in cells:
            sub = values[values["cell"] == cell]
            _line_with_band(
                ax, "epoch", sub, column, color=cell_color(cell), marker="o", ms=3, label=cell
            )
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    return fig


# ----------------------------------------------------------------------------- structure


def structure_accuracy(structure: pd.DataFrame) -> Figure:
    """Test accuracy of the random-structure networks per cell, one box per generator.

    Boxes of the same cell sit side by side (generators told apart by hatching); every network
    is also drawn as a jittered point.
    """
    title = "accuracy of random-structure networks"
    why = _missing(structure, ["cell", "generator", "test_accuracy"])
    if why:
        return no_data(why, title)
    df = _numeric(structure, ["test_accuracy"])
    if df.empty:
        return no_data("no numeric accuracies", title)
    cells = _ordered(df["cell"], CELL_ORDER)
    gens = _ordered(df["generator"].astype(str), _GENERATOR_ORDER)
    hatches = ("", "//", "..", "xx", "\\\\", "oo")
    width = 0.8 / len(gens)
    jitter = np.random.default_rng(0)
    fig = _figure(max(4.0, 1.2 + 1.6 * len(cells) * max(len(gens), 1) ** 0.5), 4.2)
    ax = fig.add_subplot()
    for i, cell in enumerate(cells):
        for j, gen in enumerate(gens):
            values = df.loc[(df["cell"] == cell) & (df["generator"].astype(str) == gen)]
            y = values["test_accuracy"].to_numpy(float)
            if y.size == 0:
                continue
            pos = i - 0.4 + width * (j + 0.5)
            box = ax.boxplot(
                [y], positions=[pos], widths=width * 0.8, patch_artist=True, showfliers=False
            )
            for patch in box["boxes"]:
                patch.set(facecolor=cell_color(cell), alpha=0.35, hatch=hatches[j % len(hatches)])
            for part in ("medians", "whiskers", "caps"):
                for line in box[part]:
                    line.set_color(cell_color(cell))
            xs = pos + jitter.uniform(-width * 0.3, width * 0.3, size=y.size)
            ax.scatter(xs, y, s=10, color=cell_color(cell), alpha=0.8, zorder=3, linewidths=0)
    ax.set_xticks(range(len(cells)), cells)
    ax.set_xlim(-0.6, len(cells) - 0.4)
    ax.set_ylabel("test accuracy")
    ax.set_title(title)
    ax.grid(axis="y", alpha=0.3)
    handles = [
        Patch(
            facecolor="white",
            edgecolor="black",
            hatch=hatches[j % len(hatches)],
            label=_GENERATOR_NAMES.get(g, g),
        )
        for j, g in enumerate(gens)
    ]
    ax.legend(handles=handles, fontsize=8)
    return fig


def property_scatter(structure: pd.DataFrame, features: Sequence[str] = KEY_FEATURES) -> Figure:
    """Test accuracy against each graph property, coloured by cell, with least-squares lines."""
    title = "accuracy against graph properties"
    why = _missing(structure, ["cell", "test_accuracy"])
    if why:
        return no_data(why, title)
    present = [f for f in features if f in structure.columns]
    if not present:
        return no_data(f"none of the properties {', '.join(features)} is in the results", title)
    df = _numeric(structure, ["test_accuracy"])
    if df.empty:
        return no_data("no numeric accuracies", title)
    cells = _ordered(df["cell"], CELL_ORDER)
    rows, cols = _grid(len(present))
    fig = _figure(4.0 * cols, 3.3 * rows + 0.5)
    axes = fig.subplots(rows, cols, sharey=True, squeeze=False).ravel()
    for ax, feature in zip(axes, present, strict=False):
        values = _numeric(df, [feature])
        for cell in cells:
            sub = values[values["cell"] == cell]
            x = sub[feature].to_numpy(float)
            y = sub["test_accuracy"].to_numpy(float)
            if x.size == 0:
                continue
            ax.scatter(x, y, s=12, color=cell_color(cell), alpha=0.6, linewidths=0)
            if x.size >= 2 and np.ptp(x) > 0:
                slope, intercept = np.polyfit(x, y, 1)
                grid = np.linspace(x.min(), x.max(), 20)
                ax.plot(grid, intercept + slope * grid, color=cell_color(cell), lw=1.5)
        ax.set_xlabel(feature)
        ax.grid(alpha=0.3)
    for ax in axes[len(present) :]:
        ax.set_axis_off()
    acc = df["test_accuracy"].to_numpy(float)
    if np.ptp(acc) < 1e-6:  # all networks equal: show the value, not a rounding-noise axis
        axes[0].set_ylim(acc.mean() - 0.05, acc.mean() + 0.05)
        axes[0].ticklabel_format(axis="y", useOffset=False)
    for r in range(rows):
        axes[r * cols].set_ylabel("test accuracy")
    fig.legend(
        handles=_cell_legend(cells), loc="outside lower center", ncols=len(cells), fontsize=8
    )
    return fig


def correlation_heatmap(corr_frame: pd.DataFrame) -> Figure:
    """Heat map of correlation r, features x cells, each square annotated with its value.

    Takes :func:`sparsernn.analysis.correlations` output: uses the Pearson rows (if a
    ``method`` column exists) of the pooled generator ``"all"`` (if a ``generator`` column
    exists; otherwise the first generator).
    """
    title = "Pearson correlation with test accuracy"
    why = _missing(corr_frame, ["cell", "feature", "r"])
    if why:
        return no_data(why, title)
    df = corr_frame
    if "method" in df.columns:
        method = "pearson" if (df["method"] == "pearson").any() else df["method"].iloc[0]
        df = df[df["method"] == method]
        title = f"{str(method).capitalize()} correlation with test accuracy"
    if "generator" in df.columns and len(df):
        gens = df["generator"].astype(str)
        gen = "all" if (gens == "all").any() else _ordered(gens, _GENERATOR_ORDER)[0]
        df = df[gens == gen]
        title += f" (generator: {gen})"
    df = df.assign(r=pd.to_numeric(df["r"], errors="coerce"))
    table = df.pivot_table(
        index="feature", columns="cell", values="r", aggfunc="mean", dropna=False, sort=False
    )
    if table.empty:
        return no_data("no correlations", title)
    table = table[_ordered(table.columns, CELL_ORDER)]
    values = table.to_numpy(float)
    n_feat, n_cell = values.shape
    fig = _figure(4.0 + 1.0 * n_cell, 1.4 + 0.3 * n_feat)
    ax = fig.add_subplot()
    image = ax.imshow(np.ma.masked_invalid(values), cmap="RdBu_r", vmin=-1, vmax=1, aspect="auto")
    ax.set_xticks(range(n_cell), [str(c) for c in table.columns])
    ax.set_yticks(range(n_feat), [str(f) for f in table.index], fontsize=8)
    for (i, j), v in np.ndenumerate(values):
        text = "n/a" if np.isnan(v) else f"{v:.2f}"
        color = "white" if np.isfinite(v) and abs(v) > 0.6 else "black"
        ax.text(j, i, text, ha="center", va="center", fontsize=7, color=color)
    fig.colorbar(image, ax=ax, label="r", shrink=0.8)
    ax.set_title(title, fontsize=10)
    return fig


# ----------------------------------------------------------------------------- prediction


def predicted_vs_actual(frame: pd.DataFrame) -> Figure:
    """Out-of-fold predicted against actual accuracy, one panel per model, identity line dashed.

    Takes :func:`sparsernn.analysis.predicted_vs_actual` output (``cell, model, actual,
    predicted``).
    """
    title = "predicted against actual accuracy"
    why = _missing(frame, ["cell", "model", "actual", "predicted"])
    if why:
        return no_data(why, title)
    df = _numeric(frame, ["actual", "predicted"])
    if df.empty:
        return no_data("no numeric predictions", title)
    models = _ordered(df["model"].astype(str), ("bayesian_ridge", "random_forest", "adaboost"))
    cells = _ordered(df["cell"], CELL_ORDER)
    lo = float(min(df["actual"].min(), df["predicted"].min()))
    hi = float(max(df["actual"].max(), df["predicted"].max()))
    pad = max((hi - lo) * 0.05, 0.01)
    fig = _figure(3.6 * len(models) + 0.4, 4.4)
    axes = fig.subplots(1, len(models), sharex=True, sharey=True, squeeze=False)[0]
    for ax, model in zip(axes, models, strict=True):
        sub = df[df["model"].astype(str) == model]
        for cell in cells:
            part = sub[sub["cell"] == cell]
            style = {"s": 12, "color": cell_color(cell), "alpha": 0.7, "linewidths": 0}
            ax.scatter(part["actual"], part["predicted"], **style)
        ax.plot([lo - pad, hi + pad], [lo - pad, hi + pad], color="black", ls="--", lw=1)
        ax.set_xlim(lo - pad, hi + pad)
        ax.set_ylim(lo - pad, hi + pad)
        ax.set_box_aspect(1)  # equal limits, so the identity line is the diagonal
        ax.set_title(model, fontsize=10)
        ax.set_xlabel("actual test accuracy")
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("predicted (out of fold)")
    axes[-1].legend(handles=_cell_legend(cells), fontsize=8, loc="upper left")
    return fig


def feature_importance(frame: pd.DataFrame, top: int = 15) -> Figure:
    """Horizontal bars of feature importance per cell (the ``top`` largest).

    Takes :func:`sparsernn.analysis.feature_importances` output: bars show
    ``permutation_mean`` with ``permutation_std`` as error bars, or ``impurity`` when there is
    no permutation importance. A frame without ``cell`` is drawn as one panel.
    """
    title = "feature importance"
    value = next(
        (
            c
            for c in ("permutation_mean", "impurity", "importance")
            if isinstance(frame, pd.DataFrame) and c in frame.columns
        ),
        "permutation_mean",
    )
    why = _missing(frame, ["feature", value])
    if why:
        return no_data(why, title)
    df = _numeric(frame, [value])
    if df.empty:
        return no_data("no numeric importances", title)
    if "cell" not in df.columns:
        df = df.assign(cell="all")
    cells = _ordered(df["cell"], CELL_ORDER)
    err = "permutation_std" if value == "permutation_mean" and "permutation_std" in df else None
    n_bars = min(top, int(df.groupby("cell").size().max()))
    rows, cols = _grid(len(cells), max_cols=2)
    fig = _figure(5.0 * cols, (0.9 + 0.25 * n_bars) * rows + 0.3)
    axes = fig.subplots(rows, cols, squeeze=False).ravel()
    for ax, cell in zip(axes, cells, strict=False):
        sub = df[df["cell"] == cell].sort_values(value, ascending=False).head(top)[::-1]
        xerr = pd.to_numeric(sub[err], errors="coerce").to_numpy(float) if err else None
        ax.barh(
            sub["feature"].astype(str),
            sub[value].to_numpy(float),
            xerr=xerr,
            color=cell_color(cell),
            alpha=0.8,
            error_kw={"lw": 0.8},
        )
        ax.axvline(0, color="black", lw=0.6)
        ax.set_title(cell, fontsize=10, color=cell_color(cell))
        ax.tick_params(axis="y", labelsize=7)
        ax.set_xlabel("drop in R$^2$ when permuted" if value == "permutation_mean" else value)
        ax.grid(axis="x", alpha=0.3)
    for ax in axes[len(cells) :]:
        ax.set_axis_off()
    return fig
