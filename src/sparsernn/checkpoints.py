"""Checkpoints: a model's config JSON beside its state dict (and metrics), written atomically.

No module is pickled, so a checkpoint loads anywhere with ``weights_only=True`` (the nanoGPT
habit); :func:`load_checkpoint` explains in one line what a file that is not one looks like.
Also importable from :mod:`sparsernn.train`.
"""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import torch

from sparsernn._files import atomic_write_bytes
from sparsernn.errors import DataError
from sparsernn.models import ModelConfig, SequenceClassifier

__all__ = ["checkpoint_bytes", "save_checkpoint", "load_checkpoint"]


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
