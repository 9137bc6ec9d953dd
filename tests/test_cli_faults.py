"""The command line against faults and bad input: each ends in one ``error:`` line naming the
problem and the fix, a non-zero exit status, and nothing stored lost."""

from __future__ import annotations

import errno
import json
import pickle
import subprocess
import sys
import time
from pathlib import Path

import networkx as nx
import pytest
from click.testing import CliRunner

from sparsernn.cli import cli
from sparsernn.errors import GraphError
from sparsernn.experiments import runner, units
from sparsernn.graphs.io import MAX_NODES, pickle_conversion, read_graph
from sparsernn.store import ResultsStore

#: A structure study of two tiny graphs (a few seconds).
TINY = ["structure", "--cells", "rnn_tanh", "--generators", "ws", "--graphs", "2",
        "--nodes", "10:12", "--epochs", "1", "--n-strings", "120", "--workers", "1",
        "--device", "cpu"]  # fmt: skip


def _invoke(args):
    return CliRunner().invoke(cli, [str(a) for a in args])


def _error_line(result, status: int = 2) -> str:
    assert result.exit_code == status, result.output
    lines = [ln for ln in result.stderr.splitlines() if ln.startswith("error")]
    assert len(lines) == 1, result.stderr
    assert not any(ln.startswith("Traceback") for ln in result.output.splitlines())
    return lines[0]


def _keys(study: Path) -> list[str] | None:
    if not (study / "results.sqlite").exists():
        return None
    with ResultsStore.open(study, readonly=True) as store:
        return sorted(store.keys())


# -- 9. a study whose units failed exits non-zero -----------------------------------------------


def test_a_study_whose_units_failed_exits_1_with_a_line_naming_retry_failed(tmp_path, monkeypatch):
    real = units._run_structure

    def fail_graph_1(cfg):
        if cfg["graph_id"] == 1:
            raise RuntimeError("simulated failure")
        return real(cfg)

    monkeypatch.setattr(units, "_run_structure", fail_graph_1)
    out = tmp_path / "s"
    line = _error_line(_invoke([*TINY, "--out", out]), status=1)
    assert line == (
        "error: 1 unit(s) failed (the other results are stored); rerun the same command with "
        "--retry-failed to try them again"
    )
    monkeypatch.setattr(units, "_run_structure", real)
    result = _invoke([*TINY, "--out", out, "--retry-failed"])
    assert result.exit_code == 0, result.output
    assert "1 units done, 0 failed, 1 already stored" in result.stdout


# -- 4, 7. the disk, the --out path -------------------------------------------------------------


def test_a_full_disk_while_storing_an_artefact_is_one_line(tmp_path, monkeypatch):
    def full(path, data, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device", str(path))

    monkeypatch.setattr(runner, "atomic_write_bytes", full)
    out = tmp_path / "s"
    args = ["prune", "--cells", "rnn_tanh", "--targets", "h2h", "--amounts", "100",
            "--retrain-epochs", "1", "--epochs", "1", "--n-strings", "120", "--workers", "1",
            "--device", "cpu", "--out", out]  # fmt: skip
    line = _error_line(_invoke(args))
    assert line.startswith(f"error: {out / 'artefacts'}")
    assert line.endswith(
        "model.pt: No space left on device; free some disk space and rerun the command "
        "(finished units are stored)"
    )
    assert _keys(out) == []  # the base whose checkpoint could not be written is not stored


def test_out_naming_the_results_file_is_refused_before_anything_runs(tmp_path):
    out = tmp_path / "s"
    assert _invoke([*TINY, "--out", out]).exit_code == 0
    before = _keys(out)
    line = _error_line(_invoke([*TINY, "--graphs", "3", "--out", out / "results.sqlite"]))
    assert line == (
        f"error: --out {out / 'results.sqlite'} names a file; --out takes the study directory "
        f"that holds results.sqlite (here --out {out})"
    )
    assert _keys(out) == before
    result = _invoke(["status", out / "results.sqlite"])  # readers take either
    assert result.exit_code == 0 and "structure" in result.stdout


# -- 9. bad input the up-front checks must catch ------------------------------------------------


@pytest.mark.parametrize(
    ("value", "words"),
    [
        ("1.5", "TrainConfig.epochs must be an integer, not a float (1.5)"),
        ("true", "TrainConfig.epochs must be an integer, not a bool (true)"),
        ('"five"', "TrainConfig.epochs must be an integer, not text ('five')"),
    ],
)
def test_a_mistyped_field_in_a_study_file_is_one_line_naming_it(tmp_path, value, words):
    config = tmp_path / "study.toml"
    config.write_text(f"[train]\nepochs = {value}\n")
    out = tmp_path / "s"
    line = _error_line(_invoke([*TINY, "--config", config, "--out", out]))
    assert line == f"error: {config}: {words}"
    assert not out.exists()


def test_a_study_file_that_is_not_utf8_is_one_line(tmp_path):
    config = tmp_path / "study.toml"
    config.write_bytes(b"[train]\nepochs = 1  # caf\xe9\n")
    line = _error_line(_invoke([*TINY, "--config", config, "--out", tmp_path / "s"]))
    assert line == (
        f"error: {config} is not UTF-8 text (byte 0xe9 at offset 25); TOML files are UTF-8: "
        "save it as UTF-8"
    )


def test_too_many_strings_is_refused_before_the_store_exists(tmp_path):
    out = tmp_path / "s"
    line = _error_line(_invoke([*TINY, "--n-strings", "99999999999", "--out", out]))
    assert "n_strings = 99999999999 (--n-strings) is more than sparsernn generates" in line
    assert not out.exists()
    line = _error_line(_invoke(["train", "--n-strings", "99999999999"]))
    assert "ask for fewer" in line


def test_a_csv_string_with_a_nul_is_refused_before_the_store_exists(tmp_path):
    data = tmp_path / "data"
    assert _invoke(["data", "generate", "--out", data, "--n-strings", "200"]).exit_code == 0
    lines = (data / "train.csv").read_text().splitlines()
    lines[3] = lines[3][:2] + "\x00" + lines[3][2:]
    (data / "train.csv").write_text("\n".join(lines) + "\n")
    out = tmp_path / "s"
    args = [*TINY[:-6], "--workers", "1", "--train-csv", data / "train.csv", "--test-csv",
            data / "test.csv", "--out", out]  # fmt: skip
    line = _error_line(_invoke(args))
    assert f"{data / 'train.csv'} (train_csv): strings[2]" in line and "'\\x00'" in line
    assert "remove or replace it" in line and not out.exists()
    result = _invoke(["data", "check", data / "test.csv", data / "train.csv"])
    line = _error_line(result)  # data check says what a study would refuse
    assert result.exit_code != 0 and f"{data / 'train.csv'}: strings[2]" in line


# -- 19. new-user edges -------------------------------------------------------------------------


def test_conflicting_data_flags_are_refused(tmp_path):
    line = _error_line(_invoke(["train", "--task", "copy", "--grammar", "embedded_reber"]))
    assert "--task copy generates its own data, so --grammar embedded_reber would be " in line
    line = _error_line(_invoke([*TINY, "--task", "reber", "--grammar", "embedded_reber",
                                "--out", tmp_path / "s"]))  # fmt: skip
    assert "--task reber names another grammar" in line
    csv = tmp_path / "d.csv"
    csv.write_text("string,valid\nBTXSE,1\n")
    line = _error_line(
        _invoke(["train", "--train-csv", csv, "--test-csv", csv, "--grammar", "reber"])
    )
    assert "--grammar reber applies to generated data, not to --train-csv" in line


def test_negative_graphs_usage_errors_and_help_choices(tmp_path):
    line = _error_line(_invoke(["structure", "--graphs", "-1", "--out", tmp_path / "s"]))
    assert line == "error: --graphs -1: give the graphs per generator, 1 or more"
    line = _error_line(_invoke(["train", "--cell", "foo"]))
    assert line.startswith("error: Invalid value for '--cell': 'foo' is not one of")
    assert line.endswith(" train --help)")  # (CliRunner names the program "cli")
    assert "--grammar [reber|embedded_reber]" in _invoke(["train", "--help"]).stdout


# -- 10, 12. graph files ------------------------------------------------------------------------


def test_a_graph_file_asking_for_millions_of_nodes_is_refused_at_once(tmp_path):
    path = tmp_path / "huge.edgelist"
    path.write_text("# n_nodes: 300000000\n0 1\n1 2\n")
    t0 = time.perf_counter()
    with pytest.raises(GraphError) as info:
        read_graph(path)
    assert time.perf_counter() - t0 < 1.0  # nothing was allocated for them
    assert str(info.value) == (
        f"graph file {path} asks for 300000000 nodes; sparsernn reads graphs of at most "
        f"{MAX_NODES} nodes (each node is a hidden unit, and the graph properties take "
        "quadratic time): use a smaller graph"
    )
    big = nx.path_graph(MAX_NODES + 1)
    (tmp_path / "big.json").write_text(json.dumps(nx.node_link_data(big)))
    with pytest.raises(GraphError, match=f"asks for {MAX_NODES + 1} nodes"):
        read_graph(tmp_path / "big.json")
    nx.write_graphml(big, tmp_path / "big.graphml")
    with pytest.raises(GraphError, match=f"asks for {MAX_NODES + 1} nodes"):
        read_graph(tmp_path / "big.graphml")
    nx.write_graphml(nx.path_graph(MAX_NODES), tmp_path / "ok.graphml")
    assert read_graph(tmp_path / "ok.graphml").number_of_nodes() == MAX_NODES


def test_the_pickle_conversion_command_runs_no_code_from_the_file_name(tmp_path):
    name = "x$(touch PWNED)'; touch PWNED2; '.gpickle"
    path = tmp_path / name
    with path.open("wb") as fh:
        pickle.dump(nx.path_graph(4), fh)
    command = pickle_conversion(path)
    with pytest.raises(GraphError) as info:
        read_graph(path)
    assert command in str(info.value)
    assert command.startswith("python -c ")
    command = command.replace("python", f"'{sys.executable}'", 1)
    done = subprocess.run(["bash", "-c", command], cwd=tmp_path, capture_output=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert not (tmp_path / "PWNED").exists() and not (tmp_path / "PWNED2").exists()
    converted = path.with_suffix(".graphml")
    assert sorted(read_graph(converted).edges()) == [(0, 1), (1, 2), (2, 3)]


def test_a_report_that_cannot_be_written_is_one_line(tmp_path):
    out = tmp_path / "s"
    assert _invoke([*TINY, "--out", out]).exit_code == 0
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    line = _error_line(_invoke(["report", out, "-o", blocker / "r.html"]))
    assert line.startswith(f"error: {blocker}") and "Not a directory" in line
    assert line.endswith("check the path, then rerun the command")
