"""``--task`` on the commands: every task trains from the CLI; a digits study runs and reports."""

from __future__ import annotations

import pandas as pd
import pytest
from click.testing import CliRunner

from sparsernn.cli import cli
from sparsernn.tasks import TASKS

_TINY = ["--hidden-size", "4", "--num-layers", "1", "--embedding-dim", "3", "--threads", "1"]


@pytest.mark.parametrize("task", sorted(TASKS))
def test_train_runs_one_epoch_of_every_task(task):
    args = ["train", "--task", task, "--cell", "gru", "--epochs", "1", "--n-strings", "1000"]
    res = CliRunner().invoke(cli, [*args, *_TINY])
    assert res.exit_code == 0, res.output
    assert "test_accuracy" in res.output and "epoch" in res.output


def test_train_says_in_one_line_that_digits_are_capped():
    args = ["train", "--task", "digits", "--epochs", "1", "--n-strings", "5000", *_TINY]
    res = CliRunner().invoke(cli, args)
    assert res.exit_code == 0, res.output
    note = [line for line in res.output.splitlines() if line.startswith("note:")]
    assert note == ["note: the digits task has 1797 examples; using all 1797, not 5000"]


def test_train_refuses_a_difficulty_the_task_has_not():
    res = CliRunner().invoke(cli, ["train", "--task", "digits", "--difficulty", "3"])
    assert res.exit_code == 2
    assert "error: DataSpec.difficulty: the digits task has no difficulty knob" in res.output


def test_prune_on_digits_runs_end_to_end_and_reports(tmp_path):
    out = tmp_path / "study"
    args = ["prune", "--task", "digits", "--cells", "lstm", "--amounts", "50", "--targets",
            "both", "--epochs", "1", "--retrain-epochs", "1", "--seeds", "1", "--workers", "1",
            "--n-strings", "200", "--out", str(out)]
    res = CliRunner().invoke(cli, args)
    assert res.exit_code == 0, res.output
    assert "2 units done, 0 failed" in res.output
    res = CliRunner().invoke(cli, ["report", str(out)])
    assert res.exit_code == 0, res.output
    html = (out / "report.html").read_text(encoding="utf-8")
    assert "Task: digits, chance level 0." in html
    assert "Published figures are not shown" in html and "data.task = &#34;digits&#34;" in html
    setup = pd.read_csv(out / "report_tables" / "setup.csv").set_index("item")["value"]
    assert setup["task"] == "digits" and setup["chance level"].startswith("0.")


def test_structure_takes_a_task_and_a_toml_data_table(tmp_path):
    config = tmp_path / "study.toml"
    config.write_text('[data]\ntask = "adding"\ndifficulty = 6\nn_strings = 80\n')
    out = tmp_path / "s"
    args = ["structure", "--config", str(config), "--cells", "gru", "--generators", "ws",
            "--graphs", "1", "--nodes", "10:12", "--epochs", "1", "--seeds", "1", "--workers",
            "1", "--out", str(out)]
    res = CliRunner().invoke(cli, args)
    assert res.exit_code == 0, res.output
    assert "1 units done, 0 failed" in res.output
