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

import torch
import torch.nn.functional as F
from torch import _VF, Tensor

__all__ = ["run_layers", "LayerWeights", "fused_recurrence"]

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
    Consecutive layers of equal hidden size are fused into one kernel call; on CPU, rnn_tanh,
    rnn_relu and gru (without training-time dropout) run :func:`fused_recurrence` instead.
    """
    if mode in _FUSED_CPU_MODES and x.device.type == "cpu" and not (dropout > 0 and training):
        return _run_layers_fused(mode, x, weights, hx, batch_first)
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


# ---------------------------------------------------------------------- hand-fused recurrence
#: Modes that run :func:`fused_recurrence` on CPU inside :func:`run_layers`.
_FUSED_CPU_MODES = frozenset({"rnn_tanh", "rnn_relu", "gru"})


#: From this many elements on, CPU tanh is computed as 2 * sigmoid(2x) - 1: PyTorch's CPU
#: ``tanh`` kernel measured ~2 ns/element here (about 10x its ``sigmoid``), which dominated the
#: elementwise cost of K models at once. Both agree to float rounding.
_TANH_VIA_SIGMOID = 2048


_TWO: dict[torch.dtype, Tensor] = {}


def _tanh(x: Tensor, out: Tensor) -> Tensor:
    """``out = tanh(x)``; ``out`` may be ``x`` itself (in place)."""
    if x.device.type != "cpu" or x.numel() < _TANH_VIA_SIGMOID:
        return torch.tanh(x, out=out)
    two = _TWO.get(x.dtype)
    if two is None:  # a 0-d tensor: a Python float would be converted on every call
        two = _TWO[x.dtype] = torch.tensor(2.0, dtype=x.dtype)
    return torch.mul(x, two, out=out).sigmoid_().mul_(two).sub_(two, alpha=0.5)


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
    def forward(ctx, mode, gi, w_hh, b_hh, h0, c0):
        k, n_steps, batch, _ = gi.shape
        n_hidden = w_hh.shape[2]
        w_hh_t = w_hh.transpose(1, 2)  # (K, H, G*H)
        if mode != "gru" and b_hh is not None:
            gi = gi + b_hh[:, None, None, :]
        hs = gi.new_empty(k, n_steps + 1, batch, n_hidden)
        hs[:, 0] = h0
        c_last = gi.new_empty(0)
        # Per-step views are made once, outside the loop (each Python-level view costs ~1 us).
        # Matmuls write fresh tensors: with out= a strided view, K > 1 falls back to K addmms.
        h_v = hs.unbind(1)
        if mode in ("rnn_tanh", "rnn_relu"):
            for t, gi_t in enumerate(gi.unbind(1)):
                pre = torch.baddbmm(gi_t, h_v[t], w_hh_t)
                if mode == "rnn_tanh":
                    _tanh(pre, h_v[t + 1])
                else:
                    torch.clamp(pre, min=0, out=h_v[t + 1])  # relu
            ctx.save_for_backward(hs, w_hh)
        elif mode == "gru":
            h1, h2 = n_hidden, 2 * n_hidden
            b = gi.new_zeros(k, 1, 3 * n_hidden) if b_hh is None else b_hh.unsqueeze(1)
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
            ctx.save_for_backward(hs, w_hh, b, rz, n)
        elif mode == "lstm":
            h1, h2, h3 = n_hidden, 2 * n_hidden, 3 * n_hidden
            a = gi.new_empty(k, n_steps, batch, 4 * n_hidden)  # i, f, g, o activations
            cs = gi.new_empty(k, n_steps + 1, batch, n_hidden)
            tc = gi.new_empty(k, n_steps, batch, n_hidden)  # tanh(c)
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
            ctx.save_for_backward(hs, w_hh, cs, a, tc)
            c_last = cs[:, -1]
        else:
            raise ValueError(f"unknown mode {mode!r}")
        ctx.mode = mode
        ctx.has_b_hh = b_hh is not None
        return hs[:, 1:], hs[:, -1], c_last

    @staticmethod
    def backward(ctx, g_out, g_h, g_c):
        mode = ctx.mode
        hs, w_hh, *rest = ctx.saved_tensors
        k, t1, batch, n_hidden = hs.shape
        n_steps = t1 - 1
        # g_v[t] is the output gradient entering h_t (hs index t; nothing enters h0)
        g_v = [g_h.new_zeros(()), *g_out.unbind(1)]
        dh = g_h + g_v[n_steps]
        h_prev = hs[:, :-1].reshape(k, n_steps * batch, n_hidden)  # a view
        d_c0 = None
        if mode in ("rnn_tanh", "rnn_relu"):
            out = hs[:, 1:]
            # d_gi starts as the activation's derivative; each step multiplies dh in place.
            d_gi = (1 - out * out) if mode == "rnn_tanh" else (out > 0).to(out.dtype)
            d_v = d_gi.unbind(1)
            for t in range(n_steps - 1, -1, -1):
                dh = torch.baddbmm(g_v[t], d_v[t].mul_(dh), w_hh)
            d_gh = d_gi.view(k, n_steps * batch, n_hidden)
            d_w_hh = torch.bmm(d_gh.transpose(1, 2), h_prev)
            d_b_hh = d_gh.sum(1) if ctx.has_b_hh else None
        elif mode == "gru":
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
                dh = torch.baddbmm(torch.addcmul(g_v[t], dh, z_v[t]), d3_v[t], w_perm)
            d_gi = coef[..., 1:, :].flatten(-2)  # (K, T, B, 3H): r, z, n (a strided view)
            d_gh = coef[..., :3, :].flatten(-2).view(k, n_steps * batch, 3 * n_hidden)
            d_perm = torch.bmm(d_gh.transpose(1, 2), h_prev)  # rows (n, r, z)
            d_w_hh = torch.cat([d_perm[:, h1:], d_perm[:, :h1]], 1)
            d_b_hh = None
            if ctx.has_b_hh:
                sums = coef.sum((1, 2))  # (K, 4, H)
                d_b_hh = torch.cat([sums[:, 1], sums[:, 2], sums[:, 0]], 1)
        else:  # lstm
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
            d_c0 = dc
        d_gi = d_gi.view(k, n_steps, batch, -1) if d_gi.is_contiguous() else d_gi
        return None, d_gi, d_w_hh, d_b_hh, dh, d_c0


def fused_recurrence(
    mode: str,
    gi: Tensor,
    w_hh: Tensor,
    b_hh: Tensor | None = None,
    h0: Tensor | None = None,
    c0: Tensor | None = None,
) -> tuple[Tensor, Tensor | None]:
    """Run K independent recurrent layers from precomputed input gates (one autograd node).

    Parameters
    ----------
    mode : one of ``rnn_tanh``, ``rnn_relu``, ``gru``, ``lstm``.
    gi : (K, T, B, G*H) input gates ``x @ w_ih^T + b_ih`` of every time step.
    w_hh : (K, G*H, H) hidden-to-hidden weights (masked by the caller); ``b_hh`` (K, G*H).
    h0, c0 : (K, B, H) initial states; None means zeros (``c0`` is LSTM only).

    Returns
    -------
    ``(output, h_n, c_n)``: the hidden states of every step (K, T, B, H), the last hidden
    state (K, B, H) and, for LSTM, the last cell state (K, B, H) (None otherwise).
    """
    k, _, batch, _ = gi.shape
    n_hidden = w_hh.shape[2]
    if h0 is None:
        h0 = gi.new_zeros(k, batch, n_hidden)
    if mode == "lstm" and c0 is None:
        c0 = gi.new_zeros(k, batch, n_hidden)
    out, h_n, c_n = _Recurrence.apply(mode, gi, w_hh, b_hh, h0, c0 if mode == "lstm" else None)
    return out, h_n, (c_n if mode == "lstm" else None)


def _run_layers_fused(mode, x, weights, hx, batch_first):
    """:func:`run_layers` through :func:`fused_recurrence`, one layer at a time (K = 1)."""
    if batch_first:
        x = x.transpose(0, 1)
    final = []
    for k, (w_ih, w_hh, b_ih, b_hh) in enumerate(weights):
        if mode != "gru" and b_hh is not None:  # both biases add to the same pre-activation
            b_ih, b_hh = b_ih + b_hh, None
        gi = F.linear(x, w_ih, b_ih)  # (T, B, G*H)
        h0 = None if hx is None else hx[k].unsqueeze(0)
        b = None if b_hh is None else b_hh.unsqueeze(0)
        out, h_n, _ = fused_recurrence(mode, gi.unsqueeze(0), w_hh.unsqueeze(0), b, h0)
        x = out[0]  # (T, B, H)
        final.append(h_n[0])
    return (x.transpose(0, 1) if batch_first else x), final
