"""Studies: configs and profiles, units of work, the resumable runner and result loading."""

from sparsernn.experiments.config import (
    KINDS,
    PROFILES,
    PruningConfig,
    StructureConfig,
    StudyConfig,
    load_study_config,
    load_study_plans,
    profile,
)
from sparsernn.experiments.plans import Plan, read_plans
from sparsernn.experiments.results import StudyResults, load_results
from sparsernn.experiments.runner import StudyRun, run_study
from sparsernn.experiments.status import study_status
from sparsernn.experiments.units import Unit, plan_units

__all__ = [
    "StudyConfig",
    "PruningConfig",
    "StructureConfig",
    "PROFILES",
    "profile",
    "load_study_config",
    "load_study_plans",
    "KINDS",
    "run_study",
    "StudyRun",
    "load_results",
    "StudyResults",
    "Unit",
    "plan_units",
    "Plan",
    "read_plans",
    "study_status",
]
