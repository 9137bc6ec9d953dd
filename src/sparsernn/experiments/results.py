"""Read a study directory's store into tidy pandas DataFrames for analysis and the report."""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import os
from pathlib import Path
from typing import Any

import pandas as pd

from sparsernn._csvcells import csv_restore
from sparsernn.errors import DataError
from sparsernn.experiments.config import KINDS
from sparsernn.experiments.plans import Plan, read_plans
from sparsernn.store import ResultsStore

__all__ = ["StudyResults", "load_results", "load_store_results", "is_export", "read_manifest"]

#: An export's manifest (``sparsernn export``, :mod:`sparsernn.experiments.export`): its
#: ``format``, the version this code writes and reads, its file name, and the exported frames.
EXPORT_FORMAT = "sparsernn-study-export"
EXPORT_VERSION = 1
MANIFEST = "manifest.json"
TABLES = ("base", "base_curves", "pruning", "pruning_points", "structure", "failures")


@dataclasses.dataclass
class StudyResults:
    """A study's results as DataFrames (empty frames, with their columns, when absent).

    - ``base``: one row per (cell, seed): ``base_accuracy``, ``test_loss``, ``epochs``,
      ``mean_epoch_time``, ``wall_s``.
    - ``base_curves``: (cell, seed, epoch) with train/test loss and accuracy, ``epoch_time``.
    - ``pruning``: long format (cell, seed, target, method, amount, epoch) -> ``accuracy``,
      ``loss``, ``overall_sparsity``; epoch 0 is right after pruning (before (re)training, see
      :mod:`sparsernn.experiments.methods`). ``amount`` is the asked sparsity in percent,
      ``overall_sparsity`` the achieved one over the targeted matrices, a fraction;
      ``method`` the sparsity method (``magnitude`` for the study's). ``pruning_points``
      has one row per point with ``post_prune_accuracy``, ``final_accuracy``,
      ``achieved_sparsity`` (= ``overall_sparsity``) and ``model_sparsity`` (over all
      recurrent matrices, targeted or not); the store holds per-gate sparsities as well
      (``gate_sparsity.<weight>.<gate>`` in :meth:`ResultsStore.frame`).
    - ``structure``: one row per trained graph network: cell, generator, graph_id, graph,
      seed, test_accuracy, test_loss, the graph properties, ``n_parameters``, ``wall_s``.
      Graphs read from files (``graphs_from``) have generator ``"file"``, ``graph`` = the
      file stem, ``graph_sha256`` and ``graph_id`` = their index in name order; generated
      graphs have ``graph`` None.
    - ``study``: the config dict of the last command run in the directory; ``studies``: each
      planned kind (``"base"``, ``"prune"``, ``"structure"``) -> the config dict of the
      command that planned it (a directory written by ``prune`` then ``structure`` holds
      two); ``failures``: failed units.
    """

    study_dir: Path
    study: dict[str, Any]
    base: pd.DataFrame
    base_curves: pd.DataFrame
    pruning: pd.DataFrame
    pruning_points: pd.DataFrame
    structure: pd.DataFrame
    failures: pd.DataFrame
    studies: dict[str, dict[str, Any]] = dataclasses.field(default_factory=dict)


_BASE_COLS = ["cell", "seed", "base_accuracy", "test_loss", "epochs", "mean_epoch_time", "wall_s"]
_BASE_CURVE_COLS = ["cell", "seed", "epoch", "train_loss", "train_accuracy", "test_loss"]
_BASE_CURVE_COLS += ["test_accuracy", "epoch_time"]
_PRUNE_ID = ["cell", "seed", "target", "method", "amount"]
_PRUNE_COLS = [*_PRUNE_ID, "epoch", "accuracy", "loss", "overall_sparsity"]
_POINT_COLS = [*_PRUNE_ID, "base_accuracy", "post_prune_accuracy", "final_accuracy"]
_POINT_COLS += ["achieved_sparsity", "overall_sparsity", "model_sparsity", "wall_s"]
_STRUCT_ID = ["cell", "generator", "graph_id", "seed"]
_STRUCT_LEAD = ["cell", "generator", "graph_id", "graph", "seed", "test_accuracy", "test_loss"]
#: Columns of structure units that are bookkeeping or too bulky for the results table.
_STRUCT_DROP = {"key", "kind", "status", "finished", "attempts", "node_range", "edge_list"}
_STRUCT_DROP |= {"graph_edges", "n_nodes", "layer_sizes"}


def _strip(df: pd.DataFrame) -> pd.DataFrame:
    return df.rename(columns=lambda c: c[len("config.") :] if c.startswith("config.") else c)


def _only(df: pd.DataFrame, plan: Plan | None) -> pd.DataFrame:
    """The rows of ``df`` that ``plan`` planned (all rows without a plan or known keys)."""
    if plan is None or plan.keys is None or df.empty:
        return _strip(df)
    return _strip(df[df["key"].isin(plan.keys)].reset_index(drop=True))


def _pick(df: pd.DataFrame, columns: list[str]) -> pd.DataFrame:
    """``df``'s columns among ``columns``, in that order."""
    return df[[c for c in columns if c in df.columns]]


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


def _base_frames(base: pd.DataFrame, curves: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The ``base`` and ``base_curves`` tables from the base units' frame and curves."""
    if len(base):
        base = _pick(base.rename(columns={"test_accuracy": "base_accuracy"}), _BASE_COLS)
        base = base.sort_values(["cell", "seed"]).reset_index(drop=True)
    else:
        base = pd.DataFrame(columns=_BASE_COLS)
    if len(curves):
        curves = _pick(curves, _BASE_CURVE_COLS)
    else:
        curves = pd.DataFrame(columns=["cell", "seed", "epoch", "test_accuracy"])
    return base, curves


def _pruning_frames(prune: pd.DataFrame, curves: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The long ``pruning`` table and ``pruning_points`` from the pruning units."""
    if not len(curves):
        return pd.DataFrame(columns=_PRUNE_COLS), pd.DataFrame(columns=_POINT_COLS)
    # Units of the study's method (magnitude) carry no method; the sparsity over the targeted
    # matrices is ``achieved_sparsity`` (older stores' ``overall_sparsity`` counted all).
    prune = prune.assign(
        method=_column(prune, "method", "magnitude"), overall_sparsity=prune["achieved_sparsity"]
    )
    curves = curves.assign(
        method=_column(curves, "method", "magnitude"),
        overall_sparsity=curves["key"].map(prune.set_index("key")["overall_sparsity"]),
    )
    pruning = curves.rename(columns={"test_accuracy": "accuracy", "test_loss": "loss"})
    pruning = pruning[_PRUNE_COLS].copy()
    pruning["amount"] = pruning["amount"].astype(float)
    pruning = pruning.sort_values([*_PRUNE_ID, "epoch"]).reset_index(drop=True)
    points = _pick(prune, _POINT_COLS).sort_values(_PRUNE_ID).reset_index(drop=True)
    return pruning, points


def _column(df: pd.DataFrame, name: str, default: Any) -> pd.Series:
    """``df[name]`` with ``default`` where missing (a column older units did not have)."""
    if name not in df.columns:
        return pd.Series(default, index=df.index, dtype=object)
    return df[name].where(df[name].notna(), default)


def _structure_frame(struct: pd.DataFrame) -> pd.DataFrame:
    """One row per structure network: its id, accuracy, then graph properties and the rest."""
    if not len(struct):
        return pd.DataFrame(columns=_STRUCT_LEAD)
    drop = [c for c in struct.columns if c in _STRUCT_DROP or c.startswith(("data.", "train."))]
    struct = _graph_ids(struct.drop(columns=drop))
    lead = [c for c in _STRUCT_LEAD if c in struct.columns]
    struct = struct[lead + [c for c in struct.columns if c not in lead]]
    return struct.sort_values(_STRUCT_ID).reset_index(drop=True)


def is_export(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` is a folder holding an export's manifest (and no results store)."""
    folder = Path(path)
    return (folder / MANIFEST).is_file() and not (folder / "results.sqlite").exists()


def load_results(study_dir: str | os.PathLike[str]) -> StudyResults:
    """Load the results of a study directory, or of its export (``sparsernn export``).

    A study directory is read as each kind's last plan left it (read-only, safe while the study
    is still running): units stored by earlier plans of the same kind (e.g. other retraining
    epochs) stay in the store but are not returned; which units are current is read from the
    store's plan records (:mod:`sparsernn.experiments.plans`). An export gives the same frames
    (dtypes included), checked against its manifest's checksums.
    """
    if is_export(study_dir):
        return read_export(study_dir)
    return load_store_results(study_dir)


def load_store_results(study_dir: str | os.PathLike[str]) -> StudyResults:
    """:func:`load_results` of a study directory's store (not of an export)."""
    with ResultsStore.open(study_dir, readonly=True) as store:
        plans = read_plans(store)
        study = store.get_meta("study", {}) or {}
        frames = {k: _only(store.frame(k), plans.get(k)) for k in KINDS}
        curves = {k: _only(store.curves(k), plans.get(k)) for k in ("base", "prune")}
        failures = store.failures()
    base, base_curves = _base_frames(frames["base"], curves["base"])
    pruning, points = _pruning_frames(frames["prune"], curves["prune"])
    return StudyResults(
        study_dir=Path(study_dir),
        study=study,
        studies={kind: plan.config for kind, plan in plans.items()},
        base=base,
        base_curves=base_curves,
        pruning=pruning,
        pruning_points=points,
        structure=_structure_frame(frames["structure"]),
        failures=failures,
    )


def read_export(path: str | os.PathLike[str]) -> StudyResults:
    """The :class:`StudyResults` of an export written by :func:`export_study`."""
    folder = Path(path)
    manifest = read_manifest(folder)
    frames = {name: _read_table(folder, manifest["tables"][name]) for name in TABLES}
    plans = manifest.get("plans", {})
    return StudyResults(
        study_dir=folder,
        study=manifest.get("study", {}),
        studies={kind: plan["config"] for kind, plan in plans.items()},
        **frames,
    )


def read_manifest(folder: Path) -> dict[str, Any]:
    """An export's manifest, checked: format, version and tables (DataError otherwise)."""
    where = folder / MANIFEST
    try:
        manifest = json.loads(where.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DataError(
            f"{where} is not a readable export manifest ({exc}); export again"
        ) from None
    if not isinstance(manifest, dict) or manifest.get("format") != EXPORT_FORMAT:
        raise DataError(
            f"{where} is not a sparsernn study export; export one with sparsernn export"
        )
    if manifest.get("version") != EXPORT_VERSION:
        raise DataError(
            f"{where} is export version {manifest.get('version')!r}; this sparsernn reads version "
            f"{EXPORT_VERSION}: export the study again or use the sparsernn that wrote it"
        )
    missing = [name for name in TABLES if name not in manifest.get("tables", {})]
    if missing:
        raise DataError(f"{where} lists no {', '.join(missing)} table; export the study again")
    return manifest


def _read_table(folder: Path, entry: dict[str, Any]) -> pd.DataFrame:
    """One table, checked against its manifest entry, with its dtypes restored."""
    where = folder / entry["file"]
    try:
        data = where.read_bytes()
    except OSError as exc:
        raise DataError(f"cannot read {where} ({exc.strerror}); export the study again") from None
    if hashlib.sha256(data).hexdigest() != entry["sha256"]:
        raise DataError(
            f"{where} differs from its manifest (edited or damaged); results come from "
            "sparsernn export only: export the study again"
        )
    dtypes: dict[str, str] = dict(entry["columns"])
    if not dtypes:
        return pd.DataFrame()
    kinds = {c: ("object" if t in ("object", "bool") else t) for c, t in dtypes.items()}
    old = int(pd.__version__.split(".")[0]) < 3  # pandas 3 parses floats exactly by default
    exact = {"float_precision": "round_trip"} if old else {}
    frame = pd.read_csv(
        io.BytesIO(data), dtype=kinds, keep_default_na=False, na_values=[""], **exact
    )
    for column, kind in dtypes.items():
        if kind == "bool":
            frame[column] = frame[column].map({"True": True, "False": False}).astype(bool)
        elif kind == "object":
            frame[column] = frame[column].astype(object).where(frame[column].notna(), None)
    if list(frame.columns) != list(dtypes) or len(frame) != entry["rows"]:
        raise DataError(
            f"{where} does not hold the columns and rows its manifest lists; export again"
        )
    return csv_restore(frame)
