"""A study as versionable data: CSV tables and a manifest, read back by ``load_results``.

``sparsernn export STUDY_DIR OUT`` (:func:`export_study`) writes the frames of
:func:`~sparsernn.experiments.load_results` (``base``, ``base_curves``, ``pruning`` with every
epoch, ``pruning_points``, ``structure`` with every graph property, ``failures``) as CSV files,
and ``manifest.json``: the format version; each planned kind's config and unit count; units
done and failed per kind, their summed compute time and first start / last finish; the run
record of every command that stored units (commit, versions, CPU, executor, workers; see
:mod:`~sparsernn.experiments.runlog`); and per table its file, row count, SHA-256 and column
dtypes. Checkpoints stay out: an export is a few MB even for the full study.

:func:`read_export` gives back the same :class:`~sparsernn.experiments.StudyResults` as the
store did (equal frames, dtypes included). A table whose bytes do not match the manifest is
refused in one line: exports are meant to be committed, and a hand-edited number must not pass
as a result.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import os
import shutil
import sqlite3
import tempfile
from pathlib import Path
from typing import Any

import pandas as pd

from sparsernn._csvcells import csv_safe
from sparsernn._files import atomic_write_bytes
from sparsernn._provenance import environment, now
from sparsernn.errors import DataError, StoreError
from sparsernn.experiments.plans import STUDY_TOML, read_plans, study_toml
from sparsernn.experiments.results import (
    EXPORT_FORMAT,
    EXPORT_VERSION,
    MANIFEST,
    TABLES,
    is_export,
    load_store_results,
    read_manifest,
)
from sparsernn.experiments.runlog import read_runs
from sparsernn.store import ResultsStore

STORE = "results.sqlite"

__all__ = ["RESUME", "export_study", "read_run_info", "restore_study"]

#: The folder of a resumable export that holds the store and checkpoints.
RESUME = "resume"
#: A restored store's meta entry keeping the export's ``runs_external`` for the next export.
EXTERNAL_META = "runs_external"


def export_study(
    study_dir: str | os.PathLike[str],
    out: str | os.PathLike[str],
    run_info: list[dict[str, Any]] | None = None,
    resumable: bool = False,
) -> Path:
    """Write the export of ``study_dir`` to folder ``out`` (replaced whole if it is an export).

    ``run_info``: run records to add for commands that stored units before the store kept them
    (e.g. the lines of a launcher's log), listed in the manifest under ``runs_external``.
    ``resumable``: also copy the store (a consistent SQLite backup, safe while the study runs)
    and the base models' checkpoints into ``out/resume/``, so that :func:`restore_study` can
    recreate the study directory on another machine and the study resume there; a few MB more.
    Refuses (StoreError) an ``out`` that exists and is not an export, so a typo cannot wipe a
    folder; the new export is written beside it and renamed into place.
    """
    source, target = Path(study_dir), Path(out)
    if target.exists() and not (target.is_dir() and (is_export(target) or _empty_dir(target))):
        raise StoreError(
            f"{target} exists and is not a sparsernn export; choose a new folder for --out"
        )
    results = load_store_results(source)
    with ResultsStore.open(source, readonly=True) as store:
        plans = read_plans(store)
        runs = read_runs(store)
        external = list(store.get_meta(EXTERNAL_META, []) or [])
        units = _unit_summary(store)
    manifest: dict[str, Any] = {
        "format": EXPORT_FORMAT,
        "version": EXPORT_VERSION,
        "exported": {"time": now(), **environment()},
        "study": results.study,
        "plans": {
            kind: {"config": plan.config, "n_units": None if plan.keys is None else len(plan.keys)}
            for kind, plan in plans.items()
        },
        "units": units,
        "runs": runs,
        "runs_external": external + [r for r in run_info or [] if r not in external],
        "tables": {},
    }
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        for name in TABLES:
            manifest["tables"][name] = _write_table(getattr(results, name), staging / f"{name}.csv")
        if resumable:
            manifest["resume"] = _snapshot(source, staging / RESUME)
        text = json.dumps(manifest, indent=1, sort_keys=True, default=str) + "\n"
        (staging / MANIFEST).write_text(text, encoding="utf-8")
        _replace_dir(staging, target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target


def _empty_dir(path: Path) -> bool:
    return not any(path.iterdir())


def _replace_dir(new: Path, target: Path) -> None:
    """Put folder ``new`` at ``target``, an old export there moved aside first, then removed."""
    old = None
    if target.exists():
        old = target.with_name(f".{target.name}.old")
        shutil.rmtree(old, ignore_errors=True)
        os.replace(target, old)
    os.replace(new, target)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def _unit_summary(store: ResultsStore) -> dict[str, dict[str, Any]]:
    """Per kind: units done and failed, summed unit compute hours, first start, last finish."""
    units = store.frame(status=None)
    out: dict[str, dict[str, Any]] = {}
    for kind, rows in units.groupby("kind", sort=True):
        done = rows[rows["status"] == "done"]
        out[str(kind)] = {
            "done": len(done),
            "failed": int((rows["status"] == "failed").sum()),
            "unit_hours": round(float(rows["wall_s"].fillna(0).sum()) / 3600, 4),
            "first_started": _iso((done["finished"] - done["wall_s"]).min()),
            "last_finished": _iso(done["finished"].max()),
        }
    return out


def _iso(stamp: float | None) -> str | None:
    if stamp is None or stamp != stamp:  # no unit, or NaN
        return None
    moment = datetime.datetime.fromtimestamp(float(stamp), datetime.timezone.utc)
    return moment.isoformat(timespec="seconds")


def _write_table(frame: pd.DataFrame, path: Path) -> dict[str, Any]:
    """Write ``frame`` as CSV; its manifest entry (file, rows, sha256, column dtypes)."""
    data = csv_safe(frame).to_csv(index=False, lineterminator="\n").encode("utf-8")
    path.write_bytes(data)
    return {
        "file": path.name,
        "rows": len(frame),
        "sha256": hashlib.sha256(data).hexdigest(),
        "columns": [[str(c), str(t)] for c, t in frame.dtypes.items()],
    }


def read_run_info(path: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """The run records of a JSON-lines file (one JSON object per line; blank lines skipped)."""
    where = Path(path)
    records = []
    try:
        lines = where.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"cannot read run records from {where} ({exc})") from None
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            record = None
        if not isinstance(record, dict):
            raise DataError(f"{where} line {number} is not a JSON object; one record per line")
        records.append(record)
    return records


def _snapshot(study_dir: Path, folder: Path) -> dict[str, str]:
    """Copy the store (SQLite's online backup) and ``artefacts/`` into ``folder``; return each
    copied file's path (relative to ``folder``) and SHA-256."""
    folder.mkdir(parents=True)
    source = sqlite3.connect(f"file:{(study_dir / STORE).as_posix()}?mode=ro", uri=True)
    target = sqlite3.connect(folder / STORE)
    try:
        source.backup(target)
    finally:
        source.close()
        target.close()
    for path in sorted((study_dir / "artefacts").rglob("*")):
        if path.is_file() and not path.name.startswith("."):
            copy = folder / path.relative_to(study_dir)
            copy.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, copy)
    return {
        path.relative_to(folder).as_posix(): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(folder.rglob("*"))
        if path.is_file()
    }


def restore_study(export: str | os.PathLike[str], study_dir: str | os.PathLike[str]) -> Path:
    """Recreate a study directory from a resumable export (``export_study(resumable=True)``):
    its store and checkpoints, each checked against the manifest. Rerunning the study's
    commands with ``--out study_dir`` then resumes where the exported study stood.

    Refuses a ``study_dir`` that already holds a store, and an export without ``resume/``.
    """
    source, target = Path(export), Path(study_dir)
    manifest = read_manifest(source)
    files = manifest.get("resume")
    if not files:
        raise StoreError(
            f"{source} is not a resumable export; export it with sparsernn export --resumable"
        )
    if (target / STORE).exists():
        raise StoreError(
            f"{target} already holds a study; restore into a new folder, or resume that one"
        )
    for name, digest in files.items():
        data = (source / RESUME / name).read_bytes()
        if hashlib.sha256(data).hexdigest() != digest:
            raise DataError(f"{source / RESUME / name} differs from its manifest; export again")
    target.mkdir(parents=True, exist_ok=True)
    for name in sorted(files, key=lambda n: n == STORE):  # the store last: then it is whole
        copy = target / name
        copy.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(copy, (source / RESUME / name).read_bytes())
    with ResultsStore.open(target) as store:
        store.set_meta(EXTERNAL_META, manifest.get("runs_external", []))  # travel with the store
        atomic_write_bytes(target / STUDY_TOML, study_toml(read_plans(store)).encode())
    return target
