"""Read a study directory's store into tidy pandas DataFrames for analysis and the report."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Any

import pandas as pd

from sparsernn.store import ResultsStore

__all__ = ["StudyResults", "load_results"]


@dataclasses.dataclass
class StudyResults:
    """A study's results as DataFrames (empty frames, with their columns, when absent).

    - ``base``: one row per (cell, seed): ``base_accuracy``, ``test_loss``, ``epochs``,
      ``mean_epoch_time``, ``wall_s``.
    - ``base_curves``: (cell, seed, epoch) with train/test loss and accuracy, ``epoch_time``.
    - ``pruning``: long format (cell, seed, target, amount, epoch) -> ``accuracy``, ``loss``;
      epoch 0 is right after pruning. ``pruning_points`` has one row per point with
      ``post_prune_accuracy``, ``final_accuracy``, ``achieved_sparsity``.
    - ``structure``: one row per trained graph network: cell, generator, graph_id, graph,
      seed, test_accuracy, test_loss, the graph properties, ``n_parameters``, ``wall_s``.
      Graphs read from files (``graphs_from``) have generator ``"file"``, ``graph`` = the
      file stem, ``graph_sha256`` and ``graph_id`` = their index in name order; generated
      graphs have ``graph`` None.
    - ``study``: the study config dict; ``failures``: failed units.
    """

    study_dir: Path
    study: dict[str, Any]
    base: pd.DataFrame
    base_curves: pd.DataFrame
    pruning: pd.DataFrame
    pruning_points: pd.DataFrame
    structure: pd.DataFrame
    failures: pd.DataFrame


_BASE_COLS = ["cell", "seed", "base_accuracy", "test_loss", "epochs", "mean_epoch_time", "wall_s"]
_PRUNE_COLS = ["cell", "seed", "target", "amount", "epoch", "accuracy", "loss"]
_POINT_COLS = [
    "cell",
    "seed",
    "target",
    "amount",
    "base_accuracy",
    "post_prune_accuracy",
    "final_accuracy",
    "achieved_sparsity",
    "wall_s",
]
_STRUCT_ID = ["cell", "generator", "graph_id", "seed"]
_STRUCT_LEAD = ["cell", "generator", "graph_id", "graph", "seed", "test_accuracy", "test_loss"]


def _strip(df: pd.DataFrame) -> pd.DataFrame:
    return df.rename(columns=lambda c: c[len("config.") :] if c.startswith("config.") else c)


def _current_keys(store: ResultsStore, kind: str) -> set[str] | None:
    """Keys of ``kind`` planned by the config that last ran that kind (None: keep all).

    A study directory keeps every unit ever run in it; after, say, a rerun with other
    retraining epochs, only the units of the latest configuration are this study's results.
    """
    from sparsernn.experiments.config import study_from_store
    from sparsernn.experiments.units import plan_units

    keys = store.get_meta(f"keys:{kind}")
    if keys is not None:  # stored by run_study: no need to read the study's files again
        return set(keys)
    config = store.get_meta(f"study:{kind}")
    if not config:
        return None
    return {u.key for u in plan_units(study_from_store(config)) if u.kind == kind}


def _only(df: pd.DataFrame, keys: set[str] | None) -> pd.DataFrame:
    if keys is None or df.empty:
        return df
    return df[df["key"].isin(keys)].reset_index(drop=True)


def _graph_ids(struct: pd.DataFrame) -> pd.DataFrame:
    """Give file graphs (generator ``"file"``) a ``graph_id``: their index in name order.

    It is not part of their units' keys (adding a file renumbers, but retrains nothing).
    """
    if "graph" not in struct.columns:
        struct = struct.assign(graph=None)
    files = struct["generator"] == "file"
    if files.any():
        names = sorted(struct.loc[files, "graph"].astype(str).unique())
        ids = struct.loc[files, "graph"].astype(str).map({n: i for i, n in enumerate(names)})
        if "graph_id" not in struct.columns:
            struct = struct.assign(graph_id=pd.NA)
        struct["graph_id"] = struct["graph_id"].astype(object)
        struct.loc[files, "graph_id"] = ids
        struct["graph_id"] = struct["graph_id"].astype(int)
    return struct


def load_results(study_dir: str | os.PathLike[str]) -> StudyResults:
    """Load the results of a study directory's current configuration (read-only).

    Safe while the study is still running. Units stored by earlier configurations of the same
    directory (e.g. other retraining epochs) stay in the store but are not returned.
    """
    with ResultsStore.open(study_dir, readonly=True) as store:
        study = store.get_meta("study", {}) or {}
        current = {kind: _current_keys(store, kind) for kind in ("base", "prune", "structure")}
        base = _strip(_only(store.frame("base"), current["base"]))
        base_curves = _strip(_only(store.curves("base"), current["base"]))
        prune = _strip(_only(store.frame("prune"), current["prune"]))
        prune_curves = _strip(_only(store.curves("prune"), current["prune"]))
        struct = _strip(_only(store.frame("structure"), current["structure"]))
        failures = store.failures()
    if len(base):
        base = base.rename(columns={"test_accuracy": "base_accuracy"})
        base = base[[c for c in _BASE_COLS if c in base.columns]]
        base = base.sort_values(["cell", "seed"]).reset_index(drop=True)
    else:
        base = pd.DataFrame(columns=_BASE_COLS)
    if len(base_curves):
        keep = [
            "cell",
            "seed",
            "epoch",
            "train_loss",
            "train_accuracy",
            "test_loss",
            "test_accuracy",
            "epoch_time",
        ]
        base_curves = base_curves[[c for c in keep if c in base_curves.columns]]
    else:
        base_curves = pd.DataFrame(columns=["cell", "seed", "epoch", "test_accuracy"])
    if len(prune_curves):
        pruning = prune_curves.rename(columns={"test_accuracy": "accuracy", "test_loss": "loss"})
        pruning = pruning[_PRUNE_COLS].copy()
        pruning["amount"] = pruning["amount"].astype(float)
        pruning = pruning.sort_values(["cell", "seed", "target", "amount", "epoch"])
        pruning = pruning.reset_index(drop=True)
        points = prune[[c for c in _POINT_COLS if c in prune.columns]]
        points = points.sort_values(["cell", "seed", "target", "amount"]).reset_index(drop=True)
    else:
        pruning = pd.DataFrame(columns=_PRUNE_COLS)
        points = pd.DataFrame(columns=_POINT_COLS)
    if len(struct):
        drop = [
            c
            for c in struct.columns
            if c
            in (
                "key",
                "kind",
                "status",
                "finished",
                "attempts",
                "node_range",
                "edge_list",
                "graph_edges",
                "n_nodes",
                "layer_sizes",
            )
            or c.startswith(("data.", "train."))
        ]
        struct = _graph_ids(struct.drop(columns=drop))
        lead = [c for c in _STRUCT_LEAD if c in struct.columns]
        struct = struct[lead + [c for c in struct.columns if c not in lead]]
        struct = struct.sort_values(_STRUCT_ID).reset_index(drop=True)
    else:
        struct = pd.DataFrame(columns=_STRUCT_LEAD)
    return StudyResults(
        study_dir=Path(study_dir),
        study=study,
        base=base,
        base_curves=base_curves,
        pruning=pruning,
        pruning_points=points,
        structure=struct,
        failures=failures,
    )
