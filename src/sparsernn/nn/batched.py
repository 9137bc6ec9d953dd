"""K models of one architecture trained at once, in one set of batched operations.

The pruning grid retrains 30 masked copies of one base model per cell, and the structure study
trains hundreds of tiny networks; on a CPU each of those steps is bound by per-operation
overhead, not arithmetic. Here the K models' weights are stacked along a leading model axis, so
every matmul of the K models becomes one batched matmul (``torch.bmm``/``baddbmm``) and every
elementwise operation one larger operation:

- the recurrence runs in :func:`~sparsernn.nn.functional.fused_recurrence` (hand-written BPTT,
  input projections for all time steps hoisted out of the time loop);
- the first layer's input projection is computed once per vocabulary entry (the embedding table
  times ``w_ih``) and gathered, instead of once per token;
- the loss is the SUM of the K per-model mean losses, so each model's gradient is its own;
- :func:`clip_grad_norm_per_model_` clips each model's gradient norm separately, exactly as
  ``torch.nn.utils.clip_grad_norm_`` would on that model alone;
- Adam is elementwise (and all K models step together), so one Adam over the stacked
  parameters makes the same updates as K separate Adams.

All K models see the same batches in the same order: exactly the batches that
:func:`sparsernn.train.fit` draws for one model with the same :class:`TrainConfig` (seed,
shuffle, bucketing). :func:`train_many` therefore equals training the K models one by one with
``fit`` up to float rounding, and writes the trained weights back into the given models.
Masks are held fixed: masked weights get zero gradient, so Adam leaves them at exactly zero.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from sparsernn.errors import ConfigError
from sparsernn.nn.cells import GATES, MODES
from sparsernn.nn.functional import fused_recurrence
from sparsernn.nn.masked import MaskedRNN

__all__ = [
    "BatchedMaskedRNN",
    "BatchedClassifier",
    "clip_grad_norm_per_model_",
    "evaluate_many",
    "train_many",
]


class BatchedMaskedRNN(nn.Module):
    """K stacks of masked recurrent layers with identical shapes, stacked along a model axis.

    Parameters and mask buffers are named as in :class:`~sparsernn.nn.MaskedRNN`
    (``weight_ih_l{k}``, ``weight_ih_l{k}_mask``, ...) with a leading axis of size
    ``n_models``. ``forward(x)`` takes (K, T, B, I) and returns ``(output (K, T, B, H),
    h_n)`` with ``h_n`` a list of per-layer final states (K, B, H) (``(h, c)`` for LSTM).
    Initial states are zeros.

    Examples
    --------
    >>> rnn = BatchedMaskedRNN("gru", n_models=4, input_size=8, hidden_size=16, num_layers=2)
    >>> out, h_n = rnn(torch.zeros(4, 5, 3, 8))
    >>> tuple(out.shape), len(h_n)
    ((4, 5, 3, 16), 2)
    """

    def __init__(
        self,
        mode: str,
        n_models: int,
        input_size: int,
        hidden_size: int | Sequence[int],
        num_layers: int | None = None,
        bias: bool = True,
    ) -> None:
        super().__init__()
        if mode not in GATES:
            raise ConfigError(f"unknown cell mode {mode!r}; choose one of {', '.join(MODES)}")
        if n_models < 1:
            raise ConfigError(f"n_models={n_models} must be >= 1")
        if isinstance(hidden_size, int):
            sizes = [hidden_size] * (1 if num_layers is None else num_layers)
        else:
            sizes = [int(h) for h in hidden_size]
        if not sizes or min(sizes) < 1 or input_size < 1:
            raise ConfigError(f"sizes must be positive (input_size={input_size}, {sizes})")
        self.mode = mode
        self.n_models = int(n_models)
        self.input_size = int(input_size)
        self.hidden_sizes = tuple(sizes)
        self.num_layers = len(sizes)
        self.bias = bias
        g = GATES[mode]
        in_sizes = [self.input_size, *sizes[:-1]]
        for k, (i, h) in enumerate(zip(in_sizes, sizes, strict=True)):
            for kind, cols in (("ih", i), ("hh", h)):
                shape = (self.n_models, g * h, cols)
                self.register_parameter(f"weight_{kind}_l{k}", nn.Parameter(torch.empty(shape)))
                self.register_buffer(
                    f"weight_{kind}_l{k}_mask", torch.ones(shape, dtype=torch.bool)
                )
            if bias:
                for kind in ("ih", "hh"):
                    p = nn.Parameter(torch.empty(self.n_models, g * h))
                    self.register_parameter(f"bias_{kind}_l{k}", p)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Every weight and bias ~ U(-1/sqrt(H), 1/sqrt(H)) per layer (as ``torch.nn.RNN``)."""
        with torch.no_grad():
            for k, h in enumerate(self.hidden_sizes):
                for name in self._param_names(k):
                    getattr(self, name).uniform_(-1 / math.sqrt(h), 1 / math.sqrt(h))
            self.apply_masks_()

    def _param_names(self, k: int) -> list[str]:
        names = [f"weight_ih_l{k}", f"weight_hh_l{k}"]
        return names + ([f"bias_ih_l{k}", f"bias_hh_l{k}"] if self.bias else [])

    def weight_names(self) -> list[str]:
        """Names of the maskable weights, as in :meth:`MaskedRNN.weight_names`."""
        return [f"weight_{kind}_l{k}" for k in range(self.num_layers) for kind in ("ih", "hh")]

    @torch.no_grad()
    def apply_masks_(self) -> None:
        """Zero every masked entry of the stored weights."""
        for name in self.weight_names():
            getattr(self, name).mul_(getattr(self, f"{name}_mask"))

    def layer_weights(self) -> list[tuple[Tensor, Tensor, Tensor | None, Tensor | None]]:
        """Per layer ``(w_ih, w_hh, b_ih, b_hh)`` stacked over models, masks applied.

        Except for GRU (whose ``b_hn`` sits inside ``r * (...)``), both biases add to the same
        pre-activation: they are returned summed as ``b_ih``, with ``b_hh`` None.
        """
        out = []
        for k in range(self.num_layers):
            w_ih = getattr(self, f"weight_ih_l{k}") * getattr(self, f"weight_ih_l{k}_mask")
            w_hh = getattr(self, f"weight_hh_l{k}") * getattr(self, f"weight_hh_l{k}_mask")
            b_ih = getattr(self, f"bias_ih_l{k}") if self.bias else None
            b_hh = getattr(self, f"bias_hh_l{k}") if self.bias else None
            if self.bias and self.mode != "gru":
                b_ih, b_hh = b_ih + b_hh, None
            out.append((w_ih, w_hh, b_ih, b_hh))
        return out

    def forward(self, x: Tensor) -> tuple[Tensor, list]:
        """Run the K stacks over ``x`` (K, T, B, I); see the class docstring."""
        if x.dim() != 4 or x.shape[0] != self.n_models or x.shape[-1] != self.input_size:
            raise ValueError(
                f"expected input of shape ({self.n_models}, T, B, {self.input_size}), "
                f"got {tuple(x.shape)}"
            )
        weights = self.layer_weights()
        return self.run_from_gates(_input_gates(x, weights[0][0], weights[0][2]), weights)

    def run_from_gates(self, gi: Tensor, weights: list | None = None) -> tuple[Tensor, list]:
        """Like :meth:`forward`, from the first layer's input gates ``x @ w_ih^T + b_ih``."""
        weights = self.layer_weights() if weights is None else weights
        final: list = []
        out = gi
        for k, (w_ih, w_hh, b_ih, b_hh) in enumerate(weights):
            gi = _input_gates(out, w_ih, b_ih) if k > 0 else gi
            hs, c = fused_recurrence(self.mode, gi, w_hh, b_hh)  # hs (K, T+1, B, H)
            out = hs[:, 1:]
            final.append((hs[:, -1], c) if self.mode == "lstm" else hs[:, -1])
        return out, final

    # ------------------------------------------------------------------ to and from MaskedRNN
    @classmethod
    def from_modules(cls, modules: Sequence[MaskedRNN]) -> BatchedMaskedRNN:
        """Stack the weights and masks of MaskedRNNs of identical shape (copies)."""
        first = modules[0]
        for m in modules:
            if not isinstance(m, MaskedRNN):
                raise ConfigError(f"expected MaskedRNN modules, got {type(m).__name__}")
            if (m.mode, m.input_size, m.hidden_sizes, m.bias) != (
                first.mode,
                first.input_size,
                first.hidden_sizes,
                first.bias,
            ):
                raise ConfigError("all modules must have the same mode, sizes and bias")
            if m.dropout > 0:
                raise ConfigError("dropout is not supported when training models together")
        new = cls(first.mode, len(modules), first.input_size, first.hidden_sizes, bias=first.bias)
        new = new.to(first.weight_ih_l0.device)
        with torch.no_grad():
            for name, value in new.state_dict().items():
                value.copy_(torch.stack([m.state_dict()[name] for m in modules]))
        return new

    @torch.no_grad()
    def copy_to(self, modules: Sequence[MaskedRNN]) -> None:
        """Write model ``i``'s weights (and masks) back into ``modules[i]``."""
        if len(modules) != self.n_models:
            raise ConfigError(f"got {len(modules)} modules for {self.n_models} models")
        for name, value in self.state_dict().items():
            for i, m in enumerate(modules):
                getattr(m, name).copy_(value[i])


def _input_gates(x: Tensor, w_ih: Tensor, b_ih: Tensor | None) -> Tensor:
    """``x`` (K, T, B, I) -> (K, T, B, G) = x @ w_ih^T + b_ih, as one batched matmul."""
    k, t_len, batch, n_in = x.shape
    flat = x.reshape(k, t_len * batch, n_in)
    if b_ih is None:
        gi = torch.bmm(flat, w_ih.transpose(1, 2))
    else:
        gi = torch.baddbmm(b_ih.unsqueeze(1), flat, w_ih.transpose(1, 2))
    return gi.view(k, t_len, batch, -1)


class BatchedClassifier(nn.Module):
    """K :class:`~sparsernn.models.SequenceClassifier` of one architecture, stacked.

    ``forward(tokens)`` takes (B, T) codes shared by all models and returns (K, B, n_classes)
    logits read at the last padded time step, as the single model does. Build it with
    :meth:`from_models` and write the weights back with :meth:`copy_to`.
    """

    def __init__(self, config: Any, n_models: int) -> None:
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
    def from_models(cls, models: Sequence[nn.Module]) -> BatchedClassifier:
        """Stack the parameters and masks of ``models`` (copies; same config required)."""
        if not models:
            raise ConfigError("no models given")
        config = getattr(models[0], "config", None)
        for m in models:
            if getattr(m, "config", None) != config or not isinstance(m.recurrent, MaskedRNN):
                raise ConfigError(
                    "models must be SequenceClassifiers with one (non-graph) ModelConfig"
                )
        device = models[0].embedding.weight.device
        new = cls(config, len(models)).to(device)
        with torch.no_grad():
            new.embedding.copy_(torch.stack([m.embedding.weight for m in models]))
            new.out_weight.copy_(torch.stack([m.out.weight for m in models]))
            new.out_bias.copy_(torch.stack([m.out.bias for m in models]))
        new.recurrent = BatchedMaskedRNN.from_modules([m.recurrent for m in models])
        return new

    @torch.no_grad()
    def copy_to(self, models: Sequence[nn.Module]) -> None:
        """Write model ``i``'s parameters back into ``models[i]``."""
        for i, m in enumerate(models):
            m.embedding.weight.copy_(self.embedding[i])
            m.out.weight.copy_(self.out_weight[i])
            m.out.bias.copy_(self.out_bias[i])
        self.recurrent.copy_to([m.recurrent for m in models])


# ---------------------------------------------------------------------- training
def clip_grad_norm_per_model_(parameters: Iterable[Tensor], max_norm: float) -> Tensor:
    """Clip each model's gradient norm separately; return the K norms before clipping.

    Every parameter has a leading model axis of size K. Model ``i``'s total norm is the 2-norm
    over all of its gradients, and its gradients are scaled by
    ``min(1, max_norm / (norm + 1e-6))``: ``torch.nn.utils.clip_grad_norm_`` on that model alone.
    """
    grads = [p.grad for p in parameters if p.grad is not None]
    if not grads:
        return torch.zeros(0)
    k = grads[0].shape[0]
    norms = torch.stack([torch.linalg.vector_norm(g.reshape(k, -1), 2, dim=1) for g in grads], 1)
    total = torch.linalg.vector_norm(norms, 2, dim=1)  # (K,)
    coef = (max_norm / (total + 1e-6)).clamp(max=1.0)
    for g in grads:
        g.mul_(coef.view(k, *([1] * (g.dim() - 1))))
    return total


def _per_model_loss(logits: Tensor, labels: Tensor) -> Tensor:
    """(K, B, C) logits -> (K,) mean cross-entropy of each model."""
    k, batch, n_classes = logits.shape
    flat = F.cross_entropy(logits.reshape(k * batch, n_classes), labels.repeat(k), reduction="none")
    return flat.view(k, batch).mean(1)


@torch.no_grad()
def evaluate_many(
    models: BatchedClassifier | Sequence[nn.Module], dataset: Any, batch_size: int = 32
) -> list[dict[str, float]]:
    """:func:`sparsernn.train.evaluate` for K models at once: one dict per model."""
    from sparsernn.train import EncodedData

    batched = (
        models if isinstance(models, BatchedClassifier) else BatchedClassifier.from_models(models)
    )
    device = batched.embedding.device
    data = dataset if isinstance(dataset, EncodedData) else EncodedData(dataset, device)
    was_training = batched.training
    batched.eval()
    k = batched.n_models
    loss_sum = torch.zeros(k, dtype=torch.float64, device=device)
    correct = torch.zeros(k, dtype=torch.long, device=device)
    for tokens, labels in data.batches(np.arange(len(data)), batch_size):
        logits = batched(tokens)  # (K, B, C)
        losses = F.cross_entropy(
            logits.reshape(-1, logits.shape[-1]), labels.repeat(k), reduction="none"
        )
        loss_sum += losses.view(k, -1).sum(1).double()
        correct += (logits.argmax(-1) == labels).sum(1)
    batched.train(was_training)
    n = len(data)
    return [
        {"accuracy": c / n, "loss": s / n}
        for c, s in zip(correct.tolist(), loss_sum.tolist(), strict=True)
    ]


def train_many(
    models: Sequence[nn.Module],
    train: Any,
    test: Any = None,
    config: Any = None,
    *,
    chunk_size: int | None = None,
    progress: bool | str = False,
    on_epoch: Callable[[int, dict[str, Any]], None] | None = None,
) -> list[list[dict[str, Any]]]:
    """Train K same-architecture models together; return each model's :func:`fit` history.

    Parameters
    ----------
    models : :class:`~sparsernn.models.SequenceClassifier` with one ``ModelConfig`` (e.g. the
        pruned copies of one base model, each with its own masks). Trained in place.
    train, test : data sets (or :class:`~sparsernn.train.EncodedData`); ``test`` may be None.
    config : a :class:`~sparsernn.train.TrainConfig`; all models share its batch order, which
        is the order ``fit`` would use for one model with the same config.
    chunk_size : train at most this many models at once (to bound memory); None = all.
    on_epoch : called as ``on_epoch(model_index, record)`` after every epoch of every model.

    Returns
    -------
    One list of epoch records per model, with ``fit``'s keys. ``epoch_time`` is the wall time
    of the shared batched epoch (the models trained together, not one after another).
    Equal to ``[fit(m, train, test, config) for m in models]`` up to float rounding.
    """
    from sparsernn.train import EncodedData, TrainConfig

    models = list(models)
    if not models:
        return []
    cfg = config or TrainConfig()
    size = chunk_size or len(models)
    if size < 1:
        raise ConfigError(f"chunk_size={chunk_size} must be >= 1")
    device = models[0].embedding.weight.device
    train_data = train if isinstance(train, EncodedData) else EncodedData(train, device)
    test_data = None
    if test is not None:
        test_data = test if isinstance(test, EncodedData) else EncodedData(test, device)
    histories: list[list[dict[str, Any]]] = []
    for start in range(0, len(models), size):
        chunk = models[start : start + size]

        def report(i: int, record: dict[str, Any], offset: int = start) -> None:
            if on_epoch is not None:
                on_epoch(offset + i, record)

        histories.extend(_train_chunk(chunk, train_data, test_data, cfg, progress, report))
    return histories


def _make_train_step(
    batched: BatchedClassifier, lr: float, clip: float | None
) -> Callable[[Tensor, Tensor], tuple[Tensor, Tensor]]:
    """One training step of the K models (a fresh Adam): returns (losses (K,), logits)."""
    params = [p for p in batched.parameters() if p.requires_grad]
    opt = torch.optim.Adam(params, lr=lr)
    batched.train()

    def step(tokens: Tensor, labels: Tensor) -> tuple[Tensor, Tensor]:
        logits = batched(tokens)  # (K, B, C)
        losses = _per_model_loss(logits, labels)  # (K,)
        opt.zero_grad(set_to_none=True)
        losses.sum().backward()
        if clip is not None:
            clip_grad_norm_per_model_(params, clip)
        opt.step()
        return losses.detach(), logits.detach()

    return step


def _train_chunk(models, train_data, test_data, cfg, progress, report):
    from sparsernn._seed import derive_seed
    from sparsernn.train import _epoch_order, _progress

    torch.set_flush_denormal(True)  # masked ReLU nets otherwise hit slow denormal arithmetic
    batched = BatchedClassifier.from_models(models)
    device = batched.embedding.device
    k = batched.n_models
    step = _make_train_step(batched, cfg.lr, cfg.clip)
    order_rng = np.random.default_rng(derive_seed(cfg.seed, "batch-order"))
    lengths = train_data.lengths.cpu().numpy()
    eval_bs = cfg.eval_batch_size or cfg.batch_size
    n = len(train_data)
    histories: list[list[dict[str, Any]]] = [[] for _ in range(k)]
    bar = _progress(progress, cfg.epochs * -(-n // cfg.batch_size))
    for epoch in range(1, cfg.epochs + 1):
        batched.train()
        t0 = time.perf_counter()
        loss_sum = torch.zeros(k, device=device)
        correct = torch.zeros(k, device=device, dtype=torch.long)
        order = _epoch_order(n, lengths, cfg, order_rng)
        for tokens, labels in train_data.batches(order, cfg.batch_size):
            losses, logits = step(tokens, labels)
            loss_sum += losses * len(labels)
            correct += (logits.argmax(-1) == labels).sum(1)
            if bar is not None:
                bar.update(1)
        elapsed = time.perf_counter() - t0
        results = evaluate_many(batched, test_data, eval_bs) if test_data is not None else None
        for i, (ls, c) in enumerate(zip(loss_sum.tolist(), correct.tolist(), strict=True)):
            record: dict[str, Any] = {
                "epoch": epoch,
                "train_loss": ls / n,
                "train_accuracy": c / n,
                "epoch_time": elapsed,
            }
            if results is not None:
                record["test_loss"] = results[i]["loss"]
                record["test_accuracy"] = results[i]["accuracy"]
            histories[i].append(record)
            report(i, record)
    if bar is not None:
        bar.close()
    batched.copy_to(models)
    return histories
