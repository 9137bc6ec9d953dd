"""Lottery tickets: iterative magnitude pruning with rewinding (Frankle & Carbin 2019; late
rewinding to epoch k, Frankle et al. 2020, used for LSTMs by Yu et al. 2020).

Round ``r`` of ``R`` prunes the trained weights by magnitude to the cumulative sparsity
``1 - (1 - s) ** (r / R)`` (so each round removes the same fraction of what is left), then
rewinds the surviving weights to the rewind point (the initialisation, or the weights after
epoch k of the dense training) and retrains. The last round's rewound ticket is returned for its
final training, which the caller runs (its curve is the ticket's).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor, nn

from sparsernn.errors import ConfigError
from sparsernn.nn.masked import MaskedRNN
from sparsernn.sparsity.scores import (
    check_sparsity,
    install_masks,
    magnitude_scores,
    masks_from_scores,
)

__all__ = ["round_sparsities", "rewind_point", "rewind_", "lottery_ticket"]


def round_sparsities(sparsity: float, rounds: int) -> list[float]:
    """The cumulative sparsity after each of ``rounds`` rounds (the last is ``sparsity``)."""
    if rounds < 1:
        raise ConfigError(f"lottery rounds={rounds} must be >= 1")
    return [1 - (1 - sparsity) ** (r / rounds) for r in range(1, rounds)] + [sparsity]


def rewind_point(model: nn.Module) -> dict[str, Tensor]:
    """A copy of the model's parameters (not its masks): what :func:`rewind_` restores."""
    return {name: p.detach().clone() for name, p in model.named_parameters()}


@torch.no_grad()
def rewind_(model: nn.Module, point: dict[str, Tensor]) -> None:
    """Restore the parameters saved by :func:`rewind_point` bit for bit, keeping the masks
    (the masked entries are then zeroed again)."""
    params = dict(model.named_parameters())
    if set(params) != set(point):
        raise ConfigError("the rewind point was saved from a model with other parameters")
    for name, value in point.items():
        params[name].copy_(value)
    _zero_masked(model)


def _zero_masked(model: nn.Module) -> None:
    for module in model.modules():
        if isinstance(module, MaskedRNN):
            module.apply_masks_()


def lottery_ticket(
    model: nn.Module,
    sparsity: float,
    point: dict[str, Tensor],
    train: Callable[[nn.Module], object],
    *,
    rounds: int = 3,
    target: str = "both",
    scope: str = "global",
) -> dict[str, Tensor]:
    """Turn a trained ``model`` into its winning ticket in place; return the final masks.

    ``point``: the rewind weights (:func:`rewind_point` of the model at initialisation or at
    epoch k). ``train(model)`` retrains the rewound model between rounds (``rounds - 1``
    calls). On return the model holds the final mask and the rewound weights, ready for its
    final training from the rewind point.
    """
    check_sparsity(sparsity, target, scope)
    masks: dict[str, Tensor] = {}
    for r, s in enumerate(round_sparsities(sparsity, rounds), 1):
        _zero_masked(model)  # a training that let masked weights move does not count them
        scores = magnitude_scores(model, target)
        masks = install_masks(model, masks_from_scores(model, scores, s, target, scope))
        rewind_(model, point)
        if r < rounds:
            train(model)
    return masks
