"""Wavefront execution of a graph-wired recurrent network (:class:`~sparsernn.nn.StructuredRNN`).

A random-structure network is a set of small independent recurrent *blocks* (one per sub-layer
``(s, l)``: it reads layer ``s``'s output and adds its own output into layer ``l``). Layer ``l``
at time ``t`` needs layers ``< l`` at the same ``t``, so running layer after layer costs
``L x T`` sequential steps of tiny matrices, and on a CPU every step is bound by per-operation
overhead, not arithmetic.

Here block ``j`` reading source layer ``s`` runs *shifted* by ``off_j = s + 1`` steps: at
wavefront step ``d`` it computes its time ``t = d - off_j``. Everything it reads at that time
was computed at an earlier step, so all blocks advance together and the whole network takes
``T + L - 1`` steps of one batched update (blocks padded to a common width ``H``; padded units
have zero weights and stay exactly zero). The forward and the backward through time are written
by hand as one autograd node, like :func:`sparsernn.nn.functional.fused_recurrence`.

Buffers are step-major, ``(steps + 1, blocks, B, H)``: row ``d + 1`` holds every block's
state after step ``d`` (row 0 is the zero initial state), so the blocks active at step ``d``
(a contiguous range, because blocks are sorted by offset) are one contiguous slice.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from sparsernn.nn.cells import CellSpec, cell_spec
from sparsernn.nn.functional import _tanh, activate, activation_grad

__all__ = ["WavefrontPlan", "wavefront_recurrence", "layer_outputs"]


@dataclass(frozen=True)
class WavefrontPlan:
    """Static wiring of the blocks; built once per network (see :meth:`from_blocks`).

    ``offsets[j]`` is block ``j``'s shift (ascending), ``sources[j]`` the source it reads.
    A source is the sum of the *contributions* ``(block, source)`` that write into it; input
    sources are pseudo-blocks ``n_blocks ..`` whose rows hold the network's input. ``delays[p]``
    says how many steps before its reader contribution ``p``'s row was written.
    """

    n_blocks: int
    n_inputs: int
    n_sources: int
    offsets: tuple[int, ...]
    sources: tuple[int, ...]
    contrib_block: tuple[int, ...]
    contrib_source: tuple[int, ...]
    delays: tuple[int, ...]

    @classmethod
    def from_blocks(
        cls,
        blocks: Sequence[tuple[int, int, int]],
        n_inputs: int = 1,
    ) -> WavefrontPlan:
        """Build from ``(source, destination, offset)`` per block; sources ``< n_inputs`` are input.

        Source and destination ids share one numbering (a block's destination is a source for
        the blocks that read it). Every reader of a source must have the same offset, larger
        than the offset of every block writing into it.
        """
        offsets = [off for _, _, off in blocks]
        if offsets != sorted(offsets):
            raise ValueError("blocks must be sorted by offset")
        reader_off: dict[int, int] = {}
        for src, _, off in blocks:
            if reader_off.setdefault(src, off) != off:
                raise ValueError(f"readers of source {src} have different offsets")
        n_sources = 1 + max([n_inputs - 1] + [max(s, d) for s, d, _ in blocks])
        c_block, c_source, delays = [], [], []
        for j, (_, dst, off) in enumerate(blocks):
            if dst in reader_off:  # a destination nobody reads (the top layer) needs no gather
                delay = reader_off[dst] - off
                if delay < 1:
                    raise ValueError(f"block {j} writes source {dst} too late for its readers")
                c_block.append(j)
                c_source.append(dst)
                delays.append(delay)
        for i in range(n_inputs):  # input pseudo-block i holds x at row t + 1 (offset 0)
            c_block.append(len(blocks) + i)
            c_source.append(i)
            delays.append(reader_off.get(i, 0))
        return cls(
            n_blocks=len(blocks),
            n_inputs=n_inputs,
            n_sources=n_sources,
            offsets=tuple(offsets),
            sources=tuple(src for src, _, _ in blocks),
            contrib_block=tuple(c_block),
            contrib_source=tuple(c_source),
            delays=tuple(delays),
        )

    @property
    def extra_steps(self) -> int:
        """Steps beyond ``T``: the largest offset."""
        return self.offsets[-1] if self.offsets else 0

    def ranges(self, n_steps: int) -> list[tuple[int, int]]:
        """Active blocks ``[lo, hi)`` at each wavefront step (``off <= d < off + T``)."""
        out = []
        for d in range(n_steps + self.extra_steps):
            out.append((bisect_right(self.offsets, d - n_steps), bisect_right(self.offsets, d)))
        return out

    def tensors(self, n_steps: int, device: torch.device) -> dict[str, Tensor]:
        """Index tensors for ``n_steps`` input steps: the flat rows to gather at every step."""
        n_total = self.n_blocks + self.n_inputs
        steps = torch.arange(n_steps + self.extra_steps, device=device)[:, None]
        delays = torch.tensor(self.delays, dtype=torch.long, device=device)
        rows = (steps + 1 - delays).clamp_(min=0)  # row 0 is zeros: read only by idle blocks
        block = torch.tensor(self.contrib_block, dtype=torch.long, device=device)
        return {
            "gather": rows * n_total + block,  # (S, P) into the (rows * blocks) flat view
            "contrib_source": torch.tensor(self.contrib_source, dtype=torch.long, device=device),
            "sources": torch.tensor(self.sources, dtype=torch.long, device=device),
        }

    def activity(self, n_steps: int, device: torch.device) -> Tensor:
        """(S, J) bool: whether block ``j`` computes at step ``d``."""
        steps = torch.arange(n_steps + self.extra_steps, device=device)[:, None]
        offsets = torch.tensor(self.offsets, dtype=torch.long, device=device)[None]
        return (steps >= offsets) & (steps < offsets + n_steps)


class _Wavefront(torch.autograd.Function):
    """All blocks over a whole sequence; returns the state buffer ``(S + 1, J + I, B, H)``.

    ``x`` (T, I, B, H) are the input sources (padded to ``H``), ``w_ih``/``w_hh`` (J, G*H, H)
    and ``b_ih``/``b_hh`` (J, G*H) the padded, already masked block weights.
    """

    @staticmethod
    def forward(ctx, spec, plan, x, w_ih, w_hh, b_ih, b_hh):
        n_steps, _, batch, width = x.shape
        n_blocks, n_total = plan.n_blocks, plan.n_blocks + plan.n_inputs
        n_wave = n_steps + plan.extra_steps
        idx = plan.tensors(n_steps, x.device)
        ranges = plan.ranges(n_steps)
        h1, h2, h3 = width, 2 * width, 3 * width
        states = x.new_zeros(n_wave + 1, n_total, batch, width)
        states[1 : n_steps + 1, n_blocks:] = x
        flat = states.view(-1, batch, width)
        ys = x.new_zeros(n_wave, plan.n_sources, batch, width)  # source values read at step d
        xs = x.new_zeros(n_wave, n_blocks, batch, width)  # each block's input at step d
        w_ih_t, w_hh_t = w_ih.transpose(1, 2), w_hh.transpose(1, 2)
        b_in = spec.fold_biases(b_ih, b_hh)[0].unsqueeze(1)  # (J, 1, G*H)
        b_rec = b_hh.unsqueeze(1)
        saved: tuple[Tensor, ...] = ()
        if spec.family == "gru":
            rz = x.new_zeros(n_wave, n_blocks, batch, h2)
            n = x.new_zeros(n_wave, n_blocks, batch, h1)
            saved = (rz, n)
        elif spec.has_cell_state:
            acts = x.new_zeros(n_wave, n_blocks, batch, 4 * width)
            cells = x.new_zeros(n_wave + 1, n_blocks, batch, width)
            tc = x.new_zeros(n_wave, n_blocks, batch, width)
            saved = (acts, cells, tc)
        for d, (lo, hi) in enumerate(ranges):
            if lo == hi:
                continue
            ys[d].index_add_(0, idx["contrib_source"], flat.index_select(0, idx["gather"][d]))
            torch.index_select(ys[d], 0, idx["sources"][lo:hi], out=xs[d, lo:hi])
            gi = torch.baddbmm(b_in[lo:hi], xs[d, lo:hi], w_ih_t[lo:hi])
            h_prev, h_out = states[d, lo:hi], states[d + 1, lo:hi]
            if spec.nonlinearity is not None:  # Elman
                activate(spec.nonlinearity, gi.baddbmm_(h_prev, w_hh_t[lo:hi]), h_out)
            elif spec.family == "gru":
                rz_d, n_d = rz[d, lo:hi], n[d, lo:hi]
                gh = torch.baddbmm(b_rec[lo:hi], h_prev, w_hh_t[lo:hi])
                torch.add(gi[..., :h2], gh[..., :h2], out=rz_d).sigmoid_()
                _tanh(torch.addcmul(gi[..., h2:], rz_d[..., :h1], gh[..., h2:], out=n_d), n_d)
                torch.lerp(n_d, h_prev, rz_d[..., h1:], out=h_out)
            else:  # lstm: gates i, f, g, o
                a_d, c_new = acts[d, lo:hi], cells[d + 1, lo:hi]
                gates = gi.baddbmm_(h_prev, w_hh_t[lo:hi])
                torch.sigmoid(gates, out=a_d)
                _tanh(gates[..., h2:h3], a_d[..., h2:h3])
                torch.mul(a_d[..., h1:h2], cells[d, lo:hi], out=c_new)
                c_new.addcmul_(a_d[..., :h1], a_d[..., h2:h3])
                torch.mul(a_d[..., h3:], _tanh(c_new, tc[d, lo:hi]), out=h_out)
        ctx.spec, ctx.plan, ctx.ranges, ctx.idx = spec, plan, ranges, idx
        ctx.save_for_backward(states, xs, w_ih, w_hh, b_hh, *saved)
        return states

    @staticmethod
    def backward(ctx, g_states):
        spec, plan, ranges, idx = ctx.spec, ctx.plan, ctx.ranges, ctx.idx
        states, xs, w_ih, w_hh, b_hh, *saved = ctx.saved_tensors
        n_wave, n_blocks, batch, width = xs.shape
        n_steps = n_wave - plan.extra_steps
        h1, h2, h3 = width, 2 * width, 3 * width
        active = plan.activity(n_steps, xs.device).to(xs.dtype)[:, :, None, None]
        d_states = g_states.clone()  # accumulates every gradient reaching a state row
        d_flat = d_states.view(-1, batch, width)
        h_prev = states[:-1, :n_blocks]  # (S, J, B, H): each step's previous state
        h_out = states[1:, :n_blocks]
        if spec.nonlinearity is not None:  # Elman
            coef = activation_grad(spec.nonlinearity, h_out)
            coef.mul_(active)  # idle steps must not add to the weight gradients
            d_gi_all = d_gh_all = coef
        elif spec.family == "gru":
            rz, n = saved
            r, z = rz[..., :h1], rz[..., h1:]
            hn = torch.einsum("sjbh,jgh->sjbg", h_prev, w_hh[:, h2:]) + b_hh[:, None, h2:]
            one_z = 1 - z
            dn = (1 - n * n).mul_(one_z).mul_(active)
            coef = n.new_empty(n_wave, n_blocks, batch, 4, width)  # (d hn, d r, d z, d n)
            torch.mul(dn, r, out=coef[..., 0, :])
            torch.mul(coef[..., 0, :], hn * (1 - r), out=coef[..., 1, :])
            torch.mul((h_prev - n).mul_(active), z * one_z, out=coef[..., 2, :])
            coef[..., 3, :] = dn
            w_perm = torch.cat([w_hh[:, h2:], w_hh[:, :h2]], 1)  # rows (n, r, z)
            d_gi_all = coef[..., 1:, :].flatten(-2)  # r, z, n
            d_gh_all = coef[..., :3, :].flatten(-2)  # n, r, z
        else:
            acts, cells, tc = saved
            i_g, f_g, g_g, o_g = acts[..., :h1], acts[..., h1:h2], acts[..., h2:h3], acts[..., h3:]
            q = o_g * (1 - tc * tc)  # d h / d c of the same step
            coef = acts.new_empty(n_wave, n_blocks, batch, 4, width)
            torch.mul(g_g, i_g * (1 - i_g), out=coef[..., 0, :])
            torch.mul(cells[:-1], f_g * (1 - f_g), out=coef[..., 1, :])
            torch.mul(i_g, 1 - g_g * g_g, out=coef[..., 2, :])
            torch.mul(tc, o_g * (1 - o_g), out=coef[..., 3, :])
            coef.mul_(active[..., None])
            d_cells = torch.zeros_like(cells)
            d_gi_all = d_gh_all = coef.flatten(-2)
        for d in range(n_wave - 1, -1, -1):
            lo, hi = ranges[d]
            if lo == hi:
                continue
            dh = d_states[d + 1, lo:hi]  # complete: every reader of this row ran later
            if spec.nonlinearity is not None:  # Elman
                d_pre = coef[d, lo:hi].mul_(dh)
                d_states[d, lo:hi].baddbmm_(d_pre, w_hh[lo:hi])
                d_gi = d_pre
            elif spec.family == "gru":
                c_d = coef[d, lo:hi]
                c_d.mul_(dh.unsqueeze(-2))
                d_states[d, lo:hi].addcmul_(dh, z[d, lo:hi])
                d_states[d, lo:hi].baddbmm_(c_d[..., :3, :].flatten(-2), w_perm[lo:hi])
                d_gi = c_d[..., 1:, :].flatten(-2)
            else:
                dc = d_cells[d + 1, lo:hi].addcmul_(dh, q[d, lo:hi])
                c_d = coef[d, lo:hi]
                c_d[..., :3, :].mul_(dc.unsqueeze(-2))
                c_d[..., 3, :].mul_(dh)
                d_cells[d, lo:hi].addcmul_(dc, f_g[d, lo:hi])
                d_gi = c_d.flatten(-2)
                d_states[d, lo:hi].baddbmm_(d_gi, w_hh[lo:hi])
            d_x = torch.bmm(d_gi, w_ih[lo:hi])  # gradient of each active block's input
            d_src = d_x.new_zeros(plan.n_sources, batch, width)
            d_src.index_add_(0, idx["sources"][lo:hi], d_x)
            d_flat.index_add_(0, idx["gather"][d], d_src.index_select(0, idx["contrib_source"]))
        d_w_ih = torch.einsum("sjbg,sjbh->jgh", d_gi_all, xs)
        d_b_ih = d_gi_all.sum((0, 2))
        if spec.family == "gru":
            d_perm = torch.einsum("sjbg,sjbh->jgh", d_gh_all, h_prev)
            d_w_hh = torch.cat([d_perm[:, h1:], d_perm[:, :h1]], 1)
            sums = coef.sum((0, 2))  # (J, 4, H)
            d_b_hh = torch.cat([sums[:, 1], sums[:, 2], sums[:, 0]], 1)
        else:
            d_w_hh = torch.einsum("sjbg,sjbh->jgh", d_gh_all, h_prev)
            d_b_hh = d_b_ih
        d_x_in = d_states[1 : n_steps + 1, n_blocks:]
        return None, None, d_x_in, d_w_ih, d_w_hh, d_b_ih, d_b_hh


def wavefront_recurrence(
    mode: str | CellSpec,
    plan: WavefrontPlan,
    x: Tensor,
    w_ih: Tensor,
    w_hh: Tensor,
    b_ih: Tensor,
    b_hh: Tensor,
) -> Tensor:
    """Run every block of ``plan`` over the sequence ``x`` (T, I, B, H) in ``T + L - 1`` steps.

    Weights are per block and padded to width ``H``: ``w_ih``/``w_hh`` (J, G*H, H), biases
    (J, G*H), with PyTorch's gate order. Returns the state buffer (S + 1, J + I, B, H); block
    ``j``'s state at time ``t`` is row ``t + offsets[j] + 1`` (see :func:`layer_outputs`).
    """
    spec = cell_spec(mode)
    if w_ih.shape[1] != spec.gates * x.shape[-1]:
        raise ValueError(
            f"{spec.name} weights need {spec.gates} gate blocks of width {x.shape[-1]}"
        )
    return _Wavefront.apply(spec, plan, x, w_ih, w_hh, b_ih, b_hh)


def layer_outputs(
    plan: WavefrontPlan, states: Tensor, layer_of_block: Sequence[int], n_steps: int
) -> Tensor:
    """Every layer's output sequence, (L, T, B, H): the sum of its blocks' states.

    One gather of every block's ``T`` state rows and one indexed sum: slicing the rows block
    by block instead made autograd allocate and fill a zero gradient of the whole state
    buffer per slice, which measured 40% of a wavefront training step.
    """
    n_total = plan.n_blocks + plan.n_inputs
    device = states.device
    t = torch.arange(n_steps, device=device)
    first = torch.tensor(plan.offsets, device=device)[:, None] + 1  # row of time 0, per block
    rows = (first + t) * n_total + torch.arange(plan.n_blocks, device=device)[:, None]
    owner = torch.tensor(layer_of_block, device=device)[:, None] * n_steps + t  # (J, T)
    picked = states.flatten(0, 1).index_select(0, rows.flatten())  # (J * T, B, H)
    n_layers = max(layer_of_block) + 1
    total = picked.new_zeros(n_layers * n_steps, *picked.shape[1:])
    return total.index_add(0, owner.flatten(), picked).view(n_layers, n_steps, *picked.shape[1:])
