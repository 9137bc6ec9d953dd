"""One self-contained HTML report of a study: tables and plots beside the published numbers.

:func:`build_report` reads a study directory (or a loaded :class:`StudyResults`), computes each
section's content as plain data (:mod:`.setup`, :mod:`.pruning`, :mod:`.structure`,
:mod:`.prediction`), writes every table as CSV and Markdown in ``report_tables/``, and renders
``templates/report.html.j2`` (autoescaped; images embedded as PNG data URIs, CSS inline, no
external URL). A section whose data are missing says so and how to get them (once: a study
without random-structure runs has no correlation and prediction sections either); a section
whose analysis fails shows the error there and the rest of the report is still written.
"""

from __future__ import annotations

import os
import traceback
from collections.abc import Callable
from functools import cache
from pathlib import Path

import jinja2
import markupsafe
import pandas as pd

from sparsernn import analysis  # noqa: F401 - the analyses the sections call (tests patch them)
from sparsernn.experiments.results import StudyResults, load_results
from sparsernn.report import prediction, pruning, setup, structure
from sparsernn.report.content import Block, Context, Section, Table
from sparsernn.report.tables import csv_safe, html_table, markdown_table, numeric_columns
from sparsernn.store import atomic_write_bytes

__all__ = ["build_report", "markdown_table", "SECTIONS"]

#: Section ids, in report order (each is an ``<h2 id=...>``); the last two of structure's
#: exist only where there are random-structure runs.
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
_BUILDERS: dict[str, Callable[[Context], list[Block]]] = {
    "setup": setup.setup,
    "pruning": pruning.pruning,
    "structure": structure.structure,
    "correlations": structure.correlations,
    "prediction": prediction.prediction,
    "failures": setup.failures,
}


def _section(ctx: Context, sid: str) -> Section:
    """One section's content; an exception becomes the section's error instead of ending the
    report."""
    try:
        return Section(sid, _TITLES[sid], _BUILDERS[sid](ctx))
    except Exception as exc:  # noqa: BLE001 - one failing analysis must not lose the report
        detail = "".join(traceback.format_exception(exc))
        return Section(sid, _TITLES[sid], error=f"{type(exc).__name__}: {exc}", traceback=detail)


def _shown(ctx: Context, sid: str) -> bool:
    """Whether section ``sid`` is in this report: the analyses of the structure results only
    where there are some (the structure section says once that there are none)."""
    return not (ctx.structure.empty and sid in _OF_STRUCTURE)


_OF_STRUCTURE = ("correlations", "prediction")


def _clean_structure(df: pd.DataFrame) -> pd.DataFrame:
    """Structure rows with each column name once (a numeric column wins over a config list)."""
    if not df.columns.duplicated().any():
        return df
    chosen: dict[str, tuple[int, bool]] = {}
    for i, (name, numeric) in enumerate(zip(df.columns, numeric_columns(df), strict=True)):
        if name not in chosen or (numeric and not chosen[name][1]):
            chosen[name] = (i, numeric)
    return df.iloc[:, sorted(i for i, _ in chosen.values())].copy()


def _code(text: object) -> markupsafe.Markup:
    """Escaped ``text`` with `backtick` spans as ``<code>``."""
    parts = str(text).split("`")
    return markupsafe.Markup("").join(
        markupsafe.Markup("<code>%s</code>") % p if i % 2 else markupsafe.escape(p)
        for i, p in enumerate(parts)
    )


@cache
def _template() -> jinja2.Template:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("sparsernn.report", "templates"),
        autoescape=True,  # every value, including file, graph and config text, is escaped
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["code"] = _code
    env.filters["html_table"] = lambda df, name: markupsafe.Markup(html_table(df, name))
    return env.get_template("report.html.j2")


def _write_tables(sections: list[Section], tables_dir: Path) -> None:
    """Every table of ``sections`` as ``<name>.csv`` and ``<name>.md`` in ``tables_dir``
    (replacing the CSV and Markdown files already there)."""
    if tables_dir.is_dir():
        for old in list(tables_dir.glob("*.csv")) + list(tables_dir.glob("*.md")):
            old.unlink()
    for block in (b for s in sections for b in s.blocks if isinstance(b, Table)):
        tables_dir.mkdir(parents=True, exist_ok=True)
        csv_safe(block.frame).to_csv(tables_dir / f"{block.name}.csv", index=False)
        (tables_dir / f"{block.name}.md").write_text(markdown_table(block.frame), encoding="utf-8")


def _context(
    results: StudyResults, tolerance: float | None, n_boot: int, n_repeats: int, seed: int
) -> Context:
    """The sections' context: per-kind configs, the tolerance (default the pruning config's,
    else 0.01), the caveats."""
    structure = _clean_structure(results.structure)
    ctx = Context(results, structure, 0.0, n_boot, n_repeats, seed, setup.kind_configs(results))
    if tolerance is None:
        tolerance = (ctx.config("prune").get("pruning") or {}).get("tolerance", 0.01)
    ctx.tolerance = float(tolerance)
    ctx.caveat = setup.caveat(ctx)
    ctx.unpublished = setup.unpublished(ctx)
    return ctx


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
        Accuracy drop that still counts as "recovered"/"tolerated"; default the ``pruning.
        tolerance`` of the config that planned the pruning units (0.01 if absent).
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
    ctx = _context(results, tolerance, int(n_boot), int(n_repeats), int(seed))
    sections = [_section(ctx, sid) for sid in SECTIONS if _shown(ctx, sid)]
    out = Path(out)
    tables_dir = out.with_name(f"{out.stem}_tables")
    _write_tables(sections, tables_dir)
    page = _template().render(
        title=f"sparsernn report: {results.study_dir.name or results.study_dir}",
        caveats=[text for text in (ctx.caveat, ctx.unpublished) if text],
        task=setup.task_line(ctx),
        sections=sections,
        tables_dir=tables_dir.name,
    )
    atomic_write_bytes(out, page.encode("utf-8"))
    return out
