"""Fast sequence-level recurrences over (already masked) weights.

The whole sequence of a layer runs in one call of PyTorch's fused recurrent kernels
(``torch._VF.rnn_tanh/rnn_relu/gru/lstm``, cuDNN on GPU), the same entry points ``nn.RNN``,
``nn.GRU`` and ``nn.LSTM`` use. Masks are applied to the weights once per forward by the caller,
never inside the time loop.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import _VF, Tensor

from sparsernn.nn.cells import GATES

__all__ = ["run_layers", "LayerWeights"]

LayerWeights = tuple[Tensor, Tensor, Tensor | None, Tensor | None]  # (w_ih, w_hh, b_ih, b_hh)

_KERNELS = {"rnn_tanh": _VF.rnn_tanh, "rnn_relu": _VF.rnn_relu, "gru": _VF.gru, "lstm": _VF.lstm}


def _flat(weights: Sequence[LayerWeights]) -> list[Tensor]:
    return [t for layer in weights for t in layer if t is not None]


def _kernel(mode, x, hx, weights, has_bias, dropout, training, batch_first):
    """One fused call over ``len(weights)`` stacked layers of equal hidden size."""
    if mode == "lstm":
        out, h, c = _VF.lstm(
            x, hx, _flat(weights), has_bias, len(weights), dropout, training, False, batch_first
        )
        return out, (h, c)
    out, h = _KERNELS[mode](
        x, hx, _flat(weights), has_bias, len(weights), dropout, training, False, batch_first
    )
    return out, h


def run_layers(
    mode: str,
    x: Tensor,
    weights: Sequence[LayerWeights],
    hx: Sequence[Tensor] | Sequence[tuple[Tensor, Tensor]] | None = None,
    *,
    batch_first: bool = False,
    dropout: float = 0.0,
    training: bool = False,
) -> tuple[Tensor, list[Tensor] | list[tuple[Tensor, Tensor]]]:
    """Run a stack of recurrent layers over a whole sequence.

    Parameters
    ----------
    mode : one of ``rnn_tanh``, ``rnn_relu``, ``gru``, ``lstm``.
    x : (T, B, I), or (B, T, I) with ``batch_first``.
    weights : per layer ``(w_ih, w_hh, b_ih, b_hh)``; biases may be None (then all must be).
    hx : per layer initial state (B, H) (``(h, c)`` for LSTM); None means zeros.

    Returns
    -------
    The top layer's output sequence and the list of final states per layer.
    Consecutive layers of equal hidden size are fused into one kernel call.
    """
    n_layers = len(weights)
    has_bias = weights[0][2] is not None
    batch = x.shape[0] if batch_first else x.shape[1]
    sizes = [w[1].shape[1] for w in weights]
    if hx is None:
        hx = [_zeros(mode, x, batch, h) for h in sizes]
    final: list = []
    start = 0
    while start < n_layers:
        stop = start + 1
        while stop < n_layers and sizes[stop] == sizes[start]:
            stop += 1
        group = weights[start:stop]
        if mode == "lstm":
            h0 = (
                torch.stack([hx[k][0] for k in range(start, stop)]),
                torch.stack([hx[k][1] for k in range(start, stop)]),
            )
        else:
            h0 = torch.stack([hx[k] for k in range(start, stop)])
        out, h_n = _kernel(mode, x, h0, group, has_bias, dropout, training, batch_first)
        if mode == "lstm":
            final.extend(zip(h_n[0].unbind(0), h_n[1].unbind(0), strict=True))
        else:
            final.extend(h_n.unbind(0))
        x = out
        if stop < n_layers and dropout > 0 and training:
            x = F.dropout(x, dropout, training=True)
        start = stop
    return x, final


def _zeros(mode: str, x: Tensor, batch: int, hidden: int):
    h = x.new_zeros(batch, hidden)
    return (h, h) if mode == "lstm" else h


def gate_count(mode: str) -> int:
    """Number of gate blocks stacked in the weight matrices of ``mode``."""
    return GATES[mode]
