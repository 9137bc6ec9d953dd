"""Fast sequence-level recurrences over (already masked) weights.

The whole sequence of a layer runs in one call of PyTorch's fused recurrent kernels
(``torch._VF.rnn_tanh/rnn_relu/gru/lstm``, cuDNN on GPU), the same entry points ``nn.RNN``,
``nn.GRU`` and ``nn.LSTM`` use. Masks are applied to the weights once per forward by the caller,
never inside the time loop.

On CPU, ``rnn_tanh``, ``rnn_relu`` and ``gru`` instead run :func:`fused_recurrence`: a
hand-written forward and backward through time (one autograd node per layer) whose time loop
holds only the recurrent matmul and a few in-place elementwise operations; the input
projection, the weight gradients and every factor of the backward that does not depend on the
incoming gradient are hoisted out of the loop as whole-sequence operations. PyTorch's CPU
kernels for these cells are loops of small autograd-recorded ops, so this is faster; it is
equal to them up to float rounding. LSTM keeps PyTorch's kernel (oneDNN's fused LSTM is faster).
:func:`fused_recurrence` also takes a leading model axis, for K models at once
(:mod:`sparsernn.nn.batched`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import cast

import torch
import torch.nn.functional as F
from torch import _VF, Tensor

from sparsernn.nn.cells import CELLS, CellSpec, cell_spec

__all__ = ["run_layers", "LayerWeights", "fused_recurrence"]

LayerWeights = tuple[Tensor, Tensor, Tensor | None, Tensor | None]  # (w_ih, w_hh, b_ih, b_hh)
State = Tensor | tuple[Tensor, Tensor]

#: Cells that run :func:`fused_recurrence` on CPU inside :func:`run_layers`; derived from
#: :attr:`CellSpec.fused_cpu` (the tests empty it to compare against PyTorch's kernels).
_FUSED_CPU_MODES = frozenset(name for name, spec in CELLS.items() if spec.fused_cpu)


def _flat(weights: Sequence[LayerWeights]) -> list[Tensor]:
    return [t for layer in weights for t in layer if t is not None]


def _kernel(
    spec, x, hx, weights, has_bias, dropout, training, batch_first, batch_sizes, directions
):
    """One fused call of PyTorch's kernel over the stacked layers of ``weights`` (equal sizes;
    ``directions`` entries per layer, forward then reverse, as ``torch.nn.RNNBase`` orders them).

    With ``batch_sizes`` ``x`` is a PackedSequence's data and the packed overload runs: each
    sequence stops at its own length, so its final state is taken at its last step (and the
    reverse direction starts there).
    """
    kernel = getattr(_VF, spec.torch_mode.lower())
    flat, n = _flat(weights), len(weights) // directions
    both = directions == 2
    if batch_sizes is None:
        out, *state = kernel(x, hx, flat, has_bias, n, dropout, training, both, batch_first)
    else:
        out, *state = kernel(x, batch_sizes, hx, flat, has_bias, n, dropout, training, both)
    return out, (tuple(state) if spec.has_cell_state else state[0])


def _stack_states(spec: CellSpec, states: Sequence[State]) -> State:
    """Per-layer states -> one (L, B, H) tensor (a pair of them for LSTM), as the kernels take."""
    if spec.has_cell_state:
        pairs = cast(Sequence[tuple[Tensor, Tensor]], states)
        return torch.stack([s[0] for s in pairs]), torch.stack([s[1] for s in pairs])
    return torch.stack(cast(list[Tensor], list(states)))


def _unbind_states(spec: CellSpec, state: State) -> list[State]:
    """The inverse of :func:`_stack_states`."""
    if isinstance(state, tuple):  # (h, c): spec.has_cell_state
        return list(zip(state[0].unbind(0), state[1].unbind(0), strict=True))
    return list(state.unbind(0))


def run_layers(
    mode: str | CellSpec,
    x: Tensor,
    weights: Sequence[LayerWeights],
    hx: Sequence[Tensor] | Sequence[tuple[Tensor, Tensor]] | None = None,
    *,
    batch_first: bool = False,
    dropout: float = 0.0,
    training: bool = False,
    batch_sizes: Tensor | None = None,
    bidirectional: bool = False,
) -> tuple[Tensor, list[Tensor] | list[tuple[Tensor, Tensor]]]:
    """Run a stack of recurrent layers over a whole sequence.

    Parameters
    ----------
    mode : a cell name (``rnn_tanh``, ``rnn_relu``, ``gru``, ``lstm``) or its :class:`CellSpec`.
    x : (T, B, I), or (B, T, I) with ``batch_first``; with ``batch_sizes``, the (N, I) data of
        a ``PackedSequence`` (sorted by decreasing length, as ``pack_padded_sequence`` makes it).
    weights : per layer ``(w_ih, w_hh, b_ih, b_hh)``; biases may be None (then all must be).
        With ``bidirectional``, two entries per layer, forward then reverse (``torch.nn``'s
        order: ``l0``, ``l0_reverse``, ``l1``, ...); a layer's input is then the two
        directions' outputs of the layer below, concatenated.
    hx : per entry of ``weights`` the initial state (B, H) (``(h, c)`` for LSTM); None: zeros.
    batch_sizes : the ``PackedSequence``'s batch sizes; each sequence's final state is then
        the state at its own last step.

    Returns
    -------
    The top layer's output (same layout as ``x``; 2H features when bidirectional) and the list
    of final states per entry of ``weights``. Consecutive layers of equal hidden size are fused
    into one kernel call; on CPU, cells with :attr:`CellSpec.fused_cpu` (without training-time
    dropout, unpacked, outside ``torch.autocast``) run :func:`fused_recurrence` instead, both
    directions of a layer as one call (the reverse one over the time-reversed input).
    """
    spec = cell_spec(mode)
    directions = 2 if bidirectional else 1
    training_dropout = dropout > 0 and training
    if (
        spec.name in _FUSED_CPU_MODES
        and x.device.type == "cpu"
        and batch_sizes is None
        and not training_dropout
        and not autocast_enabled(x.device.type)  # torch's kernels follow autocast's dtype rules
    ):
        return _run_layers_fused(spec, x, weights, hx, batch_first, directions)
    return _run_layers_grouped(
        spec, x, weights, hx, batch_first, dropout, training, batch_sizes, directions
    )


def _run_layers_grouped(
    spec: CellSpec,
    x: Tensor,
    weights: Sequence[LayerWeights],
    hx: Sequence[State] | None,
    batch_first: bool,
    dropout: float,
    training: bool,
    batch_sizes: Tensor | None,
    directions: int,
) -> tuple[Tensor, list]:
    """:func:`run_layers` by PyTorch's kernels: one call per run of consecutive layers of one
    hidden size (dropout between layers when training)."""
    training_dropout = dropout > 0 and training
    sizes = [w[1].shape[1] for w in weights[::directions]]
    batch = int(batch_sizes[0]) if batch_sizes is not None else x.shape[0 if batch_first else 1]
    states: Sequence[State] = (
        [spec.zero_state(batch, w[1].shape[1], x) for w in weights] if hx is None else hx
    )
    final: list = []
    start = 0
    while start < len(sizes):
        stop = start + 1
        while stop < len(sizes) and sizes[stop] == sizes[start]:
            stop += 1
        group = slice(start * directions, stop * directions)
        h0 = _stack_states(spec, states[group])
        has_bias = weights[0][2] is not None
        x, h_n = _kernel(
            spec,
            x,
            h0,
            weights[group],
            has_bias,
            dropout,
            training,
            batch_first,
            batch_sizes,
            directions,
        )
        final.extend(_unbind_states(spec, h_n))
        if stop < len(sizes) and training_dropout:
            x = F.dropout(x, dropout, training=True)
        start = stop
    return x, final


def autocast_enabled(device_type: str) -> bool:
    """Whether ``torch.autocast`` is on for ``device_type`` (any torch >= 2.1)."""
    try:
        return torch.is_autocast_enabled(device_type)
    except TypeError:  # torch < 2.4 takes no device
        if device_type == "cpu":
            return torch.is_autocast_cpu_enabled()
        return torch.is_autocast_enabled()


# ---------------------------------------------------------------------- hand-fused recurrence
def _tanh(x: Tensor, out: Tensor) -> Tensor:
    """``out = tanh(x)``; ``out`` may be ``x`` itself (in place).

    One op: measured on this CPU (torch 2.13, 1 thread) ``torch.tanh`` is faster than
    ``2 * sigmoid(2x) - 1`` (four ops) at every size from 512 to 131k elements, contiguous or
    a strided gate view, which an earlier build's ~2 ns/element tanh had made worthwhile.
    """
    return torch.tanh(x, out=out)


def activate(nonlinearity: str, pre: Tensor, out: Tensor) -> Tensor:
    """``out = tanh(pre)`` or ``relu(pre)`` (an Elman cell's activation), written into ``out``."""
    if nonlinearity == "tanh":
        return _tanh(pre, out)
    return torch.clamp(pre, min=0, out=out)


def activation_grad(nonlinearity: str, out: Tensor) -> Tensor:
    """The activation's derivative from its output: ``1 - out^2`` (tanh) or ``out > 0`` (relu)."""
    if nonlinearity == "tanh":
        return 1 - out * out
    return (out > 0).to(out.dtype)


class _Recurrence(torch.autograd.Function):
    """K independent recurrent layers over a whole sequence, with a hand-written BPTT.

    ``gi`` (K, T, B, G*H) are the input gates ``x @ w_ih^T + b_ih``, ``w_hh`` (K, G*H, H),
    ``b_hh`` (K, G*H) or None, ``h0``/``c0`` (K, B, H) (``c0`` None unless LSTM). Returns the
    outputs (K, T, B, H), the last hidden state and the last cell state (an empty tensor
    unless LSTM). Gate order and equations are PyTorch's (:mod:`sparsernn.nn.cells`).

    Every per-step result is written into a preallocated whole-sequence buffer ``hs``
    (K, T+1, B, H) (``hs[:, 0] = h0``), so nothing is stacked or transposed afterwards:
    ``hs[:, :-1]`` and the gate gradients are already (K, T*B, F) matrices for the hoisted
    weight-gradient matmuls. The outputs are views of that buffer.
    """

    @staticmethod
    def forward(ctx, spec, gi, w_hh, b_hh, h0, c0):
        k, n_steps, batch, _ = gi.shape
        gi, _ = spec.fold_biases(gi, None if b_hh is None else b_hh[:, None, None, :])
        hs = gi.new_empty(k, n_steps + 1, batch, w_hh.shape[2])
        hs[:, 0] = h0
        # Per-step views are made once, outside the loop (each Python-level view costs ~1 us).
        # Matmuls write fresh tensors: with out= a strided view, K > 1 falls back to K addmms.
        saved, c_last = _FORWARD[spec.family](spec, gi, w_hh, b_hh, hs, c0)
        ctx.save_for_backward(hs, w_hh, *saved)
        ctx.spec = spec
        ctx.has_b_hh = b_hh is not None
        return hs[:, 1:], hs[:, -1], c_last

    @staticmethod
    def backward(ctx, g_out, g_h, g_c):
        hs, w_hh, *rest = ctx.saved_tensors
        k, t1, batch, n_hidden = hs.shape
        n_steps = t1 - 1
        # g_v[t] is the output gradient entering h_t (hs index t; nothing enters h0)
        g_v = [g_h.new_zeros(()), *g_out.unbind(1)]
        dh = g_h + g_v[n_steps]
        h_prev = hs[:, :-1].reshape(k, n_steps * batch, n_hidden)  # a view
        backward = _BACKWARD[ctx.spec.family]
        d_gi, d_w_hh, d_b_hh, dh, d_c0 = backward(ctx, hs, w_hh, rest, g_v, dh, g_c, h_prev)
        d_gi = d_gi.view(k, n_steps, batch, -1) if d_gi.is_contiguous() else d_gi
        return None, d_gi, d_w_hh, d_b_hh, dh, d_c0


def _elman_forward(spec, gi, w_hh, b_hh, hs, c0):
    h_v, w_hh_t = hs.unbind(1), w_hh.transpose(1, 2)
    for t, gi_t in enumerate(gi.unbind(1)):
        activate(spec.nonlinearity, torch.baddbmm(gi_t, h_v[t], w_hh_t), h_v[t + 1])
    return (), gi.new_empty(0)


def _gru_forward(spec, gi, w_hh, b_hh, hs, c0):
    k, n_steps, batch, _ = gi.shape
    h1 = w_hh.shape[2]
    h2 = 2 * h1
    h_v, w_hh_t = hs.unbind(1), w_hh.transpose(1, 2)
    b = gi.new_zeros(k, 1, 3 * h1) if b_hh is None else b_hh.unsqueeze(1)
    rz = gi.new_empty(k, n_steps, batch, h2)  # sigmoid gates (r, z)
    n = gi.new_empty(k, n_steps, batch, h1)
    gi_rz, gi_n = gi[..., :h2].unbind(1), gi[..., h2:].unbind(1)
    rz_v, r_v, z_v = rz.unbind(1), rz[..., :h1].unbind(1), rz[..., h1:].unbind(1)
    n_v = n.unbind(1)
    for t in range(n_steps):
        gh = torch.baddbmm(b, h_v[t], w_hh_t)  # (K, B, 3H)
        torch.add(gi_rz[t], gh[..., :h2], out=rz_v[t]).sigmoid_()
        _tanh(torch.addcmul(gi_n[t], r_v[t], gh[..., h2:], out=n_v[t]), n_v[t])
        torch.lerp(n_v[t], h_v[t], z_v[t], out=h_v[t + 1])  # (1-z)*n + z*h
    return (b, rz, n), gi.new_empty(0)


def _lstm_forward(spec, gi, w_hh, b_hh, hs, c0):
    k, n_steps, batch, _ = gi.shape
    h1 = w_hh.shape[2]
    h2, h3 = 2 * h1, 3 * h1
    h_v, w_hh_t = hs.unbind(1), w_hh.transpose(1, 2)
    a = gi.new_empty(k, n_steps, batch, 4 * h1)  # i, f, g, o activations
    cs = gi.new_empty(k, n_steps + 1, batch, h1)
    tc = gi.new_empty(k, n_steps, batch, h1)  # tanh(c)
    cs[:, 0] = c0
    a_v, c_v, tc_v = a.unbind(1), cs.unbind(1), tc.unbind(1)
    i_v, f_v = a[..., :h1].unbind(1), a[..., h1:h2].unbind(1)
    g_v, o_v = a[..., h2:h3].unbind(1), a[..., h3:].unbind(1)
    for t, gi_t in enumerate(gi.unbind(1)):
        gates = torch.baddbmm(gi_t, h_v[t], w_hh_t)  # (K, B, 4H): i, f, g, o
        torch.sigmoid(gates, out=a_v[t])
        _tanh(gates[..., h2:h3], g_v[t])
        torch.mul(f_v[t], c_v[t], out=c_v[t + 1]).addcmul_(i_v[t], g_v[t])
        torch.mul(o_v[t], _tanh(c_v[t + 1], tc_v[t]), out=h_v[t + 1])
    return (cs, a, tc), cs[:, -1]


def _elman_backward(ctx, hs, w_hh, rest, g_v, dh, g_c, h_prev):
    k, t1, batch, n_hidden = hs.shape
    # d_gi starts as the activation's derivative; each step multiplies dh in place.
    d_gi = activation_grad(ctx.spec.nonlinearity, hs[:, 1:])
    d_v = d_gi.unbind(1)
    for t in range(t1 - 2, -1, -1):
        dh = torch.baddbmm(g_v[t], d_v[t].mul_(dh), w_hh)
    d_gh = d_gi.view(k, (t1 - 1) * batch, n_hidden)
    d_w_hh = torch.bmm(d_gh.transpose(1, 2), h_prev)
    d_b_hh = d_gh.sum(1) if ctx.has_b_hh else None
    return d_gi, d_w_hh, d_b_hh, dh, None


def _gru_backward(ctx, hs, w_hh, rest, g_v, dh, g_c, h_prev):
    k, t1, batch, n_hidden = hs.shape
    n_steps = t1 - 1
    b, rz, n = rest
    h1, h2 = n_hidden, 2 * n_hidden
    r, z = rz[..., :h1], rz[..., h1:]
    # W_hn h + b_hn of every step, recomputed as one matmul instead of stored per step.
    hn = torch.baddbmm(b[..., h2:], h_prev, w_hh[:, h2:].transpose(1, 2))
    hn = hn.view(k, n_steps, batch, n_hidden)
    one_z = 1 - z
    dn = (1 - n * n).mul_(one_z)  # d h_t / d (pre-activation of n)
    # coef[:, t] * dh = (d hn, d r_pre, d z_pre, d n_pre) of step t, computed in place.
    coef = n.new_empty(k, n_steps, batch, 4, n_hidden)
    torch.mul(dn, r, out=coef[..., 0, :])
    torch.mul(coef[..., 0, :], hn * (1 - r), out=coef[..., 1, :])
    torch.mul(hs[:, :-1] - n, z * one_z, out=coef[..., 2, :])
    coef[..., 3, :] = dn
    w_perm = torch.cat([w_hh[:, h2:], w_hh[:, :h2]], 1)  # rows (n, r, z)
    coef_v, d3_v, z_v = coef.unbind(1), coef[..., :3, :].flatten(-2).unbind(1), z.unbind(1)
    for t in range(n_steps - 1, -1, -1):
        coef_v[t].mul_(dh.unsqueeze(-2))  # (K, B, 4, H)
        dh = torch.addcmul(g_v[t], dh, z_v[t]).baddbmm_(d3_v[t], w_perm)  # in place: no copy
    d_gi = coef[..., 1:, :].flatten(-2)  # (K, T, B, 3H): r, z, n (a strided view)
    d_gh = coef[..., :3, :].flatten(-2).view(k, n_steps * batch, 3 * n_hidden)
    d_perm = torch.bmm(d_gh.transpose(1, 2), h_prev)  # rows (n, r, z)
    d_w_hh = torch.cat([d_perm[:, h1:], d_perm[:, :h1]], 1)
    d_b_hh = None
    if ctx.has_b_hh:
        sums = coef.sum((1, 2))  # (K, 4, H)
        d_b_hh = torch.cat([sums[:, 1], sums[:, 2], sums[:, 0]], 1)
    return d_gi, d_w_hh, d_b_hh, dh, None


def _lstm_backward(ctx, hs, w_hh, rest, g_v, dh, g_c, h_prev):
    k, t1, batch, n_hidden = hs.shape
    n_steps = t1 - 1
    cs, a, tc = rest
    h1, h2, h3 = n_hidden, 2 * n_hidden, 3 * n_hidden
    i_g, f_g, g_g, o_g = a[..., :h1], a[..., h1:h2], a[..., h2:h3], a[..., h3:]
    q = o_g * (1 - tc * tc)  # d h_t / d c_t
    # coef[:, t] * (dc, dc, dc, dh) = d (i, f, g, o) pre-activations, in place.
    coef = a.new_empty(k, n_steps, batch, 4, n_hidden)
    torch.mul(g_g, i_g * (1 - i_g), out=coef[..., 0, :])
    torch.mul(cs[:, :-1], f_g * (1 - f_g), out=coef[..., 1, :])
    torch.mul(i_g, 1 - g_g * g_g, out=coef[..., 2, :])
    torch.mul(tc, o_g * (1 - o_g), out=coef[..., 3, :])
    dc = g_c
    q_v, f_v = q.unbind(1), f_g.unbind(1)
    ifg_v, o_v = coef[..., :3, :].unbind(1), coef[..., 3, :].unbind(1)
    p_v = coef.flatten(-2).unbind(1)
    for t in range(n_steps - 1, -1, -1):
        dc = torch.addcmul(dc, dh, q_v[t])
        ifg_v[t].mul_(dc.unsqueeze(-2))
        o_v[t].mul_(dh)
        dc = dc * f_v[t]
        dh = torch.baddbmm(g_v[t], p_v[t], w_hh)
    d_gi = coef.view(k, n_steps, batch, 4 * n_hidden)
    d_gh = d_gi.view(k, n_steps * batch, 4 * n_hidden)
    d_w_hh = torch.bmm(d_gh.transpose(1, 2), h_prev)
    d_b_hh = d_gh.sum(1) if ctx.has_b_hh else None
    return d_gi, d_w_hh, d_b_hh, dh, dc


_FORWARD = {"rnn": _elman_forward, "gru": _gru_forward, "lstm": _lstm_forward}
_BACKWARD = {"rnn": _elman_backward, "gru": _gru_backward, "lstm": _lstm_backward}


def fused_recurrence(
    mode: str | CellSpec,
    gi: Tensor,
    w_hh: Tensor,
    b_hh: Tensor | None = None,
    h0: Tensor | None = None,
    c0: Tensor | None = None,
) -> tuple[Tensor, Tensor, Tensor | None]:
    """Run K independent recurrent layers from precomputed input gates (one autograd node).

    Parameters
    ----------
    mode : a cell name (``rnn_tanh``, ``rnn_relu``, ``gru``, ``lstm``) or its :class:`CellSpec`.
    gi : (K, T, B, G*H) input gates ``x @ w_ih^T + b_ih`` of every time step.
    w_hh : (K, G*H, H) hidden-to-hidden weights (masked by the caller); ``b_hh`` (K, G*H).
    h0, c0 : (K, B, H) initial states; None means zeros (``c0`` is LSTM only).

    Returns
    -------
    ``(output, h_n, c_n)``: the hidden states of every step (K, T, B, H), the last hidden
    state (K, B, H) and, for LSTM, the last cell state (K, B, H) (None otherwise).
    """
    spec = cell_spec(mode)
    k, _, batch, _ = gi.shape
    n_hidden = w_hh.shape[2]
    if h0 is None:
        h0 = gi.new_zeros(k, batch, n_hidden)
    if spec.has_cell_state and c0 is None:
        c0 = gi.new_zeros(k, batch, n_hidden)
    c0 = c0 if spec.has_cell_state else None
    out, h_n, c_n = _Recurrence.apply(spec, gi, w_hh, b_hh, h0, c0)
    return out, h_n, (c_n if spec.has_cell_state else None)


def _run_layers_fused(spec, x, weights, hx, batch_first, directions=1):
    """:func:`run_layers` through :func:`fused_recurrence`, one layer at a time; the
    directions of a layer are its K axis (the reverse one runs over the time-reversed input,
    ``flip(0)``, and its output is flipped back)."""
    if batch_first:
        x = x.transpose(0, 1)
    final = []
    for k in range(0, len(weights), directions):
        gis, w_hhs, b_hhs = [], [], []
        for d, (w_ih, w_hh, b_ih, b_hh) in enumerate(weights[k : k + directions]):
            b_ih, b_hh = spec.fold_biases(b_ih, b_hh)  # both add to the same pre-activation
            gis.append(F.linear(x.flip(0) if d else x, w_ih, b_ih))  # (T, B, G*H)
            w_hhs.append(w_hh)
            b_hhs.append(b_hh)
        h0 = None if hx is None else torch.stack(list(hx[k : k + directions]))
        b = None if b_hhs[0] is None else torch.stack(b_hhs)
        out, h_n, _ = fused_recurrence(spec, torch.stack(gis), torch.stack(w_hhs), b, h0)
        x = out[0] if directions == 1 else torch.cat([out[0], out[1].flip(0)], -1)  # (T, B, DH)
        final.extend(h_n.unbind(0))
    return (x.transpose(0, 1) if batch_first else x), final
