"""MaskedRNN mirrors torch.nn.RNN/GRU/LSTM and keeps masked weights at exactly zero."""

import networkx as nx
import pytest
import torch
import torch.nn.utils.prune as torch_prune
from torch import nn
from torch.nn.utils.rnn import PackedSequence, pack_padded_sequence

from sparsernn.errors import ConfigError
from sparsernn.nn import CELLS, MODES, BatchedMaskedRNN, MaskedRNN, cell_spec, cell_step
from sparsernn.nn.reference import reference_layer
from sparsernn.prune import magnitude_prune
from tests.nn.torch_modules import state_tensors, torch_module


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("num_layers", [1, 2, 3])
@pytest.mark.parametrize("batch_first", [False, True])
def test_all_ones_mask_equals_torch_both_load_directions(mode, num_layers, batch_first):
    torch.manual_seed(num_layers)
    ref = torch_module(mode, 5, 7, num_layers, batch_first=batch_first)
    ours = MaskedRNN(mode, 5, 7, num_layers, batch_first=batch_first)
    ours.load_state_dict(ref.state_dict())  # torch -> ours (no masks in the dict: all ones)
    x = torch.randn((4, 6, 5) if batch_first else (6, 4, 5), requires_grad=True)
    out_r, h_r = ref(x)
    out_o, h_o = ours(x)
    assert out_o.shape == out_r.shape
    assert (out_o - out_r).abs().max() <= 1e-5
    for a, b in zip(state_tensors(h_o), state_tensors(h_r), strict=True):
        assert a.shape == b.shape and (a - b).abs().max() <= 1e-5
    (out_r.sum() + sum(t.sum() for t in state_tensors(h_r))).backward()
    (out_o.sum() + sum(t.sum() for t in state_tensors(h_o))).backward()
    for name, p in ref.named_parameters():
        assert (getattr(ours, name).grad - p.grad).abs().max() <= 1e-5, name
    # ours -> torch: a fresh torch module loads our state dict (without masks)
    back = torch_module(mode, 5, 7, num_layers, batch_first=batch_first)
    state = {k: v for k, v in ours.state_dict().items() if not k.endswith("_mask")}
    back.load_state_dict(state)
    assert (back(x)[0] - out_o).abs().max() <= 1e-5


@pytest.mark.parametrize("mode", MODES)
def test_parameter_names_and_shapes_mirror_torch(mode):
    ref = torch_module(mode, 3, 4, 2)
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
    one_message = "unknown cell 'transformer'; choose one of rnn_tanh, rnn_relu, gru, lstm"
    with pytest.raises(ConfigError, match=one_message):
        MaskedRNN("transformer", 3, 4)
    with pytest.raises(ConfigError, match="dropout"):
        MaskedRNN("gru", 3, 4, dropout=1.5)
    rnn = MaskedRNN("gru", 3, 4)
    with pytest.raises(ConfigError, match="shape"):
        rnn.set_mask("weight_hh_l0", torch.ones(3, 3, dtype=torch.bool))
    with pytest.raises(ValueError, match="expected input"):
        rnn(torch.randn(5, 2, 9))


# ---------------------------------------------------------------------- one description per cell
@pytest.mark.parametrize("name", MODES)
def test_cell_spec_describes_the_matching_torch_module(name):
    spec = cell_spec(name)
    assert spec is CELLS[name] and cell_spec(spec) is spec and spec.name == name
    ref = spec.torch_class(3, 4, **spec.torch_kwargs)
    assert ref.mode == spec.torch_mode
    assert ref.weight_hh_l0.shape[0] == spec.gates * 4
    _, state = ref(torch.randn(2, 1, 3))
    assert isinstance(state, tuple) == spec.has_cell_state
    assert MaskedRNN.from_torch(ref).spec is spec


@pytest.mark.parametrize("name", MODES)
def test_bias_folding_is_exact_except_where_the_spec_says(name):
    spec = cell_spec(name)
    torch.manual_seed(0)
    ref = torch_module(name, 3, 4).double()
    x, h = torch.randn(5, 3, dtype=torch.double), torch.randn(5, 4, dtype=torch.double)
    state = (h, torch.randn(5, 4, dtype=torch.double)) if spec.has_cell_state else h
    names = ("weight_ih", "weight_hh", "bias_ih", "bias_hh")
    w_ih, w_hh, b_ih, b_hh = (getattr(ref, f"{n}_l0") for n in names)
    plain = state_tensors(cell_step(spec, x, state, w_ih, w_hh, b_ih, b_hh))
    folded = state_tensors(cell_step(spec, x, state, w_ih, w_hh, *spec.fold_biases(b_ih, b_hh)))
    summed = state_tensors(cell_step(spec, x, state, w_ih, w_hh, b_ih + b_hh, None))
    # the torch module is the independent expectation for one step
    expected = ref(x.unsqueeze(0), _flatten_hx(spec, state))[1]
    for a, b in zip(plain, state_tensors(expected), strict=True):
        assert torch.allclose(a, b.squeeze(0), atol=1e-12)
    for a, b in zip(folded, plain, strict=True):
        assert torch.allclose(a, b, atol=1e-12)
    moved = any(not torch.allclose(a, b, atol=1e-6) for a, b in zip(summed, plain, strict=True))
    assert moved == (not spec.folds_b_hh)  # only GRU's b_hn cannot move into b_ih


def _flatten_hx(spec, state):
    if spec.has_cell_state:
        return state[0].unsqueeze(0), state[1].unsqueeze(0)
    return state.unsqueeze(0)


def test_unknown_cell_has_one_message_everywhere():
    from sparsernn.experiments.config import StudyConfig
    from sparsernn.models import ModelConfig
    from sparsernn.nn import StructuredRNN

    message = "unknown cell 'elman'; choose one of rnn_tanh, rnn_relu, gru, lstm"
    for build in (
        lambda: cell_spec("elman"),
        lambda: MaskedRNN("elman", 3, 4),
        lambda: StructuredRNN(nx.path_graph(3), "elman"),
        lambda: BatchedMaskedRNN("elman", 2, 3, 4),
        lambda: ModelConfig(cell="elman"),
        lambda: StudyConfig(cells=("gru", "elman")),
    ):
        with pytest.raises(ConfigError) as info:
            build()
        assert str(info.value) == message


# ---------------------------------------------------------------------- torch-honest module
def test_arguments_sit_in_torch_positions():
    args = (3, 4, 2, False, True, 0.25, False, 0, "cpu", torch.float64)
    ours = MaskedRNN("gru", *args)
    ref = nn.GRU(*args)
    assert (ours.bias, ours.batch_first, ours.dropout) == (ref.bias, ref.batch_first, ref.dropout)
    assert (ours.bidirectional, ours.proj_size) == (ref.bidirectional, ref.proj_size)
    assert ours.weight_hh_l1.dtype == ref.weight_hh_l1.dtype == torch.float64
    assert {n: p.shape for n, p in ours.named_parameters()} == {
        n: p.shape for n, p in ref.named_parameters()
    }


def test_proj_size_is_refused_clearly_by_the_constructor_and_from_torch():
    with pytest.raises(ConfigError, match=r"^proj_size=2 is not supported by MaskedRNN;"):
        MaskedRNN("lstm", 3, 4, proj_size=2)
    with pytest.raises(ConfigError, match=r"^proj_size=2 is not supported by MaskedRNN;"):
        MaskedRNN.from_torch(nn.LSTM(3, 4, proj_size=2))


def test_flatten_parameters_is_a_harmless_no_op():
    torch.manual_seed(0)
    rnn = MaskedRNN("lstm", 3, 4, 2)
    x = torch.randn(5, 2, 3)
    before = rnn(x)[0]
    assert rnn.flatten_parameters() is None
    assert torch.equal(rnn(x)[0], before)


@pytest.mark.parametrize("mode", MODES)
def test_h_n_is_a_stacked_tensor_as_torch_when_layers_share_a_size(mode):
    torch.manual_seed(0)
    rnn = MaskedRNN(mode, 3, 4, 3)
    ref = rnn.to_torch()
    x = torch.randn(6, 2, 3)
    (_, h_o), (_, h_r) = rnn(x), ref(x)
    for a, b in zip(state_tensors(h_o), state_tensors(h_r), strict=True):
        assert type(a) is torch.Tensor and a.shape == b.shape == (3, 2, 4)
        assert torch.allclose(a, b, atol=1e-6)
    # different sizes: one (B, H_k) per layer, and it is accepted back as hx
    uneven = MaskedRNN(mode, 3, [4, 5])
    out, h_n = uneven(x)
    layers = h_n[0] if uneven.spec.has_cell_state else h_n
    assert isinstance(layers, tuple) and [t.shape for t in layers] == [(2, 4), (2, 5)]
    assert uneven(x, h_n)[0].shape == out.shape


def _packed_inputs(batch_first, enforce_sorted):
    lengths = torch.tensor([6, 4, 2]) if enforce_sorted else torch.tensor([3, 6, 1])
    padded = torch.randn((3, 6, 5) if batch_first else (6, 3, 5), requires_grad=True)
    packed = pack_padded_sequence(padded, lengths, batch_first, enforce_sorted)
    return padded, packed


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("batch_first", [False, True])
@pytest.mark.parametrize("enforce_sorted", [True, False])
def test_packed_sequence_equals_torch_with_masks(mode, batch_first, enforce_sorted):
    torch.manual_seed(3)
    rnn = MaskedRNN(mode, 5, 4, 2, batch_first=batch_first)
    for name, _ in list(rnn.masks()):
        rnn.set_mask(name, torch.rand_like(getattr(rnn, name)) > 0.4)
    ref = rnn.to_torch()  # the masked weights baked into a plain torch module
    padded, packed = _packed_inputs(batch_first, enforce_sorted)
    hx = torch.randn(2, 3, 4)
    hx = (hx, torch.randn(2, 3, 4)) if rnn.spec.has_cell_state else hx
    for h0 in (None, hx):
        (out_o, h_o), (out_r, h_r) = rnn(packed, h0), ref(packed, h0)
        assert isinstance(out_o, PackedSequence)
        assert torch.equal(out_o.batch_sizes, out_r.batch_sizes)
        assert torch.allclose(out_o.data, out_r.data, atol=1e-6)
        for a, b in zip(state_tensors(h_o), state_tensors(h_r), strict=True):
            assert a.shape == b.shape and torch.allclose(a, b, atol=1e-6)
    loss_o = out_o.data.sum() + sum(t.sum() for t in state_tensors(h_o))
    loss_r = out_r.data.sum() + sum(t.sum() for t in state_tensors(h_r))
    (g_o,) = torch.autograd.grad(loss_o, padded, retain_graph=True)
    (g_r,) = torch.autograd.grad(loss_r, padded)
    assert torch.allclose(g_o, g_r, atol=1e-6)


def test_packed_h_n_is_taken_at_each_sequences_last_step():
    torch.manual_seed(0)
    rnn = MaskedRNN("gru", 5, 4)
    padded, packed = _packed_inputs(False, False)
    _, h_n = rnn(packed)
    for b, n in enumerate([3, 6, 1]):  # each sequence alone, unpadded
        assert torch.allclose(h_n[0, b], rnn(padded[:n, b])[1][0], atol=1e-6)


def test_packed_input_with_the_wrong_width_is_refused():
    rnn = MaskedRNN("gru", 5, 4)
    packed = pack_padded_sequence(torch.randn(4, 2, 7), torch.tensor([4, 3]))
    with pytest.raises(ValueError, match="PackedSequence of 5 features"):
        rnn(packed)


# ---------------------------------------------------------------------- torch.nn.utils.prune
def _ours_then_torch_l1(seed=0):
    """A GRU with one of our masks, then torch's l1_unstructured on the same weight; returns
    the module and the expected combined mask, computed on a plain tensor by torch alone."""
    torch.manual_seed(seed)
    rnn = MaskedRNN("gru", 3, 4, 2)
    ours = torch.rand_like(rnn.weight_hh_l0) > 0.3
    rnn.set_mask("weight_hh_l0", ours)
    plain = nn.Linear(4, 12, bias=False)
    with torch.no_grad():
        plain.weight.copy_(rnn.weight_hh_l0)
    theirs = torch_prune.l1_unstructured(plain, "weight", amount=0.5).weight_mask
    torch_prune.l1_unstructured(rnn, "weight_hh_l0", amount=0.5)
    return rnn, ours & theirs.bool()


def test_torch_prune_combines_its_mask_with_ours_and_forward_honours_both():
    rnn, expected = _ours_then_torch_l1()
    assert rnn.weight_hh_l0_mask.dtype == torch.bool
    assert torch.equal(rnn.weight_hh_l0_mask, expected)
    assert int(expected.sum()) == 24  # l1 removes 24 of 48 entries, our zeros among them
    ref = nn.GRU(3, 4, 2)
    state = {k: v for k, v in rnn.state_dict().items() if not k.endswith("_mask")}
    state["weight_hh_l0"] = state.pop("weight_hh_l0_orig") * expected
    ref.load_state_dict(state)
    x = torch.randn(5, 2, 3)
    assert torch.allclose(rnn(x)[0], ref(x)[0], atol=1e-6)


def test_torch_pruned_entries_stay_zero_in_training_and_after_remove():
    rnn, expected = _ours_then_torch_l1(seed=1)
    opt = torch.optim.Adam(rnn.parameters(), lr=0.05)
    for _ in range(5):
        opt.zero_grad()
        rnn(torch.randn(4, 2, 3))[0].pow(2).mean().backward()
        assert torch.count_nonzero(rnn.weight_hh_l0_orig.grad[~expected]) == 0
        opt.step()
    assert torch.count_nonzero(rnn.weight_hh_l0[~expected]) == 0
    # a second torch pruning only removes more
    torch_prune.random_unstructured(rnn, "weight_hh_l0", amount=0.2)
    second = rnn.weight_hh_l0_mask.clone()
    assert not (second & ~expected).any() and second.sum() < expected.sum()
    torch_prune.remove(rnn, "weight_hh_l0")
    assert isinstance(rnn.weight_hh_l0, nn.Parameter)
    assert "weight_hh_l0_orig" not in rnn.state_dict()
    assert torch.equal(rnn.weight_hh_l0_mask, second)  # still masked by the module itself
    for _ in range(3):
        opt = torch.optim.Adam(rnn.parameters(), lr=0.05)
        opt.zero_grad()
        rnn(torch.randn(4, 2, 3))[0].pow(2).mean().backward()
        opt.step()
    assert torch.count_nonzero(rnn.weight_hh_l0[~second]) == 0
    clone = MaskedRNN("gru", 3, 4, 2)
    clone.load_state_dict(rnn.state_dict())  # the plain layout again
    x = torch.randn(3, 2, 3)
    assert torch.allclose(clone(x)[0], rnn(x)[0])


def test_our_pruning_after_torch_pruning_reaches_torch_reparametrisation():
    rnn, expected = _ours_then_torch_l1(seed=2)
    masks = magnitude_prune(rnn, 0.8, target="h2h")
    assert not (masks["weight_hh_l0"] & ~expected).any()  # pruning only removes
    assert torch.equal(rnn.weight_hh_l0_mask, masks["weight_hh_l0"])
    assert torch.count_nonzero(rnn.weight_hh_l0_orig[~masks["weight_hh_l0"]]) == 0
    rnn(torch.randn(2, 1, 3))  # torch's hook recomputes weight_hh_l0 from the new mask
    assert torch.count_nonzero(rnn.weight_hh_l0[~masks["weight_hh_l0"]]) == 0


def test_a_first_torch_pruning_that_ignores_magnitudes_keeps_our_mask_too():
    torch.manual_seed(0)
    rnn = MaskedRNN("lstm", 3, 4, 2)
    ours = torch.rand_like(rnn.weight_ih_l1) > 0.5
    rnn.set_mask("weight_ih_l1", ours)
    plain = nn.Linear(4, 16, bias=False)
    torch.manual_seed(7)
    theirs = torch_prune.random_unstructured(plain, "weight", amount=0.25).weight_mask.bool()
    torch.manual_seed(7)  # the same random draw on the module
    torch_prune.random_unstructured(rnn, "weight_ih_l1", amount=0.25)
    assert (ours & ~theirs).any() and (theirs & ~ours).any()  # neither mask contains the other
    assert torch.equal(rnn.weight_ih_l1_mask, ours & theirs)
    assert torch.equal(rnn.weight_ih_l1, rnn.weight_ih_l1_orig * (ours & theirs))
