"""``sparsernn status``: per kind of unit, how many of its plan are done, failed and pending."""

from __future__ import annotations

import os
from pathlib import Path

from sparsernn.errors import ConfigError
from sparsernn.experiments.plans import read_plans
from sparsernn.store import STORE_FILENAME, ResultsStore

__all__ = ["study_status"]


def study_status(study_dir: str | os.PathLike[str]) -> str:
    """A short text summary: units done/failed/pending per kind and time spent.

    Each kind is counted against the plan that last planned it (see
    :mod:`sparsernn.experiments.plans`), so units of other commands' configs are neither
    done nor pending there; a kind stored without a known plan counts its stored units.
    """
    path = Path(study_dir)
    if not (path / STORE_FILENAME).exists():
        raise ConfigError(
            f"{study_dir} holds no {STORE_FILENAME}; start a study with --out {study_dir}"
        )
    with ResultsStore.open(path, readonly=True) as store:
        plans = read_plans(store)
        summary = store.summary()
        stored = {kind: store.keys(kind) for kind in summary["by_kind"]}
        done, failed = store.keys(status="done"), store.keys(status="failed")
    lines = [f"study {path}", f"{'kind':>10} {'done':>6} {'failed':>6} {'pending':>7} {'hours':>7}"]
    for kind in sorted(set(plans) | set(stored)):
        plan = plans.get(kind)
        mine = stored.get(kind, set()) if plan is None or plan.keys is None else plan.keys
        n_done, n_failed = len(mine & done), len(mine & failed)
        pending = len(mine) - n_done - n_failed
        wall = summary["by_kind"].get(kind, {}).get("wall_s", 0.0) or 0.0
        lines.append(f"{kind:>10} {n_done:>6} {n_failed:>6} {pending:>7} {wall / 3600:>7.2f}")
    lines.append(f"total time spent in units: {(summary.get('wall_s') or 0) / 3600:.2f} h")
    return "\n".join(lines)
