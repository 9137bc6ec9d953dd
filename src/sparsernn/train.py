"""Training and evaluation loops for :class:`~sparsernn.models.SequenceClassifier`.

A short readable loop (Adam, gradient-norm clipping, shuffled batches, per-epoch evaluation) and
checkpoints that are a config JSON plus a state dict, written atomically.
"""

from __future__ import annotations

import dataclasses
import io
import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from sparsernn._files import atomic_write_bytes
from sparsernn._seed import derive_seed
from sparsernn._threads import resolve_threads, torch_threads
from sparsernn.config import Config
from sparsernn.data import Dataset, encode
from sparsernn.errors import ConfigError, DataError
from sparsernn.models import ModelConfig, SequenceClassifier

__all__ = [
    "TrainConfig",
    "EncodedData",
    "fit",
    "evaluate",
    "predict",
    "accuracy_by_kind",
    "resolve_device",
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
    set, else 1, see :func:`fit`). Left out of :meth:`to_dict` when None, so run keys made
    before the field existed still match.
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
    threads: int | None = None

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

    def to_dict(self) -> dict[str, Any]:
        data = super().to_dict()
        if data.get("threads") is None:
            data.pop("threads", None)
        return data


def resolve_device(device: str = "auto") -> torch.device:
    """``auto`` -> CUDA when available, else CPU; asking for CUDA without one is an error."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError("device 'cuda' requested but no CUDA GPU is available; use --device cpu")
    return torch.device(device)


class EncodedData:
    """A data set encoded once: padded codes (N, T_max), lengths and labels as tensors."""

    def __init__(self, dataset: Dataset, device: torch.device | str = "cpu") -> None:
        if len(dataset) == 0:
            raise DataError("empty data set: nothing to train or evaluate on")
        self.tokens = torch.from_numpy(encode(dataset.strings)).to(device)
        self.lengths = torch.tensor([len(s) for s in dataset.strings], device=device)
        self.labels = torch.as_tensor(np.asarray(dataset.labels, dtype=np.int64), device=device)

    def __len__(self) -> int:
        return len(self.labels)

    def batches(self, order: np.ndarray, batch_size: int) -> Iterator[tuple[Tensor, Tensor]]:
        """Yield ``(tokens (B, T_b), labels (B,))``, each batch padded to its own longest string."""
        lengths = self.lengths.cpu().numpy() if self.lengths.is_cuda else self.lengths.numpy()
        for start in range(0, len(order), batch_size):
            idx = order[start : start + batch_size]
            t = int(lengths[idx].max())
            sel = torch.as_tensor(idx, device=self.tokens.device)
            yield self.tokens[sel, :t], self.labels[sel]


def _epoch_order(n: int, lengths: np.ndarray, cfg: TrainConfig, rng: np.random.Generator):
    order = rng.permutation(n) if cfg.shuffle else np.arange(n)
    if not cfg.bucket:
        return order
    chunk = cfg.batch_size * 50
    parts = []
    for s in range(0, n, chunk):
        part = order[s : s + chunk]
        parts.append(part[np.argsort(lengths[part], kind="stable")])
    order = np.concatenate(parts)
    batches = [order[s : s + cfg.batch_size] for s in range(0, n, cfg.batch_size)]
    return np.concatenate([batches[i] for i in rng.permutation(len(batches))])


def evaluate(
    model: nn.Module,
    dataset: Dataset | EncodedData,
    batch_size: int = 32,
    *,
    threads: int | None = None,
) -> dict[str, float]:
    """Accuracy and mean cross-entropy over ``dataset`` in file order.

    Batches are taken in order, each zero-padded to its own longest string (as the study did),
    so the result depends on ``batch_size``. ``threads``: torch intra-op threads for this call
    (None: ``OMP_NUM_THREADS`` when set, else 1; see :func:`fit`).
    """
    with torch_threads(threads), torch.no_grad():
        return _evaluate(model, dataset, batch_size)


def predict(
    model: nn.Module,
    dataset: Dataset | EncodedData,
    batch_size: int = 32,
    *,
    threads: int | None = None,
) -> np.ndarray:
    """Predicted labels, shape (N,), batched exactly as :func:`evaluate` batches (file order)."""
    with torch_threads(threads), torch.no_grad():
        device = next(model.parameters()).device
        data = dataset if isinstance(dataset, EncodedData) else EncodedData(dataset, device)
        was_training = model.training
        model.eval()
        out = [model(t).argmax(1).cpu() for t, _ in data.batches(np.arange(len(data)), batch_size)]
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
            "right": predict(model, dataset, batch_size, threads=threads) == dataset.labels,
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


def _evaluate(
    model: nn.Module, dataset: Dataset | EncodedData, batch_size: int
) -> dict[str, float]:
    device = next(model.parameters()).device
    data = dataset if isinstance(dataset, EncodedData) else EncodedData(dataset, device)
    was_training = model.training
    model.eval()
    loss_sum, correct = 0.0, 0
    for tokens, labels in data.batches(np.arange(len(data)), batch_size):
        logits = model(tokens)
        loss_sum += F.cross_entropy(logits, labels, reduction="sum").item()
        correct += (logits.argmax(1) == labels).sum().item()
    model.train(was_training)
    return {"accuracy": correct / len(data), "loss": loss_sum / len(data)}


def fit(
    model: nn.Module,
    train: Dataset | EncodedData,
    test: Dataset | EncodedData | None = None,
    config: TrainConfig | None = None,
    *,
    optimizer: torch.optim.Optimizer | None = None,
    progress: bool | str = False,
    on_epoch: Callable[[dict[str, Any]], None] | None = None,
) -> list[dict[str, Any]]:
    """Train ``model`` in place; return one record per epoch.

    Each record holds ``epoch`` (1-based), ``train_loss``, ``train_accuracy`` (running, over the
    epoch's batches), ``test_loss``, ``test_accuracy`` (when ``test`` is given) and
    ``epoch_time`` (seconds of training, evaluation excluded). A fresh Adam is made unless
    ``optimizer`` is given. Masked weights stay zero: their gradient is zero, so Adam leaves them.

    Threads: these models are too small for torch's intra-op threads to help, and beside other
    busy processes the default count (one per core) made an epoch up to 60x slower. So ``fit``
    runs with 1 thread unless you choose: ``config.threads=N``, or ``OMP_NUM_THREADS`` in the
    environment. The count, and flush-to-zero for denormals, hold for this call only: both are
    restored when ``fit`` returns (:func:`sparsernn._threads.torch_threads`).
    """
    cfg = config or TrainConfig()
    with torch_threads(cfg.threads):
        return _fit(model, train, test, cfg, optimizer, progress, on_epoch)


def _fit(model, train, test, cfg, optimizer, progress, on_epoch) -> list[dict[str, Any]]:
    device = next(model.parameters()).device
    train_data = train if isinstance(train, EncodedData) else EncodedData(train, device)
    test_data = None
    if test is not None:
        test_data = test if isinstance(test, EncodedData) else EncodedData(test, device)
    params = [p for p in model.parameters() if p.requires_grad]
    opt = optimizer or make_adam(params, cfg.lr)
    order_rng = np.random.default_rng(derive_seed(cfg.seed, "batch-order"))
    lengths = train_data.lengths.cpu().numpy()
    eval_bs = cfg.eval_batch_size or cfg.batch_size
    history: list[dict[str, Any]] = []
    bar = _progress(progress, cfg.epochs * -(-len(train_data) // cfg.batch_size))
    for epoch in range(1, cfg.epochs + 1):
        model.train()
        t0 = time.perf_counter()
        loss_sum = torch.zeros((), device=device)
        correct = torch.zeros((), device=device, dtype=torch.long)
        order = _epoch_order(len(train_data), lengths, cfg, order_rng)
        for tokens, labels in train_data.batches(order, cfg.batch_size):
            logits = model(tokens)
            loss = F.cross_entropy(logits, labels)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            if cfg.clip is not None:
                nn.utils.clip_grad_norm_(params, cfg.clip)
            opt.step()
            loss_sum += loss.detach() * len(labels)
            correct += (logits.detach().argmax(1) == labels).sum()
            if bar is not None:
                bar.update(1)
        record: dict[str, Any] = {
            "epoch": epoch,
            "train_loss": loss_sum.item() / len(train_data),
            "train_accuracy": correct.item() / len(train_data),
            "epoch_time": time.perf_counter() - t0,
        }
        if test_data is not None:
            with torch.no_grad():
                res = _evaluate(model, test_data, eval_bs)
            record["test_loss"], record["test_accuracy"] = res["loss"], res["accuracy"]
        history.append(record)
        if bar is not None:
            bar.set_postfix(
                {k: f"{v:.3f}" for k, v in record.items() if k in ("train_loss", "test_accuracy")}
            )
        if on_epoch is not None:
            on_epoch(record)
    if bar is not None:
        bar.close()
    return history


def make_adam(params: list[Tensor], lr: float) -> torch.optim.Optimizer:
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


def checkpoint_bytes(model: SequenceClassifier, metrics: dict[str, Any] | None = None) -> bytes:
    """A checkpoint in memory: ``{format, config JSON, state_dict, metrics JSON}`` (no pickle of
    modules, so it loads anywhere with ``weights_only=True``)."""
    buf = io.BytesIO()
    torch.save(
        {
            "format": "sparsernn-checkpoint-1",
            "model_config": model.config.to_json(),
            "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
            "metrics": json.dumps(metrics or {}),
        },
        buf,
    )
    return buf.getvalue()


def save_checkpoint(
    path: str | Path, model: SequenceClassifier, metrics: dict[str, Any] | None = None
) -> Path:
    """Write :func:`checkpoint_bytes` atomically (temp file, fsync, rename), mode as ``open``'s."""
    return atomic_write_bytes(path, checkpoint_bytes(model, metrics))


_SNIFF = 64
#: How ``torch.save`` files begin: a zip archive (torch >= 1.6), or a legacy pickle.
_TORCH_MAGIC = (b"PK\x03\x04", b"\x80")
_CKPT_FIX = "give a file written by save_checkpoint or `sparsernn train --out`"


def _describe(head: bytes) -> str:
    """What a file that is not a torch checkpoint looks like, from its first bytes."""
    if not head:
        return "the file is empty"
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError:
        return "a binary file that is not a torch checkpoint"
    first = text.splitlines()[0] if text.strip() else text
    looks = ", a data CSV?" if "," in first else ""
    return f"a text file starting {first[:40]!r}{looks}"


def load_checkpoint(
    source: str | Path | bytes, device: str | torch.device = "cpu"
) -> tuple[SequenceClassifier, dict[str, Any]]:
    """Load a checkpoint (a file, or :func:`checkpoint_bytes` output): ``(model, metrics)``."""
    where = "checkpoint bytes" if isinstance(source, bytes) else str(source)
    try:
        if isinstance(source, bytes):
            head = source[:_SNIFF]
        else:
            with open(source, "rb") as fh:
                head = fh.read(_SNIFF)
    except FileNotFoundError:
        raise DataError(f"{where}: no such checkpoint file") from None
    except IsADirectoryError:
        raise DataError(f"{where}: is a folder, not a sparsernn checkpoint file") from None
    if not head.startswith(_TORCH_MAGIC):
        raise DataError(f"{where}: not a sparsernn checkpoint ({_describe(head)}); {_CKPT_FIX}")
    try:
        stream = io.BytesIO(source) if isinstance(source, bytes) else source
        payload = torch.load(stream, map_location=device, weights_only=True)
    except Exception as exc:  # noqa: BLE001
        raise DataError(
            f"{where}: unreadable checkpoint ({exc.__class__.__name__}: a damaged or truncated "
            f"torch file?); {_CKPT_FIX}"
        ) from None
    if not isinstance(payload, dict) or payload.get("format") != "sparsernn-checkpoint-1":
        raise DataError(
            f"{where}: not a sparsernn checkpoint; for a study checkpoint use "
            "sparsernn.compat.load_study_checkpoint"
        )
    model = SequenceClassifier(ModelConfig.from_json(payload["model_config"]))
    model.load_state_dict(payload["state_dict"])
    return model.to(device), json.loads(payload["metrics"])
