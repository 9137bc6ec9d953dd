"""Training loop, evaluation semantics and checkpoints."""

import numpy as np
import pytest
import torch

from sparsernn.batching import EncodedData
from sparsernn.data import Dataset, DataSpec, make_dataset
from sparsernn.errors import ConfigError, DataError
from sparsernn.models import ModelConfig, build_model
from sparsernn.tasks import strings_task
from sparsernn.train import (
    TrainConfig,
    accuracy_by_kind,
    evaluate,
    fit,
    load_checkpoint,
    predict,
    save_checkpoint,
)


@pytest.fixture(scope="module")
def tiny_strings():
    return make_dataset(DataSpec(n_strings=400, seed=1))


@pytest.fixture(scope="module")
def tiny(tiny_strings):
    return strings_task(tiny_strings[0]), strings_task(tiny_strings[1])


def test_training_on_tiny_data_learns(tiny):
    train, test = tiny
    model = build_model(ModelConfig(cell="gru", hidden_size=16, embedding_dim=8), seed=0)
    # The study's negatives are hard: a tiny GRU needs a few epochs at a larger step to learn.
    hist = fit(model, train, test, TrainConfig(epochs=6, batch_size=16, lr=3e-3))
    assert [r["epoch"] for r in hist] == [1, 2, 3, 4, 5, 6]
    assert hist[-1]["train_loss"] < hist[0]["train_loss"] * 0.8
    assert set(hist[0]) >= {
        "train_loss",
        "train_accuracy",
        "test_loss",
        "test_accuracy",
        "epoch_time",
    }


def test_same_seed_same_numbers_on_cpu(tiny):
    train, test = tiny
    runs = []
    for _ in range(2):
        model = build_model(ModelConfig(cell="lstm", hidden_size=8, embedding_dim=4), seed=5)
        runs.append(fit(model, train, test, TrainConfig(epochs=1, batch_size=32, seed=3)))
    for key in ("train_loss", "test_loss", "test_accuracy"):
        assert runs[0][0][key] == runs[1][0][key]


def test_evaluate_pads_each_batch_to_its_own_longest_string():
    """Batches in file order, padded per batch: compare with a hand-rolled loop."""
    model = build_model(ModelConfig(cell="rnn_tanh", hidden_size=6, embedding_dim=3), seed=0)
    strings = ["BTXSE", "BPVVE", "BTSSXXTVVE", "BTXXVPSE", "BPE"]
    labels = np.array([1, 1, 1, 1, 0])
    data = strings_task(Dataset(strings, labels))
    res = evaluate(model, data, batch_size=2)
    losses, correct = [], 0
    with torch.no_grad():
        for start in range(0, 5, 2):
            chunk = strings[start : start + 2]
            width = max(map(len, chunk))
            toks = torch.tensor([[ord(c) for c in s] + [0] * (width - len(s)) for s in chunk])
            logits = model(toks)
            y = torch.tensor(labels[start : start + 2])
            losses += torch.nn.functional.cross_entropy(logits, y, reduction="none").tolist()
            correct += int((logits.argmax(1) == y).sum())
    assert res["accuracy"] == correct / 5
    assert res["loss"] == pytest.approx(float(np.mean(losses)), abs=1e-6)
    # padding is part of the model input (the study reads the last PADDED step)
    assert evaluate(model, data, batch_size=5)["loss"] != pytest.approx(res["loss"], abs=1e-9)


def test_checkpoint_round_trip_keeps_masks_and_outputs(tmp_path, tiny):
    from sparsernn.prune import magnitude_prune

    model = build_model(ModelConfig(cell="gru", hidden_size=8, embedding_dim=4), seed=0)
    magnitude_prune(model, 0.6)
    path = save_checkpoint(tmp_path / "m.pt", model, {"test_accuracy": 0.5})
    loaded, metrics = load_checkpoint(path)
    assert metrics == {"test_accuracy": 0.5}
    assert loaded.config == model.config
    for (n1, b1), (n2, b2) in zip(model.named_buffers(), loaded.named_buffers(), strict=True):
        assert n1 == n2 and torch.equal(b1, b2)
    toks = torch.from_numpy(EncodedData(tiny[1]).inputs.numpy()[:8])
    with torch.no_grad():
        assert torch.equal(model(toks), loaded(toks))


def _tiny_model():
    return build_model(ModelConfig(cell="rnn_tanh", hidden_size=3, embedding_dim=2), seed=0)


def test_bad_options_and_files(tmp_path):
    with pytest.raises(ConfigError, match="batch_size"):
        TrainConfig(batch_size=0)
    with pytest.raises(ConfigError, match="device"):
        TrainConfig(device="tpu")
    with pytest.raises(ConfigError, match="unknown cell"):
        ModelConfig(cell="transformer")
    (tmp_path / "x.pt").write_bytes(b"garbage")
    with pytest.raises(DataError, match="not a sparsernn checkpoint .a text file starting"):
        load_checkpoint(tmp_path / "x.pt")
    (tmp_path / "test.csv").write_text("string,valid\nBTXSE,1\n")
    with pytest.raises(DataError, match="not a sparsernn checkpoint .* a data CSV"):
        load_checkpoint(tmp_path / "test.csv")  # was: unreadable checkpoint (IndexError)
    (tmp_path / "cut.pt").write_bytes(
        save_checkpoint(tmp_path / "ok.pt", _tiny_model()).read_bytes()[:300]
    )
    with pytest.raises(DataError, match="unreadable checkpoint .*truncated"):
        load_checkpoint(tmp_path / "cut.pt")
    with pytest.raises(DataError, match="empty data set"):
        EncodedData(strings_task(Dataset([], np.array([], dtype=np.int64))))


def test_engine_takes_task_data_and_converts_strings_with_a_warning(tiny_strings, tiny):
    """TaskData is the one input type: a Dataset still trains the same model (FutureWarning,
    converted as strings_task converts it); anything else is a TypeError naming the fix."""
    cfg = TrainConfig(epochs=1, batch_size=16, seed=0)
    small = strings_task(tiny_strings[0][:64])
    models = [build_model(ModelConfig(cell="gru", hidden_size=6, embedding_dim=3), seed=0)
              for _ in range(2)]  # fmt: skip
    with pytest.warns(
        FutureWarning, match=r"fit\(\) takes a sparsernn.tasks.TaskData.*strings_task"
    ):
        old = fit(models[0], tiny_strings[0][:64], None, cfg)
    new = fit(models[1], small, None, cfg)
    assert old[0]["train_loss"] == new[0]["train_loss"]
    with pytest.warns(FutureWarning, match=r"evaluate\(\)"):
        assert evaluate(models[0], tiny_strings[1]) == evaluate(models[1], tiny[1])
    for call in (fit, evaluate, predict):
        with pytest.raises(
            TypeError, match=r"takes a sparsernn.tasks.TaskData, not ndarray.*task_data"
        ):
            call(models[0], small.inputs)


def test_bucketing_keeps_every_string_once(tiny_strings):
    from sparsernn.batching import epoch_order

    train, _ = tiny_strings
    lengths = np.array([len(s) for s in train.strings])
    rng = np.random.default_rng
    order = epoch_order(len(train), lengths, rng(0), shuffle=True, bucket=True, batch_size=8)
    assert sorted(order.tolist()) == list(range(len(train)))
    spans = [np.ptp(lengths[order[i : i + 8]]) for i in range(0, len(order), 8)]
    plain = epoch_order(len(train), lengths, rng(0), shuffle=True, bucket=False, batch_size=8)
    spans_plain = [np.ptp(lengths[plain[i : i + 8]]) for i in range(0, len(plain), 8)]
    assert np.mean(spans) < np.mean(spans_plain) / 2


def test_predict_and_accuracy_by_kind_agree_with_evaluate(tiny_strings, tiny):
    _, test = tiny_strings
    model = build_model(ModelConfig(cell="gru", hidden_size=8, embedding_dim=4), seed=1)
    pred = predict(model, tiny[1], 16)
    assert pred.shape == (len(test),)
    assert (pred == test.labels).mean() == pytest.approx(evaluate(model, tiny[1], 16)["accuracy"])
    table = accuracy_by_kind(model, test, 16).set_index(["level", "kind"])
    kinds = np.array(test.kinds)
    for kind in set(test.kinds) - {"valid"}:  # by hand, from the predictions
        right = (pred == test.labels)[kinds == kind]
        assert table.loc[("kind", kind), "n"] == right.size
        assert table.loc[("kind", kind), "accuracy"] == pytest.approx(right.mean())
    assert table.loc[("all", "all"), "n_wrong"] == int((pred != test.labels).sum())
    assert table.xs("family")["n"].sum() == int((test.labels == 0).sum())


# ---------------------------------------------------------------------- per-step hooks
def _small(cell="gru", seed=0):
    return build_model(ModelConfig(cell=cell, hidden_size=6, embedding_dim=4, num_layers=2), seed)


def test_step_hook_called_once_per_step_with_its_index(tiny):
    train, _ = tiny
    model = _small()
    calls = []
    cfg = TrainConfig(epochs=2, batch_size=64, seed=1)
    fit(model, train, None, cfg, on_step=lambda i, m: calls.append((i, m)))
    n_steps = 2 * -(-len(train) // 64)  # two epochs of ceil(N / 64) batches
    assert [i for i, _ in calls] == list(range(n_steps))
    assert all(m is model for _, m in calls)
    seen = []
    fit(_small(), train, None, cfg, on_step=[lambda i, m: seen.append(i)] * 2)
    assert seen == [i for i in range(n_steps) for _ in range(2)]  # each hook, in order


def test_step_hook_can_change_masks_mid_training(tiny):
    train, _ = tiny
    cfg = TrainConfig(epochs=1, batch_size=32, seed=2)
    keep = torch.rand(18, 6, generator=torch.Generator().manual_seed(0)) > 0.5  # (3 * H, H)

    def prune_at_step_3(i, m):
        if i == 3:
            m.recurrent.set_mask("weight_hh_l1", keep)

    model, plain = _small(), _small()
    weights = []

    def record(i, m):
        weights.append(m.recurrent.weight_hh_l1.detach().clone())

    # Adam's moments from the dense steps would move the newly masked weights: reapply masks
    fit(model, train, None, cfg, on_step=[prune_at_step_3, record], reapply_masks=True)
    fit(plain, train, None, cfg)
    assert (weights[2][~keep] != 0).all()  # before the hook: a dense weight
    assert all((w[~keep] == 0).all() for w in weights[3:])  # after it: held at zero
    assert torch.equal(model.recurrent.weight_hh_l1_mask, keep)
    assert not torch.equal(model.recurrent.weight_hh_l1, plain.recurrent.weight_hh_l1)


def test_train_many_hook_sees_the_stacked_models_and_its_masks_are_kept(tiny):
    from sparsernn.models import BatchedClassifier
    from sparsernn.train import train_many

    train, _ = tiny
    models = [_small(seed=s) for s in range(3)]
    keep = torch.rand(18, 4, generator=torch.Generator().manual_seed(1)) > 0.5  # (3 * H, E)
    calls = []

    def hook(i, batched):
        calls.append((i, type(batched), batched.n_models))
        if i == 0 and batched.n_models == 2:  # the first chunk: models 0 and 1
            batched.recurrent.weight_ih_l0_mask[1] = keep
            batched.recurrent.apply_masks_()

    cfg = TrainConfig(epochs=1, batch_size=100, seed=3)
    train_many(models, train, None, cfg, chunk_size=2, on_step=hook, reapply_masks=True)
    per_chunk = -(-len(train) // 100)
    assert calls == [(i, BatchedClassifier, 2) for i in range(per_chunk)] + [
        (i, BatchedClassifier, 1) for i in range(per_chunk)
    ]
    assert torch.equal(models[1].recurrent.weight_ih_l0_mask, keep)
    assert (models[1].recurrent.weight_ih_l0[~keep] == 0).all()
    assert (
        models[0].recurrent.weight_ih_l0_mask.all() and models[2].recurrent.weight_ih_l0_mask.all()
    )


def test_momentum_revives_masked_weights_unless_masks_are_reapplied(tiny):
    from sparsernn.prune import magnitude_prune

    train, _ = tiny
    cfg = TrainConfig(epochs=1, batch_size=64, seed=4)
    revived = {}
    for reapply in (False, True):
        model = _small()
        opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
        fit(model, train, None, cfg, optimizer=opt)  # momentum from the dense weights
        magnitude_prune(model, 0.5)
        fit(model, train, None, cfg, optimizer=opt, reapply_masks=reapply)
        revived[reapply] = sum(
            int((getattr(model.recurrent, name)[~mask] != 0).sum())
            for name, mask in model.recurrent.masks()
        )
    assert revived[False] > 0 and revived[True] == 0


def test_cli_train_sets_only_the_fields_given(monkeypatch):
    """`sparsernn train` builds the configs from its flags; every other field keeps the
    dataclass default (the CLI declares none of its own)."""
    from click.testing import CliRunner

    import sparsernn.train as train_module
    from sparsernn.cli import cli

    seen = []
    monkeypatch.setattr(train_module, "fit", lambda *a, **k: seen.append(a) or [])
    flags = ["--epochs", "2", "--hidden-size", "4", "--n-strings", "40", "--clip", "0"]
    res = CliRunner().invoke(cli, ["train", *flags, "--seed", "3"])
    assert res.exit_code == 0, res.output
    model, train, test, cfg = seen[0]
    assert cfg == TrainConfig(epochs=2, clip=None, seed=3)
    assert model.config == ModelConfig(hidden_size=4)
    assert len(train) + len(test) == 40
    expected = strings_task(make_dataset(DataSpec(n_strings=40, seed=3))[0])  # TaskData, encoded
    assert np.array_equal(expected.inputs, train.inputs) and train.last_step == "padded"
    res = CliRunner().invoke(cli, ["train", "--lr", "0.01", "--n-strings", "40"])
    assert res.exit_code == 0 and seen[1][3] == TrainConfig(lr=0.01)
