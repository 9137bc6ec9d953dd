"""Library functions behind the CLI commands, callable from Python with the same arguments."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pandas as pd

from sparsernn.errors import ConfigError

__all__ = ["pruning_summary", "structure_summary", "study_status"]


def pruning_summary(
    study_dir: str | os.PathLike[str], tolerance: float = 0.01
) -> dict[str, pd.DataFrame]:
    """Tolerated sparsity and epochs-to-recover tables (also CSV files) and PNG plots."""
    from sparsernn.analysis import epochs_to_recover, tolerated_sparsity
    from sparsernn.experiments.results import load_results

    res = load_results(study_dir)
    if res.pruning.empty:
        return {}
    tables = {
        "tolerated_sparsity": tolerated_sparsity(res.pruning, res.base, tolerance=tolerance),
        "epochs_to_recover": epochs_to_recover(res.pruning, res.base, tolerance=tolerance),
    }
    for name, table in tables.items():
        table.to_csv(Path(study_dir) / f"{name}.csv", index=False)
    _save_plots(
        study_dir,
        {
            "pruning_accuracy": lambda p: p.pruning_accuracy(res.pruning, res.base, tolerance),
            "recovery_curves": lambda p: p.recovery_curves(res.pruning, res.base, tolerance),
            "training_curves": lambda p: p.training_curves(res.base_curves),
        },
    )
    return tables


def _save_plots(study_dir: str | os.PathLike[str], figures: dict) -> None:
    """Write each figure as ``<study_dir>/plots/<name>.png``."""
    from sparsernn.report import plots
    from sparsernn.store import atomic_write_bytes

    for name, make in figures.items():
        atomic_write_bytes(Path(study_dir) / "plots" / f"{name}.png", plots.to_png(make(plots)))


def structure_summary(study_dir: str | os.PathLike[str]) -> pd.DataFrame:
    """Mean test accuracy (95% CI) per cell and generator (also CSV) and PNG plots."""
    from sparsernn.analysis import mean_ci
    from sparsernn.experiments.results import load_results

    res = load_results(study_dir)
    rows = []
    for (cell, gen), grp in res.structure.groupby(["cell", "generator"]):
        mean, lo, hi = mean_ci(grp["test_accuracy"].to_numpy(dtype=float), bounds=(0, 1))
        rows.append(
            {
                "cell": cell,
                "generator": gen,
                "n_graphs": len(grp),
                "mean_accuracy": mean,
                "ci_low": lo,
                "ci_high": hi,
            }
        )
    table = pd.DataFrame(
        rows, columns=["cell", "generator", "n_graphs", "mean_accuracy", "ci_low", "ci_high"]
    )
    table.to_csv(Path(study_dir) / "structure_accuracy.csv", index=False)
    _save_plots(
        study_dir,
        {
            "structure_accuracy": lambda p: p.structure_accuracy(res.structure),
            "property_scatter": lambda p: p.property_scatter(res.structure),
        },
    )
    return table


def study_status(study_dir: str | os.PathLike[str]) -> str:
    """A short text summary: units done/failed/pending per kind and time spent."""
    from sparsernn.experiments.config import study_from_store
    from sparsernn.experiments.units import plan_units
    from sparsernn.store import ResultsStore

    path = Path(study_dir)
    if not (path / "results.sqlite").exists():
        raise ConfigError(
            f"{study_dir} holds no results.sqlite; start a study with --out {study_dir}"
        )
    with ResultsStore.open(path, readonly=True) as store:
        study = store.get_meta("study")
        run_kinds = store.get_meta("kinds")
        done, failed = store.keys(status="done"), store.keys(status="failed")
        summary: dict[str, Any] = store.summary()
        # each kind's keys as its last run planned them (so the study's files are not reread)
        run_keys = {k: store.get_meta(f"keys:{k}") for k in ("base", "prune", "structure")}
    stored = set(summary.get("by_kind", {}))
    wanted = None if run_kinds is None else set(run_kinds) | stored
    if wanted is not None and all(run_keys.get(k) is not None for k in wanted):
        planned = [(k, key) for k in sorted(wanted) for key in run_keys[k]]
    else:
        planned = [(u.kind, u.key) for u in plan_units(study_from_store(study))] if study else []
        if wanted is not None:  # what the last command asked for (e.g. `prune`: base + prune)
            planned = [(k, key) for k, key in planned if k in wanted]
    kinds = sorted({k for k, _ in planned} | stored)
    lines = [f"study {path}", f"{'kind':>10} {'done':>6} {'failed':>6} {'pending':>7} {'hours':>7}"]
    for kind in kinds:
        mine = [key for k, key in planned if k == kind]
        n_done = sum(key in done for key in mine)
        n_failed = sum(key in failed for key in mine)
        wall = summary.get("by_kind", {}).get(kind, {}).get("wall_s", 0.0) or 0.0
        pending = len(mine) - n_done - n_failed
        lines.append(f"{kind:>10} {n_done:>6} {n_failed:>6} {pending:>7} {wall / 3600:>7.2f}")
    lines.append(f"total time spent in units: {(summary.get('wall_s') or 0) / 3600:.2f} h")
    return "\n".join(lines)
