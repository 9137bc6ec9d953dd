"""Studies on the user's own inputs through the CLI: CSV data, graph folders, --grammar."""

from __future__ import annotations

from click.testing import CliRunner

from sparsernn.cli import cli
from sparsernn.store import ResultsStore

_TINY = ["--n-strings", "120", "--workers", "1", "--seeds", "1", "--device", "cpu"]


def _ok(args):
    res = CliRunner().invoke(cli, args, catch_exceptions=False)
    assert res.exit_code == 0, res.output
    return res.output


def _configs(study_dir, kind=None):
    with ResultsStore.open(study_dir, readonly=True) as store:
        return [store.get(key)["config"] for key in sorted(store.keys())]


def test_grammar_flag_reaches_every_unit_data_config(tmp_path):
    out = tmp_path / "s"
    _ok(
        [
            "prune",
            "--cells",
            "rnn_tanh",
            "--targets",
            "h2h",
            "--amounts",
            "100",
            "--retrain-epochs",
            "0",
            "--epochs",
            "1",
            "--grammar",
            "embedded_reber",
            "--out",
            str(out),
            *_TINY,
        ]
    )
    configs = _configs(out)
    assert len(configs) == 2
    assert {c["data"]["grammar"] for c in configs} == {"embedded_reber"}
