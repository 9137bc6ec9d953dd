"""MaskedRNN mirrors torch.nn.RNN/GRU/LSTM and keeps masked weights at exactly zero."""

import pytest
import torch
from torch import nn

from sparsernn.errors import ConfigError
from sparsernn.nn import MODES, MaskedRNN
from sparsernn.nn.reference import reference_layer


def _torch_module(mode, *args, **kwargs):
    if mode == "gru":
        return nn.GRU(*args, **kwargs)
    if mode == "lstm":
        return nn.LSTM(*args, **kwargs)
    return nn.RNN(*args, nonlinearity=mode[4:], **kwargs)


def _flatten(state):
    return list(state) if isinstance(state, tuple) else [state]


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("num_layers", [1, 2, 3])
@pytest.mark.parametrize("batch_first", [False, True])
def test_all_ones_mask_equals_torch_both_load_directions(mode, num_layers, batch_first):
    torch.manual_seed(num_layers)
    ref = _torch_module(mode, 5, 7, num_layers, batch_first=batch_first)
    ours = MaskedRNN(mode, 5, 7, num_layers, batch_first=batch_first)
    ours.load_state_dict(ref.state_dict())  # torch -> ours (no masks in the dict: all ones)
    x = torch.randn((4, 6, 5) if batch_first else (6, 4, 5), requires_grad=True)
    out_r, h_r = ref(x)
    out_o, h_o = ours(x)
    assert out_o.shape == out_r.shape
    assert (out_o - out_r).abs().max() <= 1e-5
    for a, b in zip(_flatten(h_o), _flatten(h_r), strict=True):
        assert a.shape == b.shape and (a - b).abs().max() <= 1e-5
    (out_r.sum() + sum(t.sum() for t in _flatten(h_r))).backward()
    (out_o.sum() + sum(t.sum() for t in _flatten(h_o))).backward()
    for name, p in ref.named_parameters():
        assert (getattr(ours, name).grad - p.grad).abs().max() <= 1e-5, name
    # ours -> torch: a fresh torch module loads our state dict (without masks)
    back = _torch_module(mode, 5, 7, num_layers, batch_first=batch_first)
    state = {k: v for k, v in ours.state_dict().items() if not k.endswith("_mask")}
    back.load_state_dict(state)
    assert (back(x)[0] - out_o).abs().max() <= 1e-5


@pytest.mark.parametrize("mode", MODES)
def test_parameter_names_and_shapes_mirror_torch(mode):
    ref = _torch_module(mode, 3, 4, 2)
    ours = MaskedRNN(mode, 3, 4, 2)
    assert {n: p.shape for n, p in ours.named_parameters()} == {
        n: p.shape for n, p in ref.named_parameters()
    }
    buffers = dict(ours.named_buffers())
    for name, p in ref.named_parameters():
        if name.startswith("weight"):
            assert buffers[f"{name}_mask"].dtype == torch.bool
            assert buffers[f"{name}_mask"].shape == p.shape


@pytest.mark.parametrize("mode", MODES)
def test_masked_forward_equals_per_step_reference(mode):
    torch.manual_seed(1)
    rnn = MaskedRNN(mode, 4, 6, 1).double()
    mask = torch.rand_like(rnn.weight_ih_l0) > 0.5
    hmask = torch.rand_like(rnn.weight_hh_l0) > 0.5
    raw_ih = rnn.weight_ih_l0.detach().clone()
    raw_hh = rnn.weight_hh_l0.detach().clone()
    rnn.set_mask("weight_ih_l0", mask)
    rnn.set_mask("weight_hh_l0", hmask)
    x = torch.randn(5, 3, 4, dtype=torch.double)
    ref = reference_layer(
        mode, x, raw_ih, raw_hh * hmask, rnn.bias_ih_l0, rnn.bias_hh_l0, ih_mask=mask.double()
    )
    assert torch.allclose(rnn(x)[0], ref, atol=1e-12)


@pytest.mark.parametrize("mode", MODES)
def test_masked_weights_get_zero_grad_and_stay_zero_through_adam(mode):
    torch.manual_seed(0)
    rnn = MaskedRNN(mode, 4, 8, 2)
    masks = {}
    for name, _ in list(rnn.masks()):
        m = torch.rand_like(getattr(rnn, name)) > 0.7
        rnn.set_mask(name, m)
        masks[name] = m
    opt = torch.optim.Adam(rnn.parameters(), lr=0.05)
    for _ in range(20):
        opt.zero_grad()
        out, _ = rnn(torch.randn(7, 3, 4))
        out.pow(2).mean().backward()
        for name, m in masks.items():
            assert torch.count_nonzero(getattr(rnn, name).grad[~m]) == 0
        opt.step()
    for name, m in masks.items():
        w = getattr(rnn, name)
        assert torch.count_nonzero(w[~m]) == 0, name
        assert torch.count_nonzero(w[m]) == int(m.sum())  # kept weights still train


def test_masks_survive_state_dict_round_trip_and_removing_mask_keeps_outputs():
    rnn = MaskedRNN("lstm", 3, 5, 2)
    rnn.set_mask("weight_hh_l1", torch.rand(20, 5) > 0.5)
    clone = MaskedRNN("lstm", 3, 5, 2)
    clone.load_state_dict(rnn.state_dict())
    assert torch.equal(clone.weight_hh_l1_mask, rnn.weight_hh_l1_mask)
    x = torch.randn(4, 2, 3)
    # baking the masks into a plain torch.nn.LSTM gives the same outputs
    assert torch.allclose(rnn.to_torch()(x)[0], rnn(x)[0], atol=1e-6)


def test_per_layer_hidden_sizes_and_unbatched_input():
    rnn = MaskedRNN("gru", 3, [4, 6, 2])
    out, h_n = rnn(torch.randn(5, 2, 3))
    assert out.shape == (5, 2, 2)
    assert [h.shape for h in h_n] == [(2, 4), (2, 6), (2, 2)]
    out1, h1 = MaskedRNN("rnn_tanh", 3, 4, 2)(torch.randn(5, 3))
    assert out1.shape == (5, 4) and h1.shape == (2, 4)


def test_initial_state_is_used():
    rnn = MaskedRNN("lstm", 3, 4, 2)
    x = torch.randn(5, 2, 3)
    h0 = (torch.randn(2, 2, 4), torch.randn(2, 2, 4))
    ref = nn.LSTM(3, 4, 2)
    ref.load_state_dict({k: v for k, v in rnn.state_dict().items() if not k.endswith("_mask")})
    assert torch.allclose(rnn(x, h0)[0], ref(x, h0)[0], atol=1e-6)


def test_bad_arguments_raise_clear_errors():
    with pytest.raises(ConfigError, match="unknown cell mode"):
        MaskedRNN("transformer", 3, 4)
    with pytest.raises(ConfigError, match="dropout"):
        MaskedRNN("gru", 3, 4, dropout=1.5)
    rnn = MaskedRNN("gru", 3, 4)
    with pytest.raises(ConfigError, match="shape"):
        rnn.set_mask("weight_hh_l0", torch.ones(3, 3, dtype=torch.bool))
    with pytest.raises(ValueError, match="expected input"):
        rnn(torch.randn(5, 2, 9))
