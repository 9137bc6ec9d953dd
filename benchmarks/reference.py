"""Slow baselines written straight from the study's method (SPEC sections 3 and 5).

Every time step of every layer is its own Python iteration of small operations, and each
weight's mask is multiplied into it at EVERY step, as the study's code did. The cell equations
are :func:`sparsernn.nn.cells.cell_step`, the same ones the fast paths are tested against.
Column (a) of ``python -m sparsernn.bench``; deliberately simple, with one concession to
fairness: the time loop iterates ``x.unbind(0)`` (indexing ``x[t]`` would make backward
allocate a full-size zero tensor per step and be slower still).

Each reference is built FROM one of our models and copies its weights, so both compute the
same function and the benchmark times the same work.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from sparsernn.models import SequenceClassifier
from sparsernn.nn.cells import GATES, cell_step, zero_state
from sparsernn.nn.masked import MaskedRNN
from sparsernn.nn.structured import StructuredRNN

__all__ = [
    "ReferenceLayer",
    "ReferenceRNN",
    "ReferenceStructuredRNN",
    "ReferenceClassifier",
]


class ReferenceLayer(nn.Module):
    """One recurrent layer: a per-step loop with the masks multiplied in at every step."""

    def __init__(
        self,
        mode: str,
        weights: tuple[Tensor, Tensor, Tensor | None, Tensor | None],
        ih_mask: Tensor | None = None,
        hh_mask: Tensor | None = None,
    ) -> None:
        super().__init__()
        self.mode = mode
        w_ih, w_hh, b_ih, b_hh = (None if t is None else t.detach().clone() for t in weights)
        self.w_ih = nn.Parameter(w_ih)
        self.w_hh = nn.Parameter(w_hh)
        self.b_ih = None if b_ih is None else nn.Parameter(b_ih)
        self.b_hh = None if b_hh is None else nn.Parameter(b_hh)
        self.register_buffer("ih_mask", None if ih_mask is None else ih_mask.float())
        self.register_buffer("hh_mask", None if hh_mask is None else hh_mask.float())

    def forward(self, x: Tensor) -> Tensor:
        """``x`` (T, B, I) -> output sequence (T, B, H)."""
        state = zero_state(self.mode, x.shape[1], self.w_hh.shape[1], x)
        outputs = []
        for x_t in x.unbind(0):
            w_ih = self.w_ih if self.ih_mask is None else self.w_ih * self.ih_mask
            w_hh = self.w_hh if self.hh_mask is None else self.w_hh * self.hh_mask
            state = cell_step(self.mode, x_t, state, w_ih, w_hh, self.b_ih, self.b_hh)
            outputs.append(state[0] if self.mode == "lstm" else state)
        return torch.stack(outputs)


class ReferenceRNN(nn.Module):
    """A :class:`MaskedRNN` stack as separate per-step layers (weights and masks copied)."""

    def __init__(self, rnn: MaskedRNN) -> None:
        super().__init__()
        self.layers = nn.ModuleList(
            ReferenceLayer(
                rnn.mode,
                (w_ih, w_hh, b_ih, b_hh),
                getattr(rnn, f"weight_ih_l{k}_mask"),
                getattr(rnn, f"weight_hh_l{k}_mask"),
            )
            for k, (w_ih, w_hh, b_ih, b_hh) in enumerate(_raw_weights(rnn))
        )

    def forward(self, x: Tensor) -> Tensor:
        for layer in self.layers:
            x = layer(x)
        return x


class ReferenceStructuredRNN(nn.Module):
    """SPEC section 5 literally: one module per sub-layer, skip outputs added per layer."""

    def __init__(self, net: StructuredRNN) -> None:
        super().__init__()
        g = GATES[net.mode]
        self.n_layers = net.n_layers
        self.keys = sorted(net.sublayer_weights(), key=lambda sl: (sl[1], sl[0]))
        conns = net.dag.connections
        self.sub = nn.ModuleDict()
        for s, l in self.keys:
            weights = net.sublayer_weights()[(s, l)]
            mask = None if s < 0 else torch.from_numpy(conns[(s, l)].copy()).repeat(g, 1)
            self.sub[_key(s, l)] = ReferenceLayer(net.mode, weights, ih_mask=mask)

    def forward(self, x: Tensor) -> Tensor:
        outputs: list[Tensor] = []
        for l in range(self.n_layers):
            total = None
            for s, dest in self.keys:
                if dest != l:
                    continue
                src = x if s < 0 else outputs[s]
                out = self.sub[_key(s, l)](src)
                total = out if total is None else total + out
            outputs.append(total)
        return outputs[-1]


class ReferenceClassifier(nn.Module):
    """A :class:`SequenceClassifier` with its recurrent part replaced by the slow reference."""

    def __init__(self, model: SequenceClassifier) -> None:
        super().__init__()
        self.embedding = nn.Embedding.from_pretrained(
            model.embedding.weight.detach().clone(), freeze=False
        )
        rec = model.recurrent
        self.recurrent = (
            ReferenceStructuredRNN(rec) if isinstance(rec, StructuredRNN) else ReferenceRNN(rec)
        )
        self.out = nn.Linear(model.out.in_features, model.out.out_features)
        self.out.load_state_dict(model.out.state_dict())

    def forward(self, tokens: Tensor) -> Tensor:
        seq = self.recurrent(self.embedding(tokens.t()))  # (T, B, H)
        return self.out(seq[-1])


def _raw_weights(rnn: MaskedRNN) -> list[tuple[Tensor, Tensor, Tensor | None, Tensor | None]]:
    out = []
    for k in range(rnn.num_layers):
        b = (
            (getattr(rnn, f"bias_ih_l{k}"), getattr(rnn, f"bias_hh_l{k}"))
            if rnn.bias
            else (None,) * 2
        )
        out.append((getattr(rnn, f"weight_ih_l{k}"), getattr(rnn, f"weight_hh_l{k}"), *b))
    return out


def _key(s: int, l: int) -> str:
    return f"s{s + 1}_to_{l}"
