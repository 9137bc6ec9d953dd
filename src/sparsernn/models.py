"""The study's sequence classifier: Embedding -> recurrent stack -> Linear on the last step.

The model knows nothing about training or storage (the nanoGPT habit): it is built from a
:class:`ModelConfig`, and a checkpoint is that config's JSON beside the state dict.
"""

from __future__ import annotations

import dataclasses

import torch
from torch import Tensor, nn

from sparsernn.config import Config
from sparsernn.errors import ConfigError
from sparsernn.nn.cells import cell_spec
from sparsernn.nn.masked import MaskedRNN
from sparsernn.nn.structured import GATE_LAYOUTS

__all__ = ["ModelConfig", "SequenceClassifier", "build_model"]


@dataclasses.dataclass(frozen=True)
class ModelConfig(Config):
    """Architecture of a :class:`SequenceClassifier` (defaults: the study's base model).

    ``graph_edges``/``n_nodes`` switch to a random-structure network (SPEC section 5): the
    recurrent part is a :class:`~sparsernn.nn.StructuredRNN` of that graph and, unless given,
    ``embedding_dim`` becomes the size of the graph's first layer. ``gate_layout`` picks
    that network's i2h mask rows for GRU/LSTM: ``"blocked"`` (graph-faithful, the default) or
    ``"interleaved"`` (the study's code); see :class:`~sparsernn.nn.StructuredRNN`. It is left
    out of :meth:`to_dict` when ``"blocked"``, so configs (and run keys) from before it existed
    are unchanged.
    """

    cell: str = "gru"
    vocab_size: int = 128
    embedding_dim: int | None = 50
    hidden_size: int = 50
    num_layers: int = 3
    n_classes: int = 2
    graph_edges: tuple[tuple[int, int], ...] | None = None
    n_nodes: int | None = None
    gate_layout: str = "blocked"

    def __post_init__(self) -> None:
        cell_spec(self.cell)
        for name in ("vocab_size", "hidden_size", "num_layers", "n_classes"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name}={getattr(self, name)} must be >= 1")
        if self.embedding_dim is not None and self.embedding_dim < 1:
            raise ConfigError(f"embedding_dim={self.embedding_dim} must be >= 1")
        if (self.graph_edges is None) != (self.n_nodes is None):
            raise ConfigError("graph_edges and n_nodes must be given together")
        if self.gate_layout not in GATE_LAYOUTS:
            raise ConfigError(
                f"unknown gate_layout {self.gate_layout!r}; choose one of {', '.join(GATE_LAYOUTS)}"
            )

    def to_dict(self) -> dict:
        data = super().to_dict()
        if data["gate_layout"] == "blocked":  # the default: keep older configs' JSON and keys
            del data["gate_layout"]
        return data

    @property
    def structured(self) -> bool:
        return self.graph_edges is not None


class SequenceClassifier(nn.Module):
    """Embedding(vocab, E) -> recurrent network -> Linear(H_last, n_classes) at the last step.

    ``forward(tokens)`` takes (B, T) integer codes, zero-padded on the right, and returns
    (B, n_classes) logits read from the top layer's output at the LAST padded time step, as in
    the study (padding is therefore part of the model's input).
    """

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config
        if config.structured:
            from sparsernn.graphs import graph_from_edges
            from sparsernn.nn.structured import StructuredRNN

            graph = graph_from_edges(config.graph_edges, config.n_nodes)
            self.recurrent = StructuredRNN(
                graph, config.cell, input_size=config.embedding_dim, gate_layout=config.gate_layout
            )
            emb_dim = self.recurrent.input_size
            top = self.recurrent.output_size
        else:
            emb_dim = config.embedding_dim or config.hidden_size
            self.recurrent = MaskedRNN(config.cell, emb_dim, config.hidden_size, config.num_layers)
            top = config.hidden_size
        self.embedding = nn.Embedding(config.vocab_size, emb_dim)
        self.out = nn.Linear(top, config.n_classes)

    def forward(self, tokens: Tensor) -> Tensor:
        x = self.embedding(tokens.t())  # (T, B, E)
        seq, _ = self.recurrent(x)  # (T, B, H)
        return self.out(seq[-1])  # (B, C)


def build_model(config: ModelConfig, seed: int | None = None) -> SequenceClassifier:
    """Build a model; with ``seed`` its initial weights are reproducible on CPU."""
    if seed is None:
        return SequenceClassifier(config)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return SequenceClassifier(config)
