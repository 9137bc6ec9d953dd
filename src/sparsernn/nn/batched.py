"""K recurrent models of one architecture in one set of batched operations.

(prototype: kernels first)
"""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["recurrence"]


def _bias(b: Tensor | None, k: int, g: int, like: Tensor) -> Tensor:
    return like.new_zeros(k, 1, g) if b is None else b.unsqueeze(1)


class _Recurrence(torch.autograd.Function):
    """One recurrent layer of K models over a whole sequence, with a hand-written BPTT.

    Inputs ``x`` (K, T, B, I), ``h0`` (K, B, H), ``c0`` (K, B, H) for LSTM (else None), weights
    (K, G*H, I) / (K, G*H, H), biases (K, G*H) or None. Output: ``hs`` (K, T+1, B, H) with
    ``hs[:, 0] = h0``, and the final cell state (K, B, H) for LSTM (else an empty tensor).
    """

    @staticmethod
    def forward(ctx, mode, x, h0, c0, w_ih, w_hh, b_ih, b_hh):  # noqa: D102
        k, t_len, batch, i_size = x.shape
        g = w_ih.shape[1]
        h_size = w_hh.shape[2]
        w_hh_t = w_hh.transpose(1, 2)
        if mode == "gru":
            bias_i = _bias(b_ih, k, g, x)
            bias_h = _bias(b_hh, k, g, x)
        else:
            bias_i = _bias(b_ih, k, g, x)
            if b_hh is not None:
                bias_i = bias_i + b_hh.unsqueeze(1)
        gi = torch.baddbmm(bias_i, x.reshape(k, t_len * batch, i_size), w_ih.transpose(1, 2))
        gi = gi.view(k, t_len, batch, g)  # (K, T, B, G)
        h = h0
        hs = [h0]
        if mode in ("rnn_tanh", "rnn_relu"):
            act = torch.Tensor.tanh_ if mode == "rnn_tanh" else torch.Tensor.relu_
            for gi_t in gi.unbind(1):
                h = act(torch.baddbmm(gi_t, h, w_hh_t))
                hs.append(h)
            hs_all = torch.stack(hs, 1)
            ctx.save_for_backward(x, hs_all, w_ih, w_hh)
            extra = x.new_empty(0)
        elif mode == "gru":
            two = 2 * h_size
            rz_list, n_list, hn_list = [], [], []
            for gi_rz, gi_n in zip(gi[..., :two].unbind(1), gi[..., two:].unbind(1), strict=True):
                gh = torch.baddbmm(bias_h, h, w_hh_t)  # (K, B, 3H)
                rz = torch.add(gi_rz, gh[..., :two]).sigmoid_()
                hn = gh[..., two:]
                n = torch.addcmul(gi_n, rz[..., :h_size], hn).tanh_()
                h = torch.lerp(n, h, rz[..., h_size:])
                hs.append(h)
                rz_list.append(rz)
                n_list.append(n)
                hn_list.append(hn)
            hs_all = torch.stack(hs, 1)
            rz_all = torch.stack(rz_list, 1)
            n_all = torch.stack(n_list, 1)
            hn_all = torch.stack(hn_list, 1)
            ctx.save_for_backward(x, hs_all, w_ih, w_hh, rz_all, n_all, hn_all)
            extra = x.new_empty(0)
        elif mode == "lstm":
            c = c0
            cs, a_list, tc_list = [c0], [], []
            hh, h2, h3 = h_size, 2 * h_size, 3 * h_size
            for gi_t in gi.unbind(1):
                gates = torch.baddbmm(gi_t, h, w_hh_t)  # (K, B, 4H)
                a = gates.sigmoid()
                torch.tanh(gates[..., h2:h3], out=a[..., h2:h3])
                c = a[..., hh:h2] * c
                c.addcmul_(a[..., :hh], a[..., h2:h3])
                tc = c.tanh()
                h = a[..., h3:] * tc
                hs.append(h)
                cs.append(c)
                a_list.append(a)
                tc_list.append(tc)
            hs_all = torch.stack(hs, 1)
            cs_all = torch.stack(cs, 1)
            ctx.save_for_backward(
                x, hs_all, w_ih, w_hh, cs_all, torch.stack(a_list, 1), torch.stack(tc_list, 1)
            )
            extra = c
        else:
            raise ValueError(f"unknown mode {mode!r}")
        ctx.mode = mode
        ctx.has_bias = (b_ih is not None, b_hh is not None)
        return hs_all, extra

    @staticmethod
    def backward(ctx, g_hs, g_c):  # noqa: D102
        mode = ctx.mode
        saved = ctx.saved_tensors
        x, hs_all, w_ih, w_hh = saved[:4]
        k, t_len, batch, i_size = x.shape
        h_size = w_hh.shape[2]
        g_hs = g_hs.contiguous()
        g_steps = g_hs.unbind(1)
        dh = g_steps[t_len]
        h_prev = hs_all[:, :-1]
        if mode in ("rnn_tanh", "rnn_relu"):
            out = hs_all[:, 1:]
            deriv = (1 - out * out) if mode == "rnn_tanh" else (out > 0).to(out.dtype)
            da_list = [None] * t_len
            for t in range(t_len - 1, -1, -1):
                da = dh * deriv[:, t]
                da_list[t] = da
                dh = torch.baddbmm(g_steps[t], da, w_hh)
            d_gi = torch.stack(da_list, 1).view(k, t_len * batch, -1)
            d_gh = d_gi
        elif mode == "gru":
            rz_all, n_all, hn_all = saved[4:]
            r = rz_all[..., :h_size]
            z = rz_all[..., h_size:]
            dn = (1 - n_all * n_all) * (1 - z)
            coef = torch.stack(
                [dn * hn_all * r * (1 - r), (h_prev - n_all) * z * (1 - z), dn * r, dn], dim=-2
            )  # (K, T, B, 4, H)
            prods = [None] * t_len
            coef_t = coef.unbind(1)
            z_t = z.unbind(1)
            for t in range(t_len - 1, -1, -1):
                p = dh.unsqueeze(-2) * coef_t[t]  # (K, B, 4, H)
                prods[t] = p
                d_gh_t = p[:, :, :3].flatten(-2)
                dh = torch.baddbmm(torch.addcmul(g_steps[t], dh, z_t[t]), d_gh_t, w_hh)
            p_all = torch.stack(prods, 1)  # (K, T, B, 4, H)
            d_gh = p_all[..., :3, :].reshape(k, t_len * batch, 3 * h_size)
            d_gi = p_all[..., (0, 1, 3), :].reshape(k, t_len * batch, 3 * h_size)
        else:  # lstm
            cs_all, a_all, tc_all = saved[4:]
            hh, h2, h3 = h_size, 2 * h_size, 3 * h_size
            i_g, f_g, g_g, o_g = a_all[..., :hh], a_all[..., hh:h2], a_all[..., h2:h3], a_all[..., h3:]
            q = o_g * (1 - tc_all * tc_all)
            coef = torch.stack(
                [
                    g_g * i_g * (1 - i_g),
                    cs_all[:, :-1] * f_g * (1 - f_g),
                    i_g * (1 - g_g * g_g),
                    tc_all * o_g * (1 - o_g),
                ],
                dim=-2,
            )  # (K, T, B, 4, H)
            dc = g_c.contiguous() if g_c.numel() else torch.zeros_like(dh)
            prods = [None] * t_len
            coef_t, q_t, f_t = coef.unbind(1), q.unbind(1), f_g.unbind(1)
            for t in range(t_len - 1, -1, -1):
                dc = torch.addcmul(dc, dh, q_t[t])
                both = torch.cat(
                    [dc.unsqueeze(-2).expand(k, batch, 3, h_size), dh.unsqueeze(-2)], dim=-2
                )
                p = both.mul_(coef_t[t])
                prods[t] = p
                dc = dc * f_t[t]
                dh = torch.baddbmm(g_steps[t], p.view(k, batch, 4 * h_size), w_hh)
            d_gi = torch.stack(prods, 1).view(k, t_len * batch, 4 * h_size)
            d_gh = d_gi
        d_h0 = dh
        xs = x.reshape(k, t_len * batch, i_size)
        d_x = torch.bmm(d_gi, w_ih).view(k, t_len, batch, i_size) if ctx.needs_input_grad[1] else None
        d_w_ih = torch.bmm(d_gi.transpose(1, 2), xs)
        d_w_hh = torch.bmm(d_gh.transpose(1, 2), h_prev.reshape(k, t_len * batch, h_size))
        d_b_ih = d_gi.sum(1) if ctx.has_bias[0] else None
        d_b_hh = d_gh.sum(1) if ctx.has_bias[1] else None
        d_c0 = dc if mode == "lstm" else None
        return None, d_x, d_h0, d_c0, d_w_ih, d_w_hh, d_b_ih, d_b_hh


def recurrence(mode, x, h0, c0, w_ih, w_hh, b_ih, b_hh):
    """Run one layer of K models: returns (hs (K, T+1, B, H), final c or empty)."""
    return _Recurrence.apply(mode, x, h0, c0, w_ih, w_hh, b_ih, b_hh)
