"""The math of each recurrent cell, in one place, with PyTorch's gate order.

These per-time-step functions are the readable definition of the cells (``nn.RNN`` tanh/ReLU,
``nn.GRU`` with gates (r, z, n), ``nn.LSTM`` with gates (i, f, g, o)). The fast paths in
:mod:`sparsernn.nn.functional` call PyTorch's fused kernels instead; slow references in the tests
and benchmarks call these functions so that both are checked against the same equations.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["MODES", "GATES", "cell_step", "zero_state"]

#: Number of stacked gate blocks in each weight matrix, by mode.
GATES: dict[str, int] = {"rnn_tanh": 1, "rnn_relu": 1, "gru": 3, "lstm": 4}
MODES: tuple[str, ...] = tuple(GATES)

State = Tensor | tuple[Tensor, Tensor]


def cell_step(
    mode: str,
    x: Tensor,
    state: State,
    w_ih: Tensor,
    w_hh: Tensor,
    b_ih: Tensor | None,
    b_hh: Tensor | None,
) -> State:
    """One time step: ``x`` (B, I), ``state`` (B, H) or ``(h, c)`` for LSTM -> the new state."""
    h = state[0] if mode == "lstm" else state
    gi = F.linear(x, w_ih, b_ih)  # (B, G*H)
    gh = F.linear(h, w_hh, b_hh)  # (B, G*H)
    if mode == "rnn_tanh":
        return torch.tanh(gi + gh)
    if mode == "rnn_relu":
        return torch.relu(gi + gh)
    if mode == "gru":
        i_r, i_z, i_n = gi.chunk(3, dim=1)
        h_r, h_z, h_n = gh.chunk(3, dim=1)
        r = torch.sigmoid(i_r + h_r)
        z = torch.sigmoid(i_z + h_z)
        n = torch.tanh(i_n + r * h_n)
        return (1 - z) * n + z * h
    if mode == "lstm":
        c = state[1]
        i, f, g, o = (gi + gh).chunk(4, dim=1)
        c_new = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
        h_new = torch.sigmoid(o) * torch.tanh(c_new)
        return h_new, c_new
    raise ValueError(f"unknown mode {mode!r}; expected one of {MODES}")


def zero_state(mode: str, batch: int, hidden: int, like: Tensor) -> State:
    """The study's initial state: zeros (and a zero cell state for LSTM)."""
    h = like.new_zeros(batch, hidden)
    return (h, h.clone()) if mode == "lstm" else h
