"""SET / RigL / AGP hooks in the training engine: constant nonzero counts, masked weights
exactly zero through Adam, and the schedules' numbers by hand."""

import math

import numpy as np
import pytest
import torch

from sparsernn.batching import EncodedData
from sparsernn.data import DataSpec
from sparsernn.models import ModelConfig, build_model
from sparsernn.sparsity import AGPSchedule, DynamicSparsity, GradualPruner, cosine_drop_fraction
from sparsernn.sparsity.dynamic import share_regrowth
from sparsernn.tasks import task_data
from sparsernn.train import TrainConfig, fit


@pytest.fixture(scope="module")
def data():
    return task_data(DataSpec(n_strings=200, seed=2))[0]


def _model(cell="lstm"):
    return build_model(ModelConfig(cell=cell, embedding_dim=8, hidden_size=8, num_layers=2), seed=1)


class _Watch:
    """A hook run after the method's: per step, kept counts per matrix and a zero check."""

    def __init__(self):
        self.counts, self.leaks, self.masks = [], 0, []

    def __call__(self, step, model):
        rnn = model.recurrent
        self.counts.append({name: int(mask.sum()) for name, mask in rnn.masks()})
        self.masks.append({name: mask.clone() for name, mask in rnn.masks()})
        for name, mask in rnn.masks():
            self.leaks += int((getattr(rnn, name).detach()[~mask] != 0).sum())


@pytest.mark.parametrize("regrow", ["random", "gradient"])
@pytest.mark.parametrize("scope", ["gate", "layer"])
def test_set_and_rigl_keep_exact_counts_and_zeros_through_adam(data, regrow, scope):
    model = _model()
    batch = list(EncodedData(data).batches(np.arange(32), 32))
    hook = DynamicSparsity(
        model,
        0.75,
        scope=scope,
        regrow=regrow,
        update_every=3,
        drop_fraction=0.5,
        end_step=15,
        batches=lambda: batch,
        seed=4,
    )
    hook.initial_masks()
    start = {name: int(mask.sum()) for name, mask in model.recurrent.masks()}
    watch = _train(model, data, hook, epochs=5)
    assert len(watch.counts) == 5 * -(-len(data) // 32) > 20
    assert hook.n_updates == 5  # after steps 2, 5, 8, 11, 14
    assert all(counts == start for counts in watch.counts)
    assert watch.leaks == 0
    changed = [
        not torch.equal(a["weight_hh_l0"], b["weight_hh_l0"])
        for a, b in zip(watch.masks, watch.masks[1:], strict=False)
    ]
    assert any(changed) and not any(changed[15:])  # masks move, and stop at end_step
    size = sum(m.numel() for _, m in model.recurrent.masks())
    assert abs(1 - sum(start.values()) / size - 0.75) < 0.01


def _train(model, data, hook, epochs: int) -> _Watch:
    """``fit`` with the hook and a watcher, masks re-applied after every step."""
    watch = _Watch()
    config = TrainConfig(epochs=epochs, batch_size=32)
    fit(model, data, None, config, on_step=[hook, watch], reapply_masks=True)
    return watch


def test_without_reapplying_adam_would_revive_dropped_weights(data):
    # the reason for reapply_masks=True: the check above is not vacuous
    model = _model()
    hook = DynamicSparsity(model, 0.75, update_every=3, drop_fraction=0.5, end_step=30)
    hook.initial_masks()
    watch = _Watch()
    fit(model, data, None, TrainConfig(epochs=2, batch_size=32), on_step=[hook, watch])
    assert watch.leaks > 0


def test_redistribution_keeps_the_total_and_moves_weights_between_gates(data):
    model = _model("gru")
    hook = DynamicSparsity(
        model,
        0.8,
        scope="gate",
        update_every=2,
        drop_fraction=0.5,
        end_step=40,
        redistribute=True,
        seed=0,
    )
    hook.initial_masks()
    total = sum(int(m.sum()) for _, m in model.recurrent.masks())
    blocks_before = [
        int(model.recurrent.weight_hh_l0_mask[r].sum())
        for r in (slice(0, 8), slice(8, 16), slice(16, 24))
    ]
    watch = _train(model, data, hook, epochs=4)
    assert all(sum(c.values()) == total for c in watch.counts) and watch.leaks == 0
    blocks_after = [
        int(model.recurrent.weight_hh_l0_mask[r].sum())
        for r in (slice(0, 8), slice(8, 16), slice(16, 24))
    ]
    per_matrix = [c for c in watch.counts if c != watch.counts[0]]
    assert per_matrix or blocks_after != blocks_before


def test_share_regrowth_by_hand():
    # 10 shared 1:3 -> 2.5 / 7.5 -> floors 2 / 7, the tie of remainders goes to the first
    assert share_regrowth(10, np.array([1.0, 3.0]), np.array([10, 10])).tolist() == [3, 7]
    # a full block passes its share on
    assert share_regrowth(10, np.array([1.0, 1.0]), np.array([2, 20])).tolist() == [2, 8]
    assert share_regrowth(5, np.array([0.0, 0.0]), np.array([0, 9])).tolist() == [0, 5]


def test_cosine_drop_fraction_by_hand():
    assert cosine_drop_fraction(0, 0.3, 100) == pytest.approx(0.3)
    assert cosine_drop_fraction(50, 0.3, 100) == pytest.approx(0.15)
    assert cosine_drop_fraction(25, 0.3, 100) == pytest.approx(0.15 * (1 + math.cos(math.pi / 4)))
    assert cosine_drop_fraction(100, 0.3, 100) == 0.0


def test_agp_hook_reaches_the_final_sparsity_and_keeps_zeros(data):
    model = _model("gru")
    schedule = AGPSchedule(final=0.9, n_steps=12, frequency=4)
    pruner = GradualPruner(model, schedule, scope="gate")
    watch = _Watch()
    fit(
        model,
        data,
        None,
        TrainConfig(epochs=3, batch_size=32),
        on_step=[pruner, watch],
        reapply_masks=True,
    )
    kept = [sum(c.values()) for c in watch.counts]
    assert kept == sorted(kept, reverse=True) and watch.leaks == 0
    size = sum(m.numel() for _, m in model.recurrent.masks())
    assert abs(1 - kept[-1] / size - 0.9) < 0.01
    assert schedule.sparsity(4) == pytest.approx(0.9 * (1 - (1 - 4 / 12) ** 3))
