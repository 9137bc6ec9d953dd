"""The study's sequence classifier: Embedding -> recurrent stack -> Linear on the last step.

The model knows nothing about training or storage (the nanoGPT habit): it is built from a
:class:`ModelConfig`, and a checkpoint is that config's JSON beside the state dict.
:class:`BatchedClassifier` is its K-model twin: K classifiers of one architecture stacked
along a leading model axis, so that :func:`sparsernn.train.train_many` trains them as one.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from sparsernn.config import Config
from sparsernn.errors import ConfigError
from sparsernn.nn.batched import BatchedMaskedRNN, _input_gates
from sparsernn.nn.cells import cell_spec
from sparsernn.nn.masked import MaskedRNN
from sparsernn.nn.structured import GATE_LAYOUTS, StructuredRNN

__all__ = ["ModelConfig", "SequenceClassifier", "BatchedClassifier", "build_model"]


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
        self.recurrent: MaskedRNN | StructuredRNN
        if config.structured:
            from sparsernn.graphs import graph_from_edges

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


class BatchedClassifier(nn.Module):
    """K :class:`SequenceClassifier` of one (non-graph) architecture, stacked on a model axis.

    ``forward(tokens)`` takes (B, T) codes shared by all models and returns (K, B, n_classes)
    logits read at the last padded time step, as the single model does. Every matmul of the K
    models is one batched matmul, and the first layer's input projection is computed once per
    vocabulary entry and gathered. Build it with :meth:`from_models` and write the weights back
    with :meth:`copy_to`.
    """

    def __init__(self, config: ModelConfig, n_models: int) -> None:
        super().__init__()
        if config.structured:
            raise ConfigError("BatchedClassifier supports the stacked (non-graph) models only")
        self.config = config
        self.n_models = int(n_models)
        emb = config.embedding_dim or config.hidden_size
        self.embedding = nn.Parameter(torch.randn(self.n_models, config.vocab_size, emb))
        self.recurrent = BatchedMaskedRNN(
            config.cell, self.n_models, emb, config.hidden_size, config.num_layers
        )
        bound = 1 / math.sqrt(config.hidden_size)
        self.out_weight = nn.Parameter(
            torch.empty(self.n_models, config.n_classes, config.hidden_size).uniform_(-bound, bound)
        )
        self.out_bias = nn.Parameter(
            torch.empty(self.n_models, config.n_classes).uniform_(-bound, bound)
        )

    def forward(self, tokens: Tensor) -> Tensor:
        tok = tokens.t()  # (T, B)
        k, vocab, _ = self.embedding.shape
        weights = self.recurrent.layer_weights()
        w_ih, _, b_ih, _ = weights[0]
        if tok.numel() > vocab:  # project the vocabulary once, then gather: fewer flops
            table = _input_gates(self.embedding.unsqueeze(1), w_ih, b_ih)[:, 0]  # (K, V, G)
            offsets = torch.arange(k, device=tok.device).view(k, 1, 1) * vocab
            gi = F.embedding(tok + offsets, table.reshape(k * vocab, -1))  # (K, T, B, G)
        else:
            gi = _input_gates(self.embedding[:, tok], w_ih, b_ih)
        seq, _ = self.recurrent.run_from_gates(gi, weights)  # (K, T, B, H)
        top = seq[:, -1]  # (K, B, H)
        return torch.baddbmm(self.out_bias.unsqueeze(1), top, self.out_weight.transpose(1, 2))

    @classmethod
    def from_models(cls, models: Sequence[SequenceClassifier]) -> BatchedClassifier:
        """Stack the parameters and masks of ``models`` (copies; one ModelConfig required)."""
        if not models:
            raise ConfigError("no models given")
        config = getattr(models[0], "config", None)
        rnns = [getattr(m, "recurrent", None) for m in models]
        if not isinstance(config, ModelConfig) or any(
            m.config != config or not isinstance(rnn, MaskedRNN)
            for m, rnn in zip(models, rnns, strict=True)
        ):
            raise ConfigError("models must be SequenceClassifiers with one (non-graph) ModelConfig")
        device = models[0].embedding.weight.device
        new = cls(config, len(models)).to(device)
        with torch.no_grad():
            new.embedding.copy_(torch.stack([m.embedding.weight for m in models]))
            new.out_weight.copy_(torch.stack([m.out.weight for m in models]))
            new.out_bias.copy_(torch.stack([m.out.bias for m in models]))
        new.recurrent = BatchedMaskedRNN.from_modules(
            [rnn for rnn in rnns if isinstance(rnn, MaskedRNN)]
        )
        return new

    @torch.no_grad()
    def copy_to(self, models: Sequence[SequenceClassifier]) -> None:
        """Write model ``i``'s parameters (and masks) back into ``models[i]``."""
        for i, m in enumerate(models):
            m.embedding.weight.copy_(self.embedding[i])
            m.out.weight.copy_(self.out_weight[i])
            m.out.bias.copy_(self.out_bias[i])
        self.recurrent.copy_to([m.recurrent for m in models if isinstance(m.recurrent, MaskedRNN)])


def build_model(config: ModelConfig, seed: int | None = None) -> SequenceClassifier:
    """Build a model; with ``seed`` its initial weights are reproducible on CPU."""
    if seed is None:
        return SequenceClassifier(config)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return SequenceClassifier(config)
