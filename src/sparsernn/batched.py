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
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from sparsernn._seed import derive_seed
from sparsernn._threads import torch_threads
from sparsernn.errors import ConfigError
from sparsernn.nn.batched import BatchedMaskedRNN, _input_gates, clip_grad_norm_per_model_
from sparsernn.nn.masked import MaskedRNN
from sparsernn.train import EncodedData, TrainConfig, _epoch_order, _progress, make_adam

__all__ = ["BatchedClassifier", "train_many", "evaluate_many"]


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
    Runs under ``fit``'s thread policy (``config.threads``; None: ``OMP_NUM_THREADS`` or 1),
    restored on return.
    """
    models = list(models)
    if not models:
        return []
    cfg = config or TrainConfig()
    with torch_threads(cfg.threads):
        return _train_many(models, train, test, cfg, chunk_size, progress, on_epoch)


def _train_many(models, train, test, cfg, chunk_size, progress, on_epoch):
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
    opt = make_adam(params, lr)
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
