"""Recurrent modules: masked fused RNN/GRU/LSTM stacks and graph-structured networks."""

from sparsernn.nn.cells import GATES, MODES, cell_step
from sparsernn.nn.masked import MaskedRNN

__all__ = ["MaskedRNN", "MODES", "GATES", "cell_step"]
