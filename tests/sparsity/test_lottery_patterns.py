"""Lottery rewinding, N:M patterns and unit pruning with export, by hand and against torch."""

import pytest
import torch

from sparsernn.checkpoints import checkpoint_bytes, load_checkpoint
from sparsernn.errors import ConfigError
from sparsernn.models import ModelConfig, build_model
from sparsernn.nn import MaskedRNN
from sparsernn.sparsity import (
    DynamicSparsity,
    export_units,
    install_masks,
    lottery_ticket,
    nm_masks,
    rewind_,
    rewind_point,
    round_sparsities,
    unit_masks,
)
from tests.sparsity.helpers import as_lists, with_weights

T, F = True, False


def _perturb(model):
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p))


def test_rewind_restores_the_saved_weights_bit_for_bit():
    model = build_model(ModelConfig(cell="lstm", hidden_size=6, num_layers=2), seed=0)
    point = rewind_point(model)
    _perturb(model)
    keep = torch.rand(model.recurrent.weight_hh_l1.shape) > 0.5
    model.recurrent.set_mask("weight_hh_l1", keep)
    rewind_(model, point)
    for name, p in model.named_parameters():
        expected = point[name] * keep if name == "recurrent.weight_hh_l1" else point[name]
        assert torch.equal(p.detach(), expected), name


def test_lottery_ticket_rounds_rewinds_and_reaches_the_sparsity():
    model = build_model(ModelConfig(cell="gru", hidden_size=8, num_layers=2), seed=0)
    point = rewind_point(model)
    trained = []
    _perturb(model)  # "the trained model"

    def train(m):
        trained.append({n: p.detach().clone() for n, p in m.named_parameters()})
        _perturb(m)

    masks = lottery_ticket(model, 0.875, point, train, rounds=3)
    assert len(trained) == 2
    # every round starts from the rewind point (masked)
    assert torch.equal(trained[0]["embedding.weight"], point["embedding.weight"])
    kept = sum(int(m.sum()) for m in masks.values())
    size = sum(m.numel() for m in masks.values())
    assert abs(1 - kept / size - 0.875) < 1e-3
    for name, p in model.recurrent.named_parameters():
        mask = getattr(model.recurrent, f"{name}_mask", None)
        expected = point[f"recurrent.{name}"]
        assert torch.equal(p.detach(), expected if mask is None else expected * mask)
    assert round_sparsities(0.875, 3) == pytest.approx([0.5, 0.75, 0.875])


def test_nm_pattern_by_hand_with_a_short_last_group():
    rnn = with_weights(
        "rnn_tanh",
        5,
        2,
        weight_ih_l0=[[0.1, -0.4, 0.3, 0.2, 0.05], [0.9, 0.8, -0.7, 0.6, -0.5]],
        weight_hh_l0=[[0.1, 0.2], [0.4, -0.3]],
    )
    masks = as_lists(nm_masks(rnn, 2, 4))
    assert masks["weight_ih_l0"] == [[F, T, T, F, T], [T, T, F, F, T]]
    assert masks["weight_hh_l0"] == [[T, T], [T, T]]  # a group of two keeps both
    assert as_lists(nm_masks(rnn, 1, 2, "h2h")) == {"weight_hh_l0": [[F, T], [T, F]]}
    with pytest.raises(ConfigError, match="N:M"):
        nm_masks(rnn, 3, 2)


def test_unit_masks_by_hand():
    # Elman, input 1, hidden 2, 2 layers; unit 0 of layer 0 has incoming L1 0.1 + 0.2 + 0.1,
    # unit 1 has 1 + 1 + 1; layer 1: unit 0 has 3, unit 1 has 0.3
    rnn = with_weights(
        "rnn_tanh",
        1,
        2,
        weight_ih_l0=[[0.1], [1.0]],
        weight_hh_l0=[[0.2, 0.1], [1.0, 1.0]],
        weight_ih_l1=[[1.0, 1.0], [0.1, 0.1]],
        weight_hh_l1=[[0.5, 0.5], [0.05, 0.05]],
    )
    masks = as_lists(unit_masks(rnn, 0.5))
    assert masks["weight_ih_l0"] == [[F], [T]]
    assert masks["weight_hh_l0"] == [[F, F], [F, T]]
    assert masks["weight_ih_l1"] == [[F, T], [F, F]]  # column 0: layer 0's removed unit
    assert masks["weight_hh_l1"] == [[T, F], [F, F]]


@pytest.mark.parametrize("mode", ["rnn_tanh", "gru", "lstm"])
def test_unit_export_computes_the_masked_function(mode):
    torch.manual_seed(0)
    rnn = MaskedRNN(mode, 5, 8, 3)
    install_masks(rnn, unit_masks(rnn, 0.5))
    small, kept = export_units(rnn)
    assert isinstance(small, rnn.spec.torch_class) and small.hidden_size == 4
    x = torch.randn(7, 3, 5)
    out, h_n = rnn(x)
    small_out, small_h = small(x)
    assert torch.allclose(small_out, out[..., kept], atol=1e-6)
    h, small_h = (h_n[0], small_h[0]) if mode == "lstm" else (h_n, small_h)
    assert torch.allclose(small_h[-1], h[-1][..., kept], atol=1e-6)


@pytest.mark.parametrize("mode", ["rnn_tanh", "gru", "lstm"])
def test_bidirectional_unit_export_computes_the_masked_function(mode):
    """Each direction of each layer loses its own weakest units; the layer above loses the
    matching columns of both directions' inputs; the small torch module equals the masked
    one on the kept outputs (``kept`` indexes the 2H output, forward then reverse)."""
    torch.manual_seed(1)
    rnn = MaskedRNN(mode, 5, 8, 2, bidirectional=True, dtype=torch.float64)
    install_masks(rnn, unit_masks(rnn, 0.25))
    small, kept = export_units(rnn)
    assert small.bidirectional and small.hidden_size == 6 and len(kept) == 12
    assert ((kept < 8).sum(), (kept >= 8).sum()) == (6, 6)
    x = torch.randn(7, 3, 5, dtype=torch.float64)
    out, h_n = rnn(x)
    small_out, small_h = small(x)
    assert (small_out - out[..., kept]).abs().max() <= 1e-12
    h, small_h = (h_n[0], small_h[0]) if mode == "lstm" else (h_n, small_h)
    for d, units in enumerate((kept[:6], kept[6:] - 8)):  # the last layer's two directions
        assert (small_h[2 + d] - h[2 + d][..., units]).abs().max() <= 1e-12


def test_a_checkpoint_keeps_the_methods_masks():
    model = build_model(ModelConfig(cell="gru", hidden_size=8, num_layers=2), seed=0)
    DynamicSparsity(model, 0.7, seed=5).initial_masks()
    install_masks(model, nm_masks(model, 1, 4, "h2h"))
    loaded, _ = load_checkpoint(checkpoint_bytes(model))
    for (name, mask), (_, again) in zip(
        model.recurrent.masks(), loaded.recurrent.masks(), strict=True
    ):
        assert torch.equal(mask, again), name
        assert torch.equal(getattr(model.recurrent, name), getattr(loaded.recurrent, name))
