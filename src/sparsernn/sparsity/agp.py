"""Automated gradual pruning (Zhu & Gupta 2017) as a sparsity method: a schedule that answers
"what sparsity at step t" and a training hook that prunes by a scoring rule when it says so."""

from __future__ import annotations

import dataclasses

from torch import Tensor, nn

from sparsernn.errors import ConfigError
from sparsernn.sparsity.scores import (
    check_sparsity,
    install_masks,
    magnitude_scores,
    masks_from_scores,
    random_scores,
)

__all__ = ["AGPSchedule", "GradualPruner"]


@dataclasses.dataclass(frozen=True)
class AGPSchedule:
    """Zhu & Gupta (2017) automated gradual pruning: s_t = s_f + (s_i - s_f)(1 - t/T)^3.

    Sparsities are fractions in [0, 1]; pruning happens every ``frequency`` steps from
    ``start`` for ``n_steps`` steps, after which the sparsity stays at ``final``.
    """

    initial: float = 0.0
    final: float = 0.8
    n_steps: int = 100
    start: int = 0
    frequency: int = 1

    def __post_init__(self) -> None:
        if not (0 <= self.initial <= 1 and 0 <= self.final <= 1):
            raise ConfigError("AGP sparsities must be fractions in [0, 1]")
        if self.n_steps < 1 or self.frequency < 1 or self.start < 0:
            raise ConfigError("AGP n_steps and frequency must be >= 1 and start >= 0")

    def sparsity(self, step: int) -> float:
        """Target sparsity (fraction) at optimisation step ``step``."""
        t = min(max(step - self.start, 0), self.n_steps)
        return self.final + (self.initial - self.final) * (1 - t / self.n_steps) ** 3

    def is_pruning_step(self, step: int) -> bool:
        """Whether the schedule prunes at ``step`` (every ``frequency`` steps of its span)."""
        t = step - self.start
        return 0 <= t <= self.n_steps and t % self.frequency == 0


class GradualPruner:
    """Follow an :class:`AGPSchedule`: call :meth:`step` after each optimiser step, or pass the
    pruner as an ``on_step`` hook of :func:`sparsernn.train.fit` (with ``reapply_masks=True``).

    ``score``: ``"magnitude"`` (the default) or ``"random"`` (seeded by ``seed`` and the step).
    """

    def __init__(
        self,
        model: nn.Module,
        schedule: AGPSchedule,
        target: str = "both",
        scope: str = "global",
        *,
        score: str = "magnitude",
        seed: int = 0,
    ) -> None:
        check_sparsity(0, target, scope)
        if score not in ("magnitude", "random"):
            raise ConfigError(f"AGP scores weights by magnitude or random, not {score!r}")
        self.model, self.schedule, self.target, self.scope = model, schedule, target, scope
        self.score, self.seed = score, seed
        self.step_count = 0

    def _scores(self) -> dict[str, Tensor]:
        if self.score == "random":
            return random_scores(self.model, self.target, self.seed + self.step_count)
        return magnitude_scores(self.model, self.target)

    def step(self) -> float | None:
        """Advance one step; prune when the schedule says so and return the target sparsity."""
        s = None
        if self.schedule.is_pruning_step(self.step_count):
            s = self.schedule.sparsity(self.step_count)
            masks = masks_from_scores(self.model, self._scores(), s, self.target, self.scope)
            install_masks(self.model, masks)
        self.step_count += 1
        return s

    def __call__(self, step: int, model: nn.Module) -> None:
        """The :data:`~sparsernn.train.StepHook` form of :meth:`step`."""
        self.step()
