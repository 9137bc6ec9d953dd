"""Magnitude pruning against direct numpy computations on hand-built matrices."""

import numpy as np
import pytest
import torch
import torch.nn.utils.prune

from sparsernn.errors import ConfigError
from sparsernn.models import ModelConfig, build_model
from sparsernn.nn import MaskedRNN
from sparsernn.prune import AGPSchedule, GradualPruner, magnitude_prune, sparsity_report


def _rnn_with(w_ih0, w_hh0, w_ih1, w_hh1):
    """A 2-layer tanh RNN (hidden 2, input 2) with the given 2x2 weights."""
    rnn = MaskedRNN("rnn_tanh", 2, 2, 2)
    with torch.no_grad():
        for name, w in zip(
            ["weight_ih_l0", "weight_hh_l0", "weight_ih_l1", "weight_hh_l1"],
            [w_ih0, w_hh0, w_ih1, w_hh1],
            strict=True,
        ):
            getattr(rnn, name).copy_(torch.tensor(w, dtype=torch.float32))
    return rnn


HAND = dict(
    w_ih0=[[0.1, -0.2], [0.3, -0.4]],
    w_hh0=[[0.5, -0.6], [0.7, -0.8]],
    w_ih1=[[0.9, -1.0], [1.1, -1.2]],
    w_hh1=[[1.3, -1.4], [1.5, -1.6]],
)


def test_global_threshold_hand_computed():
    rnn = _rnn_with(**HAND)
    # both kinds: 16 magnitudes 0.1..1.6; 25th percentile (linear) = 0.1 + 0.25*15*0.1 = 0.475
    masks = magnitude_prune(rnn, 0.25)
    kept = {k: v.tolist() for k, v in masks.items()}
    assert kept["weight_ih_l0"] == [[False, False], [False, False]]
    assert kept["weight_hh_l0"] == [[True, True], [True, True]]  # 0.5 >= 0.475
    assert rnn.weight_ih_l0.abs().sum() == 0
    assert torch.equal(rnn.weight_hh_l0, torch.tensor(HAND["w_hh0"]))


def test_i2h_only_never_touches_h2h_and_vice_versa():
    rnn = _rnn_with(**HAND)
    before = {n: getattr(rnn, n).detach().clone() for n in rnn.weight_names()}
    masks = magnitude_prune(rnn, 0.5, target="i2h")
    assert sorted(masks) == ["weight_ih_l0", "weight_ih_l1"]
    assert torch.equal(rnn.weight_hh_l0, before["weight_hh_l0"])
    assert rnn.weight_hh_l1_mask.all() and rnn.weight_hh_l0_mask.all()
    # i2h magnitudes 0.1..0.4, 0.9..1.2: median = (0.4 + 0.9) / 2 = 0.65
    assert masks["weight_ih_l0"].sum() == 0 and masks["weight_ih_l1"].all()
    rnn2 = _rnn_with(**HAND)
    masks = magnitude_prune(rnn2, 0.5, target="h2h")
    assert sorted(masks) == ["weight_hh_l0", "weight_hh_l1"]
    assert rnn2.weight_ih_l0_mask.all() and rnn2.weight_ih_l1_mask.all()


def test_layer_scope_gives_each_matrix_its_own_percentile():
    rnn = _rnn_with(**HAND)
    masks = magnitude_prune(rnn, 0.5, scope="layer")
    for name, mask in masks.items():
        w = getattr(_rnn_with(**HAND), name).detach().abs().numpy()
        np.testing.assert_array_equal(mask.numpy(), w >= np.percentile(w, 50))
        assert mask.sum() == 2


def test_ties_and_amount_100_keep_only_the_largest():
    rnn = _rnn_with(
        [[1.0, 1.0], [1.0, 1.0]],
        [[1.0, 1.0], [1.0, 1.0]],
        [[1.0, 1.0], [1.0, 1.0]],
        [[1.0, 1.0], [1.0, 2.0]],
    )
    masks = magnitude_prune(rnn, 0.5)
    # threshold = 1.0; strict < removes nothing: the report shows the achieved sparsity
    assert all(m.all() for m in masks.values())
    assert sparsity_report(rnn)["sparsity"].max() == 0.0
    masks = magnitude_prune(rnn, 1.0)
    total = sum(int(m.sum()) for m in masks.values())
    assert total == 1 and masks["weight_hh_l1"][1, 1]


def test_threshold_equals_numpy_percentile_on_study_model():
    model = build_model(ModelConfig(cell="gru", hidden_size=16, embedding_dim=8), seed=3)
    ref = {n: p.detach().numpy().copy() for n, p in model.named_parameters()}
    for amount in (10, 33.3, 80, 100):
        for target, kinds in (("both", ("ih", "hh")), ("h2h", ("hh",))):
            m = build_model(ModelConfig(cell="gru", hidden_size=16, embedding_dim=8), seed=3)
            masks = magnitude_prune(m, amount / 100, target=target)  # the study's conversion
            names = [f"recurrent.weight_{k}_l{layer}" for layer in range(3) for k in kinds]
            allw = np.concatenate([np.abs(ref[n]).ravel() for n in names])
            thr = np.percentile(allw, amount)
            for n in names:
                np.testing.assert_array_equal(masks[n].numpy(), ~(np.abs(ref[n]) < thr))
            # biases, embedding and classifier are never pruned
            for n in ("embedding.weight", "out.weight", "recurrent.bias_hh_l0"):
                np.testing.assert_array_equal(
                    dict(m.named_parameters())[n].detach().numpy(), ref[n]
                )


def test_pruned_weights_stay_zero_through_retraining():
    from sparsernn.data import Dataset
    from sparsernn.tasks import strings_task
    from sparsernn.train import TrainConfig, fit

    model = build_model(ModelConfig(cell="lstm", hidden_size=8, embedding_dim=4), seed=0)
    masks = magnitude_prune(model, 0.7)
    strings = Dataset(["BTXSE", "BPVVE", "BTTTE", "BXXE"] * 8, np.array([1, 1, 0, 0] * 8))
    data = strings_task(strings)
    fit(model, data, None, TrainConfig(epochs=3, batch_size=8))
    params = dict(model.named_parameters())
    for name, mask in masks.items():
        assert torch.count_nonzero(params[name][~mask]) == 0


def test_agp_schedule_reaches_final_sparsity_on_schedule():
    sched = AGPSchedule(initial=0.0, final=0.8, n_steps=10, frequency=2)
    assert sched.sparsity(0) == 0.0
    assert sched.sparsity(10) == pytest.approx(0.8)
    assert sched.sparsity(5) == pytest.approx(0.8 + (0 - 0.8) * 0.5**3)
    values = [sched.sparsity(t) for t in range(12)]
    assert values == sorted(values)
    rnn = MaskedRNN("gru", 6, 10, 2)
    pruner = GradualPruner(rnn, sched)
    for _ in range(11):
        pruner.step()
    report = sparsity_report(rnn)
    achieved = 1 - report["kept"].sum() / report["size"].sum()
    assert achieved == pytest.approx(0.8, abs=0.01)


def test_bad_options_raise_clear_errors():
    rnn = MaskedRNN("gru", 3, 4)
    for kwargs, match in (
        (dict(sparsity=150), "outside \\[0, 1\\]"),
        (dict(sparsity=-0.1), "outside \\[0, 1\\]"),
        (dict(sparsity="0.5"), "outside \\[0, 1\\]"),
        (dict(sparsity=0.1, target="ih"), "unknown pruning target"),
        (dict(sparsity=0.1, scope="row"), "unknown pruning scope"),
    ):
        with pytest.raises(ConfigError, match=match):
            magnitude_prune(rnn, **kwargs)
    with pytest.raises(ConfigError, match="no MaskedRNN"):
        magnitude_prune(torch.nn.Linear(2, 2), 0.1)


@pytest.mark.parametrize("percent", [1.5, 10, 80, 100])
def test_a_percentage_where_a_fraction_belongs_fails_loudly_and_names_the_fraction(percent):
    rnn = MaskedRNN("gru", 3, 4)
    before = {name: mask.clone() for name, mask in rnn.masks()}
    with pytest.raises(ConfigError, match=f"not a percentage: pass {percent / 100:g} "):
        magnitude_prune(rnn, percent)
    assert all(torch.equal(mask, before[name]) for name, mask in rnn.masks())  # nothing pruned


def test_sparsity_is_the_same_fraction_as_agp_and_torch_prune_amount():
    """One unit: magnitude_prune(s) on one matrix removes what torch's l1_unstructured(s) does,
    and GradualPruner passes AGPSchedule's fraction straight through."""
    torch.manual_seed(0)
    rnn = MaskedRNN("rnn_tanh", 10, 10)  # 100 distinct magnitudes in weight_hh_l0
    ref = torch.nn.Linear(10, 10, bias=False)
    with torch.no_grad():
        ref.weight.copy_(rnn.weight_hh_l0)
    torch.nn.utils.prune.l1_unstructured(ref, "weight", amount=0.3)
    masks = magnitude_prune(rnn, 0.3, target="h2h")
    assert torch.equal(masks["weight_hh_l0"], ref.weight_mask.bool())
    assert int((~masks["weight_hh_l0"]).sum()) == 30
    other = MaskedRNN("rnn_tanh", 10, 10)
    with torch.no_grad():
        other.weight_hh_l0.copy_(ref.weight_orig)
    pruner = GradualPruner(other, AGPSchedule(initial=0.3, final=0.3, n_steps=1), target="h2h")
    assert pruner.step() == pytest.approx(0.3)
    assert torch.equal(other.weight_hh_l0_mask, masks["weight_hh_l0"])
