"""Magnitude pruning of recurrent weights (the study's rule) and a gradual AGP schedule.

A pruning criterion only computes masks from scores; installing them is
:meth:`MaskedRNN.set_mask`'s job (the ``torch.nn.utils.prune`` split). The study's rule
(SPEC section 4): one threshold, the ``amount``-th percentile (numpy's linear interpolation) of
``|w|`` over all selected weights of all recurrent layers together; a weight is removed iff
``|w| < threshold``. Biases, embedding and classifier are never pruned.

Units: the Python API takes ``sparsity`` as a fraction in [0, 1] everywhere (as
``torch.nn.utils.prune``'s float ``amount`` and :class:`AGPSchedule`); only the study's configs,
stored results and CLI speak of ``amount`` in percent, and convert with ``amount / 100``
(exactly the quantile numpy's percentile computes). A value above 1 is refused, since it is
almost surely a percentage.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
from torch import Tensor, nn

from sparsernn.errors import ConfigError
from sparsernn.nn.masked import MaskedRNN

__all__ = [
    "TARGETS",
    "SCOPES",
    "magnitude_prune",
    "magnitude_masks",
    "sparsity_report",
    "AGPSchedule",
    "GradualPruner",
]

TARGETS: dict[str, tuple[str, ...]] = {"both": ("ih", "hh"), "i2h": ("ih",), "h2h": ("hh",)}
SCOPES: tuple[str, ...] = ("global", "layer")


def _check(sparsity: float, target: str, scope: str) -> None:
    number = isinstance(sparsity, (int, float, np.integer, np.floating))
    if number and 1 < sparsity <= 100:
        raise ConfigError(
            f"sparsity={sparsity!r} is a fraction in [0, 1], not a percentage: "
            f"pass {sparsity / 100:g} to remove {sparsity:g}% of the weights"
        )
    if not (number and 0 <= sparsity <= 1):
        raise ConfigError(f"sparsity={sparsity!r} is outside [0, 1] (a fraction of the weights)")
    if target not in TARGETS:
        raise ConfigError(f"unknown pruning target {target!r}; choose one of {', '.join(TARGETS)}")
    if scope not in SCOPES:
        raise ConfigError(f"unknown pruning scope {scope!r}; choose one of {', '.join(SCOPES)}")


def _selected(model: nn.Module, target: str) -> list[tuple[str, MaskedRNN, str]]:
    """(qualified name, module, weight name) for every selected weight of every MaskedRNN."""
    found = []
    for prefix, mod in model.named_modules():
        if isinstance(mod, MaskedRNN):
            for name in mod.weight_names(TARGETS[target]):
                found.append((f"{prefix}.{name}" if prefix else name, mod, name))
    if not found:
        raise ConfigError(
            f"{type(model).__name__} contains no MaskedRNN: nothing to prune "
            "(use sparsernn.nn.MaskedRNN or MaskedRNN.from_torch)"
        )
    return found


def _threshold(tensors: list[Tensor], sparsity: float) -> float:
    """The ``sparsity``-quantile of ``|w|`` (numpy's linear interpolation, as the study)."""
    values = np.concatenate([t.detach().abs().double().cpu().numpy().ravel() for t in tensors])
    return float(np.quantile(values, sparsity))


def magnitude_masks(
    model: nn.Module, sparsity: float, target: str = "both", scope: str = "global"
) -> dict[str, Tensor]:
    """Compute keep-masks (True = keep) without touching the model.

    ``scope="global"`` uses one threshold over all selected weights (the study's rule);
    ``scope="layer"`` gives each weight matrix its own percentile. Entries already masked keep
    their mask (pruning only removes). Keys are qualified names, e.g. ``recurrent.weight_hh_l1``.
    """
    _check(sparsity, target, scope)
    selected = _selected(model, target)
    weights = [getattr(mod, name) for _, mod, name in selected]
    if scope == "global":
        thresholds = [_threshold(weights, sparsity)] * len(weights)
    else:
        thresholds = [_threshold([w], sparsity) for w in weights]
    masks = {}
    for (qual, mod, name), w, thr in zip(selected, weights, thresholds, strict=True):
        keep = w.detach().abs().double() >= thr
        masks[qual] = keep & getattr(mod, f"{name}_mask")
    return masks


def magnitude_prune(
    model_or_module: nn.Module, sparsity: float, target: str = "both", scope: str = "global"
) -> dict[str, Tensor]:
    """Prune in place by magnitude and return the installed masks.

    Parameters
    ----------
    model_or_module : a model containing :class:`MaskedRNN` modules, or one itself.
    sparsity : fraction in [0, 1] of the selected weights to remove (ties at the threshold are
        kept, so the achieved sparsity can be lower; see :func:`sparsity_report`). A study's
        ``amount`` in percent is ``sparsity = amount / 100``; values above 1 are refused.
    target : ``"both"``, ``"i2h"`` (input-to-hidden) or ``"h2h"`` (hidden-to-hidden).
    scope : ``"global"`` (the study: one threshold over all layers) or ``"layer"``.

    Examples
    --------
    >>> rnn = MaskedRNN("gru", 4, 8, num_layers=2)
    >>> masks = magnitude_prune(rnn, 0.5, target="h2h")
    >>> sorted(masks)
    ['weight_hh_l0', 'weight_hh_l1']
    """
    masks = magnitude_masks(model_or_module, sparsity, target, scope)
    modules = dict(model_or_module.named_modules())
    for qual, mask in masks.items():
        prefix, _, name = qual.rpartition(".")
        modules[prefix].set_mask(name, mask)
    return masks


def sparsity_report(model: nn.Module) -> pd.DataFrame:
    """Per maskable matrix: kind (i2h/h2h), layer, size, kept entries and achieved sparsity."""
    rows = []
    for prefix, mod in model.named_modules():
        if isinstance(mod, MaskedRNN):
            for name, mask in mod.masks():
                kept = int(mask.sum())
                rows.append(
                    {
                        "weight": f"{prefix}.{name}" if prefix else name,
                        "kind": "i2h" if "_ih_" in name else "h2h",
                        "layer": int(name.rsplit("_l", 1)[1]),
                        "size": mask.numel(),
                        "kept": kept,
                        "sparsity": 1.0 - kept / mask.numel(),
                    }
                )
    return pd.DataFrame(rows)


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
        t = step - self.start
        return 0 <= t <= self.n_steps and t % self.frequency == 0


class GradualPruner:
    """Call :meth:`step` after each optimiser step to follow an :class:`AGPSchedule`."""

    def __init__(
        self, model: nn.Module, schedule: AGPSchedule, target: str = "both", scope: str = "global"
    ) -> None:
        _check(0, target, scope)
        self.model, self.schedule, self.target, self.scope = model, schedule, target, scope
        self.step_count = 0

    def step(self) -> float | None:
        """Advance one step; prune when the schedule says so and return the target sparsity."""
        s = None
        if self.schedule.is_pruning_step(self.step_count):
            s = self.schedule.sparsity(self.step_count)
            magnitude_prune(self.model, s, self.target, self.scope)
        self.step_count += 1
        return s
