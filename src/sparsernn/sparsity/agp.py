"""Automated gradual pruning (Zhu & Gupta 2017) as a sparsity method: a schedule that answers
"what sparsity at step t" (:class:`AGPSchedule`) and the method that prunes by a scoring rule
when it says so (:class:`AGP`; :class:`GradualPruner` is its training-hook form)."""

from __future__ import annotations

import dataclasses
from typing import Any

from torch import Tensor, nn

from sparsernn.errors import ConfigError
from sparsernn.sparsity.base import Masks, SparsityMethod, StudyUnit
from sparsernn.sparsity.scores import magnitude_scores, masks_from_scores, random_scores

__all__ = ["AGPSchedule", "AGPOptions", "AGP", "GradualPruner"]


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


@dataclasses.dataclass(frozen=True)
class AGPOptions:
    """Prune every ``update_every`` optimizer steps from step ``start`` for ``n_steps`` steps,
    from ``initial`` sparsity up to the method's along the cubic; ``score``: ``"magnitude"``
    or ``"random"`` (seeded by the method's seed and the step)."""

    n_steps: int = 1000
    start: int = 0
    update_every: int = 100
    initial: float = 0.0
    score: str = "magnitude"

    def __post_init__(self) -> None:
        if self.score not in ("magnitude", "random"):
            raise ConfigError(f"AGP scores weights by magnitude or random, not {self.score!r}")
        self.schedule(0.0)  # validates the numbers

    def schedule(self, final: float) -> AGPSchedule:
        """The :class:`AGPSchedule` up to ``final``."""
        return AGPSchedule(self.initial, final, self.n_steps, self.start, self.update_every)


class AGP(SparsityMethod):
    """Automated gradual pruning: the sparsity rises along Zhu & Gupta's cubic while training.

    In a study, the trained base model is retrained ``retrain_epochs`` while the sparsity rises
    from 0 to the amount, pruning by magnitude every ``update_every`` steps and reaching the
    amount at 75% of the retraining steps.
    """

    name = "agp"
    summary = "gradual (cubic) during (re)training"
    options_class = AGPOptions
    study_options = ("update_every",)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.schedule = self.options.schedule(self.sparsity)

    def _scores(self, step: int) -> dict[str, Tensor]:
        if self.options.score == "random":
            return random_scores(self.model, self.target, self.seed + step)
        return magnitude_scores(self.model, self.target)

    def update(self, step: int) -> Masks | None:
        if not self.schedule.is_pruning_step(step):
            return None
        s = self.schedule.sparsity(step)
        return masks_from_scores(self.model, self._scores(step), s, self.target, self.scope)

    @classmethod
    def options_for_study(cls, unit: StudyUnit) -> AGPOptions:
        """Reach the amount at 75% of the retraining steps, on a multiple of the interval."""
        three_quarters = int(0.75 * unit.total_steps)
        every = max(1, min(unit.options["update_every"], three_quarters))
        span = max(every, three_quarters // every * every)
        return AGPOptions(n_steps=span, update_every=every)


class GradualPruner:
    """Follow an :class:`AGPSchedule`: call :meth:`step` after each optimiser step, or pass the
    pruner as an ``on_step`` hook of :func:`sparsernn.train.fit` (with ``reapply_masks=True``).

    ``score``: ``"magnitude"`` (the default) or ``"random"`` (seeded by ``seed`` and the step).
    The :class:`AGP` method with its options taken from ``schedule``.
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
        options = AGPOptions(
            n_steps=schedule.n_steps,
            start=schedule.start,
            update_every=schedule.frequency,
            initial=schedule.initial,
            score=score,
        )
        self.method = AGP(model, schedule.final, target, scope, options, seed=seed)
        self.model, self.schedule, self.target, self.scope = model, schedule, target, scope
        self.step_count = 0

    def step(self) -> float | None:
        """Advance one step; prune when the schedule says so and return the target sparsity."""
        s = None
        if self.schedule.is_pruning_step(self.step_count):
            s = self.schedule.sparsity(self.step_count)
            self.method(self.step_count, self.model)
        self.step_count += 1
        return s

    def __call__(self, step: int, model: nn.Module) -> None:
        """The :data:`~sparsernn.train.StepHook` form of :meth:`step`."""
        self.step()
