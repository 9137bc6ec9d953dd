"""Sparsity methods for recurrent networks, on the ``weight_*_mask`` buffers of
:class:`~sparsernn.nn.MaskedRNN` only (jaxpruner's split, for RNNs in PyTorch).

A method is a scoring rule (which weights to keep: :mod:`~sparsernn.sparsity.scores`), an
optional schedule (when sparsity changes: :class:`AGPSchedule`, the rounds of a lottery
ticket) and an optional regrowth rule (which pruned weights return:
:class:`DynamicSparsity`). Scopes ``global`` / ``layer`` / ``gate`` and targets
``both`` / ``i2h`` / ``h2h`` are the same for all. :data:`METHODS` names them, with what a
study's pruning unit trains for each (``sparsernn prune --method M``).
"""

from __future__ import annotations

import dataclasses
from types import MappingProxyType

from sparsernn.sparsity import agp, dynamic, lottery, patterns, scores
from sparsernn.sparsity.agp import *  # noqa: F403 - the public names, listed in __all__
from sparsernn.sparsity.dynamic import *  # noqa: F403
from sparsernn.sparsity.lottery import *  # noqa: F403
from sparsernn.sparsity.patterns import *  # noqa: F403
from sparsernn.sparsity.scores import *  # noqa: F403

__all__ = ["Method", "METHODS", "STUDY_METHODS"]
__all__ += [*scores.__all__, *agp.__all__, *dynamic.__all__, *lottery.__all__, *patterns.__all__]


@dataclasses.dataclass(frozen=True)
class Method:
    """One sparsity method: its scoring rule, schedule and regrowth, and what a study's pruning
    unit trains for it (``from_scratch``: from the base model's initialisation, for the base
    training's epochs, instead of retraining the trained base model ``retrain_epochs``)."""

    name: str
    score: str
    schedule: str | None = None
    regrow: str | None = None
    from_scratch: bool = False
    summary: str = ""


METHODS = MappingProxyType(
    {
        m.name: m
        for m in (
            Method("magnitude", "magnitude", summary="one shot on the trained model, |w|"),
            Method("random", "random", summary="one shot, uniformly random (the control)"),
            Method("snip", "snip", summary="one shot, |w * dL/dw| on a few training batches"),
            Method("agp", "magnitude", "agp", summary="gradual (cubic) during retraining"),
            Method(
                "lottery",
                "magnitude",
                "rounds",
                from_scratch=True,
                summary="iterative magnitude pruning with rewinding, retrained from the rewind",
            ),
            Method(
                "set",
                "random",
                regrow="random",
                from_scratch=True,
                summary="dynamic sparse training, random regrowth",
            ),
            Method(
                "rigl",
                "random",
                regrow="gradient",
                from_scratch=True,
                summary="dynamic sparse training, regrowth by gradient magnitude",
            ),
            Method("nm", "nm", summary="N:M pattern along the input dimension"),
            Method("units", "units", summary="whole hidden units, exportable to torch.nn"),
        )
    }
)
#: The methods ``sparsernn prune --method`` runs.
STUDY_METHODS: tuple[str, ...] = ("magnitude", "random", "snip", "agp", "lottery", "set", "rigl")
