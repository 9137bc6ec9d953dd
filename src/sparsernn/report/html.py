"""One self-contained HTML report of a study: tables and plots beside the published numbers.

:func:`build_report` reads a study directory (or a loaded :class:`StudyResults`), runs the
analyses, and writes ``report.html`` (images embedded as PNG data URIs, inline CSS, no external
URL) plus every table as CSV and Markdown in ``report_tables/``. A section whose data are missing
says so and how to get them; a section whose analysis fails shows the error there and the rest of
the report is still written.
"""

from __future__ import annotations

import base64
import dataclasses
import datetime
import html
import json
import math
import os
import platform
import re
import traceback
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

import sparsernn
from sparsernn import analysis
from sparsernn.experiments.results import StudyResults, load_results
from sparsernn.report import plots
from sparsernn.store import atomic_write_bytes

__all__ = ["build_report", "markdown_table", "SECTIONS"]

#: Section ids, in report order (each is an ``<h2 id=...>``).
SECTIONS: tuple[str, ...] = (
    "setup",
    "pruning",
    "structure",
    "correlations",
    "prediction",
    "failures",
)
_TITLES = {
    "setup": "Setup",
    "pruning": "Pruning",
    "structure": "Random-structure networks",
    "correlations": "Correlation of graph properties with accuracy",
    "prediction": "Predicting accuracy from graph properties",
    "failures": "Failed units",
}
# How to produce what a section lacks; {dir} is the study directory.
_HOW_PRUNING = "run `sparsernn prune --out {dir}`"
_HOW_STRUCTURE = "run `sparsernn structure --out {dir}`"
_HOW_ALL = (
    "run `sparsernn reproduce --profile quick --out {dir}` "
    "(or `sparsernn prune` / `sparsernn structure`)"
)

#: Table columns that hold published figures or the difference to them.
_PUBLISHED_COLUMNS = frozenset({"published", "published_safe", "difference"})
#: Below these, numbers are a pipeline check, not a result.
_MIN_BASE_EPOCHS = 10
_MIN_STRUCTURE_EPOCHS = 5
_MIN_GRAPHS_PER_CELL = 20

_MAX_CV_FITS = 1000  # cap on model fits in the repeated cross-validation, all cells together
_ERROR_CLASS = "error"


# ----------------------------------------------------------------------------- formatting


def _fmt(value: Any) -> str:
    """A table cell as text: NaN as an en dash, floats with three decimals, integers as such."""
    if value is None:
        return "–"
    if isinstance(value, bool | np.bool_):
        return "yes" if value else "no"
    if isinstance(value, int | np.integer):
        return str(int(value))
    if isinstance(value, float | np.floating):
        v = float(value)
        if math.isnan(v):
            return "–"
        if math.isinf(v):
            return "inf" if v > 0 else "-inf"
        if abs(v) >= 100:
            return f"{v:.1f}"
        if abs(v) < 0.001:
            return f"{v:.2e}"
        return f"{v:.3f}"
    try:
        if pd.isna(value):
            return "–"
    except (TypeError, ValueError):
        pass
    return str(value)


def _numeric_column(series: pd.Series) -> bool:
    return pd.api.types.is_numeric_dtype(series) and not pd.api.types.is_bool_dtype(series)


def _column_text(series: pd.Series) -> list[str]:
    """A column's cells as text; a float column is integers only if all its values are."""
    if pd.api.types.is_float_dtype(series):
        v = series.to_numpy(float)
        finite = v[np.isfinite(v)]
        if finite.size and (np.abs(finite) < 1e6).all() and (finite == np.round(finite)).all():
            return [
                "–" if math.isnan(x) else _fmt(int(x)) if math.isfinite(x) else _fmt(x) for x in v
            ]
        return [_fmt(x) for x in v]
    return [_fmt(x) for x in series]


def _rows(df: pd.DataFrame) -> list[list[str]]:
    """The table's cells as text, row by row (see :func:`_column_text`)."""
    columns = [_column_text(df.iloc[:, i]) for i in range(df.shape[1])]
    return [list(row) for row in zip(*columns, strict=True)] if columns else []


def markdown_table(df: pd.DataFrame) -> str:
    """``df`` as a GitHub-flavoured Markdown table (numbers right-aligned)."""

    def cell(text: str) -> str:
        return text.replace("|", "\\|").replace("\n", " ")

    numeric = [_numeric_column(df.iloc[:, i]) for i in range(df.shape[1])]
    header = "| " + " | ".join(cell(str(c)) for c in df.columns) + " |"
    align = "|" + "|".join("---:" if num else "---" for num in numeric) + "|"
    rows = ["| " + " | ".join(cell(v) for v in row) + " |" for row in _rows(df)]
    return "\n".join([header, align, *rows]) + "\n"


def _html_table(df: pd.DataFrame) -> str:
    numeric = [_numeric_column(df.iloc[:, i]) for i in range(df.shape[1])]
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in df.columns)
    body = []
    for row in _rows(df):
        cells = "".join(
            f'<td class="num">{html.escape(v)}</td>' if num else f"<td>{html.escape(v)}</td>"
            for v, num in zip(row, numeric, strict=True)
        )
        body.append(f"<tr>{cells}</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def _p(text: str, cls: str | None = None) -> str:
    """A paragraph of escaped text; `backticks` become <code>."""
    parts = html.escape(text).split("`")
    inner = "".join(f"<code>{p}</code>" if i % 2 else p for i, p in enumerate(parts))
    return f'<p class="{cls}">{inner}</p>' if cls else f"<p>{inner}</p>"


def _missing(text: str) -> str:
    return _p(text, "missing")


def _note(frame: pd.DataFrame | None = None, text: str | None = None) -> str:
    """The analysis note of ``frame`` (``attrs["note"]``) and/or ``text``, or nothing."""
    parts = [t for t in (text, getattr(frame, "attrs", {}).get("note")) if t]
    return "".join(_p(t, "note") for t in parts)


# ----------------------------------------------------------------------------- context


@dataclasses.dataclass
class _Context:
    """What every section builder needs: the results, options, and the table/figure writers."""

    results: StudyResults
    structure: pd.DataFrame
    tables_dir: Path
    tolerance: float
    n_boot: int
    n_repeats: int
    seed: int
    written: list[str] = dataclasses.field(default_factory=list)
    #: Why these numbers mean little (smoke profile, too few epochs or graphs), or None.
    caveat: str | None = None
    #: Why the published figures are left out (another task or protocol), or None.
    unpublished: str | None = None

    def published(self, text: str) -> str:
        """``text`` when published figures are shown, else nothing."""
        return "" if self.unpublished else text

    @property
    def where(self) -> str:
        return str(self.results.study_dir)

    def table(
        self, name: str, df: pd.DataFrame, caption: str | None = None, show: bool = True
    ) -> str:
        """Write ``df`` as ``<name>.csv`` and ``<name>.md``; return its HTML (or a link)."""
        df = df.reset_index(drop=True)
        if self.unpublished:
            df = df.drop(columns=[c for c in df.columns if c in _PUBLISHED_COLUMNS])
            caption = re.sub(r"\s*\(published[^)]*\)", "", caption) if caption else caption
        self.tables_dir.mkdir(parents=True, exist_ok=True)
        df.to_csv(self.tables_dir / f"{name}.csv", index=False)
        (self.tables_dir / f"{name}.md").write_text(markdown_table(df), encoding="utf-8")
        self.written.append(name)
        rel = f"{self.tables_dir.name}/{name}"
        files = f'<a href="{html.escape(rel)}.csv">CSV</a>, <a href="{html.escape(rel)}.md">MD</a>'
        if not show:
            return (
                f'<p class="files">Table <code>{html.escape(name)}</code> ({len(df)} rows): '
                f"{files}</p>"
            )
        cap = html.escape(caption) + " " if caption else ""
        return (
            f'<div class="table"><div class="caption">{cap}<span class="files">[{files}]'
            f"</span></div>{_html_table(df)}</div>"
        )

    def figure(self, fig: Figure, caption: str) -> str:
        """``fig`` as an embedded PNG with a caption (an empty plot of a study with a caveat:
        the caveat instead)."""
        empty = getattr(fig, plots.NO_DATA_ATTR, None)
        if self.caveat and empty:
            reason = empty.removeprefix("no data: ")
            return _missing(f"{caption}: nothing to plot ({reason}). {self.caveat}")
        data = base64.b64encode(plots.to_png(fig, dpi=90)).decode("ascii")
        alt = html.escape(caption, quote=True)
        return (
            f'<figure><img src="data:image/png;base64,{data}" alt="{alt}">'
            f"<figcaption>{html.escape(caption)}</figcaption></figure>"
        )


# ----------------------------------------------------------------------------- helpers


def _clean_structure(df: pd.DataFrame) -> pd.DataFrame:
    """Structure rows with each column name once (a numeric column wins over a config list)."""
    if not df.columns.duplicated().any():
        return df
    chosen: dict[str, tuple[int, bool]] = {}
    for i, name in enumerate(df.columns):
        numeric = _numeric_column(df.iloc[:, i])
        if name not in chosen or (numeric and not chosen[name][1]):
            chosen[name] = (i, numeric)
    return df.iloc[:, sorted(i for i, _ in chosen.values())].copy()


def _group_mean_ci(df: pd.DataFrame, by: Sequence[str], value: str) -> pd.DataFrame:
    """Mean, 95% t-interval (clipped to [0, 1]: accuracies) and n of ``value`` per group."""
    rows = []
    for key, sub in df.groupby(list(by), sort=False):
        key = key if isinstance(key, tuple) else (key,)
        mean, lo, hi = analysis.mean_ci(pd.to_numeric(sub[value], errors="coerce"), bounds=(0, 1))
        rows.append(
            {
                **dict(zip(by, key, strict=True)),
                value: mean,
                "ci_low": lo,
                "ci_high": hi,
                "n": len(sub),
            }
        )
    return pd.DataFrame(rows, columns=[*by, value, "ci_low", "ci_high", "n"])


def _cell_sorted(df: pd.DataFrame, extra: Sequence[str] = ()) -> pd.DataFrame:
    """Rows ordered by the usual cell order, then ``extra`` columns."""
    if df.empty or "cell" not in df.columns:
        return df
    rank = {c: i for i, c in enumerate(plots.CELL_ORDER)}
    keys = df["cell"].map(lambda c: rank.get(c, len(rank))).rename("_rank")
    out = df.assign(_rank=keys).sort_values(["_rank", "cell", *extra], kind="stable")
    return out.drop(columns="_rank").reset_index(drop=True)


def _target_rank(df: pd.DataFrame) -> pd.Series:
    """Sort key putting pruning targets in the study's order: both, i2h, h2h."""
    rank = {t: i for i, t in enumerate(("both", "i2h", "h2h"))}
    return df["target"].map(lambda t: rank.get(t, len(rank)))


def _with_base(ctx: _Context) -> tuple[pd.DataFrame, pd.DataFrame, str | None]:
    """Pruning rows that have a base accuracy, the base table, and a note on any dropped."""
    res = ctx.results
    base = res.base[["cell", "seed", "base_accuracy"]].copy()
    base["base_accuracy"] = pd.to_numeric(base["base_accuracy"], errors="coerce")
    known = set(zip(base["cell"], base["seed"], strict=True))
    has = [(c, s) in known for c, s in zip(res.pruning["cell"], res.pruning["seed"], strict=True)]
    pruning = res.pruning.loc[has]
    note = None
    if len(pruning) < len(res.pruning):
        note = f"{len(res.pruning) - len(pruning)} pruning rows have no base model and are left out"
    return pruning, base, note


# ----------------------------------------------------------------------------- sections


def _config_text(study: dict[str, Any]) -> str:
    """The study config as TOML (as in ``study.toml``), or JSON if it no longer parses."""
    try:
        from sparsernn.experiments.config import StudyConfig

        return StudyConfig.from_dict(study).to_toml()
    except Exception:  # noqa: BLE001 - a config from another version is still worth showing
        return json.dumps(study, indent=2, default=str)


def _setup(ctx: _Context) -> list[str]:
    import torch

    res = ctx.results
    study = res.study or {}
    failed_kinds = (
        res.failures["kind"].value_counts().to_dict() if "kind" in res.failures.columns else {}
    )
    units = []
    for kind, frame in (
        ("base", res.base),
        ("prune", res.pruning_points),
        ("structure", ctx.structure),
    ):
        wall = pd.to_numeric(frame["wall_s"], errors="coerce").sum() if "wall_s" in frame else 0.0
        units.append(
            {
                "kind": kind,
                "done": len(frame),
                "failed": int(failed_kinds.get(kind, 0)),
                "wall_s": float(wall),
            }
        )
    units_df = pd.DataFrame(units, columns=["kind", "done", "failed", "wall_s"])
    total_wall = float(units_df["wall_s"].sum())
    train = study.get("train", {}) if isinstance(study.get("train"), dict) else {}
    info = [
        ("sparsernn", sparsernn.__version__),
        ("torch", torch.__version__),
        ("python", platform.python_version()),
        ("platform", platform.platform(terse=True)),
        ("report date", datetime.datetime.now().astimezone().isoformat(timespec="seconds")),
        ("study directory", str(res.study_dir)),
        ("cells", ", ".join(map(str, study.get("cells", []))) or "–"),
        ("seeds", ", ".join(map(str, study.get("seeds", []))) or "–"),
        ("device (config)", str(train.get("device", "–"))),
        ("units done", str(int(units_df["done"].sum()))),
        ("units failed", str(int(len(res.failures)))),
        ("total unit wall time", f"{total_wall:.1f} s ({total_wall / 3600:.2f} h)"),
        ("pruning tolerance", f"{ctx.tolerance:g}"),
        ("bootstrap resamples", str(ctx.n_boot)),
    ]
    out = [ctx.table("setup", pd.DataFrame(info, columns=["item", "value"]))]
    out.append(ctx.table("setup_units", units_df, "Units per kind (wall time summed over units)"))
    if not study:
        out.append(_missing("No study configuration is stored in this study directory."))
    else:
        out.append(
            "<details><summary>Study configuration (study.toml)</summary>"
            f"<pre>{html.escape(_config_text(study))}</pre></details>"
        )
    if units_df["done"].sum() == 0:
        out.append(
            _missing(
                "This study has no finished units yet: " + _HOW_ALL.format(dir=ctx.where) + "."
            )
        )
    return out


def _pruning(ctx: _Context) -> list[str]:
    res = ctx.results
    out: list[str] = []
    if res.base.empty and res.pruning.empty:
        return [
            _missing(
                "No base models or pruning runs in this study: "
                + _HOW_PRUNING.format(dir=ctx.where)
                + "."
            )
        ]
    if not res.base.empty:
        out.append("<h3>Base models</h3>")
        out.extend(_base_accuracy(ctx))
    if res.pruning.empty:
        out.append(
            _missing("No pruning runs in this study: " + _HOW_PRUNING.format(dir=ctx.where) + ".")
        )
        return out
    pruning, base, dropped = _with_base(ctx)
    out.append(_note(text=dropped))
    if pruning.empty:
        out.append(
            _missing(
                "No pruning run has its base model in this study: "
                + _HOW_PRUNING.format(dir=ctx.where)
                + "."
            )
        )
        return out
    out.append("<h3>Tolerated sparsity</h3>")
    out.extend(_tolerated(ctx, pruning, base))
    out.append("<h3>Retraining epochs to recover</h3>")
    out.extend(_recovery(ctx, pruning, base))
    if "gru" in set(pruning["cell"]):
        out.append("<h3>GRU accuracy right after pruning</h3>")
        out.extend(_post_prune(ctx, pruning))
    out.append("<h3>Plots</h3>")
    out.append(
        ctx.figure(
            plots.pruning_accuracy(pruning, base, ctx.tolerance),
            "Test accuracy against pruning amount (mean over seeds, 95% CI; amber band: "
            f"within {ctx.tolerance:g} of the base model)",
        )
    )
    out.append(
        ctx.figure(
            plots.recovery_curves(pruning, base, ctx.tolerance),
            f"Recovery of the amounts that cost more than {ctx.tolerance:g} "
            "accuracy (amber band: tolerance)",
        )
    )
    return out


def _base_accuracy(ctx: _Context) -> list[str]:
    base = ctx.results.base.copy()
    for column in ("epochs", "mean_epoch_time"):  # absent from stores of older versions
        if column not in base.columns:
            base[column] = np.nan
    ours = _group_mean_ci(base, ["cell"], "base_accuracy")
    extra = pd.DataFrame(
        {
            "n_seeds": base.groupby("cell")["seed"].nunique(),
            "epochs": pd.to_numeric(base["epochs"], errors="coerce").groupby(base["cell"]).max(),
            "mean_epoch_time_s": pd.to_numeric(base["mean_epoch_time"], errors="coerce")
            .groupby(base["cell"])
            .mean(),
        }
    ).reset_index(names="cell")
    table = analysis.compare(
        ours, analysis.published_base_accuracy(), on="cell", value_ours="base_accuracy", how="left"
    )
    table = table.merge(ours[["cell", "ci_low", "ci_high"]], on="cell").merge(extra, on="cell")
    columns = ["cell", "ours", "ci_low", "ci_high", "published", "difference", "n_seeds"]
    table = table[[*columns, "epochs", "mean_epoch_time_s"]]
    out = [
        ctx.table(
            "pruning_base_accuracy",
            _cell_sorted(table),
            "Base-model test accuracy (published: one run, 50 epochs)",
        )
    ]
    epochs = pd.to_numeric(base["epochs"], errors="coerce").dropna()
    if len(epochs) and epochs.max() != 50:
        out.append(
            _p(
                f"Our base models trained for {int(epochs.max())} epoch(s); the study "
                "trained 50, so accuracies are comparable only for a full run.",
                "note",
            )
        )
    if not ctx.unpublished:
        out.append(
            _p("Published epoch times (Tesla K80): 31 s for RNN, 44-47 s for LSTM/GRU.", "note")
        )
    if not ctx.results.base_curves.empty:
        out.append(
            ctx.figure(
                plots.training_curves(ctx.results.base_curves),
                "Base-model training curves (mean over seeds, 95% CI)",
            )
        )
    return out


def _tolerated(ctx: _Context, pruning: pd.DataFrame, base: pd.DataFrame) -> list[str]:
    last = int(pd.to_numeric(pruning["epoch"]).max())
    epochs = sorted({0, min(1, last), last})
    published = analysis.published_safe_pruning()
    parts = []
    notes = []
    for epoch in epochs:
        agg = analysis.tolerated_sparsity(pruning, base, ctx.tolerance, epoch)
        if agg.empty:
            notes.append(agg.attrs.get("note", f"nothing at epoch {epoch}"))
            continue
        cmp = analysis.compare(
            agg,
            published,
            on=["cell", "target"],
            value_ours="tolerated_mean",
            value_published="safe_percent",
            how="left",
        )
        cmp = cmp.merge(
            agg[["cell", "target", "tolerated_ci_low", "tolerated_ci_high", "n_seeds"]],
            on=["cell", "target"],
        )
        cmp.insert(2, "epoch", epoch)
        parts.append(cmp)
    out = [
        _p(
            "Tolerated = the largest pruning amount (%) whose test accuracy is within "
            f"{ctx.tolerance:g} of the base model's, judged right after pruning (epoch 0) and "
            "after retraining; mean over seeds with a 95% t-interval."
            + ctx.published(
                ' Published = the study\'s "safe" amount (one run); difference = ours - published.'
            )
        )
    ]
    if not parts:
        return [*out, _missing("No pruning results to judge. " + "; ".join(notes))]
    table = pd.concat(parts, ignore_index=True).rename(
        columns={
            "ours": "tolerated",
            "published": "published_safe",
            "tolerated_ci_low": "ci_low",
            "tolerated_ci_high": "ci_high",
        }
    )
    table = table[
        [
            "cell",
            "target",
            "epoch",
            "tolerated",
            "ci_low",
            "ci_high",
            "published_safe",
            "difference",
            "n_seeds",
        ]
    ]
    table = _cell_sorted(table.assign(_t=_target_rank(table)), ["_t", "epoch"])
    table = table.drop(columns="_t")
    out.append(ctx.table("pruning_tolerated", table, "Tolerated sparsity (%)"))
    out.extend(_p(n, "note") for n in notes)
    return out


def _recovery(ctx: _Context, pruning: pd.DataFrame, base: pd.DataFrame) -> list[str]:
    agg = analysis.epochs_to_recover(pruning, base, ctx.tolerance)
    if agg.empty:
        return [_note(agg) or _missing("No pruning results to judge.")]
    long = _cell_sorted(agg.assign(_t=_target_rank(agg)), ["_t", "amount"]).drop(columns="_t")
    wide = long.pivot_table(
        index=["cell", "target"], columns="amount", values="epochs", aggfunc="first", sort=False
    )
    wide.columns = [f"{float(a):g}%" for a in wide.columns]
    wide = wide.reset_index()
    wide = _cell_sorted(wide.assign(_t=_target_rank(wide)), ["_t"]).drop(columns="_t")
    wide = wide.fillna("–")
    return [
        _p(
            f"Retraining epochs until test accuracy is back within {ctx.tolerance:g} of the base "
            'model (0 = not needed; mean [95% CI] over the seeds that recover; "never" = not '
            "within the recorded epochs)."
        ),
        ctx.table("pruning_recovery", wide, "Epochs to recover, per pruning amount"),
        ctx.table("pruning_recovery_long", long, show=False),
        _note(agg),
    ]


def _post_prune(ctx: _Context, pruning: pd.DataFrame) -> list[str]:
    if ctx.unpublished:  # the table is a comparison at the published amounts only
        return []
    at0 = pruning[pruning["epoch"] == 0]
    ours = at0.groupby(["cell", "target", "amount"], as_index=False)["accuracy"].mean()
    published = analysis.published_post_prune()
    published = published.assign(amount=published["amount"].astype(float))
    table = analysis.compare(
        ours, published, on=["cell", "target", "amount"], value_ours="accuracy", how="inner"
    )
    if table.empty:
        return [_p("None of the amounts the study reported for GRU (80-100%) were run.", "note")]
    return [
        ctx.table(
            "pruning_post_prune",
            table,
            "GRU test accuracy right after pruning, before retraining (mean over seeds)",
        )
    ]


def _no_structure(ctx: _Context) -> list[str] | None:
    if ctx.structure.empty:
        return [
            _missing(
                "No random-structure runs in this study: "
                + _HOW_STRUCTURE.format(dir=ctx.where)
                + "."
            )
        ]
    return None


def _structure(ctx: _Context) -> list[str]:
    missing = _no_structure(ctx)
    if missing:
        return missing
    df = ctx.structure
    per_gen = _group_mean_ci(df, ["cell", "generator"], "test_accuracy")
    pooled = _group_mean_ci(df, ["cell"], "test_accuracy").assign(generator=analysis.POOLED)
    ours = pd.concat([per_gen, pooled], ignore_index=True)
    pub = analysis.published_mean_accuracy().assign(generator=analysis.POOLED)
    table = ours.merge(pub, on=["cell", "generator"], how="left").rename(
        columns={"test_accuracy": "mean_accuracy", "mean_accuracy": "published"}
    )
    table["difference"] = table["mean_accuracy"] - table["published"]
    table = _cell_sorted(table)[
        ["cell", "generator", "mean_accuracy", "ci_low", "ci_high", "n", "published", "difference"]
    ]
    out = [
        _p(
            "Mean test accuracy of the random-structure networks with a 95% t-interval; "
            f'generator "{analysis.POOLED}" pools all generators, as the study\'s published means '
            "(200 graphs per cell, one run each) do."
        ),
        ctx.table("structure_mean_accuracy", table, "Mean test accuracy"),
    ]
    gens = sorted(df["generator"].astype(str).unique())
    if "file" in gens:
        out.append(_file_graphs(ctx, df))
    if len(gens) < 2 and gens != ["file"]:  # (the user's own graphs: nothing to add)
        out.append(
            _p(
                f"Only one generator ({', '.join(gens)}) in this study; the study pooled "
                "Watts-Strogatz and Barabasi-Albert graphs. Add the other with "
                + _HOW_STRUCTURE.format(dir=ctx.where)
                + ".",
                "note",
            )
        )
    out.append(ctx.figure(plots.structure_accuracy(df), "Accuracy per cell and generator"))
    out.append(
        ctx.figure(
            plots.property_scatter(df),
            "Accuracy against the six properties the study singled out, with least-squares lines",
        )
    )
    return out


def _file_graphs(ctx: _Context, df: pd.DataFrame) -> str:
    """Mean test accuracy per graph read from a file (``graphs_from``), over seeds."""
    files = df[df["generator"].astype(str) == "file"]
    cols = [c for c in ("nodes", "edges", "layers") if c in files.columns]
    table = files.groupby(["cell", "graph_id", "graph"], as_index=False).agg(
        mean_accuracy=("test_accuracy", "mean"),
        n=("test_accuracy", "size"),
        **{c: (c, "first") for c in cols},
    )
    table = _cell_sorted(table, ["graph_id"])
    return ctx.table("structure_graphs", table, "Mean test accuracy per graph file (over seeds)")


def _constant_note(ctx: _Context) -> str:
    """A warning naming the cells whose networks all reached the same accuracy."""
    acc = pd.to_numeric(ctx.structure["test_accuracy"], errors="coerce")
    spread = acc.groupby(ctx.structure["cell"]).agg(lambda s: s.max() - s.min())
    flat = [str(c) for c, v in spread.items() if v == 0]
    if not flat:
        return ""
    return _p(
        f"Every network of {', '.join(flat)} reached the same test accuracy (training too short "
        "or too little data?): correlations are undefined and R² is meaningless there (a "
        "constant predicted exactly scores R² = 1).",
        "missing",
    )


def _features(ctx: _Context) -> tuple[list[str], str | None]:
    present = [f for f in analysis.STUDY_FEATURES if f in ctx.structure.columns]
    lacking = [f for f in analysis.STUDY_FEATURES if f not in ctx.structure.columns]
    note = f"Graph properties missing from the results: {', '.join(lacking)}." if lacking else None
    return present, note


def _correlations(ctx: _Context) -> list[str]:
    missing = _no_structure(ctx)
    if missing:
        return missing
    features, lacking = _features(ctx)
    if not features:
        return [_missing("The structure results hold none of the study's graph properties.")]
    corr = analysis.correlations(ctx.structure, features=features, n_boot=ctx.n_boot, seed=ctx.seed)
    out = [_constant_note(ctx), _note(text=lacking), _note(corr)]
    if corr.empty:
        return [*out, _missing("No correlations could be computed.")]
    key = [f for f in plots.KEY_FEATURES if f in features]
    pooled = corr[(corr["generator"] == analysis.POOLED) & corr["feature"].isin(key)]
    wide = None
    for method in ("pearson", "spearman"):
        part = pooled[pooled["method"] == method][
            ["cell", "feature", "r", "ci_low", "ci_high", "n"]
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
    table = wide.merge(
        published[["cell", "feature", "published"]], on=["cell", "feature"], how="left"
    )
    table["difference"] = table["pearson"] - table["published"]
    order = {f: i for i, f in enumerate(key)}
    table = table.assign(_f=table["feature"].map(order))
    table = _cell_sorted(table, ["_f"]).drop(columns="_f")
    cols = [
        "cell",
        "feature",
        "pearson",
        "pearson_ci_low",
        "pearson_ci_high",
        "spearman",
        "spearman_ci_low",
        "spearman_ci_high",
        "published",
        "difference",
        "n",
    ]
    out.append(
        _p(
            f"Correlation of each graph property with test accuracy, all generators pooled, with "
            f"{ctx.n_boot}-resample bootstrap 95% intervals."
            + ctx.published(
                " Published = the study's Pearson r (200 graphs per cell, one run); "
                "difference = our Pearson r - published."
            )
        )
    )
    out.append(
        ctx.table(
            "correlations_published",
            table[cols],
            "Correlation with accuracy: the six published properties",
        )
    )
    why = corr.loc[corr["note"].astype(str) != "", "note"].value_counts()
    if len(why):
        out.append(
            _p(
                "r is undefined (n/a) in "
                + "; ".join(f"{n} row(s): {reason}" for reason, n in why.items())
                + ".",
                "note",
            )
        )
    out.append(ctx.table("correlations_all", corr, show=False))
    out.append(
        ctx.figure(
            plots.correlation_heatmap(corr),
            "Pearson r of every study property with accuracy (generators pooled)",
        )
    )
    return out


def _cv_settings(ctx: _Context, n_cells: int, n_min: int) -> tuple[int, int]:
    """(n_splits, n_repeats) for the repeated cross-validation, bounded by _MAX_CV_FITS."""
    n_splits = max(2, min(5, n_min // 2))
    repeats = ctx.n_repeats if n_min >= 50 else min(ctx.n_repeats, 3)
    n_models = len(analysis.MODELS) + len(analysis.BASELINES)
    cap = _MAX_CV_FITS // max(1, n_cells * n_models * n_splits)
    return n_splits, max(1, min(repeats, cap))


def _prediction(ctx: _Context) -> list[str]:
    missing = _no_structure(ctx)
    if missing:
        return missing
    df = ctx.structure
    features, lacking = _features(ctx)
    if not features:
        return [_missing("The structure results hold none of the study's graph properties.")]
    sizes = df.groupby("cell").size()
    n_splits, n_repeats = _cv_settings(ctx, len(sizes), int(sizes.min()))
    published = analysis.published_r2()
    out = [_constant_note(ctx), _note(text=lacking)]

    out.append("<h3>The study's protocol</h3>")
    proto = analysis.study_protocol(df, features=features)
    out.append(
        _p(
            "MinMax scaling on all rows, one 90/10 split (random_state 7), R² on the 10%: "
            "exactly the study's protocol, and as noisy as its 10% test part is small."
        )
    )
    if proto.empty:
        out.append(_missing("The study protocol could not run. " + proto.attrs.get("note", "")))
    else:
        table = analysis.compare(
            proto, published, on=["cell", "model"], value_ours="r2", how="left"
        )
        table = table.merge(proto[["cell", "model", "n_train", "n_test"]], on=["cell", "model"])
        out.append(
            ctx.table(
                "prediction_study_protocol", _cell_sorted(table), "R² with the study's protocol"
            )
        )
        out.append(_note(proto))

    out.append("<h3>Repeated cross-validation</h3>")
    cv = analysis.cross_validated(
        df, features=features, n_splits=n_splits, n_repeats=n_repeats, random_state=ctx.seed
    )
    out.append(
        _p(
            f"{n_repeats} x {n_splits}-fold cross-validation (scaler refit in each fold), mean R² "
            "with a 95% interval over folds (Nadeau-Bengio corrected: folds share rows). "
            "Baselines: "
            "dummy_mean predicts the training mean; size_only is BayesianRidge on nodes and edges."
        )
    )
    if cv.empty:
        out.append(_missing("Cross-validation could not run. " + cv.attrs.get("note", "")))
    else:
        table = cv.merge(
            published.rename(columns={"r2": "published"}), on=["cell", "model"], how="left"
        )
        table = _cell_sorted(table)[
            [
                "cell",
                "model",
                "features",
                "r2_mean",
                "r2_ci_low",
                "r2_ci_high",
                "published",
                "n_folds",
                "n",
            ]
        ]
        out.append(
            ctx.table(
                "prediction_cross_validated",
                table,
                "Cross-validated R² (published: the study's single split)",
            )
        )
        out.append(_note(cv))

    out.append("<h3>Transfer between generators</h3>")
    logo = analysis.leave_one_generator_out(df, features=features, random_state=ctx.seed)
    if logo.empty:
        out.append(
            _p(
                "Leave-one-generator-out could not run: " + logo.attrs.get("note", "no rows"),
                "note",
            )
        )
    else:
        out.append(
            ctx.table(
                "prediction_leave_one_generator_out",
                _cell_sorted(logo),
                "R² when testing on a generator left out of training",
            )
        )
        out.append(_note(logo))

    out.append("<h3>Predicted against actual</h3>")
    pva = analysis.predicted_vs_actual(
        df, features=features, n_splits=n_splits, random_state=ctx.seed
    )
    out.append(_note(pva))
    out.append(
        ctx.figure(
            plots.predicted_vs_actual(pva),
            f"Out-of-fold predictions ({n_splits}-fold) against actual accuracy",
        )
    )

    out.append("<h3>Feature importance</h3>")
    imp = analysis.feature_importances(df, features=features, n_repeats=5, random_state=ctx.seed)
    out.append(_note(imp))
    if not imp.empty:
        out.append(ctx.table("prediction_feature_importance", imp, show=False))
    out.append(
        ctx.figure(
            plots.feature_importance(imp),
            "Random-forest permutation importance (drop in held-out R²)",
        )
    )
    return out


def _failures(ctx: _Context) -> list[str]:
    fails = ctx.results.failures
    if fails.empty:
        return [_p("No failed units.")]
    table = fails.copy()
    table["error"] = table["error"].astype(str).map(lambda e: (e.strip().splitlines() or [""])[-1])
    out = [
        _p(f"{len(fails)} unit(s) failed; rerun them with the same command and `--retry-failed`."),
        ctx.table("failures", table, "Failed units (last line of each error)"),
    ]
    for row in fails.itertuples(index=False):
        out.append(
            f"<details><summary>{html.escape(str(row.key))} ({html.escape(str(row.kind))})"
            f"</summary><pre>{html.escape(str(row.error))}</pre></details>"
        )
    return out


_BUILDERS: dict[str, Callable[[_Context], list[str]]] = {
    "setup": _setup,
    "pruning": _pruning,
    "structure": _structure,
    "correlations": _correlations,
    "prediction": _prediction,
    "failures": _failures,
}


def _section(ctx: _Context, sid: str) -> str:
    """One section; an exception becomes an error note in it instead of ending the report."""
    try:
        body = "".join(_BUILDERS[sid](ctx))
    except Exception as exc:  # noqa: BLE001 - one failing analysis must not lose the report
        detail = html.escape("".join(traceback.format_exception(exc)))
        body = (
            f'<div class="{_ERROR_CLASS}"><p>This section failed: '
            f"{html.escape(type(exc).__name__)}: {html.escape(str(exc))}</p>"
            f"<details><summary>traceback</summary><pre>{detail}</pre></details></div>"
        )
    return f'<section><h2 id="{sid}">{html.escape(_TITLES[sid])}</h2>{body}</section>'


# ----------------------------------------------------------------------------- caveats


def _smoke_like(study: dict[str, Any]) -> bool:
    """Whether ``study`` has the ``smoke`` profile's training, pruning and structure settings
    (data and model sizes may differ: tests and demos shrink them further)."""
    from sparsernn.experiments.config import profile

    smoke = profile("smoke").to_dict()
    return all(study.get(part) == smoke[part] for part in ("train", "pruning", "structure"))


def _caveat(results: StudyResults, structure: pd.DataFrame) -> str | None:
    """One sentence saying why this study's numbers are not meaningful, or None."""
    study = results.study or {}
    reasons = []
    if study and _smoke_like(study):
        reasons.append("it ran the `smoke` profile, a pipeline check")
    epochs = (study.get("train") or {}).get("epochs")
    if not results.base.empty and isinstance(epochs, int) and epochs < _MIN_BASE_EPOCHS:
        reasons.append(f"base models trained {epochs} epoch(s) (fewer than {_MIN_BASE_EPOCHS})")
    s_epochs = (study.get("structure") or {}).get("epochs")
    if not structure.empty and isinstance(s_epochs, int) and s_epochs < _MIN_STRUCTURE_EPOCHS:
        reasons.append(
            f"structure networks trained {s_epochs} epoch(s) (fewer than {_MIN_STRUCTURE_EPOCHS})"
        )
    if not structure.empty and "cell" in structure.columns:
        n_graphs = int(structure.groupby("cell").size().min())
        if n_graphs < _MIN_GRAPHS_PER_CELL:
            reasons.append(
                f"{n_graphs} graph(s) per cell are too few for an R² "
                f"(at least {_MIN_GRAPHS_PER_CELL})"
            )
    if not reasons:
        return None
    return "These numbers are not meaningful results: " + "; ".join(reasons) + "."


def _unpublished(study: dict[str, Any]) -> str | None:
    """One sentence saying why published figures are left out (the study's task and protocol
    differ from the paper's), or None when they belong beside these results."""
    from sparsernn.data import DataSpec
    from sparsernn.experiments.config import StudyConfig

    if not study:
        return None
    paper_data = DataSpec().to_dict()
    paper = StudyConfig()
    data = study.get("data") or {}
    differences = []
    for name in ("grammar", "negative_mix", "alternative_grammars", "valid_fraction"):
        if name in data and _plain(data[name]) != _plain(paper_data[name]):
            differences.append(f"data.{name} = {_short(data[name])}")
    for name in ("min_length", "max_length"):
        if name in data and data[name] != paper_data[name]:
            differences.append(f"data.{name} = {data[name]}")
    if data.get("train_csv"):
        differences.append("its own CSV files (data.train_csv)")
    for name in ("embedding_dim", "hidden_size", "num_layers"):
        if name in study and study[name] != getattr(paper, name):
            differences.append(f"{name} = {study[name]} (the study's: {getattr(paper, name)})")
    if not differences:
        return None
    return (
        "Published figures are not shown: this study's task or model differs from the paper's ("
        + "; ".join(differences)
        + "), so its numbers are not comparable with them."
    )


def _plain(value: Any) -> Any:
    """JSON/TOML data with tuples as lists, for comparing a stored config with a default."""
    return json.loads(json.dumps(value, default=str))


def _short(value: Any) -> str:
    text = json.dumps(value, default=str) if not isinstance(value, str) else f'"{value}"'
    return text if len(text) <= 60 else text[:57] + "..."


# ----------------------------------------------------------------------------- page

_CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",sans-serif;max-width:1200px;margin:2em auto;
padding:0 1em;color:#222;line-height:1.45}
h1{margin-bottom:.2em}h2{border-bottom:2px solid #ddd;padding-bottom:.2em;margin-top:2em}
nav a{margin-right:1em}
table{border-collapse:collapse;font-size:.85em;margin:.4em 0 1em}
th,td{border:1px solid #ccc;padding:.2em .5em}th{background:#f2f2f2;text-align:left}
td.num{text-align:right;font-variant-numeric:tabular-nums}
tbody tr:nth-child(even){background:#fafafa}
.caption{font-weight:600;margin-top:.8em}.files{font-weight:normal;font-size:.85em;color:#666}
figure{margin:1em 0}figure img{max-width:100%;height:auto;border:1px solid #eee}
figcaption{font-size:.85em;color:#555}
.note{color:#555;font-size:.9em}
.caveat{background:#fdecea;border-left:4px solid #d32f2f;padding:.5em .8em;font-weight:600}
.missing{background:#fff8e1;border-left:4px solid #f0b400;padding:.5em .8em}
.error{background:#fdecea;border-left:4px solid #d32f2f;padding:.5em .8em}
pre{background:#f6f6f6;padding:.6em;overflow-x:auto;font-size:.8em}
code{background:#f2f2f2;padding:0 .2em}
"""


def _page(title: str, sections: list[str], caveats: Sequence[str] = ()) -> str:
    top = "".join(_p(text, "caveat") for text in caveats if text)
    nav = " ".join(f'<a href="#{s}">{html.escape(_TITLES[s])}</a>' for s in SECTIONS)
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{html.escape(title)}</title>\n<style>{_CSS}</style>\n</head>\n<body>\n"
        f"<h1>{html.escape(title)}</h1>\n{top}"
        "<p>Our results beside those of H. Darji, <i>Investigating Sparsity in Recurrent Neural "
        "Networks</i> (2021). Published figures are single runs.</p>\n"
        f"<nav>{nav}</nav>\n" + "\n".join(sections) + "\n</body>\n</html>\n"
    )


def build_report(
    study: str | os.PathLike[str] | StudyResults,
    out: str | os.PathLike[str] = "report.html",
    *,
    tolerance: float | None = None,
    n_boot: int = 500,
    n_repeats: int = 10,
    seed: int = 0,
) -> Path:
    """Write the study's HTML report and its tables; return the report's path.

    Parameters
    ----------
    study : path or StudyResults
        A study directory (read-only: safe while the study runs) or loaded results.
    out : path, default "report.html"
        The HTML file. Tables go to ``<out stem>_tables/`` beside it as CSV and Markdown
        (CSV and Markdown files already there are replaced).
    tolerance : float, optional
        Accuracy drop that still counts as "recovered"/"tolerated"; default the study's
        ``pruning.tolerance`` (0.01 if absent).
    n_boot : int, default 500
        Bootstrap resamples for correlation intervals.
    n_repeats : int, default 10
        Repeats of the k-fold cross-validation (fewer for small studies; total fits capped).
    seed : int, default 0
        Randomness of bootstrap and cross-validation folds.

    Raises
    ------
    StoreError
        If ``study`` is a path without a results store.
    """
    results = study if isinstance(study, StudyResults) else load_results(study)
    if tolerance is None:
        pruning_cfg = (results.study or {}).get("pruning") or {}
        tolerance = float(pruning_cfg.get("tolerance", 0.01))
    out = Path(out)
    tables_dir = out.with_name(f"{out.stem}_tables")
    if tables_dir.is_dir():
        for old in list(tables_dir.glob("*.csv")) + list(tables_dir.glob("*.md")):
            old.unlink()
    structure = _clean_structure(results.structure)
    ctx = _Context(
        results=results,
        structure=structure,
        tables_dir=tables_dir,
        tolerance=float(tolerance),
        n_boot=int(n_boot),
        n_repeats=int(n_repeats),
        seed=int(seed),
        caveat=_caveat(results, structure),
        unpublished=_unpublished(results.study or {}),
    )
    sections = [_section(ctx, sid) for sid in SECTIONS]
    title = f"sparsernn report: {results.study_dir.name or results.study_dir}"
    page = _page(title, sections, [ctx.caveat or "", ctx.unpublished or ""])
    atomic_write_bytes(out, page.encode("utf-8"))
    return out
