"""Tiny models with hand-set weights for the sparsity tests."""

import torch

from sparsernn.nn import MaskedRNN


def with_weights(mode: str, n_in: int, n_hidden: int, **weights) -> MaskedRNN:
    """A one-or-more-layer MaskedRNN whose named weights are the given nested lists."""
    layers = 1 + max(int(name.rsplit("_l", 1)[1]) for name in weights)
    rnn = MaskedRNN(mode, n_in, n_hidden, layers)
    with torch.no_grad():
        for name, value in weights.items():
            getattr(rnn, name).copy_(torch.tensor(value, dtype=torch.float32))
    return rnn


def hand_gru() -> MaskedRNN:
    """GRU, input 2, hidden 1: three gate rows (r, z, n) per matrix, magnitudes 0.1 .. 0.9."""
    return with_weights(
        "gru",
        2,
        1,
        weight_ih_l0=[[0.1, -0.2], [0.3, -0.4], [0.5, -0.6]],
        weight_hh_l0=[[0.7], [-0.8], [0.9]],
    )


def as_lists(masks):
    return {name: mask.tolist() for name, mask in masks.items()}
