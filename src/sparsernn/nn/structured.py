"""``StructuredRNN``: a recurrent network wired by a graph (SPEC section 5), run fused.

The study builds one recurrent layer per DAG layer and one extra "skip" recurrent layer per
earlier layer ``s < l-1`` with an edge into ``l``; the skip layer's output sequence is added to
layer ``l``'s. Running those sub-layers one by one costs one kernel call (or worse, one Python
loop) each. Here every sub-layer that reads the same source layer ``s`` is stacked into ONE
wider masked recurrent layer: its i2h rows are the sub-layers' edge masks, its h2h is
block-diagonal, so a gate of one sub-layer never sees another's units. That is exactly the same
function, at one fused call per source layer (the layer schedule, ``schedule="layers"``).

On CPU the whole schedule runs in one compiled call each way (:mod:`sparsernn.nn.native`)
where the library is built, else in PyTorch ops (``kernel=``); both compute the same function.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import cast

import networkx as nx
import numpy as np
import torch
from torch import Tensor, nn
from torch.nn.utils.rnn import PackedSequence

from sparsernn.errors import ConfigError
from sparsernn.graphs import LayeredDAG, to_layered_dag
from sparsernn.nn.cells import cell_spec
from sparsernn.nn.functional import run_layers
from sparsernn.nn.masked import MaskedRNN

__all__ = ["StructuredRNN", "SCHEDULES", "GATE_LAYOUTS", "KERNELS", "graph_parameters"]

#: How :class:`StructuredRNN` runs: one fused call per source layer. (A wavefront schedule,
#: every sub-layer at once, was removed: the layer schedule measured faster on CPU.)
SCHEDULES = ("layers",)

#: Row layouts of a sub-layer's i2h mask for gated cells (see :func:`edge_mask_rows`).
GATE_LAYOUTS = ("blocked", "interleaved")

#: What runs the layer schedule's time loops: the compiled loop where it is usable (``"auto"``),
#: always the compiled loop (``"native"``, an error where it is unavailable), or PyTorch ops.
KERNELS = ("auto", "native", "torch")


def edge_mask_rows(edges: np.ndarray, n_gates: int, gate_layout: str = "blocked") -> np.ndarray:
    """The (G*|l|, |s|) i2h mask of a sub-layer from its (|l|, |s|) edge matrix.

    Weight rows are PyTorch's gate-major layout (row ``r`` is gate ``r // |l|``, unit
    ``r % |l|``). ``"blocked"`` gives every gate block the same edge rows, so each gate of unit
    ``j`` reads exactly ``j``'s sources (graph-faithful). ``"interleaved"`` is what the study's
    code did, ``np.repeat(edges, G, axis=0)``: mask row ``r`` is unit ``r // G``'s edges, so for
    GRU/LSTM a gate of unit ``j`` reads the sources of another unit. Both are the same for
    RNN (G = 1).
    """
    if gate_layout == "blocked":
        return np.tile(edges, (n_gates, 1))
    if gate_layout == "interleaved":
        return np.repeat(edges, n_gates, axis=0)
    raise ConfigError(f"unknown gate_layout {gate_layout!r}; choose one of {GATE_LAYOUTS}")


Weights = tuple[Tensor, Tensor, Tensor, Tensor]  # (w_ih, w_hh, b_ih, b_hh)


def _stored(layer: MaskedRNN) -> Weights:
    """A wide layer's parameters ``(w_ih, w_hh, b_ih, b_hh)`` as stored (masks not applied)."""
    names = ("weight_ih_l0", "weight_hh_l0", "bias_ih_l0", "bias_hh_l0")
    return cast(Weights, tuple(getattr(layer, name) for name in names))


def _masked(layer: MaskedRNN) -> Weights:
    """A wide layer's masked weights (differentiable); its biases always exist."""
    return cast(Weights, layer.layer_weights()[0])


def _mask_pair(layer: MaskedRNN) -> tuple[Tensor, Tensor]:
    """A wide layer's boolean ``(ih_mask, hh_mask)`` buffers."""
    return cast(Tensor, layer.weight_ih_l0_mask), cast(Tensor, layer.weight_hh_l0_mask)


class StructuredRNN(nn.Module):
    """Recurrent network whose units and connections come from a graph's layered DAG.

    Parameters
    ----------
    graph : an undirected ``networkx.Graph`` (oriented low -> high index), an acyclic
        ``DiGraph``, or a :class:`~sparsernn.graphs.LayeredDAG`.
    mode : ``"rnn_tanh"``, ``"rnn_relu"``, ``"gru"`` or ``"lstm"``.
    input_size : features of the input; defaults to the size of the graph's first layer.
    batch_first : as in ``torch.nn.RNN``.
    schedule : ``"layers"`` (the only schedule: one fused call per source layer).
    gate_layout : ``"blocked"`` (default: each gate block of unit ``j`` reads ``j``'s graph
        sources) or ``"interleaved"`` (the study's code: the edge rows repeated ``G`` times in a
        row, see :func:`edge_mask_rows`). Only GRU and LSTM differ.
    kernel : what runs the layer schedule on CPU: ``"auto"`` (default: the compiled time loop
        of :mod:`sparsernn.nn.native` where it is built, else PyTorch ops), ``"native"`` (the
        compiled loop or an error) or ``"torch"``. The same function either way (up to float
        rounding); GPUs always run PyTorch ops.

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
        gate_layout: str = "blocked",
        kernel: str = "auto",
    ) -> None:
        super().__init__()
        if schedule not in SCHEDULES:
            gone = " (the wavefront schedule was removed)" if schedule == "wavefront" else ""
            choices = ", ".join(map(repr, SCHEDULES))
            raise ConfigError(f"unknown schedule {schedule!r}{gone}; choose one of {choices}")
        if kernel not in KERNELS:
            raise ConfigError(f"unknown kernel {kernel!r}; choose one of {KERNELS}")
        self.kernel = kernel
        if gate_layout not in GATE_LAYOUTS:
            raise ConfigError(f"unknown gate_layout {gate_layout!r}; choose one of {GATE_LAYOUTS}")
        self.schedule = schedule
        self.gate_layout = gate_layout
        self.spec = cell_spec(mode)
        dag = graph if isinstance(graph, LayeredDAG) else to_layered_dag(graph)
        self.dag = dag
        self.mode = self.spec.name
        self.batch_first = batch_first
        self.layer_sizes = tuple(int(s) for s in dag.layer_sizes)
        self.input_size = int(input_size or self.layer_sizes[0])
        self.output_size = self.layer_sizes[-1]
        g = self.spec.gates
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
            ih = np.zeros((g * width, in_size), dtype=bool)
            hh = np.zeros((g * width, width), dtype=bool)
            off = 0
            for l, h in zip(dests, sizes, strict=True):
                edges = np.ones((h, in_size), dtype=bool) if s < 0 else conns[(s, l)]
                rows = edge_mask_rows(edges, g, gate_layout)  # (G*h, in), gate-major
                for gt in range(g):
                    dst = slice(gt * width + off, gt * width + off + h)
                    ih[dst] = rows[gt * h : (gt + 1) * h]
                    hh[dst, off : off + h] = True
                off += h
            layer.set_mask("weight_ih_l0", torch.from_numpy(ih))
            layer.set_mask("weight_hh_l0", torch.from_numpy(hh))
            self.wide.append(layer)
        self.reset_parameters()

    @property
    def wide_layers(self) -> list[MaskedRNN]:
        """The wide masked layers, one per source layer (``self.wide``, typed)."""
        return cast(list[MaskedRNN], list(self.wide))

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
        g = self.spec.gates
        with torch.no_grad():
            for k, layer in enumerate(self.wide_layers):
                width = sum(h for _, _, h in self._blocks(k))
                for _, off, h in self._blocks(k):
                    bound = 1.0 / math.sqrt(h)
                    for gate in range(g):
                        rows = slice(gate * width + off, gate * width + off + h)
                        for name in ("weight_ih_l0", "weight_hh_l0", "bias_ih_l0", "bias_hh_l0"):
                            getattr(layer, name)[rows].uniform_(-bound, bound)
                layer.apply_masks_()

    def _sublayer_rows(self, k: int, off: int, h: int) -> Tensor:
        """Rows of wide layer ``k`` holding a sub-layer (at ``off``, height ``h``), gate-major."""
        width = sum(size for _, _, size in self._blocks(k))
        return torch.cat(
            [torch.arange(gt * width + off, gt * width + off + h) for gt in range(self.spec.gates)]
        )

    def _sublayers(self) -> Iterator[tuple[tuple[int, int], MaskedRNN, Tensor, int, int]]:
        """``(key, wide layer, rows, off, h)`` for every sub-layer, in plan order."""
        for k, ((s, _), layer) in enumerate(zip(self.plan, self.wide_layers, strict=True)):
            for l, off, h in self._blocks(k):
                yield (s, l), layer, self._sublayer_rows(k, off, h), off, h

    def sublayer_weights(self) -> dict[tuple[int, int], tuple[Tensor, Tensor, Tensor, Tensor]]:
        """Per sub-layer ``(s, l)``: its own ``(w_ih, w_hh, b_ih, b_hh)`` (masked, detached copies).

        ``w_ih`` has shape (G*|l|, |s|) and zeros where the graph has no edge; ``w_hh`` is full
        (G*|l|, |l|). Layer 0's sub-layer is keyed ``(-1, 0)``.
        """
        out = {}
        cache: dict[int, tuple[Tensor, ...]] = {}
        for key, layer, rows, off, h in self._sublayers():
            if id(layer) not in cache:
                cache[id(layer)] = tuple(t.detach() for t in _masked(layer))
            w_ih, w_hh, b_ih, b_hh = cache[id(layer)]
            out[key] = (
                w_ih[rows].clone(),
                w_hh[rows][:, off : off + h].clone(),
                b_ih[rows].clone(),
                b_hh[rows].clone(),
            )
        return out

    def sublayer_masks(self) -> dict[tuple[int, int], tuple[Tensor, Tensor]]:
        """Per sub-layer ``(s, l)``: its boolean ``(ih_mask, hh_mask)``, shaped as its weights."""
        out = {}
        for key, layer, rows, off, h in self._sublayers():
            ih, hh = _mask_pair(layer)
            out[key] = (ih[rows].clone(), hh[rows][:, off : off + h].clone())
        return out

    def set_sublayer_masks(self, masks: dict) -> None:
        """Install sub-layers' own masks: ``masks[(s, l)] = (ih_mask, hh_mask)``.

        Each mask is shaped as that sub-layer's weight (see :meth:`sublayer_weights`), in
        PyTorch's gate-major row order, boolean or 0/1; either may be ``None`` to keep the
        current one. Sub-layers not in ``masks`` are unchanged; h2h entries between different
        sub-layers of a wide layer stay masked. Masked-out weights are zeroed.
        """
        known = {key for key, *_ in self._sublayers()}
        unknown = sorted(set(masks) - known)
        if unknown:
            raise ConfigError(
                f"no sub-layer {unknown[0]} in this network; sub-layers: {sorted(known)}"
            )
        with torch.no_grad():
            for key, layer, rows, off, h in self._sublayers():
                if key not in masks:
                    continue
                ih, hh = masks[key]
                for name, mask, cols in (("ih", ih, None), ("hh", hh, slice(off, off + h))):
                    if mask is None:
                        continue
                    buf = getattr(layer, f"weight_{name}_l0_mask")
                    want = (len(rows), buf.shape[1] if cols is None else h)
                    if tuple(mask.shape) != want:
                        raise ConfigError(
                            f"{name} mask of sub-layer {key} has shape {tuple(mask.shape)}, "
                            f"expected {want}"
                        )
                    mask = torch.as_tensor(mask).to(device=buf.device, dtype=torch.bool)
                    if cols is None:
                        buf[rows] = mask
                    else:
                        block = buf[rows]
                        block[:, cols] = mask
                        buf[rows] = block
            for layer in self.wide_layers:
                layer.apply_masks_()

    def load_sublayer_weights(self, weights: dict, masks: dict | None = None) -> None:
        """Inverse of :meth:`sublayer_weights`; with ``masks`` (as :meth:`set_sublayer_masks`
        takes) those masks are installed first. Masks are re-applied to the weights."""
        if masks is not None:
            self.set_sublayer_masks(masks)
        with torch.no_grad():
            for key, layer, rows, off, h in self._sublayers():
                w_ih, w_hh, b_ih, b_hh = weights[key]
                p_ih, p_hh, p_b_ih, p_b_hh = _stored(layer)
                p_ih[rows] = w_ih.to(p_ih)
                block = p_hh[rows]
                block[:, off : off + h] = w_hh.to(block)
                p_hh[rows] = block
                p_b_ih[rows] = b_ih.to(p_b_ih)
                p_b_hh[rows] = b_hh.to(p_b_hh)
            for layer in self.wide_layers:
                layer.apply_masks_()

    def n_parameters(self) -> int:
        """Trainable entries that the graph actually wires (masked-out entries excluded)."""
        total = 0
        for layer in self.wide_layers:
            total += sum(int(m.sum().item()) for m in _mask_pair(layer))
            total += sum(b.numel() for b in _stored(layer)[2:])
        return total

    def flatten_parameters(self) -> None:
        """A no-op, as :meth:`MaskedRNN.flatten_parameters` (for code written for torch.nn.RNN)."""

    def forward(self, x: Tensor, hx: None = None) -> tuple[Tensor, tuple[Tensor, ...]]:
        """The last layer's output sequence and each layer's final output; see the class."""
        if isinstance(x, PackedSequence):
            raise TypeError(
                "StructuredRNN takes a padded tensor, not a PackedSequence (the study runs "
                "padded batches): pass torch.nn.utils.rnn.pad_packed_sequence(x)[0]"
            )
        if hx is not None:
            raise ValueError("StructuredRNN starts from zero states (as the study); pass hx=None")
        if self.batch_first:
            x = x.transpose(0, 1)
        if self.uses_native(x.device, x.dtype):
            top, h_n = self._forward_native(x)
        else:
            top, h_n = self._forward_layers(x)
        if self.batch_first:
            top = top.transpose(0, 1)
        return top, h_n

    def _forward_layers(self, x: Tensor) -> tuple[Tensor, tuple[Tensor, ...]]:
        """The layer schedule in PyTorch ops, sequences (T, B, F)."""

        def run(k: int, src: Tensor) -> Tensor:
            return run_layers(self.spec, src, self.wide_layers[k].layer_weights())[0]

        acc = self._sum_sublayers(x, run, dim=-1)
        return acc[-1], tuple(a[-1] for a in acc)

    def _sum_sublayers(self, x: Tensor, run, dim: int) -> list[Tensor]:
        """Each layer's output: wide layer ``k`` reads its source's (``x`` for the input) via
        ``run(k, src)`` and its sub-layers' outputs (split along ``dim``) are added into their
        destinations. One split, not a slice per sub-layer: the backward of each slice would
        allocate and fill a zero gradient of the whole wide output; the split's is one cat."""
        acc: dict[int, Tensor] = {}
        for k, (s, _) in enumerate(self.plan):
            out = run(k, x if s < 0 else acc[s])
            blocks = self._blocks(k)
            parts = out.split([h for _, _, h in blocks], dim=dim)
            for (l, _, _), part in zip(blocks, parts, strict=True):
                acc[l] = acc[l] + part if l in acc else part
        return [acc[l] for l in range(self.n_layers)]

    def uses_native(
        self, device: torch.device | str = "cpu", dtype: torch.dtype = torch.float32
    ) -> bool:
        """Whether a forward on ``device`` in ``dtype`` runs the compiled loop (see ``kernel``).

        With ``kernel="native"`` a forward that cannot raises :class:`ConfigError` saying why.
        """
        kernel = getattr(self, "kernel", "auto")  # modules pickled before the option existed
        if kernel == "torch":
            return False
        from sparsernn.nn import native

        problem = None
        if torch.device(device).type != "cpu" or dtype not in (torch.float32, torch.float64):
            problem = f"it runs on CPU in float32/float64, not {torch.device(device)} {dtype}"
        elif not native.available(warn=kernel == "auto"):
            problem = str(native.unavailable_reason())
        elif self._native_wiring() is None:
            problem = "a wide layer's h2h mask reaches across sub-layers (set by hand?)"
        if problem is not None and kernel == "native":
            raise ConfigError(
                f"kernel='native' cannot run: {problem}; use kernel='auto' or 'torch'"
            )
        return problem is None

    def _native_wiring(self) -> list | None:
        """Each wide layer's :class:`~sparsernn.nn.native.Wiring` and whether its h2h mask
        keeps every entry of its diagonal blocks, or None if an h2h mask reaches across
        sub-layers (the compiled loop reads the diagonal blocks only).

        Masks change in place (``set_mask``, ``load_state_dict``: the version counter moves)
        or by replacement (``.to(device)``), so the result is cached by every mask buffer's
        identity and version. The key holds the buffers themselves, so a replaced mask's
        ``id`` cannot be reused by another tensor while it is cached.
        """
        from sparsernn.nn.native import Schedule, Wiring

        pairs = [_mask_pair(layer) for layer in self.wide_layers]
        key = [(m, m._version) for pair in pairs for m in pair]
        old: list = getattr(self, "_wiring_key", None) or []
        fresh = (
            hasattr(self, "_schedule")
            and len(old) == len(key)
            and all(a is b and u == v for (a, u), (b, v) in zip(old, key, strict=True))
        )
        if not fresh:
            wirings: list | None = []
            for k, (ih, hh) in enumerate(pairs):
                blocks = [(off, h) for _, off, h in self._blocks(k)]
                inside = torch.zeros_like(hh)
                width = hh.shape[1]
                for off, h in blocks:
                    for gate in range(self.spec.gates):
                        inside[gate * width + off : gate * width + off + h, off : off + h] = True
                if wirings is None or bool((hh & ~inside).any()):
                    wirings = None
                    continue
                wirings.append((Wiring.of(blocks, ih), bool(hh[inside].all())))
            self._wiring_key, self._wiring = key, wirings
            self._schedule = None if wirings is None else Schedule(
                sizes=self.layer_sizes,
                sources=tuple(s for s, _ in self.plan),
                dests=tuple(d for _, d in self.plan),
                wirings=tuple(w for w, _ in wirings),
            )  # fmt: skip
        return self._wiring

    def _forward_native(self, x: Tensor) -> tuple[Tensor, tuple[Tensor, ...]]:
        """The layer schedule through the compiled loop, in one call each way (sequences batch
        last, (T, F, B), inside).

        Called right after :meth:`uses_native` validated the cached wiring. The loop reads
        only the entries its wiring keeps (the i2h mask's, the diagonal blocks), so where the
        h2h mask keeps every block entry (the graph's own masks do) the stored weights go in
        as they are: no masked copies, and their gradient is zero off the wiring all the same.
        """
        from sparsernn.nn.native import layer_schedule

        assert self._wiring is not None and self._schedule is not None
        weights: list[Tensor] = []
        for layer, (_, blocks_full) in zip(self.wide_layers, self._wiring, strict=True):
            weights += _stored(layer) if blocks_full else _masked(layer)
        outs = layer_schedule(self.spec, self._schedule, x.transpose(1, 2), weights)
        return outs[-1].transpose(1, 2), tuple(o[-1].t() for o in outs)

    def extra_repr(self) -> str:
        return (
            f"{self.mode}, input_size={self.input_size}, layers={list(self.layer_sizes)}, "
            f"schedule={self.schedule!r}, gate_layout={self.gate_layout!r}, "
            f"sub_layers={sum(len(d) for _, d in self.plan)}"
        )


def graph_parameters(
    dag_or_graph: LayeredDAG | nx.Graph,
    mode: str,
    input_size: int | None = None,
    *,
    count_masked: bool = False,
    vocab_size: int = 128,
    n_classes: int = 2,
) -> int:
    """Trainable-parameter count of the study's whole network built on a graph (SPEC 5), in
    closed form: what :meth:`StructuredRNN.n_parameters` counts on a live module (recurrent
    part only), plus the embedding and the classifier.

    With ``G`` gates (1 for ``rnn_tanh`` / ``rnn_relu``, 3 for ``gru``, 4 for ``lstm``),
    ``H_l`` = size of layer ``l``, ``I`` = ``input_size`` (the embedding dimension, default
    ``H_0``) and ``E_sl`` = number of edges from layer ``s`` into layer ``l``::

        layer 0           : G * (H_0 * I + H_0 * H_0 + 2 * H_0)
        each (s, l) in connections (main l-1 -> l and every skip):
                            G * (E_sl + H_l * H_l + 2 * H_l)       (count_masked=False)
                            G * (H_l * H_s + H_l * H_l + 2 * H_l)  (count_masked=True)
        embedding         : vocab_size * I
        classifier        : H_last * n_classes + n_classes

    ``2 * H`` counts the two bias vectors per gate, as in PyTorch; masked-out i2h entries
    (fixed at zero) count only with ``count_masked=True``.

    Parameters
    ----------
    dag_or_graph : LayeredDAG or networkx.Graph
        The layering, or a graph passed to :func:`to_layered_dag`.
    mode : {"rnn_tanh", "rnn_relu", "gru", "lstm"}
        Cell type (case-insensitive).
    input_size : int, optional
        Embedding dimension; defaults to the size of layer 0 as in the study.
    count_masked : bool
        Count masked-out i2h entries too (the dense storage size).
    vocab_size, n_classes : int
        Embedding rows (128 ASCII codes) and classifier outputs.

    Examples
    --------
    >>> import networkx as nx
    >>> graph_parameters(nx.path_graph(3), "rnn_tanh")  # layers [0], [1], [2]
    144
    """
    gates = cell_spec(mode.lower() if isinstance(mode, str) else mode).gates
    layered = dag_or_graph if isinstance(dag_or_graph, LayeredDAG) else to_layered_dag(dag_or_graph)
    sizes = layered.layer_sizes
    if input_size is None:
        input_size = sizes[0]
    for name, value in (("input_size", input_size), ("vocab_size", vocab_size)):
        _positive(name, value)
    _positive("n_classes", n_classes)
    h0 = sizes[0]
    total = gates * (h0 * input_size + h0 * h0 + 2 * h0)
    for (s, t), mask in layered.connections.items():
        i2h = sizes[t] * sizes[s] if count_masked else int(mask.sum())
        total += gates * (i2h + sizes[t] * sizes[t] + 2 * sizes[t])
    return int(total + vocab_size * input_size + sizes[-1] * n_classes + n_classes)


def _positive(name: str, value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 1:
        raise ConfigError(f"{name} must be a positive integer, got {value!r}")
