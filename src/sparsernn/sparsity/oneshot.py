"""One-shot pruning: magnitude (the study's rule), random (the control) and SNIP.

The three differ only in their score (:mod:`~sparsernn.sparsity.scores`): each prunes once,
to the asked sparsity by :func:`~sparsernn.sparsity.masks_from_scores`, and keeps the mask.
In a study that happens to the trained base model, which is then retrained; in a user's loop
it happens when the model is sparsified, or after ``at_step`` optimizer steps (dense training
first, then pruning and fine-tuning in the same loop).

The study's rule (SPEC section 4): one threshold, the ``sparsity``-quantile (numpy's linear
interpolation) of ``|w|`` over all selected weights of all recurrent layers together; a weight
is removed iff ``|w| < threshold``. Biases, embedding and classifier are never pruned. The
Python API takes ``sparsity`` as a fraction in [0, 1] (as ``torch.nn.utils.prune``'s float
``amount``); only a study's configs, stored results and CLI speak of ``amount`` in percent.
"""

from __future__ import annotations

import dataclasses
from typing import ClassVar

from torch import Tensor, nn

from sparsernn.sparsity.base import Masks, SparsityMethod, StudyUnit, check_count
from sparsernn.sparsity.scores import (
    check_sparsity,
    dense_gradients,
    install_masks,
    magnitude_scores,
    masks_from_scores,
    random_scores,
    selected_weights,
)

__all__ = [
    "OneShotOptions",
    "Magnitude",
    "Random",
    "SNIP",
    "magnitude_masks",
    "magnitude_prune",
]


@dataclasses.dataclass(frozen=True)
class OneShotOptions:
    """``at_step``: prune after this many optimizer steps (0: when the model is sparsified)."""

    at_step: int = 0

    def __post_init__(self) -> None:
        check_count("at_step", self.at_step, 0)


class Magnitude(SparsityMethod):
    """Keep the weights of largest ``|w|`` (the study's method)."""

    name = "magnitude"
    summary = "one shot, |w| (the study's rule)"
    options_class = OneShotOptions
    one_shot = True
    study_options: ClassVar[tuple[str, ...] | None] = ()

    def scores(self) -> dict[str, Tensor]:
        """Higher = more worth keeping, one tensor per selected weight."""
        return magnitude_scores(self.model, self.target)

    def _prune(self) -> Masks:
        return masks_from_scores(self.model, self.scores(), self.sparsity, self.target, self.scope)

    def initial_masks(self) -> Masks | None:
        return None if self.options.at_step else self._prune()

    def update(self, step: int) -> Masks | None:
        return self._prune() if self.options.at_step and step + 1 == self.options.at_step else None


class Random(Magnitude):
    """Keep uniformly random weights (the control every sparsity claim needs)."""

    name = "random"
    summary = "one shot, uniformly random (the control)"

    def scores(self) -> dict[str, Tensor]:
        return random_scores(self.model, self.target, self.seed)

    @classmethod
    def for_study(cls, unit: StudyUnit) -> tuple[nn.Module, SparsityMethod | None]:
        seed = unit.seed_for("random-mask")
        method = cls(unit.model, unit.sparsity, unit.target, unit.scope, seed=seed)
        method.start()
        return unit.model, None


class SNIP(Magnitude):
    """Keep the weights of largest ``|w * dL/dw|`` (Lee et al. 2019): in a study the gradient
    is summed over :attr:`study_batches` training batches; in a user's loop it is that of
    ``loss_fn`` (or of the last backward pass, with ``at_step``)."""

    name = "snip"
    summary = "one shot, |w * dL/dw| on a few training batches"
    uses_gradients = True
    #: Training batches whose summed gradient a study's SNIP scores.
    study_batches: ClassVar[int] = 4

    def scores(self) -> dict[str, Tensor]:
        grads = self.gradients()
        selected = selected_weights(self.model, self.target)
        return {q: (getattr(m, n).detach() * grads[q]).abs() for q, m, n in selected}

    @classmethod
    def for_study(cls, unit: StudyUnit) -> tuple[nn.Module, SparsityMethod | None]:
        def gradients() -> dict[str, Tensor]:
            batches = unit.batches(unit.seed, cls.study_batches, "snip")
            return dense_gradients(unit.model, batches, unit.target)

        method = cls(unit.model, unit.sparsity, unit.target, unit.scope, gradients=gradients)
        method.start()
        return unit.model, None


# ---------------------------------------------------------------------- the study's functions
def magnitude_masks(
    model: nn.Module, sparsity: float, target: str = "both", scope: str = "global"
) -> dict[str, Tensor]:
    """Compute keep-masks (True = keep) without touching the model.

    ``scope="global"`` uses one threshold over all selected weights (the study's rule);
    ``scope="layer"`` gives each weight matrix its own percentile, ``scope="gate"`` each gate
    block of each matrix (:func:`sparsernn.sparsity.masks_from_scores`). Entries already masked
    keep their mask (pruning only removes). Keys are qualified names, e.g.
    ``recurrent.weight_hh_l1``.
    """
    check_sparsity(sparsity, target, scope)
    return Magnitude(model, sparsity, target, scope)._prune()


def magnitude_prune(
    model_or_module: nn.Module, sparsity: float, target: str = "both", scope: str = "global"
) -> dict[str, Tensor]:
    """Prune in place by magnitude and return the installed masks.

    Parameters
    ----------
    model_or_module : a model containing :class:`~sparsernn.nn.MaskedRNN` modules, or one.
    sparsity : fraction in [0, 1] of the selected weights to remove (ties at the threshold are
        kept, so the achieved sparsity can be lower; see :func:`sparsity_report`). A study's
        ``amount`` in percent is ``sparsity = amount / 100``; values above 1 are refused.
    target : ``"both"``, ``"i2h"`` (input-to-hidden) or ``"h2h"`` (hidden-to-hidden).
    scope : ``"global"`` (the study: one threshold over all layers), ``"layer"`` or ``"gate"``.

    Examples
    --------
    >>> from sparsernn.nn import MaskedRNN
    >>> rnn = MaskedRNN("gru", 4, 8, num_layers=2)
    >>> masks = magnitude_prune(rnn, 0.5, target="h2h")
    >>> sorted(masks)
    ['weight_hh_l0', 'weight_hh_l1']
    """
    return install_masks(model_or_module, magnitude_masks(model_or_module, sparsity, target, scope))
