"""The run keys of the three profiles' plans, pinned: no refactor may strand a stored study.

A unit's key is the hash of its config; a study directory finds its finished units by key.
``run_keys.json`` holds every key the ``smoke``, ``quick`` and ``full`` profiles plan (and a
digest of the full profile with seeds 0, 1, 2, the run behind ``results/full``), written at
commit 5494b15. If this test fails, a change altered what identifies a unit: every study
stored before it would rerun from scratch. Keep the old keys (drop the new field at its
default, see ``Config.to_dict``) instead of regenerating the file.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path

import pytest

from sparsernn.experiments.config import profile
from sparsernn.experiments.units import plan_units

PINNED = json.loads((Path(__file__).with_name("run_keys.json")).read_text())


def _keys(name: str, seeds: tuple[int, ...] | None = None) -> list[str]:
    study = profile(name)
    if seeds is not None:
        study = dataclasses.replace(study, seeds=seeds)
    return [f"{unit.kind}:{unit.key}" for unit in plan_units(study)]


@pytest.mark.parametrize("name", ["smoke", "quick", "full"])
def test_profile_run_keys_are_pinned(name: str):
    keys = _keys(name)
    pinned = PINNED[name]
    assert len(keys) == len(pinned)
    missing = sorted(set(pinned) - set(keys))
    assert not missing, f"{len(missing)} pinned keys no longer planned, e.g. {missing[:3]}"
    assert keys == pinned  # same order too: bases before the pruning units that need them


def test_three_seed_full_study_keys_are_pinned():
    keys = _keys("full", seeds=(0, 1, 2))
    digest = hashlib.sha256("\n".join(keys).encode()).hexdigest()
    assert (len(keys), digest) == (
        PINNED["full_seeds_0_1_2"]["n"],
        PINNED["full_seeds_0_1_2"]["sha256"],
    )
