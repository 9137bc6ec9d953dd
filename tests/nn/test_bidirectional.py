"""``MaskedRNN(bidirectional=True)`` against ``torch.nn.RNN/GRU/LSTM`` with copied weights.

Float64 throughout, so that the comparisons are tight (1e-10): outputs, final states, and the
gradients of every parameter, of the input and of the initial state; multi-layer,
``batch_first``, ``PackedSequence`` (sorted or not), given ``h0``/``c0``, dropout in training.
"""

import pytest
import torch
from torch import nn
from torch.nn.utils.rnn import PackedSequence, pack_padded_sequence

from sparsernn.nn import MODES, MaskedRNN
from tests.nn.torch_modules import state_tensors, torch_module

TOL = 1e-10


def _initial_state(mode, n, batch, hidden):
    h = torch.randn(n, batch, hidden, dtype=torch.float64, requires_grad=True)
    if mode != "lstm":
        return h
    return h, torch.randn(n, batch, hidden, dtype=torch.float64, requires_grad=True)


def _pair(mode, num_layers, batch_first=False, seed=0, **kwargs):
    """A torch module and a MaskedRNN holding copies of its weights (float64)."""
    torch.manual_seed(seed)
    ref = torch_module(
        mode, 3, 4, num_layers, batch_first=batch_first, bidirectional=True, **kwargs
    ).double()
    ours = MaskedRNN(mode, 3, 4, num_layers, batch_first=batch_first, bidirectional=True,
                     dtype=torch.float64, **kwargs)  # fmt: skip
    ours.load_state_dict(ref.state_dict())
    return ref, ours


def _assert_same_run(ref, ours, x, hx, inputs):
    """Equal outputs and final states, and equal gradients of everything that takes one."""
    out_r, h_r = ref(x, hx)
    out_o, h_o = ours(x, hx)
    data_r = out_r.data if isinstance(out_r, PackedSequence) else out_r
    data_o = out_o.data if isinstance(out_o, PackedSequence) else out_o
    assert data_o.shape == data_r.shape
    assert (data_o - data_r).abs().max() <= TOL
    for a, b in zip(state_tensors(h_o), state_tensors(h_r), strict=True):
        assert a.shape == b.shape and (a - b).abs().max() <= TOL
    # a loss that weights every output entry differently, so no gradient hides in a sum
    weights = torch.rand_like(data_r)
    loss_r = (data_r * weights).sum() + sum((t * t).sum() for t in state_tensors(h_r))
    loss_o = (data_o * weights).sum() + sum((t * t).sum() for t in state_tensors(h_o))
    params_r = [p for _, p in sorted(ref.named_parameters())]
    params_o = [p for _, p in sorted(ours.named_parameters())]
    grads_r = torch.autograd.grad(loss_r, [*params_r, *inputs], retain_graph=True)
    grads_o = torch.autograd.grad(loss_o, [*params_o, *inputs], retain_graph=True)
    for (name, _), g_o, g_r in zip(sorted(ref.named_parameters()), grads_o, grads_r,
                                   strict=False):  # fmt: skip
        mask = getattr(ours, f"{name}_mask", None)  # a masked entry's gradient is zero
        expected = g_r if mask is None else g_r * mask
        assert (g_o - expected).abs().max() <= TOL, name
    for g_o, g_r in zip(grads_o[len(params_o) :], grads_r[len(params_r) :], strict=True):
        assert (g_o - g_r).abs().max() <= TOL


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("num_layers", [1, 2, 3])
@pytest.mark.parametrize("batch_first", [False, True])
def test_bidirectional_equals_torch_forward_and_backward(mode, num_layers, batch_first):
    ref, ours = _pair(mode, num_layers, batch_first, seed=num_layers)
    shape = (5, 7, 3) if batch_first else (7, 5, 3)
    x = torch.randn(shape, dtype=torch.float64, requires_grad=True)
    _assert_same_run(ref, ours, x, None, [x])
    hx = _initial_state(mode, 2 * num_layers, 5, 4)
    _assert_same_run(ref, ours, x, hx, [x, *state_tensors(hx)])


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("batch_first", [False, True])
@pytest.mark.parametrize("enforce_sorted", [True, False])
def test_bidirectional_packed_sequence_equals_torch(mode, batch_first, enforce_sorted):
    ref, ours = _pair(mode, 2, batch_first, seed=5)
    lengths = torch.tensor([6, 4, 2]) if enforce_sorted else torch.tensor([2, 6, 4])
    padded = torch.randn((3, 6, 3) if batch_first else (6, 3, 3), dtype=torch.float64,
                         requires_grad=True)  # fmt: skip
    packed = pack_padded_sequence(padded, lengths, batch_first, enforce_sorted)
    _assert_same_run(ref, ours, packed, None, [padded])
    hx = _initial_state(mode, 4, 3, 4)
    _assert_same_run(ref, ours, packed, hx, [padded, *state_tensors(hx)])


@pytest.mark.parametrize("mode", MODES)
def test_reverse_direction_reads_the_sequence_backwards(mode):
    """By hand: the reverse half of a one-layer output at step t is the forward-only module
    with the reverse weights run over the reversed sequence, at step T-1-t."""
    torch.manual_seed(2)
    bi = MaskedRNN(mode, 3, 4, 1, bidirectional=True, dtype=torch.float64)
    one = MaskedRNN(mode, 3, 4, 1, dtype=torch.float64)
    one.load_state_dict({k.replace("_reverse", ""): v for k, v in bi.state_dict().items()
                         if "_reverse" in k})  # fmt: skip
    x = torch.randn(6, 2, 3, dtype=torch.float64)
    out, h_n = bi(x)
    back, h_back = one(x.flip(0))
    assert (out[..., 4:] - back.flip(0)).abs().max() <= TOL
    assert (state_tensors(h_n)[0][1] - state_tensors(h_back)[0][0]).abs().max() <= TOL


@pytest.mark.parametrize("mode", MODES)
def test_bidirectional_masks_act_in_both_directions(mode):
    torch.manual_seed(4)
    ours = MaskedRNN(mode, 3, 4, 2, bidirectional=True, dtype=torch.float64)
    names = [n for n, _ in ours.masks()]
    assert names == [f"weight_{kind}_l{k}{sfx}" for k in (0, 1) for sfx in ("", "_reverse")
                     for kind in ("ih", "hh")]  # fmt: skip
    assert ours.weight_ih_l1_reverse.shape[1] == 8  # layer 1 reads both directions
    for name in names:
        ours.set_mask(name, torch.rand_like(getattr(ours, name)) > 0.5)
    ref = ours.to_torch()  # the masked weights baked into a plain bidirectional module
    assert ref.bidirectional and ref.weight_hh_l1_reverse.dtype == torch.float64
    for name in names:  # the baked module holds zeros exactly where the masks are off
        mask = getattr(ours, f"{name}_mask")
        assert torch.count_nonzero(getattr(ref, name)[~mask]) == 0
    x = torch.randn(5, 2, 3, dtype=torch.float64, requires_grad=True)
    _assert_same_run(ref, ours, x, None, [x])
    ours(x)[0].sum().backward()
    for name in names:  # masked entries get no gradient, kept ones do
        mask = getattr(ours, f"{name}_mask")
        grad = getattr(ours, name).grad
        assert torch.count_nonzero(grad[~mask]) == 0 and torch.count_nonzero(grad[mask]) > 0


def test_bidirectional_unbatched_input_and_from_torch():
    torch.manual_seed(6)
    ref = nn.GRU(3, 4, 2, bidirectional=True).double()
    ours = MaskedRNN.from_torch(ref)
    assert ours.bidirectional and ours.weight_hh_l0.dtype == torch.float64
    assert "bidirectional=True" in repr(ours)
    x = torch.randn(6, 3, dtype=torch.float64)
    (out_r, h_r), (out_o, h_o) = ref(x), ours(x)
    assert out_o.shape == out_r.shape == (6, 8) and h_o.shape == h_r.shape == (4, 4)
    assert (out_o - out_r).abs().max() <= TOL and (h_o - h_r).abs().max() <= TOL


@pytest.mark.parametrize("mode", ["gru", "lstm"])
def test_bidirectional_dropout_in_training_draws_as_torch(mode):
    """Training-time dropout between layers: with the same seed, the same dropout masks."""
    ref, ours = _pair(mode, 3, seed=7, dropout=0.4)
    ref.train()
    ours.train()
    x = torch.randn(5, 2, 3, dtype=torch.float64)
    torch.manual_seed(11)
    out_r = ref(x)[0]
    torch.manual_seed(11)
    out_o = ours(x)[0]
    assert (out_o - out_r).abs().max() <= TOL
    torch.manual_seed(12)
    assert (ours(x)[0] - out_r).abs().max() > 1e-3  # another seed, other dropout masks
