"""Studies: configs and profiles, units of work, the resumable runner and result loading."""

from sparsernn.experiments.config import (
    PROFILES,
    PruningConfig,
    StructureConfig,
    StudyConfig,
    load_study_config,
    profile,
)
from sparsernn.experiments.results import StudyResults, load_results
from sparsernn.experiments.runner import StudyRun, run_study
from sparsernn.experiments.units import Unit, plan_units

__all__ = [
    "StudyConfig",
    "PruningConfig",
    "StructureConfig",
    "PROFILES",
    "profile",
    "load_study_config",
    "run_study",
    "StudyRun",
    "load_results",
    "StudyResults",
    "Unit",
    "plan_units",
]
