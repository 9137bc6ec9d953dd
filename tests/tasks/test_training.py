"""The engine on every task: models learn above chance, read the right step, score by hand."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

from sparsernn.data import DataSpec
from sparsernn.errors import ConfigError
from sparsernn.experiments.config import StudyConfig
from sparsernn.models import ModelConfig, build_model
from sparsernn.tasks import (
    TaskData,
    chance_level,
    check_spec,
    model_fields,
    parity,
    spec_fields,
    task_data,
)
from sparsernn.train import REGRESSION_TOLERANCE, TrainConfig, evaluate, fit, predict, train_many

#: (task, difficulty) at sizes a small GRU learns in seconds.
EASY = [("adding", 6), ("adding_regression", 6), ("copy", 2), ("parity", 4), ("digits", None)]


def _model(spec: DataSpec, seed: int = 0, cell: str = "gru"):
    cfg = ModelConfig(
        cell=cell, hidden_size=24, embedding_dim=8, num_layers=1, **model_fields(spec)
    )
    return build_model(cfg, seed=seed)


@pytest.mark.parametrize(("task", "difficulty"), EASY)
def test_a_dense_gru_learns_each_task_above_chance(task, difficulty):
    spec = DataSpec(task=task, n_strings=800, difficulty=difficulty)
    train, test = task_data(spec)
    history = fit(_model(spec), train, test, TrainConfig(epochs=6, batch_size=16, lr=1e-2))
    assert history[-1]["train_loss"] < 0.7 * history[0]["train_loss"]
    chance = chance_level(spec)
    if train.regression:  # the loss is the MSE; chance is the MSE of answering the mean
        assert history[-1]["test_loss"] < 0.5 * chance
    else:
        assert history[-1]["test_accuracy"] > chance + 0.2


def test_fit_on_a_task_is_seed_deterministic():
    spec = DataSpec(task="copy", n_strings=200, difficulty=3, seed=4)
    runs = []
    for _ in range(2):
        train, test = task_data(spec)
        runs.append(fit(_model(spec, seed=2), train, test, TrainConfig(epochs=2, seed=5)))
    assert [r["test_loss"] for r in runs[0]] == [r["test_loss"] for r in runs[1]]
    other = fit(_model(spec, seed=2), *task_data(spec), TrainConfig(epochs=2, seed=6))
    assert other[-1]["test_loss"] != runs[0][-1]["test_loss"]  # batch order follows the seed


def test_variable_length_parity_reads_each_sequence_at_its_own_end():
    data = parity(40, length=9, min_length=2, seed=0)
    spec = DataSpec(task="parity", difficulty=9)
    model = _model(spec)
    answers = predict(model, data, batch_size=40)
    with torch.no_grad():  # by hand: each string alone, unpadded, its last step
        for x, n, got in zip(data.inputs, data.lengths, answers, strict=True):
            alone = model(torch.as_tensor(x[None, :n]))
            assert int(alone.argmax(-1)) == got
    # so the padding of a batch changes nothing: batch size 1 and 40 agree
    assert evaluate(model, data, 1)["loss"] == pytest.approx(evaluate(model, data, 40)["loss"])


def test_strings_keep_the_studys_last_padded_step():
    train, _ = task_data(DataSpec(n_strings=60, seed=0))
    model = build_model(ModelConfig(hidden_size=6, embedding_dim=3, num_layers=1), seed=0)
    first = evaluate(model, train, 60)["loss"]
    assert first != pytest.approx(evaluate(model, train, 1)["loss"], abs=1e-9)


def test_copy_accuracy_is_per_symbol_and_regression_counts_answers_within_tolerance():
    spec = DataSpec(task="copy", n_strings=60, difficulty=2)
    _, test = task_data(spec)
    model = _model(spec)
    res = evaluate(model, test, 8)
    right = predict(model, test, 8) == test.targets  # (N, K) symbols
    assert right.shape == test.targets.shape
    assert res["accuracy"] == pytest.approx(right.mean())
    spec = DataSpec(task="adding_regression", n_strings=60, difficulty=5)
    _, test = task_data(spec)
    model = _model(spec)
    answers = predict(model, test, 8)
    res = evaluate(model, test, 8)
    assert res["loss"] == pytest.approx(float(np.mean((answers - test.targets) ** 2)), rel=1e-5)
    within = np.abs(answers - test.targets) < REGRESSION_TOLERANCE
    assert res["accuracy"] == pytest.approx(within.mean())


@pytest.mark.parametrize("task", ["adding", "adding_regression", "copy", "parity"])
def test_train_many_equals_fit_on_every_kind_of_task(task):
    spec = DataSpec(task=task, n_strings=120, difficulty=4)
    train, test = task_data(spec)
    models = [_model(spec, seed=s) for s in range(2)]
    alone = [copy.deepcopy(m) for m in models]
    cfg = TrainConfig(epochs=2, batch_size=16, seed=1)
    together = train_many(models, train, test, cfg)
    for model, single, history in zip(models, alone, together, strict=True):
        expected = fit(single, train, test, cfg)
        assert history[-1]["test_loss"] == pytest.approx(expected[-1]["test_loss"], rel=1e-4)
        assert history[-1]["train_accuracy"] == pytest.approx(expected[-1]["train_accuracy"])
        for p, q in zip(model.parameters(), single.parameters(), strict=True):
            assert torch.allclose(p, q, atol=1e-5)


def test_task_fields_enter_configs_only_when_used():
    plain = DataSpec()
    assert "task" not in plain.to_dict() and "difficulty" not in plain.to_dict()
    embedded = DataSpec.from_dict({"task": "embedded_reber"})  # the grammar names it
    assert embedded == DataSpec(grammar="embedded_reber") and embedded.task_name == "embedded_reber"
    assert embedded.to_dict() == DataSpec(grammar="embedded_reber").to_dict()
    with pytest.raises(ConfigError, match="is a grammar"):
        DataSpec(task="embedded_reber")
    adding = DataSpec(task="adding", difficulty=7)
    assert adding.to_dict()["task"] == "adding" and adding.to_dict()["difficulty"] == 7
    assert DataSpec.from_dict(adding.to_dict()) == adding
    assert ModelConfig().to_dict() == ModelConfig(**model_fields(plain)).to_dict()
    cfg = ModelConfig(**model_fields(adding))
    assert cfg.to_dict()["input_size"] == 2 and cfg.input_kind == "real"
    assert ModelConfig.from_dict(cfg.to_dict()) == cfg
    assert not {"input_size", "n_outputs", "regression"} & set(ModelConfig().to_dict())
    # data/ knows grammars, not tasks: sparsernn.tasks caps and checks a spec's task.
    assert DataSpec.from_dict(spec_fields({"task": "digits"})).n_strings == 1797  # capped
    assert StudyConfig.from_dict({"data": {"task": "digits"}}).data.n_strings == 1797
    with pytest.raises(ConfigError, match="has 1797 examples"):
        check_spec(DataSpec(task="digits"))
    with pytest.raises(ConfigError, match="the digits task has no difficulty knob"):
        check_spec(DataSpec(task="digits", n_strings=100, difficulty=3))
    with pytest.raises(ConfigError, match="unknown task 'mnist'"):
        task_data(DataSpec(task="mnist"))
    with pytest.raises(ConfigError, match="unknown task 'mnist'"):
        StudyConfig(data=DataSpec(task="mnist"))
    with pytest.raises(ConfigError, match="generates its own data"):
        DataSpec(task="parity", train_csv="a.csv", test_csv="b.csv")


def test_model_shapes_follow_the_task():
    x = torch.rand(3, 5, 2)
    reg = build_model(ModelConfig(hidden_size=4, input_size=2, regression=True), seed=0)
    assert isinstance(reg.input_linear, torch.nn.Linear) and reg(x).shape == (3,)
    copy_cfg = ModelConfig(hidden_size=4, vocab_size=11, n_classes=8, n_outputs=5)
    assert build_model(copy_cfg, seed=0)(torch.randint(1, 11, (3, 7))).shape == (3, 5, 8)
    with pytest.raises(ConfigError, match="input_size=0"):
        ModelConfig(input_size=0)
    assert TaskData(x.numpy(), np.full(3, 5), np.zeros(3), n_classes=0).regression
