"""``StructuredRNN``: a recurrent network wired by a graph (SPEC section 5), run fused.

The study builds one recurrent layer per DAG layer and one extra "skip" recurrent layer per
earlier layer ``s < l-1`` with an edge into ``l``; the skip layer's output sequence is added to
layer ``l``'s. Running those sub-layers one by one costs one kernel call (or worse, one Python
loop) each. Here every sub-layer that reads the same source layer ``s`` is stacked into ONE
wider masked recurrent layer: its i2h rows are the sub-layers' edge masks, its h2h is
block-diagonal, so a gate of one sub-layer never sees another's units. That is exactly the same
function, at one fused call per source layer (the default, ``schedule="layers"``).

``schedule="wavefront"`` runs every sub-layer at once instead, each shifted by its source
layer's index, in ``T + L - 1`` batched steps rather than ``L`` sequential sequences
(:mod:`sparsernn.nn.wavefront`): far fewer, larger operations, at the cost of padding every
sub-layer to the widest. The parameters are the same wide layers either way;
the wavefront gathers them into padded per-sub-layer blocks once per forward.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import Tensor, nn

from sparsernn.errors import ConfigError
from sparsernn.nn.cells import GATES, MODES
from sparsernn.nn.functional import run_layers
from sparsernn.nn.masked import MaskedRNN
from sparsernn.nn.wavefront import WavefrontPlan, block_outputs, wavefront_recurrence

__all__ = ["StructuredRNN", "SCHEDULES"]

#: How :class:`StructuredRNN` runs: every sub-layer at once, or one fused call per source layer.
SCHEDULES = ("wavefront", "layers")


class StructuredRNN(nn.Module):
    """Recurrent network whose units and connections come from a graph's layered DAG.

    Parameters
    ----------
    graph : an undirected ``networkx.Graph`` (oriented low -> high index), an acyclic
        ``DiGraph``, or a :class:`~sparsernn.graphs.LayeredDAG`.
    mode : ``"rnn_tanh"``, ``"rnn_relu"``, ``"gru"`` or ``"lstm"``.
    input_size : features of the input; defaults to the size of the graph's first layer.
    batch_first : as in ``torch.nn.RNN``.
    schedule : ``"layers"`` (default: one fused call per source layer) or ``"wavefront"``
        (every sub-layer at once in ``T + L - 1`` steps); the same function either way. On
        CPU ``"layers"`` measured faster (see ``benchmarks/README.md``).

    ``forward(x)`` takes (T, B, input_size) and returns ``(output, h_n)``: the last layer's
    output sequence (T, B, |last layer|) and a tuple with each layer's final output (B, |l|).

    Sub-layer ``(s, l)`` (source layer ``s``, destination ``l``; ``s = -1`` is the input) is
    stored as a block of the wide layer ``source{s+1}``; :meth:`sublayer_weights` returns the
    per-sub-layer matrices, as the study's code would hold them.
    """

    def __init__(
        self,
        graph,
        mode: str,
        input_size: int | None = None,
        batch_first: bool = False,
        schedule: str = "layers",
    ) -> None:
        super().__init__()
        if schedule not in SCHEDULES:
            raise ConfigError(f"unknown schedule {schedule!r}; choose one of {SCHEDULES}")
        self.schedule = schedule
        from sparsernn.graphs import LayeredDAG, to_layered_dag

        if mode not in GATES:
            raise ConfigError(f"unknown cell mode {mode!r}; choose one of {', '.join(MODES)}")
        dag = graph if isinstance(graph, LayeredDAG) else to_layered_dag(graph)
        self.dag = dag
        self.mode = mode
        self.batch_first = batch_first
        self.layer_sizes = tuple(int(s) for s in dag.layer_sizes)
        self.input_size = int(input_size or self.layer_sizes[0])
        self.output_size = self.layer_sizes[-1]
        g = GATES[mode]
        # destinations of each source: -1 is the input (feeds layer 0 only).
        self.plan: list[tuple[int, tuple[int, ...]]] = [(-1, (0,))]
        conns = {
            (int(s), int(l)): np.asarray(m, dtype=bool) for (s, l), m in dag.connections.items()
        }
        for s in range(len(self.layer_sizes) - 1):
            dests = tuple(sorted(l for (src, l) in conns if src == s))
            self.plan.append((s, dests))
        self.wide = nn.ModuleList()
        for s, dests in self.plan:
            in_size = self.input_size if s < 0 else self.layer_sizes[s]
            sizes = [self.layer_sizes[l] for l in dests]
            width = sum(sizes)
            layer = MaskedRNN(mode, in_size, width)
            ih = np.zeros((width, in_size), dtype=bool)
            hh = np.zeros((width, width), dtype=bool)
            off = 0
            for l, h in zip(dests, sizes, strict=True):
                ih[off : off + h] = True if s < 0 else conns[(s, l)]
                hh[off : off + h, off : off + h] = True
                off += h
            # The same mask row repeats for each gate block (PyTorch's stacked gate layout).
            layer.set_mask("weight_ih_l0", torch.from_numpy(np.tile(ih, (g, 1))))
            layer.set_mask("weight_hh_l0", torch.from_numpy(np.tile(hh, (g, 1))))
            self.wide.append(layer)
        self.wave_plan: WavefrontPlan | None = None  # built on the first wavefront forward
        self.reset_parameters()

    def _build_wavefront(self, device: torch.device) -> None:
        """The block plan and the index maps from wide-layer weights to padded blocks."""
        g = GATES[self.mode]
        width = max(max(self.layer_sizes), self.input_size)
        self.block_width = width
        blocks, dests = [], []
        idx = {name: [] for name in ("ih", "hh", "b")}
        base = {"ih": 0, "hh": 0, "b": 0}
        for k, (s, _) in enumerate(self.plan):
            in_k = self.input_size if s < 0 else self.layer_sizes[s]
            wide = sum(h for _, _, h in self._blocks(k))
            for l, off, h in self._blocks(k):
                blocks.append((s + 1, l + 1, k))  # source ids: 0 is the input, l + 1 layer l
                dests.append(l)
                ih = np.full((g * width, width), -1, dtype=np.int64)
                hh = np.full((g * width, width), -1, dtype=np.int64)
                b = np.full(g * width, -1, dtype=np.int64)
                for gate in range(g):
                    rows = gate * wide + off + np.arange(h)
                    dst = slice(gate * width, gate * width + h)
                    ih[dst, :in_k] = base["ih"] + rows[:, None] * in_k + np.arange(in_k)
                    hh[dst, :h] = base["hh"] + rows[:, None] * wide + off + np.arange(h)
                    b[dst] = base["b"] + rows
                idx["ih"].append(ih)
                idx["hh"].append(hh)
                idx["b"].append(b)
            base["ih"] += g * wide * in_k
            base["hh"] += g * wide * wide
            base["b"] += g * wide
        self.wave_plan = WavefrontPlan.from_blocks(blocks, n_inputs=1)
        self._layer_blocks = tuple(
            tuple(j for j, dest in enumerate(dests) if dest == l) for l in range(self.n_layers)
        )
        for name, parts in idx.items():
            arr = np.stack(parts)
            arr[arr < 0] = base[name]  # padding reads the trailing zero
            index = torch.from_numpy(arr).to(device)
            self.register_buffer(f"_wave_{name}", index, persistent=False)

    @property
    def n_layers(self) -> int:
        return len(self.layer_sizes)

    def _blocks(self, k: int) -> list[tuple[int, int, int]]:
        """(destination layer, row offset, height) of each sub-layer in wide layer ``k``."""
        out, off = [], 0
        for l in self.plan[k][1]:
            out.append((l, off, self.layer_sizes[l]))
            off += self.layer_sizes[l]
        return out

    def reset_parameters(self) -> None:
        """Each sub-layer ~ U(-1/sqrt(H), 1/sqrt(H)) with H its destination's size (as nn.RNN)."""
        g = GATES[self.mode]
        with torch.no_grad():
            for k, layer in enumerate(self.wide):
                width = sum(h for _, _, h in self._blocks(k))
                for _, off, h in self._blocks(k):
                    bound = 1.0 / math.sqrt(h)
                    for gate in range(g):
                        rows = slice(gate * width + off, gate * width + off + h)
                        for name in ("weight_ih_l0", "weight_hh_l0", "bias_ih_l0", "bias_hh_l0"):
                            getattr(layer, name)[rows].uniform_(-bound, bound)
                layer.apply_masks_()

    def sublayer_weights(self) -> dict[tuple[int, int], tuple[Tensor, Tensor, Tensor, Tensor]]:
        """Per sub-layer ``(s, l)``: its own ``(w_ih, w_hh, b_ih, b_hh)`` (masked, detached copies).

        ``w_ih`` has shape (G*|l|, |s|) and zeros where the graph has no edge; ``w_hh`` is full
        (G*|l|, |l|). Layer 0's sub-layer is keyed ``(-1, 0)``.
        """
        g = GATES[self.mode]
        out = {}
        for k, (s, _) in enumerate(self.plan):
            layer = self.wide[k]
            width = sum(h for _, _, h in self._blocks(k))
            w_ih, w_hh, b_ih, b_hh = (t.detach() for t in layer.layer_weights()[0])
            for l, off, h in self._blocks(k):
                rows = torch.cat(
                    [torch.arange(gt * width + off, gt * width + off + h) for gt in range(g)]
                )
                out[(s, l)] = (
                    w_ih[rows].clone(),
                    w_hh[rows][:, off : off + h].clone(),
                    b_ih[rows].clone(),
                    b_hh[rows].clone(),
                )
        return out

    def load_sublayer_weights(self, weights: dict) -> None:
        """Inverse of :meth:`sublayer_weights` (masks are re-applied)."""
        g = GATES[self.mode]
        with torch.no_grad():
            for k, (s, _) in enumerate(self.plan):
                layer = self.wide[k]
                width = sum(h for _, _, h in self._blocks(k))
                for l, off, h in self._blocks(k):
                    w_ih, w_hh, b_ih, b_hh = weights[(s, l)]
                    for gt in range(g):
                        dst = slice(gt * width + off, gt * width + off + h)
                        src = slice(gt * h, (gt + 1) * h)
                        layer.weight_ih_l0[dst] = w_ih[src]
                        layer.weight_hh_l0[dst, off : off + h] = w_hh[src]
                        layer.bias_ih_l0[dst] = b_ih[src]
                        layer.bias_hh_l0[dst] = b_hh[src]
                layer.apply_masks_()

    def n_parameters(self) -> int:
        """Trainable entries that the graph actually wires (masked-out entries excluded)."""
        total = 0
        for layer in self.wide:
            total += sum(int(m.sum()) for _, m in layer.masks())
            total += layer.bias_ih_l0.numel() + layer.bias_hh_l0.numel()
        return total

    def forward(self, x: Tensor, hx: None = None) -> tuple[Tensor, tuple[Tensor, ...]]:
        if hx is not None:
            raise ValueError("StructuredRNN starts from zero states (as the study); pass hx=None")
        if self.batch_first:
            x = x.transpose(0, 1)
        if self.schedule == "wavefront":
            top, h_n = self._forward_wavefront(x)
        else:
            top, h_n = self._forward_layers(x)
        if self.batch_first:
            top = top.transpose(0, 1)
        return top, h_n

    def _block_weights(self) -> list[Tensor]:
        """Padded per-block ``(w_ih, w_hh, b_ih, b_hh)`` gathered from the masked wide layers."""
        ws = [layer.layer_weights()[0] for layer in self.wide]
        zero = ws[0][0].new_zeros(1)
        out = []
        for i, name in enumerate(("ih", "hh", "b", "b")):
            flat = torch.cat([w[i].reshape(-1) for w in ws] + [zero])
            out.append(flat[getattr(self, f"_wave_{name}")])
        return out

    def _forward_wavefront(self, x: Tensor) -> tuple[Tensor, tuple[Tensor, ...]]:
        if self.wave_plan is None:
            self._build_wavefront(x.device)
        n_steps = x.shape[0]
        x_pad = torch.nn.functional.pad(x, (0, self.block_width - x.shape[-1])).unsqueeze(1)
        states = wavefront_recurrence(self.mode, self.wave_plan, x_pad, *self._block_weights())
        blocks = self._layer_blocks
        top = block_outputs(self.wave_plan, states, blocks[-1], n_steps)[..., : self.output_size]
        h_n = tuple(
            block_outputs(self.wave_plan, states[n_steps - 1 :], js, 1)[0, :, :size]
            for js, size in zip(blocks, self.layer_sizes, strict=True)
        )
        return top, h_n

    def _forward_layers(self, x: Tensor) -> tuple[Tensor, tuple[Tensor, ...]]:
        acc: list[Tensor | None] = [None] * self.n_layers  # summed output of each layer
        for k, (s, _) in enumerate(self.plan):
            src = x if s < 0 else acc[s]
            out, _ = run_layers(self.mode, src, self.wide[k].layer_weights())  # (T, B, width)
            for l, off, h in self._blocks(k):
                part = out[..., off : off + h]
                acc[l] = part if acc[l] is None else acc[l] + part
        return acc[-1], tuple(a[-1] for a in acc)

    def extra_repr(self) -> str:
        return (
            f"{self.mode}, input_size={self.input_size}, layers={list(self.layer_sizes)}, "
            f"schedule={self.schedule!r}, sub_layers={sum(len(d) for _, d in self.plan)}"
        )
