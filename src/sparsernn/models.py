"""The study's sequence classifier: Embedding -> recurrent stack -> Linear on the last step.

Any task of :mod:`sparsernn.tasks` fits the same model: token inputs are read through an
embedding (as the study's strings are), real-valued inputs through a linear input layer
(``input_size``); the head has ``n_classes`` outputs per position (``n_outputs`` positions, e.g.
the copy task's K symbols) or one real output per position (``regression``).

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

from sparsernn.config import Config, key_field
from sparsernn.errors import ConfigError
from sparsernn.nn.batched import BatchedMaskedRNN
from sparsernn.nn.batched import input_gates as _input_gates
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
    ``"interleaved"`` (the study's code); see :class:`~sparsernn.nn.StructuredRNN`.

    Task fields: ``input_size`` (None: token codes below ``vocab_size`` read by an
    embedding; F: F real values per step read by ``Linear(F, embedding_dim)``), ``n_outputs``
    (output positions read from the last step) and ``regression`` (one real number per
    position instead of ``n_classes`` logits).

    ``gate_layout`` and the task fields came after run keys existed: each is a
    :func:`~sparsernn.config.key_field`, left out of :meth:`to_dict` at its default.
    """

    cell: str = "gru"
    vocab_size: int = 128
    embedding_dim: int | None = 50
    hidden_size: int = 50
    num_layers: int = 3
    n_classes: int = 2
    graph_edges: tuple[tuple[int, int], ...] | None = None
    n_nodes: int | None = None
    gate_layout: str = key_field("blocked")
    input_size: int | None = key_field(None)
    n_outputs: int = key_field(1)
    regression: bool = key_field(False)

    def __post_init__(self) -> None:
        cell_spec(self.cell)
        for name in ("vocab_size", "hidden_size", "num_layers", "n_classes", "n_outputs"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name}={getattr(self, name)} must be >= 1")
        if self.embedding_dim is not None and self.embedding_dim < 1:
            raise ConfigError(f"embedding_dim={self.embedding_dim} must be >= 1")
        if (self.graph_edges is None) != (self.n_nodes is None):
            raise ConfigError("graph_edges and n_nodes must be given together")
        if self.input_size is not None and self.input_size < 1:
            raise ConfigError(f"input_size={self.input_size} must be >= 1 (or None for tokens)")
        if self.gate_layout not in GATE_LAYOUTS:
            raise ConfigError(
                f"unknown gate_layout {self.gate_layout!r}; choose one of {', '.join(GATE_LAYOUTS)}"
            )

    @property
    def structured(self) -> bool:
        return self.graph_edges is not None

    @property
    def input_kind(self) -> str:
        """``"tokens"`` (an embedding reads codes) or ``"real"`` (a linear layer reads values)."""
        return "tokens" if self.input_size is None else "real"

    @property
    def head_size(self) -> int:
        """Outputs of the linear head: ``n_outputs`` x (``n_classes``, or 1 for regression)."""
        return self.n_outputs * (1 if self.regression else self.n_classes)


#: What the real-valued input layer (``input_linear``) was called before it was named for what
#: it is; checkpoints written then load through :func:`_renamed_input_layer`.
_OLD_INPUT_NAME = "embedding"


def _renamed_input_layer(
    module: nn.Module, state_dict: dict[str, Tensor], prefix: str, *args: object
) -> None:
    """Load-state-dict pre-hook: a real-input model's ``embedding.*`` tensors (an nn.Linear,
    as checkpoints before the rename hold them) are read as ``input_linear.*``."""
    config = getattr(module, "config", None)
    if not isinstance(config, ModelConfig) or config.input_size is None:
        return
    for name in ("weight", "bias"):
        old, new = f"{prefix}{_OLD_INPUT_NAME}.{name}", f"{prefix}input_linear.{name}"
        if old in state_dict and new not in state_dict:
            state_dict[new] = state_dict.pop(old)


def _time_major(inputs: Tensor) -> Tensor:
    """(B, T) codes -> (T, B); (B, T, F) values -> (T, B, F)."""
    return inputs.transpose(0, 1)


def _last_step(seq: Tensor, lengths: Tensor | None) -> Tensor:
    """The output at the last padded step (``lengths`` None: the study's rule) or at each
    sequence's own last step; ``seq`` is (..., T, B, H) and the result (..., B, H)."""
    if lengths is None:
        return seq[..., -1, :, :]
    index = (lengths.to(seq.device) - 1).view(-1, 1).expand(-1, seq.shape[-1])  # (B, H)
    index = index.expand(*seq.shape[:-3], 1, *index.shape)  # (..., 1, B, H)
    return seq.gather(-3, index).squeeze(-3)


def _shaped(out: Tensor, config: ModelConfig) -> Tensor:
    """Head outputs (..., B, head_size) as the task reads them: (..., B, C) logits, (..., B,
    K, C) for K positions, (..., B) or (..., B, K) real numbers for regression."""
    per_position = 1 if config.regression else config.n_classes
    if config.n_outputs > 1:
        return out.unflatten(-1, (config.n_outputs, per_position))
    return out.squeeze(-1) if config.regression else out


class SequenceClassifier(nn.Module):
    """Embedding(vocab, E) -> recurrent network -> Linear(H_last, n_classes) at the last step.

    ``forward(tokens)`` takes (B, T) integer codes, zero-padded on the right, and returns
    (B, n_classes) logits read from the top layer's output at the LAST padded time step, as in
    the study (padding is therefore part of the model's input). ``forward(inputs, lengths)``
    reads each sequence's own last step instead (the other tasks). Real inputs are (B, T, F)
    and pass ``input_linear = Linear(F, E)`` in place of the embedding (:attr:`input_layer` is
    whichever the model has; checkpoints that call it ``embedding`` still load); the output
    shape follows the task (see :func:`_shaped`).
    """

    embedding: nn.Embedding  # token codes (the study's name, kept for its checkpoints)
    input_linear: nn.Linear  # real values

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config
        self.recurrent: MaskedRNN | StructuredRNN
        if config.structured:
            from sparsernn.graphs import graph_from_edges

            assert config.graph_edges is not None and config.n_nodes is not None
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
        if config.input_size is None:
            self.embedding = nn.Embedding(config.vocab_size, emb_dim)
        else:
            self.input_linear = nn.Linear(config.input_size, emb_dim)
        self.out = nn.Linear(top, config.head_size)
        self.register_load_state_dict_pre_hook(_renamed_input_layer)

    @property
    def input_layer(self) -> nn.Embedding | nn.Linear:
        """The first layer: ``embedding`` (token codes) or ``input_linear`` (real values)."""
        return self.embedding if self.config.input_size is None else self.input_linear

    def forward(self, tokens: Tensor, lengths: Tensor | None = None) -> Tensor:
        x = self.input_layer(_time_major(tokens))  # (T, B, E)
        seq, _ = self.recurrent(x)  # (T, B, H)
        return _shaped(self.out(_last_step(seq, lengths)), self.config)  # (B, C)


class BatchedClassifier(nn.Module):
    """K :class:`SequenceClassifier` of one (non-graph) architecture, stacked on a model axis.

    ``forward(tokens)`` takes (B, T) codes shared by all models and returns (K, B, n_classes)
    logits read at the last padded time step, as the single model does (``forward(inputs,
    lengths)``: each sequence's own last step; real (B, T, F) inputs and the task's output
    shapes as there, with a leading K). Every matmul of the K models is one batched matmul,
    and the first layer's input projection of token models is computed once per vocabulary
    entry and gathered. Build it with :meth:`from_models` and write the weights back with
    :meth:`copy_to`.
    """

    def __init__(self, config: ModelConfig, n_models: int) -> None:
        super().__init__()
        if config.structured:
            raise ConfigError("BatchedClassifier supports the stacked (non-graph) models only")
        self.config = config
        self.n_models = int(n_models)
        emb = config.embedding_dim or config.hidden_size
        k = self.n_models
        if config.input_size is None:  # token codes: a (K, V, E) table
            self.embedding = nn.Parameter(torch.randn(k, config.vocab_size, emb))
        else:  # real values: K linear input layers, (K, E, F) weights as nn.Linear's
            self.input_weight = nn.Parameter(torch.zeros(k, emb, config.input_size))
            self.input_bias = nn.Parameter(torch.zeros(k, emb))
        self.recurrent = BatchedMaskedRNN(
            config.cell, k, emb, config.hidden_size, config.num_layers
        )
        bound = 1 / math.sqrt(config.hidden_size)
        self.out_weight = nn.Parameter(
            torch.empty(k, config.head_size, config.hidden_size).uniform_(-bound, bound)
        )
        self.out_bias = nn.Parameter(torch.empty(k, config.head_size).uniform_(-bound, bound))

    def _first_gates(self, inputs: Tensor, w_ih: Tensor, b_ih: Tensor | None) -> Tensor:
        """Input gates of the first layer of every model: (K, T, B, G)."""
        if self.config.input_size is not None:
            x = _time_major(inputs).expand(self.n_models, -1, -1, -1)  # (K, T, B, F)
            emb = _input_gates(x, self.input_weight, self.input_bias)  # (K, T, B, E)
            return _input_gates(emb, w_ih, b_ih)
        tok = _time_major(inputs)  # (T, B)
        k, vocab, _ = self.embedding.shape
        if tok.numel() > vocab:  # project the vocabulary once, then gather: fewer flops
            table = _input_gates(self.embedding.unsqueeze(1), w_ih, b_ih)[:, 0]  # (K, V, G)
            offsets = torch.arange(k, device=tok.device).view(k, 1, 1) * vocab
            return F.embedding(tok + offsets, table.reshape(k * vocab, -1))  # (K, T, B, G)
        return _input_gates(self.embedding[:, tok], w_ih, b_ih)

    def forward(self, tokens: Tensor, lengths: Tensor | None = None) -> Tensor:
        weights = self.recurrent.layer_weights()
        w_ih, _, b_ih, _ = weights[0]
        gi = self._first_gates(tokens, w_ih, b_ih)
        seq, _ = self.recurrent.run_from_gates(gi, weights)  # (K, T, B, H)
        top = _last_step(seq, lengths)  # (K, B, H)
        out = torch.baddbmm(self.out_bias.unsqueeze(1), top, self.out_weight.transpose(1, 2))
        return _shaped(out, self.config)

    def _input_pairs(self, models: Sequence[SequenceClassifier]) -> list[tuple[Tensor, Tensor]]:
        """(stacked parameter, the per-model tensors) of the input layer and the head."""
        if self.config.input_size is None:
            pairs = [(self.embedding, [m.embedding.weight for m in models])]
        else:
            pairs = [
                (self.input_weight, [m.input_linear.weight for m in models]),
                (self.input_bias, [m.input_linear.bias for m in models]),
            ]
        pairs.append((self.out_weight, [m.out.weight for m in models]))
        pairs.append((self.out_bias, [m.out.bias for m in models]))
        return pairs  # type: ignore[return-value]

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
        device = next(models[0].parameters()).device
        new = cls(config, len(models)).to(device)
        with torch.no_grad():
            for stacked, parts in new._input_pairs(models):
                stacked.copy_(torch.stack(list(parts)))
        new.recurrent = BatchedMaskedRNN.from_modules(
            [rnn for rnn in rnns if isinstance(rnn, MaskedRNN)]
        )
        return new

    @torch.no_grad()
    def copy_to(self, models: Sequence[SequenceClassifier]) -> None:
        """Write model ``i``'s parameters (and masks) back into ``models[i]``."""
        for stacked, parts in self._input_pairs(models):
            for i, part in enumerate(parts):
                part.copy_(stacked[i])
        self.recurrent.copy_to([m.recurrent for m in models if isinstance(m.recurrent, MaskedRNN)])


def build_model(config: ModelConfig, seed: int | None = None) -> SequenceClassifier:
    """Build a model; with ``seed`` its initial weights are reproducible on CPU."""
    if seed is None:
        return SequenceClassifier(config)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return SequenceClassifier(config)
