"""Tests for sparsernn.tasks: each generator's shapes, labels by an independent rule, seeds."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.datasets import load_digits

from sparsernn import tasks
from sparsernn.data import DataSpec
from sparsernn.errors import ConfigError
from sparsernn.tasks import (
    DIFFICULTY,
    N_DIGITS,
    SHAPES,
    TASKS,
    TaskShape,
    adding,
    copy_memory,
    digits,
    make_task,
    parity,
    split,
)


def test_adding_targets_are_the_binned_sum_of_the_two_marked_values():
    data = adding(200, length=12, n_bins=4, seed=3)
    assert data.inputs.shape == (200, 12, 2) and data.input_kind == "real"
    for x, target in zip(data.inputs, data.targets, strict=True):
        marked = [t for t in range(12) if x[t, 1] == 1.0]
        assert len(marked) == 2 and marked[0] < 6 <= marked[1]  # one mark in each half
        total = float(x[marked[0], 0]) + float(x[marked[1], 0])
        assert target == min(int(total // 0.5), 3)
    regression = adding(50, length=12, n_bins=None, seed=3)
    assert regression.regression and regression.targets.dtype == np.float32
    assert np.all((regression.targets >= 0) & (regression.targets <= 2))


def test_copy_targets_are_the_first_symbols_and_the_cue_is_last():
    data = copy_memory(30, k=3, delay=4, n_symbols=5, seed=1)
    assert data.inputs.shape == (30, 8) and data.targets.shape == (30, 3)
    assert data.n_outputs == 3 and data.vocab_size == 8
    for x, y in zip(data.inputs.tolist(), data.targets.tolist(), strict=True):
        assert [s - 1 for s in x[:3]] == y
        assert x[3:7] == [6] * 4 and x[7] == 7


def test_parity_counts_the_ones_of_each_string():
    data = parity(100, length=9, min_length=3, seed=2)
    assert set(data.lengths.tolist()) <= set(range(3, 10)) and len(set(data.lengths)) > 1
    for x, n, y in zip(data.inputs.tolist(), data.lengths.tolist(), data.targets, strict=True):
        bits = x[:n]
        assert set(bits) <= {1, 2} and all(v == 0 for v in x[n:])
        assert y == bits.count(2) % 2


def test_digits_are_sklearn_images_row_by_row():
    data = digits()
    images, labels = load_digits(return_X_y=True)
    assert len(data) == N_DIGITS and data.inputs.shape == (N_DIGITS, 8, 8)
    np.testing.assert_allclose(data.inputs[5, 2], images[5, 16:24] / 16.0, rtol=1e-6)
    assert (data.targets == labels).all()
    with pytest.warns(UserWarning, match="1797"):
        assert len(digits(5000)) == N_DIGITS
    assert len(digits(100, seed=1)) == 100


@pytest.mark.parametrize("name", sorted(TASKS))
def test_every_task_is_deterministic_and_splits_disjointly(name):
    a_train, a_test = make_task(name, n=400, seed=5)
    b_train, b_test = make_task(name, n=400, seed=5)
    assert np.array_equal(a_train.inputs, b_train.inputs)
    assert np.array_equal(a_test.targets, b_test.targets)
    assert len(a_train) + len(a_test) == 400
    c_train, _ = make_task(name, n=400, seed=6)
    assert not np.array_equal(a_train.inputs, c_train.inputs)
    rows = {tuple(np.asarray(x).ravel().tolist()) for x in a_train.inputs}
    overlap = sum(tuple(np.asarray(x).ravel().tolist()) in rows for x in a_test.inputs)
    assert overlap <= len(a_test) // 20  # generated tasks may repeat short sequences by chance
    assert 0.0 < a_test.chance() <= 1.0


def test_split_keeps_class_shares():
    data = parity(1000, length=6, seed=0)
    train, test = split(data, 0.25, seed=1)
    assert len(test) == 250
    assert abs(train.targets.mean() - test.targets.mean()) < 0.01


def test_bad_arguments_are_one_line_errors():
    with pytest.raises(ConfigError, match="unknown task 'nope'; valid tasks: reber"):
        make_task("nope")
    with pytest.raises(ConfigError, match="min_length=9 must be <= length=5"):
        parity(10, length=5, min_length=9)
    with pytest.raises(ConfigError, match="no difficulty knob"):
        make_task("digits", n=100, difficulty=3)


@pytest.mark.parametrize("name", list(TASKS))
def test_each_task_declares_the_shape_its_data_have(name):
    """:data:`SHAPES` (what planning reads) agrees with the data each task generates."""
    assert set(SHAPES) == set(TASKS) == set(DIFFICULTY)
    knob = [None] if DIFFICULTY[name] is None else [None, 3, 7]
    for difficulty in knob:
        train, _ = make_task(name, 40, difficulty=difficulty, seed=1)
        declared = TaskShape(
            train.input_kind,
            train.n_classes,
            n_outputs=train.n_outputs,
            vocab_size=train.vocab_size,
            input_size=train.input_size if train.input_kind == "real" else 0,
        )
        assert SHAPES[name] == declared, (name, difficulty)


def test_planning_reads_the_model_fields_without_generating_data(monkeypatch):
    def no_data(*args, **kwargs):
        raise AssertionError("model_fields generated data")

    monkeypatch.setattr(tasks, "make_task", no_data)
    monkeypatch.setattr(tasks, "make_dataset", no_data)
    copy = tasks.model_fields(DataSpec(task="copy", n_strings=50, difficulty=4))
    assert copy == {"n_classes": 8, "n_outputs": 5, "regression": False, "vocab_size": 11}
    adding = tasks.model_fields(DataSpec(task="adding_regression", n_strings=50))
    assert adding == {"n_classes": 1, "n_outputs": 1, "regression": True, "input_size": 2}
    assert tasks.model_fields(DataSpec()) == {}
