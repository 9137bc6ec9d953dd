"""Import checkpoints written by the study's original code.

The study's state dicts name the recurrent weights
``recurrent.recurrent_layers.{k}.weight_ih|weight_hh|bias_ih|bias_hh`` and otherwise match
ours (``embedding.weight``, ``out.weight``, ``out.bias``). Since its gates follow PyTorch's order,
the weights map one to one onto :class:`~sparsernn.models.SequenceClassifier`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path

import torch

from sparsernn.errors import DataError
from sparsernn.models import ModelConfig, SequenceClassifier
from sparsernn.nn.cells import GATES

__all__ = ["load_study_checkpoint", "convert_study_state_dict"]

_STUDY_KEY = re.compile(
    r"recurrent\.recurrent_layers\.(\d+)\.(weight_ih|weight_hh|bias_ih|bias_hh)$"
)


def convert_study_state_dict(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Rename a study state dict's keys to ours (``recurrent.weight_ih_l{k}`` ...)."""
    out: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        m = _STUDY_KEY.match(key)
        out[f"recurrent.{m.group(2)}_l{m.group(1)}" if m else key] = value
    return out


def load_study_checkpoint(
    path_or_state_dict: str | Path | Mapping[str, torch.Tensor], cell: str
) -> SequenceClassifier:
    """Load a study checkpoint (file or state dict) as a :class:`SequenceClassifier`.

    Sizes (vocabulary, embedding, hidden, layer count) are read from the tensors' shapes.
    """
    source = path_or_state_dict
    if isinstance(source, (str, Path)):
        try:
            source = torch.load(source, map_location="cpu", weights_only=True)
        except FileNotFoundError:
            raise DataError(f"{path_or_state_dict}: no such checkpoint file") from None
        except Exception as exc:  # noqa: BLE001 - any unpickling failure is a bad file
            raise DataError(
                f"{path_or_state_dict}: not a readable PyTorch state dict "
                f"({exc.__class__.__name__})"
            ) from None
        if isinstance(source, dict) and "state_dict" in source:
            source = source["state_dict"]
    state = convert_study_state_dict(source)
    where = path_or_state_dict if isinstance(path_or_state_dict, (str, Path)) else "state dict"
    try:
        vocab, emb = state["embedding.weight"].shape
        n_layers = 1 + max(
            int(k.split("_l")[-1]) for k in state if k.startswith("recurrent.weight_hh")
        )
        hidden = state["recurrent.weight_hh_l0"].shape[1]
        n_classes = state["out.weight"].shape[0]
    except (KeyError, ValueError):
        raise DataError(
            f"{where}: missing study keys (need embedding.weight, "
            "recurrent.recurrent_layers.{k}.weight_ih/..., out.weight, out.bias)"
        ) from None
    if cell not in GATES:
        raise DataError(f"unknown cell {cell!r}; choose one of {', '.join(GATES)}")
    if state["recurrent.weight_hh_l0"].shape[0] != GATES[cell] * hidden:
        raise DataError(
            f"{where}: weight_hh has {state['recurrent.weight_hh_l0'].shape[0]} rows, "
            f"which does not fit cell {cell!r} (expected {GATES[cell] * hidden}); check --cell"
        )
    config = ModelConfig(
        cell=cell,
        vocab_size=vocab,
        embedding_dim=emb,
        hidden_size=hidden,
        num_layers=n_layers,
        n_classes=n_classes,
    )
    model = SequenceClassifier(config)
    missing, unexpected = model.load_state_dict(state, strict=False)
    missing = [k for k in missing if not k.endswith("_mask")]
    if missing or unexpected:
        raise DataError(f"{where}: state dict does not fit (missing {missing}, extra {unexpected})")
    return model
