"""How sparse a model is: one row per masked matrix, or per gate block of each."""

from __future__ import annotations

import re

import pandas as pd
from torch import nn

from sparsernn.nn.masked import MaskedRNN
from sparsernn.sparsity.scores import gate_blocks

__all__ = ["sparsity_report"]

_NAME = re.compile(r"weight_(ih|hh)_l(\d+)(_reverse)?")


def sparsity_report(model: nn.Module, per_gate: bool = False) -> pd.DataFrame:
    """Per maskable matrix of every :class:`MaskedRNN` in ``model``: its qualified name
    (``weight``), the ``module`` holding it, ``kind`` (i2h/h2h), ``layer``, ``direction``
    (forward/reverse), ``size``, ``kept`` entries and achieved ``sparsity``.

    ``per_gate=True`` gives one row per gate block of each matrix instead (column ``gate``:
    ``r``/``z``/``n`` for GRU, ``i``/``f``/``g``/``o`` for LSTM, ``h`` for an Elman RNN), so
    the rows still add up to the matrices.
    """
    rows = []
    for prefix, mod in model.named_modules():
        if not isinstance(mod, MaskedRNN):
            continue
        for name, mask in mod.masks():
            match = _NAME.fullmatch(name)
            assert match is not None  # MaskedRNN names its weights so
            blocks = gate_blocks(mod, name) if per_gate else [(None, slice(None))]
            for gate, part in blocks:
                kept, size = int(mask[part].sum()), mask[part].numel()
                row = {
                    "weight": f"{prefix}.{name}" if prefix else name,
                    "module": prefix,
                    "kind": "i2h" if match[1] == "ih" else "h2h",
                    "layer": int(match[2]),
                    "direction": "reverse" if match[3] else "forward",
                    "size": size,
                    "kept": kept,
                    "sparsity": 1.0 - kept / size,
                }
                rows.append(row if gate is None else {**row, "gate": gate})
    return pd.DataFrame(rows)
