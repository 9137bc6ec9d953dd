"""Scoring rules and scopes: which weights a sparsity method keeps.

A scoring rule maps every selected recurrent weight matrix to a score tensor of its shape
(higher = more worth keeping): ``|w|`` (magnitude), uniform noise (random), ``|w * dL/dw|``
(SNIP). :func:`masks_from_scores` turns scores into keep-masks with one rule for all of them,
the study's (SPEC section 4): in each group of weights, the ``sparsity``-quantile of the scores
(numpy's linear interpolation) is the threshold and a weight is removed iff its score is below
it. The scope says what a group is: ``global`` (all selected weights of all layers, the study),
``layer`` (each weight matrix) or ``gate`` (each gate block of each matrix, so that no gate of
an LSTM is emptied by accident). Entries already masked stay masked: pruning only removes.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from sparsernn.errors import ConfigError
from sparsernn.nn.masked import MaskedRNN

__all__ = [
    "TARGETS",
    "SCOPES",
    "GATE_NAMES",
    "check_sparsity",
    "selected_weights",
    "gate_blocks",
    "magnitude_scores",
    "random_scores",
    "snip_scores",
    "dense_gradients",
    "loss_gradients",
    "masks_from_scores",
    "install_masks",
]

TARGETS: dict[str, tuple[str, ...]] = {"both": ("ih", "hh"), "i2h": ("ih",), "h2h": ("hh",)}
SCOPES: tuple[str, ...] = ("global", "layer", "gate")
#: The gate blocks of each cell family's weight rows, in PyTorch's order.
GATE_NAMES: dict[str, tuple[str, ...]] = {
    "rnn": ("h",),
    "gru": ("r", "z", "n"),
    "lstm": ("i", "f", "g", "o"),
}

#: ``(qualified name, module, weight name)`` of one selected weight matrix.
Selected = list[tuple[str, MaskedRNN, str]]


def check_sparsity(sparsity: float, target: str = "both", scope: str = "global") -> None:
    """Refuse a sparsity outside [0, 1] (naming a likely percentage), a target or a scope."""
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


def selected_weights(model: nn.Module, target: str = "both") -> Selected:
    """Every selected weight matrix of every :class:`MaskedRNN` in ``model``, in module order."""
    found = []
    for prefix, mod in model.named_modules():
        if isinstance(mod, MaskedRNN):
            for name in mod.weight_names(TARGETS[target]):
                found.append((f"{prefix}.{name}" if prefix else name, mod, name))
    if not found:
        raise ConfigError(
            f"{type(model).__name__} contains no MaskedRNN: nothing to prune "
            "(sparsernn.sparsify(model, ...) swaps them in for torch.nn.RNN/GRU/LSTM)"
        )
    return found


def gate_blocks(module: MaskedRNN, name: str) -> list[tuple[str, slice]]:
    """``(gate name, row slice)`` of each gate block of weight ``name`` (one for an Elman RNN)."""
    gates = GATE_NAMES[module.spec.family]
    rows = getattr(module, name).shape[0] // len(gates)
    return [(g, slice(i * rows, (i + 1) * rows)) for i, g in enumerate(gates)]


def magnitude_scores(model: nn.Module, target: str = "both") -> dict[str, Tensor]:
    """``|w|`` of every selected weight (the study's criterion)."""
    return {q: getattr(m, n).detach().abs() for q, m, n in selected_weights(model, target)}


def random_scores(model: nn.Module, target: str = "both", seed: int = 0) -> dict[str, Tensor]:
    """Uniform noise in [0, 1), one draw per weight from a generator seeded with ``seed``: the
    control that every sparsity claim needs (same seed, same mask)."""
    gen = torch.Generator().manual_seed(int(seed))
    out = {}
    for qual, mod, name in selected_weights(model, target):
        w = getattr(mod, name)
        out[qual] = torch.rand(w.shape, generator=gen).to(w.device)
    return out


@torch.no_grad()
def _all_ones(selected: Selected) -> dict[str, Tensor]:
    """Open every selected mask (the masked weights are zero, so the function is unchanged);
    return the saved masks for :func:`_restore`."""
    saved = {}
    for qual, mod, name in selected:
        buf = getattr(mod, f"{name}_mask")
        saved[qual] = buf.clone()
        buf.fill_(True)
    return saved


@torch.no_grad()
def _restore(selected: Selected, saved: dict[str, Tensor]) -> None:
    for qual, mod, name in selected:
        getattr(mod, f"{name}_mask").copy_(saved[qual])


def loss_gradients(
    model: nn.Module, losses: Iterable[Callable[[], Tensor]], target: str = "both"
) -> dict[str, Tensor]:
    """``dL/dw`` summed over the losses that ``losses`` compute, at EVERY entry of the selected
    weights, also the masked ones (the gradient a pruned weight would get if it came back).

    The masks are opened for the computation and restored; masked weights are zero, so the
    model computes the same function meanwhile. Nothing is written to ``.grad``.
    """
    selected = selected_weights(model, target)
    weights = [getattr(mod, name) for _, mod, name in selected]
    total = [torch.zeros_like(w) for w in weights]
    saved = _all_ones(selected)
    try:
        with torch.enable_grad():  # also inside a hook that runs under no_grad
            for loss in losses:
                for acc, g in zip(total, torch.autograd.grad(loss(), weights), strict=True):
                    acc += g
    finally:
        _restore(selected, saved)
    return {qual: g for (qual, _, _), g in zip(selected, total, strict=True)}


def dense_gradients(
    model: nn.Module, batches: Iterable[tuple[Tensor, Tensor]], target: str = "both"
) -> dict[str, Tensor]:
    """:func:`loss_gradients` of the cross-entropy of a classifier ``model`` on each batch
    ``(tokens, labels)``."""
    losses = (
        functools.partial(_cross_entropy, model, tokens, labels) for tokens, labels in batches
    )
    return loss_gradients(model, losses, target)


def _cross_entropy(model: nn.Module, tokens: Tensor, labels: Tensor) -> Tensor:
    return F.cross_entropy(model(tokens), labels)


def snip_scores(
    model: nn.Module, batches: Iterable[tuple[Tensor, Tensor]], target: str = "both"
) -> dict[str, Tensor]:
    """SNIP's saliency ``|w * dL/dw|`` (Lee et al. 2019), the gradient summed over ``batches``
    (a few batches at initialisation, or on the trained model)."""
    grads = dense_gradients(model, batches, target)
    weights = {q: getattr(m, n).detach() for q, m, n in selected_weights(model, target)}
    return {q: (weights[q] * g).abs() for q, g in grads.items()}


def _groups(selected: Selected, scope: str) -> list[list[tuple[str, slice]]]:
    """The groups that share one threshold, as ``(qualified name, row slice)`` blocks."""
    everything = slice(None)
    if scope == "global":
        return [[(qual, everything) for qual, _, _ in selected]]
    if scope == "layer":
        return [[(qual, everything)] for qual, _, _ in selected]
    return [[(qual, rows)] for qual, mod, name in selected for _, rows in gate_blocks(mod, name)]


def _quantile(blocks: Sequence[Tensor], sparsity: float) -> float:
    """The ``sparsity``-quantile of the scores (numpy's linear interpolation, as the study)."""
    values = np.concatenate([b.detach().double().cpu().numpy().ravel() for b in blocks])
    return float(np.quantile(values, sparsity))


def masks_from_scores(
    model: nn.Module,
    scores: dict[str, Tensor],
    sparsity: float,
    target: str = "both",
    scope: str = "global",
) -> dict[str, Tensor]:
    """Keep-masks (True = keep) from ``scores``, without touching the model.

    In each group of the ``scope`` a weight is kept iff its score is at least the group's
    ``sparsity``-quantile (ties at the threshold are kept) and it is not masked already.
    Keys are qualified names, e.g. ``recurrent.weight_hh_l1``.
    """
    check_sparsity(sparsity, target, scope)
    selected = selected_weights(model, target)
    keep = {qual: torch.zeros_like(scores[qual], dtype=torch.bool) for qual, _, _ in selected}
    for group in _groups(selected, scope):
        threshold = _quantile([scores[q][rows] for q, rows in group], sparsity)
        for qual, rows in group:
            keep[qual][rows] = scores[qual][rows].double() >= threshold
    return {qual: keep[qual] & getattr(mod, f"{name}_mask") for qual, mod, name in selected}


def install_masks(model: nn.Module, masks: dict[str, Tensor]) -> dict[str, Tensor]:
    """Install qualified-name keep-masks with :meth:`MaskedRNN.set_mask` (zeroing the removed
    weights); return ``masks``."""
    modules = dict(model.named_modules())
    for qual, mask in masks.items():
        prefix, _, name = qual.rpartition(".")
        modules[prefix].set_mask(name, mask)
    return masks
