"""Lottery tickets: iterative magnitude pruning with rewinding (Frankle & Carbin 2019; late
rewinding to epoch k, Frankle et al. 2020, used for LSTMs by Yu et al. 2020).

Round ``r`` of ``R`` prunes the trained weights by magnitude to the cumulative sparsity
``1 - (1 - s) ** (r / R)`` (so each round removes the same fraction of what is left), then
rewinds the surviving weights to the rewind point (the initialisation, or the weights after
epoch k of the dense training) and retrains. The last round's rewound ticket is returned for its
final training, which the caller runs (its curve is the ticket's).

:class:`Lottery` is the same as a method in a user's own loop: the model trains dense for
``round_steps`` steps, is pruned and rewound, trains again, ... ``rounds`` times; then the
ticket trains on. The optimizer's moments are not reset at a rewind (only those of pruned
weights are zeroed); a study's rounds each make a fresh optimizer.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor, nn

from sparsernn.errors import ConfigError
from sparsernn.nn.masked import MaskedRNN
from sparsernn.sparsity.base import Masks, SparsityMethod, StudyUnit
from sparsernn.sparsity.scores import (
    check_sparsity,
    install_masks,
    magnitude_scores,
    masks_from_scores,
)

__all__ = [
    "round_sparsities",
    "rewind_point",
    "rewind_",
    "lottery_ticket",
    "LotteryOptions",
    "Lottery",
]


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


@dataclasses.dataclass(frozen=True)
class LotteryOptions:
    """``rounds`` rounds of ``round_steps`` optimizer steps each; the weights are rewound to
    those after ``rewind_step`` steps (0: when the model is sparsified)."""

    rounds: int = 3
    round_steps: int = 1000
    rewind_step: int = 0

    def __post_init__(self) -> None:
        if self.rounds < 1 or self.round_steps < 1:
            raise ConfigError("lottery rounds and round_steps must be >= 1")
        if not 0 <= self.rewind_step < self.round_steps:
            raise ConfigError(
                f"rewind_step={self.rewind_step} must be in [0, round_steps={self.round_steps})"
            )


class Lottery(SparsityMethod):
    """Iterative magnitude pruning with rewinding (a lottery ticket)."""

    name = "lottery"
    summary = "iterative magnitude pruning with rewinding, retrained from the rewind"
    options_class = LotteryOptions
    from_scratch = True
    study_options = ("rounds", "rewind_epoch")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._sparsities = round_sparsities(self.sparsity, self.options.rounds)
        self.point = rewind_point(self.model) if self.options.rewind_step == 0 else None

    def update(self, step: int) -> Masks | None:
        done = step + 1
        if done == self.options.rewind_step:
            self.point = rewind_point(self.model)
        round_, rest = divmod(done, self.options.round_steps)
        if rest or not 1 <= round_ <= self.options.rounds:
            return None
        assert self.point is not None  # saved at rewind_step < round_steps
        s = self._sparsities[round_ - 1]
        scores = magnitude_scores(self.model, self.target)
        masks = masks_from_scores(self.model, scores, s, self.target, self.scope)
        rewind_(self.model, self.point)
        return masks

    def state_dict(self) -> dict[str, Any]:
        return {"point": self.point}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.point = state["point"]

    @classmethod
    def for_study(cls, unit: StudyUnit) -> tuple[nn.Module, SparsityMethod | None]:
        """From the trained base model, ``rounds`` rounds of magnitude pruning, each followed
        by rewinding to the base model's initialisation (``rewind_epoch = 0``) or to its
        weights after ``rewind_epoch`` epochs (recomputed: the same seed, init and batch
        order), and training for the base model's epochs; the last round's ticket is the
        unit's training."""
        start = unit.init_model()
        if unit.options["rewind_epoch"]:
            unit.train(start, epochs=unit.options["rewind_epoch"])
        lottery_ticket(
            unit.model,
            unit.sparsity,
            rewind_point(start),
            unit.train,
            rounds=unit.options["rounds"],
            target=unit.target,
            scope=unit.scope,
        )
        return unit.model, None
