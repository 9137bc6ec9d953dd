"""The tables and plots the ``prune`` and ``structure`` commands print and write beside a study
(the report layer: it reads the study's frames and draws them).

They read the study with :func:`~sparsernn.experiments.load_results`, run the analyses and
save ``<study_dir>/<table>.csv`` and ``<study_dir>/plots/<name>.png`` (atomically).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd

from sparsernn._csvcells import csv_safe
from sparsernn._files import atomic_write_bytes
from sparsernn.experiments.results import load_results
from sparsernn.report import plots

__all__ = ["pruning_summary", "structure_summary"]

#: Makes one figure from the :mod:`sparsernn.report.plots` module it is given.
_Figure = Callable[[Any], Any]


def pruning_summary(
    study_dir: str | os.PathLike[str], tolerance: float = 0.01
) -> dict[str, pd.DataFrame]:
    """Tolerated sparsity and epochs-to-recover tables (also CSV files) and PNG plots.

    ``tolerated_sparsity``: per cell and target (and method), each seed's tolerated amount
    (the largest amount up to which every amount of the grid is within ``tolerance`` of the
    base model; ``<10`` when even the grid's smallest amount fails) right after pruning
    (epoch 0), after one retraining epoch and after the last; the column names say which.
    The CSV file beside it holds the long form (:func:`~sparsernn.analysis.tolerated_sparsity`
    per epoch, with an ``epoch`` column).
    """
    from sparsernn.analysis import epochs_to_recover, tolerated_sparsity

    res = load_results(study_dir)
    if res.pruning.empty:
        return {}
    last = int(res.pruning["epoch"].max())
    epochs = sorted({0, min(1, last), last})
    long = pd.concat(
        [
            tolerated_sparsity(res.pruning, res.base, tolerance=tolerance, epoch=e).assign(epoch=e)
            for e in epochs
        ],
        ignore_index=True,
    )
    keys = [c for c in ("cell", "target", "method") if c in long.columns]
    wide = long.pivot(index=keys, columns="epoch", values="per_seed")
    wide.columns = [_epoch_label(e) for e in wide.columns]
    tables = {
        "tolerated_sparsity": wide.reset_index(),
        "epochs_to_recover": epochs_to_recover(res.pruning, res.base, tolerance=tolerance),
    }
    csv_safe(long).to_csv(Path(study_dir) / "tolerated_sparsity.csv", index=False)
    recover = csv_safe(tables["epochs_to_recover"])
    recover.to_csv(Path(study_dir) / "epochs_to_recover.csv", index=False)
    _save_plots(
        study_dir,
        {
            "pruning_accuracy": lambda p: p.pruning_accuracy(res.pruning, res.base, tolerance),
            "recovery_curves": lambda p: p.recovery_curves(res.pruning, res.base, tolerance),
            "training_curves": lambda p: p.training_curves(res.base_curves),
        },
    )
    return tables


def _epoch_label(epoch: int) -> str:
    """A tolerated-sparsity column's name: when the accuracy was judged."""
    if epoch == 0:
        return "after pruning (epoch 0)"
    return f"after {epoch} retraining epoch{'s' if epoch > 1 else ''}"


def _save_plots(study_dir: str | os.PathLike[str], figures: dict[str, _Figure]) -> None:
    """Write each figure as ``<study_dir>/plots/<name>.png``."""

    for name, make in figures.items():
        atomic_write_bytes(Path(study_dir) / "plots" / f"{name}.png", plots.to_png(make(plots)))


def structure_summary(study_dir: str | os.PathLike[str]) -> pd.DataFrame:
    """Mean test accuracy (95% CI) per cell and generator (also CSV) and PNG plots."""
    from sparsernn.analysis import mean_ci

    res = load_results(study_dir)
    rows = [
        (cell, gen, len(grp), *mean_ci(grp["test_accuracy"].to_numpy(dtype=float), bounds=(0, 1)))
        for (cell, gen), grp in res.structure.groupby(["cell", "generator"])
    ]
    columns = ["cell", "generator", "n_graphs", "mean_accuracy", "ci_low", "ci_high"]
    table = pd.DataFrame(rows, columns=columns)
    csv_safe(table).to_csv(Path(study_dir) / "structure_accuracy.csv", index=False)
    _save_plots(
        study_dir,
        {
            "structure_accuracy": lambda p: p.structure_accuracy(res.structure),
            "property_scatter": lambda p: p.property_scatter(res.structure),
        },
    )
    return table
