"""torch.nn's own recurrent modules by our cell names, for the tests that compare against them."""

from torch import nn


def torch_module(mode: str, *args, **kwargs) -> nn.RNNBase:
    """``nn.GRU``, ``nn.LSTM`` or ``nn.RNN`` (tanh/ReLU) for cell ``mode``, torch's arguments."""
    if mode == "gru":
        return nn.GRU(*args, **kwargs)
    if mode == "lstm":
        return nn.LSTM(*args, **kwargs)
    return nn.RNN(*args, nonlinearity=mode[4:], **kwargs)


def state_tensors(state) -> list:
    """The tensors of a final state: ``[h_n]`` or ``[h_n, c_n]``."""
    return list(state) if isinstance(state, tuple) else [state]
