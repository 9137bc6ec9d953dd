"""The thread policy: 1 intra-op thread unless the user chose, restored after every call."""

import pytest
import torch

from sparsernn._threads import _flush_denormal_enabled, resolve_threads, torch_threads
from sparsernn.data import DataSpec
from sparsernn.errors import ConfigError
from sparsernn.models import ModelConfig, build_model
from sparsernn.tasks import task_data
from sparsernn.train import TrainConfig, evaluate, fit, train_many


@pytest.fixture(scope="module")
def tiny():
    return task_data(DataSpec(n_strings=60, seed=2))


@pytest.fixture
def outside(monkeypatch):
    """Caller state unlike the policy's: 3 threads, denormals kept; restored after the test."""
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    before = torch.get_num_threads(), _flush_denormal_enabled()
    torch.set_num_threads(3)
    torch.set_flush_denormal(False)
    yield
    torch.set_num_threads(before[0])
    torch.set_flush_denormal(before[1])


def _model():
    return build_model(ModelConfig(cell="rnn_tanh", hidden_size=4, embedding_dim=2), seed=0)


def _seen_inside(call):
    """Run ``call(on_epoch)``; return the (threads, flush) seen inside an epoch callback."""
    seen = []
    call(lambda *args: seen.append((torch.get_num_threads(), _flush_denormal_enabled())))
    return seen[0]


def test_resolve_threads_policy(monkeypatch):
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    assert resolve_threads() == 1
    assert resolve_threads(4) == 4
    monkeypatch.setenv("OMP_NUM_THREADS", "2")
    assert resolve_threads() == 2
    assert resolve_threads(5) == 5  # an explicit count wins over the environment
    monkeypatch.setenv("OMP_NUM_THREADS", "lots")
    assert resolve_threads() == 1
    for bad in (0, -1, 1.5, True):
        with pytest.raises(ConfigError, match="threads"):
            resolve_threads(bad)
    with pytest.raises(ConfigError, match="threads"):
        TrainConfig(threads=0)


def test_train_config_threads_round_trips_and_keeps_old_keys():
    assert "threads" not in TrainConfig().to_dict()  # run keys made before the field match
    cfg = TrainConfig(threads=2)
    assert TrainConfig.from_json(cfg.to_json()) == cfg
    assert TrainConfig.from_dict(TrainConfig().to_dict()).threads is None


def test_context_manager_sets_and_restores(outside):
    assert _flush_denormal_enabled() is False
    with torch_threads() as n:
        assert n == 1 == torch.get_num_threads()
        assert _flush_denormal_enabled() is True
        with torch_threads(2):
            assert torch.get_num_threads() == 2
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == 3
    assert _flush_denormal_enabled() is False
    with pytest.raises(RuntimeError), torch_threads(2):
        raise RuntimeError("boom")
    assert (torch.get_num_threads(), _flush_denormal_enabled()) == (3, False)


@pytest.mark.parametrize(
    ("threads", "env", "expected"), [(None, None, 1), (2, None, 2), (None, "2", 2), (1, "2", 1)]
)
def test_fit_policy_inside_and_restored_after(tiny, outside, monkeypatch, threads, env, expected):
    if env is not None:
        monkeypatch.setenv("OMP_NUM_THREADS", env)
    train, test = tiny
    cfg = TrainConfig(epochs=1, threads=threads)
    inside = _seen_inside(lambda cb: fit(_model(), train, test, cfg, on_epoch=cb))
    assert inside == (expected, True)
    assert (torch.get_num_threads(), _flush_denormal_enabled()) == (3, False)


def test_train_many_policy_inside_and_restored_after(tiny, outside):
    train, test = tiny
    cfg = TrainConfig(epochs=1, threads=2)
    models = [_model(), _model()]
    inside = _seen_inside(lambda cb: train_many(models, train, test, cfg, on_epoch=cb))
    assert inside == (2, True)
    assert (torch.get_num_threads(), _flush_denormal_enabled()) == (3, False)


def test_evaluate_policy_inside_and_restored_after(tiny, outside, monkeypatch):
    seen = []
    model = _model()
    model.register_forward_hook(lambda *a: seen.append(torch.get_num_threads()))
    evaluate(model, tiny[1])
    evaluate(model, tiny[1], threads=2)
    monkeypatch.setenv("OMP_NUM_THREADS", "2")
    evaluate(model, tiny[1])
    assert sorted(set(seen)) == [1, 2] and seen[0] == 1 and seen[-1] == 2
    assert (torch.get_num_threads(), _flush_denormal_enabled()) == (3, False)
