"""``sparsernn status`` and ``sparsernn verify``: what a study directory holds, and whether its
results store is sound."""

from __future__ import annotations

import os
import shlex
from pathlib import Path

from sparsernn.errors import ConfigError
from sparsernn.experiments.plans import read_plans
from sparsernn.store import STORE_FILENAME, ResultsStore, repair

__all__ = ["duration", "study_status", "verify_study"]


def duration(seconds: float) -> str:
    """A time span as one short token: ``12s``, ``2m36s``, ``3h05m``, ``2d04h``."""
    s = max(0, round(float(seconds)))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    if s < 86400:
        return f"{s // 3600}h{s % 3600 // 60:02d}m"
    return f"{s // 86400}d{s % 86400 // 3600:02d}h"


def study_store(study_dir: str | os.PathLike[str]) -> Path:
    """The study directory of ``study_dir`` (itself, or the folder of a results file given
    instead), checked to hold a results store."""
    path = Path(study_dir)
    if path.name == STORE_FILENAME and path.is_file():
        path = path.parent
    if not (path / STORE_FILENAME).exists():
        raise ConfigError(
            f"{study_dir} holds no {STORE_FILENAME}; start a study with --out "
            f"{shlex.quote(str(study_dir))}"
        )
    return path


def study_status(study_dir: str | os.PathLike[str]) -> str:
    """A short text summary: units done/failed/pending per kind and time spent.

    Each kind is counted against the plan that last planned it (see
    :mod:`sparsernn.experiments.plans`), so units of other commands' configs are neither
    done nor pending there; a kind stored without a known plan counts its stored units.
    Times are the units' own wall time summed (``2m36s``), not the study's wall time.
    """
    path = study_store(study_dir)
    with ResultsStore.open(path, readonly=True) as store:
        plans = read_plans(store)
        summary = store.summary()
        stored = {kind: store.keys(kind) for kind in summary["by_kind"]}
        done, failed = store.keys(status="done"), store.keys(status="failed")
    lines = [f"study {path}", f"{'kind':>10} {'done':>6} {'failed':>6} {'pending':>7} {'time':>7}"]
    for kind in sorted(set(plans) | set(stored)):
        plan = plans.get(kind)
        mine = stored.get(kind, set()) if plan is None or plan.keys is None else plan.keys
        n_done, n_failed = len(mine & done), len(mine & failed)
        pending = len(mine) - n_done - n_failed
        wall = summary["by_kind"].get(kind, {}).get("wall_s", 0.0) or 0.0
        lines.append(f"{kind:>10} {n_done:>6} {n_failed:>6} {pending:>7} {duration(wall):>7}")
    lines.append(f"total time spent in units: {duration(summary.get('wall_s') or 0)}")
    return "\n".join(lines)


def verify_study(study_dir: str | os.PathLike[str], fix: bool = False) -> tuple[list[str], bool]:
    """Check a study directory's results store: (the lines to print, whether it is sound).

    One line per problem (SQLite's ``integrity_check``, then every row against its checksum
    and the shape of its columns), then a summary line. ``fix``: set the damaged rows aside
    (:func:`sparsernn.store.repair`; the damaged file is kept beside it) and say so; the
    store is then sound, and a rerun of the study recomputes what was set aside.
    """
    from sparsernn._storefile import DamagedStore

    path = study_store(study_dir)
    if fix:
        check, backup = repair(path)
    else:
        try:
            with ResultsStore.open(path, readonly=True) as store:
                check = store.verify()
        except DamagedStore as exc:
            return [f"damaged: {exc}"], False
        backup = None
    lines = [f"damaged: {problem}" for problem in check.problems]
    where = check.path
    if check.ok:
        unchecked = f" ({check.unverified} written before checksums)" if check.unverified else ""
        lines.append(f"{where}: sound: {check.units} units, {check.meta} meta entries{unchecked}")
        return lines, True
    if backup is None:
        lines.append(
            f"{where}: {len(check.problems)} problem(s); `sparsernn verify "
            f"{shlex.quote(str(path))} --repair` sets "
            "the damaged units aside (the file is kept) and a rerun recomputes them"
        )
        return lines, False
    lines.append(
        f"{where}: repaired: the damaged rows are set aside and the old file kept as "
        f"{backup.name}; rerun the study's command to recompute the units set aside"
    )
    return lines, True
