"""What every generated page shares: number formats, the run's provenance, verdict words.

Every number and every sentence that states a result is computed here or in the page modules
from the data in ``results/``; prose that does not depend on the numbers is written once, in
the page modules, and says nothing about results.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from sparsernn.report import markdown_table

__all__ = [
    "CELLS",
    "CELL_NAMES",
    "ci",
    "cell_order",
    "interval_note",
    "load_manifest",
    "markdown_table",
    "missing",
    "provenance",
    "seeds_text",
    "within",
    "display",
]

CELLS = ["rnn_tanh", "rnn_relu", "gru", "lstm"]
CELL_NAMES = {"rnn_tanh": "RNN-tanh", "rnn_relu": "RNN-ReLU", "gru": "GRU", "lstm": "LSTM"}


def ci(mean: float, lo: float, hi: float, digits: int = 3, sign: bool = False) -> str:
    """``mean [lo, hi]``; ``mean (no spread)`` when every replicate was equal; ``mean (n=1)``
    when there is no interval (one replicate)."""
    f = f"{{:{'+' if sign else ''}.{digits}f}}"
    if math.isnan(mean):
        return "n/a"
    if math.isnan(lo) or math.isnan(hi):
        return f"{f.format(mean)} (n=1)"
    if round(hi - lo, digits + 2) == 0:
        return f"{f.format(mean)} (no spread)"
    return f"{f.format(mean)} [{f.format(lo)}, {f.format(hi)}]"


def within(value: float, lo: float, hi: float) -> str:
    """Whether a published ``value`` lies in ``[lo, hi]``, with the interval's width, or by how
    much it lies outside (``"no: 0.003 above"``)."""
    if math.isnan(lo) or math.isnan(hi):
        return "no interval (n=1)"
    width = f"width {hi - lo:.3f}"
    if lo <= value <= hi:
        return f"yes ({width})"
    side = f"{value - hi:.3f} above" if value > hi else f"{lo - value:.3f} below"
    return f"no: {side} ({width})"


def seeds_text(values: Iterable[float], digits: int = 3) -> str:
    """Each seed's value in seed order: ``0.940, 0.940, 0.946``."""
    return ", ".join(f"{v:.{digits}f}" for v in values)


def interval_note(n: int, what: str) -> str:
    """The sentence that names what an interval is over."""
    return f"Intervals: 95% Student t over {what} (n = {n})."


def cell_order(df: pd.DataFrame, then: Sequence[str] = ()) -> pd.DataFrame:
    """``df`` sorted by cell in the study's order (then by ``then``)."""
    rank = df["cell"].map({c: i for i, c in enumerate(CELLS)})
    return (
        df.assign(_rank=rank)
        .sort_values(["_rank", *then], kind="stable")
        .drop(columns="_rank")
        .reset_index(drop=True)
    )


def load_manifest(folder: Path) -> dict[str, Any]:
    return json.loads((folder / "manifest.json").read_text(encoding="utf-8"))


def display(folder: Path) -> str:
    """A results folder as the pages name it: ``results/full``."""
    return f"{folder.parent.name}/{folder.name}"


def missing(folder: Path, make: str) -> str:
    """The paragraph a page shows when its data is not in the repository yet."""
    return (
        f"No results in `{display(folder)}` yet: this page is generated from that folder "
        f"(`{make}` runs the study and exports it there, then `make docs`)."
    )


def _commits(runs: list[dict[str, Any]]) -> list[str]:
    found = []
    for run in runs:
        commit = run.get("commit")
        if commit:
            text = str(commit)[:7] + (" (with uncommitted changes)" if run.get("dirty") else "")
            if text not in found:
                found.append(text)
    return found


def _kinds_of(run: dict[str, Any]) -> list[str]:
    """The unit kinds a run record's command ran (a launcher's record names its command)."""
    if "kinds" in run:
        return list(run["kinds"])
    command = run.get("command") or ["reproduce"]
    return {"prune": ["base", "prune"], "structure": ["structure"]}.get(
        str(command[0]), ["base", "prune", "structure"]
    )


def _span(first: list[str], last: list[str]) -> str:
    """``2026-12-07T17:52 to 2026-12-08T01:10`` (minutes), or ``-`` when nothing ran."""
    if not first or not last:
        return "-"
    return f"{min(first)[:16]} to {max(last)[:16]}"


def unit_counts(manifest: dict[str, Any], kinds: Sequence[str]) -> list[str]:
    """``["base 12 of 12", "prune 231 of 360 (2 failed)", ...]`` from an export's manifest."""
    units, plans = manifest.get("units", {}), manifest.get("plans", {})
    counts = []
    for kind in kinds:
        entry = units.get(kind, {})
        planned = plans.get(kind, {}).get("n_units")
        counts.append(f"{kind} {entry.get('done', 0)}" + (f" of {planned}" if planned else ""))
        if entry.get("failed"):
            counts[-1] += f" ({entry['failed']} failed)"
    return counts


def provenance(manifest: dict[str, Any], kinds: Sequence[str], source: str) -> list[str]:
    """Lines stating the run behind a page: commands, commits, dates, machine, software, units.

    Read from the export's manifest only (the run records the store kept, or the launcher's
    records given to ``sparsernn export --run-info``).
    """
    runs = [
        r
        for r in manifest.get("runs", []) + manifest.get("runs_external", [])
        if set(_kinds_of(r)) & set(kinds)
    ]
    starts = [r for r in runs if r.get("event", "start") == "start"]
    commands = []
    for run in starts:
        if run.get("command"):  # a launcher's record: the sparsernn command's arguments
            text = "sparsernn " + " ".join(str(c) for c in run["command"])
        elif run.get("argv"):  # the runner's own record: the whole command line
            text = " ".join(str(c) for c in run["argv"])
        else:
            continue
        if text not in commands:
            commands.append(text)
    units = manifest.get("units", {})
    counts = unit_counts(manifest, kinds)
    hours = 0.0
    first, last = [], []
    for kind in kinds:
        entry = units.get(kind, {})
        hours += float(entry.get("unit_hours", 0.0))
        first += [entry["first_started"]] if entry.get("first_started") else []
        last += [entry["last_finished"]] if entry.get("last_finished") else []
    machine = starts[0] if starts else manifest.get("exported", {})
    lines = [
        f'Data: `{source}` (`sparsernn export`; `load_results("{source}")` reads it).',
        "",
        "| run | |",
        "|---|---|",
        f"| commands | {'; '.join(f'`{c}`' for c in commands) or 'not recorded'} |",
        f"| code | commit {', '.join(_commits(starts)) or 'not recorded'} |",
        f"| dates (UTC) | {_span(first, last)} |",
        f"| machine | {machine.get('cpu', '?')}, {machine.get('cores', '?')} cores; 1 torch "
        "thread per unit |",
        f"| software | Python {machine.get('python', '?')}, torch {machine.get('torch', '?')}, "
        f"numpy {machine.get('numpy', '?')} |",
        f"| units done | {', '.join(counts)}; {hours:.1f} unit-hours of compute |",
        "",
    ]
    return lines
