"""A stack of sparse recurrent layers, as ``torch.nn.RNN`` runs one: layout in, layout out.

:func:`run_stack` takes the input as the caller has it ((T, B, I), batch-first, or a
``PackedSequence``'s data), turns it feature-major once, runs every layer and direction
through the compiled sparse layer (:func:`sparsernn.nn.sparse_kernel.sparse_layer`), each
layer reading the one before in place, and turns the top layer's states back. Both
:class:`~sparsernn.nn.MaskedRNN` (``kernel="sparse"``) and :class:`~sparsernn.nn.SparseRNN`
run their sequences here.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from sparsernn.nn.cells import CellSpec
from sparsernn.nn.sparse_kernel import SparseWeights, sparse_layer

__all__ = ["SparseWeights", "run_stack", "packed_positions"]

State = Tensor | tuple[Tensor, Tensor]


def packed_positions(batch_sizes: Tensor) -> Tensor:
    """Each packed row's lane in a (T, B) grid, flattened (``t * B + b``), as int64."""
    sizes = batch_sizes.to("cpu", torch.int64)
    batch = int(sizes[0]) if sizes.numel() else 0
    steps = torch.repeat_interleave(torch.arange(sizes.numel()), sizes)
    starts = torch.cumsum(sizes, 0) - sizes
    lane = torch.arange(int(sizes.sum())) - torch.repeat_interleave(starts, sizes)
    return steps * batch + lane


def _to_features(x: Tensor, batch_first: bool, batch_sizes: Tensor | None):
    """``x`` -> (I, T, B) feature-major, the lanes each step updates, and the packed rows'
    positions (None unless packed)."""
    if batch_sizes is None:
        seq = x.transpose(0, 1) if batch_first else x
        return seq.permute(2, 0, 1).contiguous(), None, None
    steps = batch_sizes.numel()
    batch = int(batch_sizes[0]) if steps else 0
    where = packed_positions(batch_sizes).to(x.device)
    grid = x.new_zeros(x.shape[1], steps * batch).index_copy(1, where, x.t())
    return grid.view(x.shape[1], steps, batch), batch_sizes, where


def _from_features(y: Tensor, batch_first: bool, where: Tensor | None) -> Tensor:
    """The inverse of :func:`_to_features` for the top layer's (F, T, B) states."""
    if where is not None:
        return y.reshape(y.shape[0], -1).index_select(1, where).t().contiguous()
    seq = y.permute(1, 2, 0)
    return (seq.transpose(0, 1) if batch_first else seq).contiguous()


def _initial(spec: CellSpec, state: State | None) -> tuple[Tensor | None, Tensor | None]:
    """A (B, H) state (or pair) -> the kernel's (H, B) ``h0`` and ``c0``."""
    if state is None:
        return None, None
    if spec.has_cell_state:
        h, c = state
        return h.t(), c.t()
    assert isinstance(state, Tensor)
    return state.t(), None


def run_stack(
    spec: CellSpec,
    layers: Sequence[Sequence[SparseWeights]],
    x: Tensor,
    hx: Sequence[State | None] | None = None,
    *,
    batch_first: bool = False,
    batch_sizes: Tensor | None = None,
    dropout: float = 0.0,
    training: bool = False,
) -> tuple[Tensor, list[State]]:
    """Run sparse layers over a sequence, as ``torch.nn.RNN`` does.

    Parameters
    ----------
    spec : the cell.
    layers : per layer, one :class:`SparseWeights` per direction (two: bidirectional, the
        second running backwards in time; the next layer reads both outputs, concatenated).
    x : (T, B, I), (B, T, I) with ``batch_first``, or a ``PackedSequence``'s (N, I) data.
    hx : the initial state of each layer and direction in torch's order (layer-major), each
        (B, H) or ``(h, c)`` for LSTM; None (or a None entry) means zeros.
    batch_sizes : the ``PackedSequence``'s batch sizes (sorted lengths): each sequence stops at
        its own length, and its final state is the state at its own last step.
    dropout, training : dropout on every layer's output but the last, in training.

    Returns
    -------
    The top layer's output in ``x``'s layout and the final state of each layer and direction
    (B, H) (``(h, c)`` for LSTM), in ``hx``'s order.
    """
    seq, active, where = _to_features(x, batch_first, batch_sizes)
    finals: list[State] = []
    for k, directions in enumerate(layers):
        outs = []
        for d, w in enumerate(directions):
            state = None if hx is None else hx[k * len(directions) + d]
            h0, c0 = _initial(spec, state)
            out, h_n, c_n = sparse_layer(spec, w, seq, h0, c0, reverse=d == 1, active=active)
            outs.append(out)
            finals.append((h_n.t(), c_n.t()) if c_n is not None else h_n.t())
        seq = outs[0] if len(outs) == 1 else torch.cat(outs, 0)
        if dropout > 0 and training and k < len(layers) - 1:
            seq = F.dropout(seq, dropout, training=True)
    return _from_features(seq, batch_first, where), finals
