"""Structured sparsity: N:M patterns along the input dimension, and whole hidden units removed
(exported as a smaller dense ``torch.nn.RNN/GRU/LSTM`` that computes the same function).

Unstructured masks save no time on stock kernels; an N:M pattern is what sparse tensor cores
accelerate, and removing hidden units shrinks the dense matrices themselves.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from sparsernn.errors import ConfigError
from sparsernn.nn.masked import MaskedRNN
from sparsernn.sparsity.scores import gate_blocks, selected_weights

__all__ = ["nm_masks", "unit_masks", "kept_units", "export_units"]


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


def _recurrent(model: nn.Module) -> MaskedRNN:
    found = [m for m in model.modules() if isinstance(m, MaskedRNN)]
    if len(found) != 1:
        raise ConfigError(f"unit pruning needs exactly one MaskedRNN, found {len(found)}")
    return found[0]


def unit_masks(model: nn.Module, fraction: float) -> dict[str, Tensor]:
    """Masks that remove ``round(fraction * H)`` hidden units of every layer (the same count in
    each, so the result exports to a ``torch.nn`` module): those whose incoming weights (all
    gates, input and recurrent) have the smallest L1 norm.

    A removed unit loses its incoming rows and its outgoing columns (its own layer's recurrent
    matrix, the next layer's input matrix), so it cannot influence any kept unit. At least one
    unit per layer is kept.
    """
    rnn = _recurrent(model)
    prefix = next(p for p, m in model.named_modules() if m is rnn)
    hidden = rnn.hidden_size
    n_remove = min(int(round(fraction * hidden)), hidden - 1)
    masks = {name: mask.clone() for name, mask in rnn.masks()}
    for k in range(rnn.num_layers):
        incoming = [getattr(rnn, f"weight_{kind}_l{k}").detach().abs() for kind in ("ih", "hh")]
        norms = sum(w.sum(1).view(-1, hidden).sum(0) for w in incoming)  # (H,)
        removed = norms.argsort()[:n_remove]
        for kind in ("ih", "hh"):
            for _, rows in gate_blocks(rnn, f"weight_{kind}_l{k}"):
                masks[f"weight_{kind}_l{k}"][rows][removed] = False
        masks[f"weight_hh_l{k}"][:, removed] = False
        if k + 1 < rnn.num_layers:
            masks[f"weight_ih_l{k + 1}"][:, removed] = False
    qualify = (lambda n: f"{prefix}.{n}") if prefix else (lambda n: n)
    return {qualify(name): mask for name, mask in masks.items()}


def kept_units(rnn: MaskedRNN) -> list[Tensor]:
    """Per layer, the indices of the hidden units that still have an incoming weight."""
    out = []
    for k, hidden in enumerate(rnn.hidden_sizes):
        alive = torch.zeros(hidden, dtype=torch.bool, device=_device(rnn))
        for kind in ("ih", "hh"):
            alive |= getattr(rnn, f"weight_{kind}_l{k}_mask").any(1).view(-1, hidden).any(0)
        out.append(alive.nonzero().flatten())
    return out


def export_units(rnn: MaskedRNN) -> tuple[nn.RNNBase, Tensor]:
    """A smaller dense ``torch.nn.RNN/GRU/LSTM`` without the removed units, and the indices of
    the last layer's kept units: ``small(x)[0] == rnn(x)[0][..., kept]``.

    Every layer must keep the same number of units (as :func:`unit_masks` leaves them); the
    remaining unstructured masks are baked in as zeros.
    """
    kept = kept_units(rnn)
    sizes = {len(k) for k in kept}
    if len(sizes) != 1:
        raise ConfigError(f"layers keep different numbers of units {[len(k) for k in kept]}")
    spec, size = rnn.spec, sizes.pop()
    small = spec.torch_class(
        rnn.input_size,
        size,
        num_layers=rnn.num_layers,
        bias=rnn.bias,
        batch_first=rnn.batch_first,
        dropout=rnn.dropout,
        **spec.torch_kwargs,
    )
    state = {}
    for k, (w_ih, w_hh, b_ih, b_hh) in enumerate(rnn.layer_weights()):
        rows = torch.cat([kept[k] + g * rnn.hidden_sizes[k] for g in range(spec.gates)])
        inputs = kept[k - 1] if k else slice(None)
        state[f"weight_ih_l{k}"] = w_ih.detach()[rows][:, inputs]
        state[f"weight_hh_l{k}"] = w_hh.detach()[rows][:, kept[k]]
        if b_ih is not None and b_hh is not None:
            state[f"bias_ih_l{k}"] = b_ih.detach()[rows]
            state[f"bias_hh_l{k}"] = b_hh.detach()[rows]
    small.load_state_dict(state)
    return small.to(_device(rnn)), kept[-1]


def _device(module: torch.nn.Module) -> torch.device:
    return next(module.parameters()).device
