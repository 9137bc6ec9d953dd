"""What each command planned in a study directory, recorded once: per kind, its config and keys.

A study directory may be written by several commands (``sparsernn prune`` then ``sparsernn
structure``, a rerun with other retraining epochs, ...). Each :func:`run_study
<sparsernn.experiments.run_study>` records, for every kind of unit it plans (``base``,
``prune``, ``structure``), the study config that planned it and its units' keys, in the meta
entry ``plan:<kind>`` = ``{"config": StudyConfig.to_dict(), "keys": [...]}``; a later command
that plans a kind replaces that kind's plan only. ``status``, :func:`load_results
<sparsernn.experiments.load_results>` and the report read these records instead of planning
again, so a study's files need not be at hand to read it.

``study.toml`` is written from the records: one ``[[plan]]`` table per distinct config, with
the ``kinds`` it planned, so that ``sparsernn reproduce --config DIR/study.toml --out DIR``
runs again exactly what the directory holds (and stores no new unit).

Stores written before plans were recorded (meta ``study``, ``study:<kind>``, ``keys:<kind>``,
``kinds``) are read through a fallback that plans their units again from the recorded config.
"""

from __future__ import annotations

import dataclasses
import sys
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from sparsernn._files import atomic_write_bytes
from sparsernn.errors import SparsernnError
from sparsernn.experiments.config import KINDS, StudyConfig, study_from_store

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

if TYPE_CHECKING:
    from sparsernn.experiments.units import Unit
    from sparsernn.store import ResultsStore

__all__ = ["STUDY_TOML", "Plan", "planned_kinds", "read_plans", "record_plans", "study_toml"]

#: The file in a study directory that reruns what the directory holds.
STUDY_TOML = "study.toml"

_TOML_HEADER = """\
# What this study directory holds: one [[plan]] per study config that planned units here,
# with the kinds of unit it planned (written by sparsernn; a later command that plans a kind
# replaces that kind's plan). Rerun all of it, storing no new unit, with
#     sparsernn reproduce --config study.toml --out <this directory>

"""


@dataclasses.dataclass(frozen=True)
class Plan:
    """One kind's plan: the config (``StudyConfig.to_dict()``) of the command that planned it,
    and its units' keys (None when unknown: then every stored unit of the kind counts)."""

    config: dict[str, Any]
    keys: frozenset[str] | None


def planned_kinds(study: StudyConfig, kinds: Iterable[str] | None = None) -> tuple[str, ...]:
    """The kinds a run of ``study`` plans: those of ``kinds`` (default: all) it enables."""
    enabled = {"base": True, "prune": study.pruning.enabled, "structure": study.structure.enabled}
    wanted = KINDS if kinds is None else tuple(kinds)
    return tuple(kind for kind in KINDS if enabled[kind] and kind in wanted)


def record_plans(
    store: ResultsStore, study: StudyConfig, units: list[Unit], kinds: Iterable[str]
) -> dict[str, Plan]:
    """Record ``study`` as the plan of each of ``kinds`` and as the last command's ``study``
    (one transaction); rewrite ``study.toml``; return every kind's plan after the change.

    The other kinds keep their plans (those of an older store are carried over as records).
    """
    plans = read_plans(store)
    config = study.to_dict()
    for kind in kinds:
        plans[kind] = Plan(config, frozenset(unit.key for unit in units if unit.kind == kind))
    plans = {kind: plans[kind] for kind in KINDS if kind in plans}
    records = {f"plan:{kind}": _record(plan) for kind, plan in plans.items()}
    store.update_meta({"study": config, **records})
    atomic_write_bytes(store.study_dir / STUDY_TOML, study_toml(plans).encode())
    return plans


def _record(plan: Plan) -> dict[str, Any]:
    """A plan as its meta record stores it (keys sorted; None when unknown)."""
    return {"config": plan.config, "keys": None if plan.keys is None else sorted(plan.keys)}


def read_plans(store: ResultsStore) -> dict[str, Plan]:
    """Each planned kind's :class:`Plan`, in :data:`KINDS` order (kinds never planned: absent).

    A store with no plan record at all is read as older versions wrote it (meta ``study``,
    ``kinds``, ``study:<kind>``, ``keys:<kind>``).
    """
    records = {kind: store.get_meta(f"plan:{kind}") for kind in KINDS}
    if all(record is None for record in records.values()):
        legacy = {kind: _legacy_plan(store, kind) for kind in KINDS}
        return {kind: plan for kind, plan in legacy.items() if plan is not None}
    return {
        kind: Plan(record["config"], None if record["keys"] is None else frozenset(record["keys"]))
        for kind, record in records.items()
        if record is not None
    }


def _legacy_plan(store: ResultsStore, kind: str) -> Plan | None:
    """A kind's plan in a store from before ``plan:<kind>``: its ``study:<kind>`` config (or
    the last run's ``study`` if that run planned the kind) and the keys stored or planned."""
    config = store.get_meta(f"study:{kind}")
    if config is None:
        ran = store.get_meta("kinds")
        config = store.get_meta("study") if ran is None or kind in ran else None
    if not config:
        return None
    study = study_from_store(config)
    if kind not in planned_kinds(study):
        return None
    keys = store.get_meta(f"keys:{kind}")
    if keys is None:
        keys = _replanned(study, kind)
    return Plan(study.to_dict(), None if keys is None else frozenset(keys))


def _replanned(study: StudyConfig, kind: str) -> list[str] | None:
    """The keys ``study`` plans for ``kind``, or None when its files cannot be read now."""
    from sparsernn.experiments.units import plan_units

    try:
        return [unit.key for unit in plan_units(study) if unit.kind == kind]
    except SparsernnError:  # its files moved or changed: every stored unit of the kind counts
        return None


def study_toml(plans: Mapping[str, Plan]) -> str:
    """``plans`` as TOML: one ``[[plan]]`` table per distinct config, with its ``kinds``."""
    import tomli_w

    groups: dict[str, tuple[list[str], StudyConfig]] = {}
    for kind, plan in plans.items():
        study = StudyConfig.from_dict(plan.config)  # records of older versions made canonical
        groups.setdefault(study.key, ([], study))[0].append(kind)
    tables = [
        {"kinds": kinds, **tomllib.loads(study.to_toml())} for kinds, study in groups.values()
    ]
    return _TOML_HEADER + tomli_w.dumps({"plan": tables})
