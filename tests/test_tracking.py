"""--log tensorboard / --log mlflow: curves written by the real packages and read back."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from sparsernn.cli import cli
from sparsernn.errors import ConfigError
from sparsernn.tracking import EXPERIMENT, log_study, mlflow_uri, open_loggers

_TRAIN = ["train", "--task", "parity", "--difficulty", "5", "--epochs", "3", "--n-strings", "120",
          "--hidden-size", "4", "--num-layers", "1", "--embedding-dim", "3"]


def _records():
    return [{"epoch": e, "train_loss": 1.0 / e, "test_accuracy": 0.5 + e / 10, "note": "x"}
            for e in (1, 2, 3)]


def _tensorboard_scalars(folder):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(folder))
    acc.Reload()
    return {tag: [(e.step, e.value) for e in acc.Scalars(tag)] for tag in acc.Tags()["scalars"]}


def _mlflow_runs(log_dir):
    from mlflow.tracking import MlflowClient

    client = MlflowClient(mlflow_uri(log_dir))
    experiment = client.get_experiment_by_name(EXPERIMENT)
    return client, client.search_runs([experiment.experiment_id])


def test_tensorboard_event_files_hold_every_epoch(tmp_path):
    pytest.importorskip("tensorboard", reason="the tracking extra is not installed")
    with open_loggers(["tensorboard"], tmp_path, "run1", {"cell": "gru"}) as loggers:
        for record in _records():
            loggers(record)
    scalars = _tensorboard_scalars(tmp_path / "run1")
    assert set(scalars) == {"train_loss", "test_accuracy"}  # numbers only, epoch is the step
    assert [step for step, _ in scalars["train_loss"]] == [1, 2, 3]
    assert [v for _, v in scalars["test_accuracy"]] == pytest.approx([0.6, 0.7, 0.8])


def test_mlflow_sqlite_store_holds_every_epoch_and_the_params(tmp_path):
    pytest.importorskip("mlflow", reason="the tracking extra is not installed")
    with open_loggers(["mlflow"], tmp_path, "run1", {"cell": "gru", "lr": 0.001}) as loggers:
        for record in _records():
            loggers(record)
    client, runs = _mlflow_runs(tmp_path)
    assert len(runs) == 1 and runs[0].data.params == {"cell": "gru", "lr": "0.001"}
    history = client.get_metric_history(runs[0].info.run_id, "train_loss")
    assert [(m.step, m.value) for m in history] == [(1, 1.0), (2, 0.5), (3, pytest.approx(1 / 3))]
    assert runs[0].info.status == "FINISHED"


def test_cli_train_logs_its_curve_to_both(tmp_path):
    pytest.importorskip("tensorboard", reason="the tracking extra is not installed")
    pytest.importorskip("mlflow", reason="the tracking extra is not installed")
    log_dir = tmp_path / "runs"
    args = [*_TRAIN, "--log", "tensorboard", "--log", "mlflow", "--log-dir", str(log_dir)]
    res = CliRunner().invoke(cli, args)
    assert res.exit_code == 0, res.output
    rows = [line.split() for line in res.output.splitlines()]
    printed = [row for row in rows if len(row) == 6 and row[0].isdigit()]  # the epoch table
    assert len(printed) == 3
    scalars = _tensorboard_scalars(log_dir / "train-gru-seed0")
    assert [f"{v:.4f}" for _, v in scalars["train_loss"]] == [row[1] for row in printed]
    client, runs = _mlflow_runs(log_dir)
    history = client.get_metric_history(runs[0].info.run_id, "test_accuracy")
    assert [f"{m.value:.4f}" for m in history] == [row[4] for row in printed]


def test_a_study_logs_each_stored_curve_as_one_run(tmp_path):
    pytest.importorskip("tensorboard", reason="the tracking extra is not installed")
    out, log_dir = tmp_path / "study", tmp_path / "runs"
    args = ["prune", "--task", "parity", "--difficulty", "4", "--cells", "gru", "--amounts",
            "50", "--targets", "both", "--epochs", "2", "--retrain-epochs", "1", "--seeds", "1",
            "--workers", "1", "--n-strings", "80", "--out", str(out), "--log", "tensorboard",
            "--log-dir", str(log_dir)]
    res = CliRunner().invoke(cli, args)
    assert res.exit_code == 0, res.output
    assert "logged 2 stored curves to tensorboard" in res.output
    runs = sorted(p.name for p in log_dir.iterdir())
    assert [r.split("-")[0] for r in runs] == ["base", "prune"]
    base = _tensorboard_scalars(log_dir / runs[0])
    assert [step for step, _ in base["test_accuracy"]] == [1, 2]
    assert log_study(out, ["tensorboard"], tmp_path / "again") == 2
    # a resumed command logs only the units it ran: none here, all were stored
    again = CliRunner().invoke(cli, args)
    assert again.exit_code == 0, again.output
    assert "logged 0 stored curves to tensorboard" in again.output
    assert sorted(p.name for p in log_dir.iterdir()) == runs


def test_unknown_backend_is_a_one_line_error(tmp_path):
    with pytest.raises(ConfigError, match="unknown --log 'wandb'; choose from tensorboard, mlflow"):
        open_loggers(["wandb"], tmp_path, "r")
