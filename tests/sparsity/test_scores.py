"""Scoring rules and scopes against masks written by hand (sparsernn.sparsity.scores)."""

import copy

import pytest
import torch

from sparsernn.batching import EncodedData
from sparsernn.data import DataSpec
from sparsernn.errors import ConfigError
from sparsernn.models import ModelConfig, build_model
from sparsernn.prune import magnitude_prune, sparsity_report
from sparsernn.sparsity import (
    dense_gradients,
    install_masks,
    magnitude_scores,
    masks_from_scores,
    random_scores,
    snip_scores,
)
from sparsernn.tasks import task_data
from tests.sparsity.helpers import as_lists, hand_gru

T, F = True, False


def test_magnitude_global_scope_by_hand():
    rnn = hand_gru()
    # nine magnitudes 0.1..0.9; the median (linear) is 0.5: keep |w| >= 0.5
    masks = as_lists(masks_from_scores(rnn, magnitude_scores(rnn), 0.5))
    assert masks["weight_ih_l0"] == [[F, F], [F, F], [T, T]]
    assert masks["weight_hh_l0"] == [[T], [T], [T]]


def test_magnitude_layer_scope_by_hand():
    rnn = hand_gru()
    masks = as_lists(masks_from_scores(rnn, magnitude_scores(rnn), 0.5, scope="layer"))
    # i2h: 0.1..0.6, median 0.35; h2h: 0.7, 0.8, 0.9, median 0.8
    assert masks["weight_ih_l0"] == [[F, F], [F, T], [T, T]]
    assert masks["weight_hh_l0"] == [[F], [T], [T]]


def test_magnitude_gate_scope_keeps_every_gate_by_hand():
    rnn = hand_gru()
    masks = as_lists(masks_from_scores(rnn, magnitude_scores(rnn), 0.5, "i2h", "gate"))
    # each gate row on its own: the median of (0.1, 0.2) is 0.15, and so on
    assert masks == {"weight_ih_l0": [[F, T], [F, T], [F, T]]}


def test_gate_scope_splits_lstm_rows_into_four_blocks():
    rnn = torch.nn.LSTM(1, 2)
    from sparsernn.nn import MaskedRNN

    masked = MaskedRNN.from_torch(rnn)
    with torch.no_grad():  # rows 0..7: gate i = rows 0-1, f = 2-3, g = 4-5, o = 6-7
        masked.weight_ih_l0.copy_(torch.tensor([[1.0], [2], [3], [4], [8], [7], [6], [5]]))
    masks = masks_from_scores(masked, magnitude_scores(masked, "i2h"), 0.5, "i2h", "gate")
    assert masks["weight_ih_l0"].flatten().tolist() == [F, T, F, T, T, F, T, F]
    global_masks = masks_from_scores(masked, magnitude_scores(masked, "i2h"), 0.5, "i2h")
    # one threshold (4.5) would empty gates i and f
    assert global_masks["weight_ih_l0"].flatten().tolist() == [F, F, F, F, T, T, T, T]


def test_scores_of_any_rule_follow_the_same_threshold_rule():
    rnn = hand_gru()
    scores = {  # e.g. SNIP saliencies: keep the 4 largest of 9 (median 5 of 1..9)
        "weight_ih_l0": torch.tensor([[9.0, 1], [2, 8], [3, 7]]),
        "weight_hh_l0": torch.tensor([[4.0], [6], [5]]),
    }
    masks = as_lists(masks_from_scores(rnn, scores, 0.5))
    assert masks["weight_ih_l0"] == [[T, F], [F, T], [F, T]]
    assert masks["weight_hh_l0"] == [[F], [T], [T]]


def test_already_masked_entries_stay_masked():
    rnn = hand_gru()
    keep = torch.ones(3, 2, dtype=torch.bool)
    keep[2, 1] = False  # |-0.6|, which magnitude would keep
    rnn.set_mask("weight_ih_l0", keep)
    masks = masks_from_scores(rnn, {"weight_ih_l0": torch.ones(3, 2)}, 0.0, "i2h")
    assert masks["weight_ih_l0"].tolist() == keep.tolist()


def test_random_scores_are_seeded_uniform_draws():
    rnn = hand_gru()
    scores = random_scores(rnn, "both", seed=3)
    gen = torch.Generator().manual_seed(3)
    assert torch.equal(scores["weight_ih_l0"], torch.rand((3, 2), generator=gen))
    assert torch.equal(scores["weight_hh_l0"], torch.rand((3, 1), generator=gen))
    again = random_scores(hand_gru(), "both", seed=3)
    assert all(torch.equal(scores[k], again[k]) for k in scores)


def test_random_mask_removes_the_asked_fraction_regardless_of_magnitude():
    config = ModelConfig(cell="lstm", embedding_dim=16, hidden_size=16, num_layers=2)
    model = build_model(config, seed=0)
    masks = masks_from_scores(model, random_scores(model, seed=1), 0.8, scope="gate")
    install_masks(model, masks)
    report = sparsity_report(model, per_gate=True)
    assert len(report) == 4 * 4 and set(report["gate"]) == {"i", "f", "g", "o"}
    # each 16x16 gate block has 256 scores: the 0.8-quantile removes 204 (= ceil(0.8 * 255))
    assert (report["kept"] == 256 - 204).all()
    magnitude = magnitude_prune(copy.deepcopy(model), 0.8)
    assert any(not torch.equal(masks[k], magnitude[k]) for k in masks)


def _tiny_model_and_batches():
    model = build_model(ModelConfig(cell="gru", hidden_size=6, num_layers=2), seed=0)
    train, _ = task_data(DataSpec(n_strings=60, seed=0))
    data = EncodedData(train)
    batches = list(data.batches(torch.arange(20).numpy(), 10))
    return model, batches


def test_dense_gradients_equal_the_gradient_with_the_masks_open():
    model, batches = _tiny_model_and_batches()
    magnitude_prune(model, 0.6)
    grads = dense_gradients(model, batches)
    masks_before = {n: m.clone() for n, m in model.recurrent.masks()}
    # the independent expectation: the same model with all-ones masks, ordinary backward
    open_model = copy.deepcopy(model)
    for _, mask in open_model.recurrent.masks():
        mask.fill_(True)
    for tokens, labels in batches:
        torch.nn.functional.cross_entropy(open_model(tokens), labels).backward()
    for name, _ in model.recurrent.masks():
        expected = getattr(open_model.recurrent, name).grad
        assert torch.allclose(grads[f"recurrent.{name}"], expected, atol=1e-6)
        assert getattr(model.recurrent, name).grad is None  # nothing written to .grad
        assert torch.equal(getattr(model.recurrent, f"{name}_mask"), masks_before[name])
    masked = ~model.recurrent.weight_hh_l0_mask
    assert grads["recurrent.weight_hh_l0"][masked].abs().sum() > 0  # pruned entries get one


def test_snip_scores_are_weight_times_gradient():
    model, batches = _tiny_model_and_batches()
    grads = dense_gradients(model, batches)
    scores = snip_scores(model, batches)
    w = model.recurrent.weight_ih_l1.detach()
    assert torch.allclose(
        scores["recurrent.weight_ih_l1"], (w * grads["recurrent.weight_ih_l1"]).abs()
    )


def test_bad_scope_and_percentages_are_refused():
    rnn = hand_gru()
    with pytest.raises(ConfigError, match="unknown pruning scope"):
        masks_from_scores(rnn, magnitude_scores(rnn), 0.5, scope="row")
    with pytest.raises(ConfigError, match="not a percentage"):
        masks_from_scores(rnn, magnitude_scores(rnn), 50)
