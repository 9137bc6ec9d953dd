"""Magnitude pruning of recurrent weights (the study's rule) and a gradual AGP schedule: the
names this module has always offered, now living in :mod:`sparsernn.sparsity` (with the other
methods, the ``gate`` scope and :func:`~sparsernn.sparsity.sparsify`).
"""

from __future__ import annotations

from sparsernn.sparsity import (
    SCOPES,
    TARGETS,
    AGPSchedule,
    GradualPruner,
    magnitude_masks,
    magnitude_prune,
    sparsity_report,
)

__all__ = [
    "TARGETS",
    "SCOPES",
    "magnitude_prune",
    "magnitude_masks",
    "sparsity_report",
    "AGPSchedule",
    "GradualPruner",
]
