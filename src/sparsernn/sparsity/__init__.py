"""Sparsity methods for recurrent networks, and :func:`sparsify` for any model holding
``torch.nn.RNN/GRU/LSTM`` layers (jaxpruner's split, for RNNs in PyTorch).

A method is one class (:class:`SparsityMethod`: initial masks, a per-step update, its options
dataclass) built from small pieces: a scoring rule (which weights to keep:
:mod:`~sparsernn.sparsity.scores`), an optional schedule (:class:`AGPSchedule`, the rounds of
a lottery ticket) and an optional regrowth rule (:class:`DynamicSparsity`). Scopes ``global``
/ ``layer`` / ``gate`` and targets ``both`` / ``i2h`` / ``h2h`` are the same for all.
:data:`METHODS` names them, and is the one table :func:`sparsify`, ``sparsernn prune
--method`` and the docs look a method up in.
"""

from __future__ import annotations

from sparsernn.sparsity import (
    agp,
    base,
    dynamic,
    lottery,
    oneshot,
    patterns,
    registry,
    report,
    scores,
    sparsifier,
)
from sparsernn.sparsity.agp import *  # noqa: F403 - the public names, listed in __all__
from sparsernn.sparsity.base import *  # noqa: F403
from sparsernn.sparsity.dynamic import *  # noqa: F403
from sparsernn.sparsity.lottery import *  # noqa: F403
from sparsernn.sparsity.oneshot import *  # noqa: F403
from sparsernn.sparsity.patterns import *  # noqa: F403
from sparsernn.sparsity.registry import *  # noqa: F403
from sparsernn.sparsity.report import *  # noqa: F403
from sparsernn.sparsity.scores import *  # noqa: F403
from sparsernn.sparsity.sparsifier import *  # noqa: F403

__all__ = [
    *registry.__all__,
    *sparsifier.__all__,
    *base.__all__,
    *scores.__all__,
    *report.__all__,
    *oneshot.__all__,
    *agp.__all__,
    *lottery.__all__,
    *dynamic.__all__,
    *patterns.__all__,
]
