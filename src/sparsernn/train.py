"""The training engine: one step, one epoch loop, evaluation and checkpoints.

:class:`TrainStep` (forward, loss, backward, clipping, Adam, per-step hooks) and one epoch loop
serve :func:`fit` (one model), :func:`train_many` (K models trained as one
:class:`~sparsernn.models.BatchedClassifier`) and the benchmark's timed step, so "train_many
equals fit" holds by construction. Per-step hooks (:data:`StepHook`) are where mask updates,
sparsity schedules and logging plug in. Checkpoints (:mod:`sparsernn.checkpoints`, also
importable from here) are a config JSON plus a state dict, written atomically.

Data are a :class:`~sparsernn.tasks.TaskData` (:func:`sparsernn.tasks.task_data` makes the
study's strings or any task's; :func:`sparsernn.tasks.strings_task` converts a
:class:`~sparsernn.data.Dataset`). Strings are read at the last padded step of each batch, as
the study did; task data at each sequence's own last step (the same step for tasks of one
length). Classification scores cross-entropy and accuracy (per symbol for the copy task's K
outputs); regression scores mean squared error as the loss and, as ``accuracy``, the share of
answers within :data:`REGRESSION_TOLERANCE` of the target (the adding problem's criterion).
"""

from __future__ import annotations

import dataclasses
import functools
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from sparsernn._seed import derive_seed
from sparsernn._threads import resolve_threads, torch_threads
from sparsernn.batching import EncodedData, as_task_data, epoch_order
from sparsernn.checkpoints import checkpoint_bytes, load_checkpoint, save_checkpoint
from sparsernn.config import Config, key_field
from sparsernn.data import Dataset
from sparsernn.errors import ConfigError
from sparsernn.models import BatchedClassifier, SequenceClassifier
from sparsernn.nn import sparse_path
from sparsernn.nn.batched import clip_grad_norm_per_model_
from sparsernn.nn.masked import MaskedRNN
from sparsernn.tasks import TaskData, strings_task

__all__ = [
    "TrainConfig",
    "REGRESSION_TOLERANCE",
    "StepHook",
    "TrainStep",
    "reapply_masks_",
    "fit",
    "train_many",
    "evaluate",
    "evaluate_many",
    "evaluate_batch",
    "predict",
    "accuracy_by_kind",
    "resolve_device",
    "make_adam",
    "checkpoint_bytes",
    "save_checkpoint",
    "load_checkpoint",
]


@dataclasses.dataclass(frozen=True)
class TrainConfig(Config):
    """Optimisation settings (defaults: the study's base model, SPEC section 3).

    ``bucket=True`` groups strings of similar length into batches, which cuts padded steps but
    changes the model's input (the study reads the last PADDED step): a documented deviation.
    ``threads``: torch intra-op threads while training; None = auto (``OMP_NUM_THREADS`` when
    set, else 1, see :func:`fit`). A :func:`~sparsernn.config.key_field`: left out of
    :meth:`to_dict` when None, so run keys made before the field existed still match.
    """

    epochs: int = 50
    batch_size: int = 32
    lr: float = 1e-3
    clip: float | None = 5.0
    shuffle: bool = True
    bucket: bool = False
    eval_batch_size: int | None = None
    seed: int = 0
    device: str = "auto"
    threads: int | None = key_field(None)

    def __post_init__(self) -> None:
        if self.threads is not None:
            resolve_threads(self.threads)  # raises ConfigError unless an integer >= 1
        if self.epochs < 0:
            raise ConfigError(f"epochs={self.epochs} must be >= 0")
        if self.batch_size < 1:
            raise ConfigError(f"batch_size={self.batch_size} must be >= 1")
        if self.eval_batch_size is not None and self.eval_batch_size < 1:
            raise ConfigError(f"eval_batch_size={self.eval_batch_size} must be >= 1")
        if not self.lr > 0:
            raise ConfigError(f"lr={self.lr} must be > 0")
        if self.clip is not None and not self.clip > 0:
            raise ConfigError(f"clip={self.clip} must be > 0 (or None for no clipping)")
        if self.device not in ("auto", "cpu", "cuda") and not self.device.startswith("cuda:"):
            raise ConfigError(f"device={self.device!r}; choose auto, cpu or cuda[:N]")


def resolve_device(device: str = "auto") -> torch.device:
    """``auto`` -> CUDA when available, else CPU; asking for CUDA without one is an error."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError("device 'cuda' requested but no CUDA GPU is available; use --device cpu")
    return torch.device(device)


#: A regression answer counts as right (its ``accuracy``) when within this of the target:
#: Hochreiter & Schmidhuber's criterion for the adding problem.
REGRESSION_TOLERANCE = 0.04


def _model_axis(model: nn.Module) -> tuple[int, ...]:
    """Shape of one number per model: ``()`` for one model, ``(K,)`` for a BatchedClassifier."""
    return (model.n_models,) if isinstance(model, BatchedClassifier) else ()


def _stacked(out: Tensor, targets: Tensor) -> bool:
    """Whether ``out`` has a leading model axis (K models' answers to one batch)."""
    return out.dim() > targets.dim() + (0 if targets.is_floating_point() else 1)


def _losses(logits: Tensor, labels: Tensor, reduction: str) -> Tensor:
    """Loss of each model over the batch (``"mean"`` or ``"sum"`` over its answers).

    Cross-entropy for class targets ((B, C) logits for (B,) labels, (B, K, C) for (B, K));
    squared error for real targets. Outputs with a leading model axis (K models) give (K,),
    each model's own loss, so that the gradient of their sum is each model's own gradient;
    else a scalar.
    """
    stacked = _stacked(logits, labels)
    k = logits.shape[0] if stacked else 1
    targets = labels.expand(k, *labels.shape) if stacked else labels
    how = "none" if stacked else reduction
    if targets.is_floating_point():
        each = F.mse_loss(logits, targets, reduction=how)
    else:
        each = F.cross_entropy(logits.flatten(0, -2), targets.flatten(), reduction=how)
    if not stacked:
        return each
    per_model = each.reshape(k, -1)
    return per_model.mean(1) if reduction == "mean" else per_model.sum(1)


def _n_right(out: Tensor, targets: Tensor) -> Tensor:
    """Right answers of each model: the target class, or within REGRESSION_TOLERANCE of it."""
    if targets.is_floating_point():
        right = (out - targets).abs() < REGRESSION_TOLERANCE
    else:
        right = out.argmax(-1) == targets
    return right.flatten(1 if _stacked(out, targets) else 0).sum(-1)


def _forward(model: nn.Module, inputs: Tensor, lengths: Tensor | None) -> Tensor:
    """``model(inputs)``, or ``model(inputs, lengths)`` where it reads each sequence's own end."""
    return model(inputs) if lengths is None else model(inputs, lengths)


@torch.no_grad()
def evaluate_batch(
    model: nn.Module, tokens: Tensor, labels: Tensor, lengths: Tensor | None = None
) -> tuple[Tensor, Tensor]:
    """Summed loss and number of right answers on one batch, per model.

    Both are () for one model and (K,) for a :class:`~sparsernn.models.BatchedClassifier`.
    ``lengths``: read each sequence at its own last step (else the last padded step).
    """
    logits = _forward(model, tokens, lengths)  # (B, C) or (K, B, C)
    return _losses(logits, labels, "sum"), _n_right(logits, labels)


def _evaluate_all(model: nn.Module, data: EncodedData, batch_size: int) -> list[dict[str, float]]:
    """Accuracy and mean loss of each model in ``model`` (one, or K stacked), file order."""
    device = next(model.parameters()).device
    axis = _model_axis(model)
    was_training = model.training
    model.eval()
    loss_sum = torch.zeros(axis, dtype=torch.float64, device=device)
    correct = torch.zeros(axis, dtype=torch.long, device=device)
    for inputs, targets, lengths in data.batches_with_lengths(np.arange(len(data)), batch_size):
        loss, right = evaluate_batch(model, inputs, targets, lengths)
        loss_sum += loss.double()
        correct += right
    model.train(was_training)
    n = data.n_scored
    return [
        {"accuracy": c / n, "loss": s / n}
        for c, s in zip(correct.reshape(-1).tolist(), loss_sum.reshape(-1).tolist(), strict=True)
    ]


def evaluate(
    model: nn.Module,
    dataset: TaskData,
    batch_size: int = 32,
    *,
    threads: int | None = None,
) -> dict[str, float]:
    """Accuracy and mean loss over ``dataset`` in file order (per answer: see the module).

    Batches are taken in order, each zero-padded to its own longest string (as the study did),
    so the result depends on ``batch_size``. ``threads``: torch intra-op threads for this call
    (None: ``OMP_NUM_THREADS`` when set, else 1; see :func:`fit`).
    """
    task = as_task_data(dataset, "evaluate")
    with torch_threads(threads), torch.no_grad():
        data = EncodedData(task, next(model.parameters()).device)
        return _evaluate_all(model, data, batch_size)[0]


@torch.no_grad()
def evaluate_many(
    models: BatchedClassifier | Sequence[SequenceClassifier],
    dataset: TaskData,
    batch_size: int = 32,
) -> list[dict[str, float]]:
    """:func:`evaluate` for K models of one architecture at once: one dict per model."""
    task = as_task_data(dataset, "evaluate_many")
    batched = (
        models if isinstance(models, BatchedClassifier) else BatchedClassifier.from_models(models)
    )
    device = next(batched.parameters()).device
    return _evaluate_all(batched, EncodedData(task, device), batch_size)


def predict(
    model: nn.Module,
    dataset: TaskData,
    batch_size: int = 32,
    *,
    threads: int | None = None,
) -> np.ndarray:
    """Predicted labels, shape (N,) ((N, K) for K outputs; real numbers for a regression),
    batched exactly as :func:`evaluate` batches (file order)."""
    task = as_task_data(dataset, "predict")
    with torch_threads(threads), torch.no_grad():
        data = EncodedData(task, next(model.parameters()).device)
        was_training = model.training
        model.eval()
        out = []
        for x, y, lengths in data.batches_with_lengths(np.arange(len(data)), batch_size):
            answer = _forward(model, x, lengths)
            out.append((answer if y.is_floating_point() else answer.argmax(-1)).cpu())
        model.train(was_training)
    return torch.cat(out).numpy() if out else np.zeros(0, dtype=np.int64)


def accuracy_by_kind(
    model: nn.Module,
    dataset: Dataset,
    batch_size: int = 32,
    *,
    grammar: str = "reber",
    threads: int | None = None,
) -> pd.DataFrame:
    """Accuracy per class, negative family and negative kind: which strings a model gets wrong.

    Kinds are the dataset's own, or inferred from the strings for a CSV
    (:func:`sparsernn.data.describe.infer_kinds`). Columns ``level`` (all / class / family /
    kind), ``kind``, ``n``, ``n_wrong``, ``accuracy``.
    """
    from sparsernn.data.describe import family_of, group_rows, infer_kinds

    kinds = infer_kinds(dataset, grammar)
    frame = pd.DataFrame(
        {
            "label": dataset.labels,
            "kind": kinds,
            "family": [family_of(k) for k in kinds],
            "right": predict(model, strings_task(dataset), batch_size, threads=threads)
            == dataset.labels,
        }
    )
    rows = [
        {
            "level": level,
            "kind": name,
            "n": len(g),
            "n_wrong": int((~g["right"]).sum()),
            "accuracy": float(g["right"].mean()) if len(g) else float("nan"),
        }
        for level, name, g in group_rows(frame)
    ]
    return pd.DataFrame(rows)


# ---------------------------------------------------------------------- the training engine
#: A per-step hook, ``hook(step_index, model)``: called after every optimizer step (and the
#: optional mask re-application) with the 0-based index of that step in the run and the model
#: being trained (for :func:`train_many`, the :class:`~sparsernn.models.BatchedClassifier`).
#: The place for mask updates, sparsity schedules and per-step logging: a hook may change
#: weights or masks in place (under ``torch.no_grad()``); the next step sees the change. A
#: hook that masks weights mid-training wants ``reapply_masks=True``: Adam's moments from the
#: earlier steps would otherwise move the newly masked weights again.
StepHook = Callable[[int, nn.Module], None]


@torch.no_grad()
def reapply_masks_(model: nn.Module) -> None:
    """Zero every masked weight entry of every masked module inside ``model``, in place."""
    for module in model.modules():
        apply = getattr(module, "apply_masks_", None)
        if callable(apply):
            apply()


class TrainStep:
    """The package's one training step: forward, cross-entropy, backward, gradient-norm
    clipping, optimizer step, optional mask re-application, then the per-step hooks.

    ``model`` maps (B, T) codes to (B, C) logits (or any task's inputs to its outputs, with
    each sequence's ``lengths`` where it reads their own last steps), or is a
    :class:`BatchedClassifier` of K models: then the loss is the sum of the K per-model mean
    losses (each model's gradient is its own) and each model's gradient norm is clipped on its own
    (:func:`~sparsernn.nn.batched.clip_grad_norm_per_model_`), so the K models train exactly
    as K separate steps would. A fresh fused Adam is made unless ``optimizer`` is given.
    ``reapply_masks``: zero masked entries after every step (needed only when the optimizer
    can move weights whose gradient is zero, e.g. one with momentum from before the masking).
    Calling the step returns the detached loss (a scalar, or (K,)) and logits.
    """

    def __init__(
        self,
        model: nn.Module,
        optimizer: torch.optim.Optimizer | None = None,
        *,
        lr: float = 1e-3,
        clip: float | None = 5.0,
        reapply_masks: bool = False,
        on_step: StepHook | Sequence[StepHook] | None = None,
    ) -> None:
        self.model = model
        self.params = [p for p in model.parameters() if p.requires_grad]
        self.optimizer = optimizer or make_adam(self.params, lr)
        self.clip = clip
        self.reapply_masks = reapply_masks
        self.hooks = [on_step] if callable(on_step) else list(on_step or ())
        self.n_steps = 0
        self._clip_norm = (
            clip_grad_norm_per_model_
            if isinstance(model, BatchedClassifier)
            else nn.utils.clip_grad_norm_
        )
        model.train()

    def __call__(
        self, tokens: Tensor, labels: Tensor, lengths: Tensor | None = None
    ) -> tuple[Tensor, Tensor]:
        logits = _forward(self.model, tokens, lengths)  # (B, C) or (K, B, C)
        loss = _losses(logits, labels, "mean")  # () or (K,)
        self.optimizer.zero_grad(set_to_none=True)
        loss.sum().backward()
        if self.clip is not None:
            self._clip_norm(self.params, self.clip)
        self.optimizer.step()
        if self.reapply_masks:
            reapply_masks_(self.model)
        for hook in self.hooks:
            hook(self.n_steps, self.model)
        self.n_steps += 1
        return loss.detach(), logits.detach()


def _train_epochs(
    step: TrainStep,
    train_data: EncodedData,
    test_data: EncodedData | None,
    cfg: TrainConfig,
    progress: bool | str,
) -> Iterator[list[dict[str, Any]]]:
    """The package's one epoch loop: after each epoch, yield one record per model trained.

    Every model sees the batches ``fit`` draws for ``cfg`` (seeded order, shuffle, bucketing);
    records hold ``fit``'s keys (see there).
    """
    model = step.model
    device = next(model.parameters()).device
    axis = _model_axis(model)
    order_rng = np.random.default_rng(derive_seed(cfg.seed, "batch-order"))
    lengths = train_data.lengths.cpu().numpy()
    n, n_scored = len(train_data), train_data.n_scored
    bar = _progress(progress, cfg.epochs * -(-n // cfg.batch_size))
    for epoch in range(1, cfg.epochs + 1):
        model.train()
        t0 = time.perf_counter()
        loss_sum = torch.zeros(axis, device=device)
        correct = torch.zeros(axis, device=device, dtype=torch.long)
        for inputs, targets, own in train_data.batches_with_lengths(
            epoch_order(
                n,
                lengths,
                order_rng,
                shuffle=cfg.shuffle,
                bucket=cfg.bucket,
                batch_size=cfg.batch_size,
            ),
            cfg.batch_size,
        ):
            loss, logits = step(inputs, targets, own)
            loss_sum += loss * len(targets)
            correct += _n_right(logits, targets)
            if bar is not None:
                bar.update(1)
        train = {"loss": loss_sum, "correct": correct, "n": n, "n_scored": n_scored}
        records = _epoch_records(epoch, time.perf_counter() - t0, train, model, test_data, cfg)
        if bar is not None and len(records) == 1:
            shown = ("train_loss", "test_accuracy")
            bar.set_postfix({k: f"{v:.3f}" for k, v in records[0].items() if k in shown})
        yield records
    if bar is not None:
        bar.close()


def _epoch_records(
    epoch: int,
    elapsed: float,
    train: dict[str, Any],
    model: nn.Module,
    test_data: EncodedData | None,
    cfg: TrainConfig,
) -> list[dict[str, Any]]:
    """One record per model for an epoch: its training sums (``train``: summed ``loss`` and
    ``correct`` per model over ``n`` examples, ``n_scored`` answers) and, with ``test_data``,
    its test scores."""
    losses, rights = train["loss"].reshape(-1).tolist(), train["correct"].reshape(-1).tolist()
    sums = zip(losses, rights, strict=True)
    records = [
        {
            "epoch": epoch,
            "train_loss": s / train["n"],
            "train_accuracy": c / train["n_scored"],
            "epoch_time": elapsed,
        }
        for s, c in sums
    ]
    if test_data is not None:
        with torch.no_grad():
            tests = _evaluate_all(model, test_data, cfg.eval_batch_size or cfg.batch_size)
        for record, res in zip(records, tests, strict=True):
            record["test_loss"], record["test_accuracy"] = res["loss"], res["accuracy"]
    return records


def fit(
    model: nn.Module,
    train: TaskData,
    test: TaskData | None = None,
    config: TrainConfig | None = None,
    *,
    optimizer: torch.optim.Optimizer | None = None,
    progress: bool | str = False,
    on_epoch: Callable[[dict[str, Any]], None] | None = None,
    on_step: StepHook | Sequence[StepHook] | None = None,
    reapply_masks: bool = False,
) -> list[dict[str, Any]]:
    """Train ``model`` in place; return one record per epoch.

    Each record holds ``epoch`` (1-based), ``train_loss``, ``train_accuracy`` (running, over the
    epoch's batches), ``test_loss``, ``test_accuracy`` (when ``test`` is given) and
    ``epoch_time`` (seconds of training, evaluation excluded). A fresh Adam is made unless
    ``optimizer`` is given. Masked weights stay zero: their gradient is zero, so Adam leaves them.
    ``on_step`` hooks run after every optimizer step (:data:`StepHook`); ``reapply_masks``
    zeroes masked entries after every step (see :class:`TrainStep`).

    Threads: these models are too small for torch's intra-op threads to help, and beside other
    busy processes the default count (one per core) made an epoch up to 60x slower. So ``fit``
    runs with 1 thread unless you choose: ``config.threads=N``, or ``OMP_NUM_THREADS`` in the
    environment. The count, and flush-to-zero for denormals, hold for this call only: both are
    restored when ``fit`` returns (:func:`sparsernn._threads.torch_threads`).
    """
    cfg = config or TrainConfig()
    train = as_task_data(train, "fit")
    test = None if test is None else as_task_data(test, "fit")
    with torch_threads(cfg.threads):
        device = next(model.parameters()).device
        train_data = EncodedData(train, device)
        test_data = None if test is None else EncodedData(test, device)
        step = TrainStep(
            model,
            optimizer,
            lr=cfg.lr,
            clip=cfg.clip,
            reapply_masks=reapply_masks,
            on_step=on_step,
        )
        history: list[dict[str, Any]] = []
        for (record,) in _train_epochs(step, train_data, test_data, cfg, progress):
            history.append(record)
            if on_epoch is not None:
                on_epoch(record)
        return history


def train_many(
    models: Sequence[SequenceClassifier],
    train: TaskData,
    test: TaskData | None = None,
    config: TrainConfig | None = None,
    *,
    chunk_size: int | None = None,
    progress: bool | str = False,
    on_epoch: Callable[[int, dict[str, Any]], None] | None = None,
    on_step: StepHook | Sequence[StepHook] | None = None,
    reapply_masks: bool = False,
) -> list[list[dict[str, Any]]]:
    """Train K same-architecture models together; return each model's :func:`fit` history.

    ``models``: :class:`~sparsernn.models.SequenceClassifier` with one ``ModelConfig`` (e.g.
    the pruned copies of one base model, each with its own masks), trained in place as one
    :class:`~sparsernn.models.BatchedClassifier` by the same step and epoch loop as ``fit``:
    all share the batch order ``fit`` would use for one model with ``config``, so the result
    equals ``[fit(m, train, test, config) for m in models]`` up to float rounding.
    ``chunk_size``: train at most this many at once (to bound memory); None = all.
    ``on_epoch(model_index, record)`` after every epoch of every model; ``on_step`` hooks get
    the BatchedClassifier of the chunk (step indices count from 0 in each chunk);
    ``reapply_masks`` as in :func:`fit`.
    ``epoch_time`` is the wall time of the shared batched epoch. Runs under ``fit``'s thread
    policy (``config.threads``; None: ``OMP_NUM_THREADS`` or 1), restored on return.

    Without ``on_step`` hooks, a model whose masks keep few enough weights that the sparse
    path trains it faster alone than as one of the batch (the measured crossover,
    :func:`sparsernn.nn.sparse_path.trains_alone`) is trained alone by :func:`fit` instead, with
    its own ``epoch_time``: the same batches and the same result to float rounding.
    """
    models = list(models)
    train = as_task_data(train, "train_many")
    test = None if test is None else as_task_data(test, "train_many")
    if not models:
        return []
    cfg = config or TrainConfig()
    size = chunk_size or len(models)
    if size < 1:
        raise ConfigError(f"chunk_size={chunk_size} must be >= 1")
    alone = [] if on_step else [i for i, m in enumerate(models) if _trains_alone(m, cfg)]
    histories: dict[int, list[dict[str, Any]]] = {}
    for i in alone:
        report = None if on_epoch is None else functools.partial(on_epoch, i)
        histories[i] = fit(models[i], train, test, cfg, progress=progress, on_epoch=report,
                           reapply_masks=reapply_masks)  # fmt: skip
    together = [i for i in range(len(models)) if i not in alone]
    with torch_threads(cfg.threads):
        device = next(models[0].parameters()).device
        data = (EncodedData(train, device), None if test is None else EncodedData(test, device))
        for start in range(0, len(together), size):
            index = together[start : start + size]
            step = TrainStep(BatchedClassifier.from_models([models[i] for i in index]),
                             lr=cfg.lr, clip=cfg.clip, reapply_masks=reapply_masks,
                             on_step=on_step)  # fmt: skip
            histories.update(_train_chunk(step, models, index, data, cfg, progress, on_epoch))
    return [histories[i] for i in range(len(models))]


def _train_chunk(step, models, index, data, cfg, progress, on_epoch):
    """Train ``models[index]`` as one BatchedClassifier (``step.model``); their histories."""
    mine: dict[int, list[dict[str, Any]]] = {i: [] for i in index}
    for records in _train_epochs(step, *data, cfg, progress):
        for i, record in zip(index, records, strict=True):
            mine[i].append(record)
            if on_epoch is not None:
                on_epoch(i, record)
    step.model.copy_to([models[i] for i in index])
    return mine


def _trains_alone(model: nn.Module, cfg: TrainConfig) -> bool:
    """Whether :func:`train_many` trains ``model`` alone by the sparse path (see there)."""
    rnn = getattr(model, "recurrent", None)
    return isinstance(rnn, MaskedRNN) and sparse_path.trains_alone(rnn, cfg.batch_size)


def make_adam(params: Sequence[Tensor], lr: float) -> torch.optim.Optimizer:
    """Adam with the fused (single-kernel) update where this torch and device offer it.

    The fused update equals the default one up to float rounding and is ~5x faster per step on
    a CPU, where a masked model's many exact zeros make the elementwise ``sqrt`` path slow.
    """
    try:
        return torch.optim.Adam(params, lr=lr, fused=True)
    except (RuntimeError, TypeError, ValueError):  # older torch or an unsupported device
        return torch.optim.Adam(params, lr=lr)


def _progress(progress: bool | str, total: int):
    if not progress:
        return None
    from tqdm.auto import tqdm

    desc = progress if isinstance(progress, str) else "train"
    return tqdm(total=total, desc=desc, unit="batch", dynamic_ncols=True, leave=False)
