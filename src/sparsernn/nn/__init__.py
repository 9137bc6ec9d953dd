"""Recurrent modules: masked fused RNN/GRU/LSTM stacks, their sparse twins, graph-structured nets.

The modules are imported on first use (PEP 562), so that reading the cell descriptions
(:mod:`sparsernn.nn.cells`, e.g. from the command line) does not import torch.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from sparsernn._lazy import lazy_getattr
from sparsernn.nn.cells import CELLS, GATES, MODES, CellSpec, cell_spec, cell_step

if TYPE_CHECKING:
    from sparsernn.nn.batched import BatchedMaskedRNN
    from sparsernn.nn.masked import MaskedRNN
    from sparsernn.nn.sparse import SparseRNN
    from sparsernn.nn.structured import StructuredRNN

__all__ = [
    "MaskedRNN",
    "SparseRNN",
    "StructuredRNN",
    "BatchedMaskedRNN",
    "CellSpec",
    "CELLS",
    "cell_spec",
    "MODES",
    "GATES",
    "cell_step",
]

__getattr__ = lazy_getattr(
    __name__,
    {
        "MaskedRNN": "sparsernn.nn.masked",
        "SparseRNN": "sparsernn.nn.sparse",
        "StructuredRNN": "sparsernn.nn.structured",
        "BatchedMaskedRNN": "sparsernn.nn.batched",
    },
)
