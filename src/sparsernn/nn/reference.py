"""The slow loop reference of the study's networks (SPEC sections 3 and 5).

Written straight from the study's method: every time step of every layer is its own Python
iteration of :func:`~sparsernn.nn.cells.cell_step`, each weight's mask is multiplied into it at
EVERY step (as the study's code did), and a random-structure network runs one layer per
sub-layer and adds the skip layers' outputs. The tests hold the fast paths
(:class:`~sparsernn.nn.MaskedRNN`, :class:`~sparsernn.nn.StructuredRNN`) equal to it, and
``python -m sparsernn.bench`` times it as column (a). One concession to speed: the time loop
iterates ``x.unbind(0)`` (indexing ``x[t]`` would make backward allocate a full-size zero
tensor per step). The modules are built FROM one of our models and copy its weights, so both
compute the same function and the benchmark times the same work.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, cast

import numpy as np
import torch
from torch import Tensor, nn

from sparsernn.nn.cells import GATES, cell_step, zero_state
from sparsernn.nn.masked import MaskedRNN
from sparsernn.nn.structured import StructuredRNN

if TYPE_CHECKING:
    from sparsernn.graphs.dag import LayeredDAG

__all__ = [
    "reference_layer",
    "reference_masks",
    "reference_structured",
    "ReferenceLayer",
    "ReferenceRNN",
    "ReferenceStructuredRNN",
    "ReferenceClassifier",
]

Weights = tuple[Tensor, Tensor, Tensor | None, Tensor | None]


def reference_layer(
    mode: str,
    x: Tensor,
    w_ih: Tensor,
    w_hh: Tensor,
    b_ih: Tensor | None = None,
    b_hh: Tensor | None = None,
    ih_mask: Tensor | None = None,
    hh_mask: Tensor | None = None,
) -> Tensor:
    """One recurrent layer over ``x`` (T, B, I) -> (T, B, H), masks multiplied at every step."""
    state = zero_state(mode, x.shape[1], w_hh.shape[1], x)
    outputs = []
    for x_t in x.unbind(0):
        w_in = w_ih if ih_mask is None else w_ih * ih_mask
        w_rec = w_hh if hh_mask is None else w_hh * hh_mask
        state = cell_step(mode, x_t, state, w_in, w_rec, b_ih, b_hh)
        outputs.append(state[0] if isinstance(state, tuple) else state)  # h of LSTM's (h, c)
    return torch.stack(outputs)


def reference_masks(
    dag: LayeredDAG, mode: str, gate_layout: str = "blocked"
) -> dict[tuple[int, int], Tensor]:
    """Float 0/1 i2h masks of the sub-layers ``(s, l)``, ``s >= 0``, from the DAG's edges.

    ``"blocked"``: the edge matrix once per gate block (graph-faithful); ``"interleaved"``: each
    edge row repeated G times in a row (``np.repeat(edges, G, axis=0)``), as the study's code did.
    """
    g = GATES[mode]
    rows = {"blocked": lambda m: np.tile(m, (g, 1)), "interleaved": lambda m: np.repeat(m, g, 0)}
    return {key: torch.tensor(rows[gate_layout](m)).float() for key, m in dag.connections.items()}


def reference_structured(
    mode: str,
    x: Tensor,
    dag: LayeredDAG,
    weights: dict[tuple[int, int], Weights],
    gate_layout: str = "blocked",
    masks: dict[tuple[int, int], Tensor] | None = None,
) -> Tensor:
    """SPEC section 5 literally: layer by layer, each sub-layer on its own, outputs summed.

    ``weights[(s, l)] = (w_ih, w_hh, b_ih, b_hh)`` per sub-layer (``(-1, 0)`` reads ``x``);
    ``masks`` default to :func:`reference_masks` of ``dag``. Returns the last layer's (T, B, H).
    """
    masks = reference_masks(dag, mode, gate_layout) if masks is None else masks
    outputs: list[Tensor] = []
    for l in range(dag.n_layers):
        parts = [
            reference_layer(
                mode, x if s < 0 else outputs[s], *weights[(s, l)], ih_mask=masks.get((s, l))
            )
            for s, dest in sorted(weights)
            if dest == l
        ]
        outputs.append(sum(parts[1:], parts[0]))  # every layer has at least one sub-layer
    return outputs[-1]


class ReferenceLayer(nn.Module):
    """One recurrent layer as trainable parameters around :func:`reference_layer`."""

    def __init__(
        self,
        mode: str,
        weights: Weights,
        ih_mask: Tensor | None = None,
        hh_mask: Tensor | None = None,
    ) -> None:
        super().__init__()
        self.mode = mode
        w_ih, w_hh, b_ih, b_hh = (None if t is None else t.detach().clone() for t in weights)
        if w_ih is None or w_hh is None:
            raise ValueError("a reference layer needs both weight matrices (w_ih, w_hh)")
        self.w_ih = nn.Parameter(w_ih)
        self.w_hh = nn.Parameter(w_hh)
        self.ih_mask: Tensor | None
        self.hh_mask: Tensor | None
        self.b_ih = None if b_ih is None else nn.Parameter(b_ih)
        self.b_hh = None if b_hh is None else nn.Parameter(b_hh)
        self.register_buffer("ih_mask", None if ih_mask is None else ih_mask.float())
        self.register_buffer("hh_mask", None if hh_mask is None else hh_mask.float())

    def weights(self) -> Weights:
        return self.w_ih, self.w_hh, self.b_ih, self.b_hh

    def forward(self, x: Tensor) -> Tensor:
        """``x`` (T, B, I) -> output sequence (T, B, H)."""
        return reference_layer(self.mode, x, *self.weights(), self.ih_mask, self.hh_mask)


class ReferenceRNN(nn.Module):
    """A :class:`MaskedRNN` stack as separate per-step layers (weights and masks copied)."""

    def __init__(self, rnn: MaskedRNN) -> None:
        super().__init__()
        self.layers = nn.ModuleList(
            ReferenceLayer(
                rnn.mode,
                weights,
                getattr(rnn, f"weight_ih_l{k}_mask"),
                getattr(rnn, f"weight_hh_l{k}_mask"),
            )
            for k, weights in enumerate(_raw_weights(rnn))
        )

    def forward(self, x: Tensor) -> Tensor:
        for layer in self.layers:
            x = layer(x)
        return x


class ReferenceStructuredRNN(nn.Module):
    """A :class:`StructuredRNN` as :func:`reference_structured`: one module per sub-layer."""

    def __init__(self, net: StructuredRNN) -> None:
        super().__init__()
        self.mode, self.dag = net.mode, net.dag
        masks = reference_masks(net.dag, net.mode, net.gate_layout)
        self.keys = sorted(net.sublayer_weights())
        self.sub = nn.ModuleDict(
            {
                _key(s, l): ReferenceLayer(net.mode, w, ih_mask=masks.get((s, l)))
                for (s, l), w in net.sublayer_weights().items()
            }
        )

    def forward(self, x: Tensor) -> Tensor:
        layers = {key: cast(ReferenceLayer, self.sub[_key(*key)]) for key in self.keys}
        weights = {key: layer.weights() for key, layer in layers.items()}
        masks = {key: layer.ih_mask for key, layer in layers.items() if layer.ih_mask is not None}
        return reference_structured(self.mode, x, self.dag, weights, masks=masks)


class ReferenceClassifier(nn.Module):
    """A :class:`~sparsernn.models.SequenceClassifier` with its recurrent part replaced by the
    slow reference (embedding and output layer copied)."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        embedding = cast(nn.Embedding, model.embedding)
        self.embedding = nn.Embedding.from_pretrained(
            embedding.weight.detach().clone(), freeze=False
        )
        rec = model.recurrent
        self.recurrent = (
            ReferenceStructuredRNN(rec)
            if isinstance(rec, StructuredRNN)
            else ReferenceRNN(cast(MaskedRNN, rec))
        )
        out = cast(nn.Linear, model.out)
        self.out = nn.Linear(out.in_features, out.out_features)
        self.out.load_state_dict(out.state_dict())

    def forward(self, tokens: Tensor) -> Tensor:
        seq = self.recurrent(self.embedding(tokens.t()))  # (T, B, H)
        return self.out(seq[-1])  # (B, C)


def _raw_weights(rnn: MaskedRNN) -> list[Weights]:
    """Per layer the stored (unmasked) ``(w_ih, w_hh, b_ih, b_hh)`` of a MaskedRNN."""
    out = []
    for k in range(rnn.num_layers):
        w = (getattr(rnn, f"weight_ih_l{k}"), getattr(rnn, f"weight_hh_l{k}"))
        b = (getattr(rnn, f"bias_ih_l{k}"), getattr(rnn, f"bias_hh_l{k}")) if rnn.bias else None
        out.append((*w, *(b or (None, None))))
    return out


def _key(s: int, l: int) -> str:
    return f"s{s + 1}_to_{l}"
