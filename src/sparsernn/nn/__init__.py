"""Recurrent modules: masked fused RNN/GRU/LSTM stacks and graph-structured networks."""

from sparsernn.nn.batched import BatchedMaskedRNN
from sparsernn.nn.cells import GATES, MODES, cell_step
from sparsernn.nn.masked import MaskedRNN
from sparsernn.nn.structured import StructuredRNN

__all__ = ["MaskedRNN", "StructuredRNN", "BatchedMaskedRNN", "MODES", "GATES", "cell_step"]
