"""Structured sparsity: N:M patterns along the input dimension, and whole hidden units removed
(exported as a smaller dense ``torch.nn.RNN/GRU/LSTM`` that computes the same function).

Unstructured masks save no time on stock kernels; an N:M pattern is what sparse tensor cores
accelerate, and removing hidden units shrinks the dense matrices themselves.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import torch
from torch import Tensor, nn

from sparsernn.errors import ConfigError
from sparsernn.nn.masked import DIRECTION_SUFFIXES, MaskedRNN
from sparsernn.sparsity.base import Masks, SparsityMethod, check_count
from sparsernn.sparsity.scores import gate_blocks, selected_weights

__all__ = [
    "nm_masks",
    "unit_masks",
    "kept_units",
    "export_units",
    "NMOptions",
    "NM",
    "Units",
]


def nm_masks(model: nn.Module, n: int = 2, m: int = 4, target: str = "both") -> dict[str, Tensor]:
    """Keep the ``n`` largest ``|w|`` of every ``m`` consecutive inputs of each row (N:M).

    A last group shorter than ``m`` keeps at most ``n`` entries; already masked entries stay
    masked. Sparsity is ``1 - n / m`` when the input size is a multiple of ``m``.
    """
    if not 1 <= n <= m:
        raise ConfigError(f"an N:M pattern needs 1 <= N <= M, got {n}:{m}")
    masks = {}
    for qual, mod, name in selected_weights(model, target):
        w = getattr(mod, name).detach().abs()
        rows, cols = w.shape
        pad = (-cols) % m
        padded = torch.cat([w, w.new_full((rows, pad), -1.0)], dim=1).view(rows, -1, m)
        idx = padded.topk(n, dim=-1).indices
        keep = torch.zeros_like(padded, dtype=torch.bool).scatter_(-1, idx, True)
        keep = keep.view(rows, -1)[:, :cols]
        masks[qual] = keep & getattr(mod, f"{name}_mask")
    return masks


def unit_masks(model: nn.Module, fraction: float) -> dict[str, Tensor]:
    """Masks that remove ``round(fraction * H)`` hidden units of every layer (and direction)
    of every :class:`MaskedRNN` in ``model`` (the same count in each, so the result exports to
    a ``torch.nn`` module): those whose incoming weights (all gates, input and recurrent) have
    the smallest L1 norm.

    A removed unit loses its incoming rows and its outgoing columns (its own recurrent matrix,
    the next layer's input matrices), so it cannot influence any kept unit. At least one unit
    per layer is kept.
    """
    selected_weights(model)  # refuses a model without a MaskedRNN
    masks = {}
    for prefix, rnn in model.named_modules():
        if isinstance(rnn, MaskedRNN):
            for name, mask in _module_unit_masks(rnn, fraction).items():
                masks[f"{prefix}.{name}" if prefix else name] = mask
    return masks


def _module_unit_masks(rnn: MaskedRNN, fraction: float) -> dict[str, Tensor]:
    masks = {name: mask.clone() for name, mask in rnn.masks()}
    for k, hidden in enumerate(rnn.hidden_sizes):
        n_remove = min(int(round(fraction * hidden)), hidden - 1)
        for d, suffix in enumerate(DIRECTION_SUFFIXES[: rnn.num_directions]):
            tag = f"l{k}{suffix}"
            incoming = [
                getattr(rnn, f"weight_{kind}_{tag}").detach().abs() for kind in ("ih", "hh")
            ]
            norms = sum(w.sum(1).view(-1, hidden).sum(0) for w in incoming)  # (H,)
            removed = norms.argsort()[:n_remove]
            for kind in ("ih", "hh"):
                for _, rows in gate_blocks(rnn, f"weight_{kind}_{tag}"):
                    masks[f"weight_{kind}_{tag}"][rows][removed] = False
            masks[f"weight_hh_{tag}"][:, removed] = False
            if k + 1 < rnn.num_layers:  # the layer above reads both directions' outputs
                for above in DIRECTION_SUFFIXES[: rnn.num_directions]:
                    masks[f"weight_ih_l{k + 1}{above}"][:, d * hidden + removed] = False
    return masks


def kept_units(rnn: MaskedRNN) -> list[Tensor]:
    """Per layer (and direction, forward then reverse), the indices of the hidden units that
    still have an incoming weight."""
    out = []
    for k, hidden in enumerate(rnn.hidden_sizes):
        for suffix in DIRECTION_SUFFIXES[: rnn.num_directions]:
            alive = torch.zeros(hidden, dtype=torch.bool, device=_device(rnn))
            for kind in ("ih", "hh"):
                mask = getattr(rnn, f"weight_{kind}_l{k}{suffix}_mask")
                alive |= mask.any(1).view(-1, hidden).any(0)
            out.append(alive.nonzero().flatten())
    return out


def _outputs(rnn: MaskedRNN, kept: list[Tensor], k: int) -> Tensor:
    """Indices into layer ``k``'s output (both directions side by side) of its kept units."""
    d_count, hidden = rnn.num_directions, rnn.hidden_sizes[k]
    return torch.cat([kept[k * d_count + d] + d * hidden for d in range(d_count)])


def export_units(rnn: MaskedRNN) -> tuple[nn.RNNBase, Tensor]:
    """A smaller dense ``torch.nn.RNN/GRU/LSTM`` without the removed units, and the indices of
    the last layer's kept outputs: ``small(x)[0] == rnn(x)[0][..., kept]``.

    Every layer (and direction) must keep the same number of units (as :func:`unit_masks`
    leaves them); the remaining unstructured masks are baked in as zeros.
    """
    kept = kept_units(rnn)
    sizes = {len(k) for k in kept}
    if len(sizes) != 1:
        raise ConfigError(f"layers keep different numbers of units {[len(k) for k in kept]}")
    spec, size = rnn.spec, sizes.pop()
    small = rnn.torch_like(size)
    state = {}
    for n, (w_ih, w_hh, b_ih, b_hh) in enumerate(rnn.layer_weights()):
        k, d = divmod(n, rnn.num_directions)
        tag = f"l{k}{DIRECTION_SUFFIXES[d]}"
        rows = torch.cat([kept[n] + g * rnn.hidden_sizes[k] for g in range(spec.gates)])
        inputs = _outputs(rnn, kept, k - 1) if k else slice(None)
        state[f"weight_ih_{tag}"] = w_ih.detach()[rows][:, inputs]
        state[f"weight_hh_{tag}"] = w_hh.detach()[rows][:, kept[n]]
        if b_ih is not None and b_hh is not None:
            state[f"bias_ih_{tag}"] = b_ih.detach()[rows]
            state[f"bias_hh_{tag}"] = b_hh.detach()[rows]
    small.load_state_dict(state)
    return small, _outputs(rnn, kept, rnn.num_layers - 1)


def _device(module: torch.nn.Module) -> torch.device:
    return next(module.parameters()).device


# ---------------------------------------------------------------------- as methods
@dataclasses.dataclass(frozen=True)
class NMOptions:
    """``m``: the group size; the method's sparsity sets ``n = (1 - sparsity) * m``."""

    m: int = 4

    def __post_init__(self) -> None:
        check_count("m", self.m, 1)


class NM(SparsityMethod):
    """Keep the ``n`` largest of every ``m`` consecutive inputs of each row, once (the scope
    is the group of ``m``; ``scope`` is not used)."""

    name = "nm"
    summary = "N:M pattern along the input dimension, once"
    options_class = NMOptions
    one_shot = True

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        m = self.options.m
        self.n = round((1 - self.sparsity) * m)
        if self.n < 1 or abs(self.n / m - (1 - self.sparsity)) > 1e-9:
            raise ConfigError(
                f"an N:M pattern with m={m} keeps n/m of the weights (n = 1..{m}); "
                f"sparsity={self.sparsity:g} is not 1 - n/m: pass e.g. {1 - max(self.n, 1) / m:g}"
            )

    def initial_masks(self) -> Masks | None:
        return nm_masks(self.model, self.n, self.options.m, self.target)


class Units(SparsityMethod):
    """Remove whole hidden units, once: ``sparsity`` is the fraction of units removed per layer
    (and direction); :func:`export_units` then gives a smaller ``torch.nn`` module."""

    name = "units"
    summary = "whole hidden units (sparsity = fraction of units), exportable to torch.nn"
    one_shot = True

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if self.target != "both":
            raise ConfigError(
                f"unit pruning removes whole units (input and recurrent weights): use "
                f"target='both', not {self.target!r}"
            )

    def initial_masks(self) -> Masks | None:
        return unit_masks(self.model, self.sparsity)
