"""Dynamic sparse training at constant sparsity: SET (Mocanu et al. 2018) and RigL (Evci et al.
2020), with Selfish-RNN's redistribution across gates (Liu et al. 2021) as an option.

:class:`DynamicSparsity` is a per-step hook of the training engine (:data:`sparsernn.train.
StepHook`; train with ``reapply_masks=True`` so that Adam's momentum cannot revive a dropped
weight). Every ``update_every`` steps, in each block (a gate block of each matrix for scope
``gate``, else each matrix) it drops the active weights of smallest magnitude, a fraction that
decays along a cosine from ``drop_fraction`` to 0 at ``end_step``, and regrows as many inactive
ones: at random (SET) or those of largest dense gradient (RigL). The number of kept weights is
therefore constant, block by block, or (``redistribute=True``) in total while the regrowth is
shared among the blocks in proportion to the mean magnitude of their kept weights. Regrown
weights start at zero (as RigL's). Weights dropped in an update come back in the same update
only when a block has no other inactive entry.

:class:`SET` and :class:`RigL` are the two as methods (they differ only in how they regrow);
:class:`DynamicSparsity` is the engine both run, and a training hook itself.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Iterable
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from sparsernn.errors import ConfigError
from sparsernn.sparsity.base import Gradients, Masks, SparsityMethod, StudyUnit
from sparsernn.sparsity.scores import (
    check_sparsity,
    dense_gradients,
    gate_blocks,
    install_masks,
    masks_from_scores,
    random_scores,
    selected_weights,
)

__all__ = [
    "REGROWTH",
    "DynamicSparsity",
    "DynamicOptions",
    "SET",
    "RigL",
    "cosine_drop_fraction",
    "share_regrowth",
]

#: Regrowth rules: ``random`` (SET) or ``gradient`` (RigL).
REGROWTH = ("random", "gradient")

Batches = Callable[[], Iterable[tuple[Tensor, Tensor]]]


def cosine_drop_fraction(step: int, drop_fraction: float, end_step: int) -> float:
    """RigL's schedule: ``drop_fraction / 2 * (1 + cos(pi * step / end_step))``, 0 after the end."""
    if step >= end_step:
        return 0.0
    return drop_fraction / 2 * (1 + math.cos(math.pi * step / end_step))


def share_regrowth(total: int, weights: np.ndarray, capacity: np.ndarray) -> np.ndarray:
    """Split ``total`` regrown weights among blocks in proportion to ``weights`` (largest
    remainders first), never more than a block's ``capacity`` (its inactive entries)."""
    weights = np.where(capacity > 0, np.maximum(weights, 0.0), 0.0)
    if weights.sum() <= 0:
        weights = (capacity > 0).astype(float)
    ideal = total * weights / weights.sum()
    counts = np.minimum(np.floor(ideal).astype(int), capacity)
    order = np.argsort(-(ideal - np.floor(ideal)), kind="stable")
    while counts.sum() < total:
        spare = [i for i in order if counts[i] < capacity[i]]
        if not spare:
            break
        for i in spare[: total - counts.sum()]:
            counts[i] += 1
    return counts


@dataclasses.dataclass(eq=False)
class DynamicSparsity:
    """SET / RigL as a training hook: ``hook(step_index, model)`` after every optimizer step.

    Attributes
    ----------
    model : the model to train (its :class:`~sparsernn.nn.MaskedRNN` masks are the state).
    sparsity : fraction of the selected weights kept at zero throughout.
    target, scope : as in :func:`~sparsernn.sparsity.masks_from_scores`.
    regrow : ``"random"`` (SET) or ``"gradient"`` (RigL; needs ``batches``).
    update_every : optimizer steps between mask updates.
    drop_fraction : the fraction of active weights dropped at step 0 (cosine-decayed).
    end_step : no updates from this step on (RigL stops at 75% of training).
    redistribute : share the regrowth among blocks by their mean kept magnitude.
    batches : for RigL, returns the batches whose summed dense gradient scores regrowth.
    seed : seeds the initial random mask and SET's regrowth.
    gradients : for RigL instead of ``batches``, returns the dense gradients themselves.
    """

    model: nn.Module
    sparsity: float
    target: str = "both"
    scope: str = "gate"
    regrow: str = "random"
    update_every: int = 100
    drop_fraction: float = 0.3
    end_step: int = 1000
    redistribute: bool = False
    batches: Batches | None = None
    seed: int = 0
    gradients: Gradients | None = None
    n_updates: int = dataclasses.field(default=0, init=False)

    def __post_init__(self) -> None:
        check_sparsity(self.sparsity, self.target, self.scope)
        if self.regrow not in REGROWTH:
            raise ConfigError(
                f"unknown regrowth {self.regrow!r}; choose one of {', '.join(REGROWTH)}"
            )
        if self.regrow == "gradient" and self.batches is None and self.gradients is None:
            raise ConfigError("gradient regrowth (RigL) needs batches to compute gradients on")
        if self.update_every < 1 or not 0 <= self.drop_fraction <= 1 or self.end_step < 0:
            raise ConfigError("need update_every >= 1, drop_fraction in [0, 1], end_step >= 0")
        self._gen = torch.Generator().manual_seed(int(self.seed))

    def initial_masks(self) -> dict[str, Tensor]:
        """Install a random mask at :attr:`sparsity` (per block of the scope) and return it."""
        scores = random_scores(self.model, self.target, self.seed)
        masks = masks_from_scores(self.model, scores, self.sparsity, self.target, self.scope)
        return install_masks(self.model, masks)

    def __call__(self, step: int, model: nn.Module) -> None:
        fraction = self.fraction_at(step)
        if fraction is not None:
            self.update(fraction)

    def fraction_at(self, step: int) -> float | None:
        """The drop fraction of the update due after optimizer step ``step``; None: none due."""
        if (step + 1) % self.update_every or step >= self.end_step:
            return None
        return cosine_drop_fraction(step, self.drop_fraction, self.end_step)

    def generator_state(self) -> Tensor:
        """The state of the generator behind SET's regrowth (for an exact resume)."""
        return self._gen.get_state()

    def set_generator_state(self, state: Tensor) -> None:
        """Restore :meth:`generator_state`."""
        self._gen.set_state(state)

    def _blocks(self) -> list[tuple[str, slice]]:
        everything = slice(None)
        return [
            (qual, rows)
            for qual, mod, name in selected_weights(self.model, self.target)
            for _, rows in (gate_blocks(mod, name) if self.scope == "gate" else [("", everything)])
        ]

    def _grow_scores(self, weights: dict[str, Tensor]) -> dict[str, Tensor]:
        if self.regrow == "gradient":
            if self.gradients is not None:
                grads = self.gradients()
            else:
                assert self.batches is not None
                grads = dense_gradients(self.model, self.batches(), self.target)
            return {q: g.abs() for q, g in grads.items()}
        return {
            q: torch.rand(w.shape, generator=self._gen).to(w.device) for q, w in weights.items()
        }

    def update(self, fraction: float) -> int:
        """Drop ``fraction`` of each block's active weights and regrow as many; return the count."""
        masks, n_dropped = self.next_masks(fraction)
        install_masks(self.model, masks)
        return n_dropped

    @torch.no_grad()
    def next_masks(self, fraction: float) -> tuple[Masks, int]:
        """The masks after dropping ``fraction`` of each block's active weights and regrowing
        as many, and the number dropped (the model is not touched)."""
        selected = selected_weights(self.model, self.target)
        weights = {q: getattr(m, n).detach() for q, m, n in selected}
        masks = {q: getattr(m, f"{n}_mask").clone() for q, m, n in selected}
        blocks = self._blocks()
        dropped = {q: torch.zeros_like(masks[q]) for q in masks}
        n_drop = []
        for qual, rows in blocks:
            active = masks[qual][rows]
            k = int(fraction * int(active.sum()))
            n_drop.append(k)
            if k:
                score = weights[qual][rows].abs().masked_fill(~active, math.inf).flatten()
                idx = torch.topk(score, k, largest=False).indices
                dropped[qual][rows].view(-1)[idx] = True
                masks[qual][rows].view(-1)[idx] = False
        counts = self._regrowth_counts(blocks, masks, weights, np.array(n_drop))
        grow = self._grow_scores(weights)
        for (qual, rows), k in zip(blocks, counts, strict=True):
            if k:
                score = grow[qual][rows].double().clone()
                score[dropped[qual][rows]] = -1.0  # only when nothing else is left
                score[masks[qual][rows]] = -math.inf
                idx = torch.topk(score.flatten(), int(k)).indices
                masks[qual][rows].view(-1)[idx] = True
        self.n_updates += 1
        return masks, int(sum(n_drop))

    def _regrowth_counts(self, blocks, masks, weights, n_drop: np.ndarray) -> np.ndarray:
        """How many weights each block regrows: what it dropped, or a share of the total."""
        if not self.redistribute:
            return n_drop
        capacity = np.array([int((~masks[q][r]).sum()) for q, r in blocks])
        means = np.array(
            [
                float(weights[q][r][masks[q][r]].abs().mean()) if masks[q][r].any() else 0.0
                for q, r in blocks
            ]
        )
        return share_regrowth(int(n_drop.sum()), means, capacity)


@dataclasses.dataclass(frozen=True)
class DynamicOptions:
    """Every ``update_every`` optimizer steps before ``end_step``, drop a fraction of each
    block's active weights (``drop_fraction`` at step 0, cosine-decayed to 0 at ``end_step``)
    and regrow as many; ``redistribute`` shares the regrowth among the blocks by their mean
    kept magnitude (Selfish-RNN)."""

    update_every: int = 100
    drop_fraction: float = 0.3
    end_step: int = 1000
    redistribute: bool = False

    def __post_init__(self) -> None:
        if self.update_every < 1 or not 0 <= self.drop_fraction <= 1 or self.end_step < 0:
            raise ConfigError("need update_every >= 1, drop_fraction in [0, 1], end_step >= 0")
        if not isinstance(self.redistribute, bool):
            raise ConfigError(f"redistribute={self.redistribute!r} must be True or False")


class SET(SparsityMethod):
    """Sparse evolutionary training (Mocanu et al. 2018): a random sparse start, then drop the
    smallest active weights and regrow as many at random, at constant sparsity."""

    name = "set"
    summary = "dynamic sparse training, random regrowth"
    options_class = DynamicOptions
    from_scratch = True
    study_options = ("update_every", "drop_fraction", "redistribute")
    #: How the method regrows (:data:`REGROWTH`).
    regrow = "random"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        o = self.options
        self.engine = DynamicSparsity(
            self.model,
            self.sparsity,
            target=self.target,
            scope=self.scope,
            regrow=self.regrow,
            update_every=o.update_every,
            drop_fraction=o.drop_fraction,
            end_step=o.end_step,
            redistribute=o.redistribute,
            seed=self.seed,
            gradients=self.gradients if self.regrow == "gradient" else None,
        )

    def initial_masks(self) -> Masks | None:
        return self.engine.initial_masks()

    def update(self, step: int) -> Masks | None:
        fraction = self.engine.fraction_at(step)
        return None if fraction is None else self.engine.next_masks(fraction)[0]

    def state_dict(self) -> dict[str, Any]:
        return {"n_updates": self.engine.n_updates, "generator": self.engine.generator_state()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.engine.n_updates = int(state["n_updates"])
        self.engine.set_generator_state(state["generator"])

    @classmethod
    def options_for_study(cls, unit: StudyUnit) -> DynamicOptions:
        """The unit's options; updates end at 75% of the training steps."""
        return DynamicOptions(**unit.options, end_step=int(0.75 * unit.total_steps))

    @classmethod
    def for_study(cls, unit: StudyUnit) -> tuple[nn.Module, SparsityMethod | None]:
        """From the base model's initialisation with a random mask at the amount, one training
        of the base model's epochs with the mask updated; RigL regrows by the dense gradient
        of one random training batch."""
        model = unit.init_model()

        def gradients() -> dict[str, Tensor]:
            engine = method.engine
            batches = unit.batches(engine.seed + engine.n_updates, 1, "rigl")
            return dense_gradients(model, batches, unit.target)

        method = cls(
            model,
            unit.sparsity,
            unit.target,
            unit.scope,
            cls.options_for_study(unit),
            seed=unit.seed_for(cls.name),
            gradients=gradients,
        )
        method.start()
        return model, method


class RigL(SET):
    """RigL (Evci et al. 2020): as :class:`SET`, but regrowing the inactive weights of largest
    dense gradient (in a user's loop, that of the backward passes since the last step)."""

    name = "rigl"
    summary = "dynamic sparse training, regrowth by gradient magnitude"
    regrow = "gradient"
    uses_gradients = True
