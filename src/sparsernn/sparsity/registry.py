"""The sparsity methods by name: the one table every caller dispatches through.

:func:`~sparsernn.sparsity.sparsify` (a user's own loop), ``sparsernn prune --method`` (the
study's pruning units, :mod:`sparsernn.experiments.methods`) and the docs all look a method up
here. A new method is one class in its own file (:class:`~sparsernn.sparsity.SparsityMethod`)
and one line below.
"""

from __future__ import annotations

from types import MappingProxyType

from sparsernn.errors import ConfigError
from sparsernn.sparsity.agp import AGP
from sparsernn.sparsity.base import SparsityMethod
from sparsernn.sparsity.dynamic import SET, RigL
from sparsernn.sparsity.lottery import Lottery
from sparsernn.sparsity.oneshot import SNIP, Magnitude, Random
from sparsernn.sparsity.patterns import NM, Units

__all__ = ["METHODS", "STUDY_METHODS", "method_class"]

#: Every method by name, in the order tables list them.
METHODS: MappingProxyType[str, type[SparsityMethod]] = MappingProxyType(
    {
        cls.name: cls
        for cls in (
            Magnitude,
            Random,
            SNIP,
            AGP,
            Lottery,
            SET,
            RigL,
            NM,
            Units,
        )
    }
)
#: The methods ``sparsernn prune --method`` runs (those with :attr:`SparsityMethod.study_options`).
STUDY_METHODS: tuple[str, ...] = tuple(
    name for name, cls in METHODS.items() if cls.study_options is not None
)


def method_class(name: str) -> type[SparsityMethod]:
    """The class of method ``name``, or one line naming the known ones."""
    try:
        return METHODS[name]
    except (KeyError, TypeError):
        raise ConfigError(
            f"unknown sparsity method {name!r}; choose one of {', '.join(METHODS)}"
        ) from None
