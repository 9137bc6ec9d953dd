"""Studies on the user's own inputs through the CLI: CSV data, graph folders, --grammar."""

from __future__ import annotations

import hashlib
import json
import pickle
import shutil

import networkx as nx
import pytest
from click.testing import CliRunner

from sparsernn.cli import cli
from sparsernn.experiments import load_results
from sparsernn.store import ResultsStore

_TINY = ["--n-strings", "120", "--workers", "1", "--seeds", "1", "--device", "cpu"]


def _ok(args):
    res = CliRunner().invoke(cli, args, catch_exceptions=False)
    assert res.exit_code == 0, res.output
    return res.output


def _fails(args, *words):
    res = CliRunner().invoke(cli, args)
    assert res.exit_code == 2, res.output
    lines = [ln for ln in res.output.strip().splitlines() if ln.startswith("error")]
    assert len(lines) == 1, res.output
    for word in words:
        assert word in lines[0], lines[0]
    return lines[0]


def _keys(study_dir):
    if not (study_dir / "results.sqlite").exists():
        return None
    with ResultsStore.open(study_dir, readonly=True) as store:
        return sorted(store.keys())


def _configs(study_dir):
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


# ----------------------------------------------------------------------------- graph folders
_GRAPHS = {"a": nx.cycle_graph(6), "b": nx.complete_graph(4), "c": nx.star_graph(4)}


def _graph_dir(folder):
    folder.mkdir()
    for name, graph in _GRAPHS.items():
        nx.write_graphml(graph, folder / f"{name}.graphml")
    (folder / "notes.txt").write_text("not a graph: ignored")
    return folder


def _structure(graphs, out, *extra):
    args = ["structure", "--graphs-from", str(graphs), "--cells", "gru", "--epochs", "1"]
    return _ok([*args, "--out", str(out), *_TINY, "--n-strings", "200", *extra])


def test_graph_folder_trains_its_graphs_and_keys_follow_content(tmp_path):
    graphs, out = _graph_dir(tmp_path / "graphs"), tmp_path / "s"
    text = _structure(graphs, out)
    assert "3 units done" in text
    res = load_results(out).structure
    assert res["graph"].tolist() == ["a", "b", "c"]
    assert res["graph_id"].tolist() == [0, 1, 2]
    assert set(res["generator"]) == {"file"} and res["test_accuracy"].between(0, 1).all()
    want = {n: (g.number_of_nodes(), g.number_of_edges()) for n, g in _GRAPHS.items()}
    assert {r.graph: (r.nodes, r.edges) for r in res.itertuples()} == want
    keys = _keys(out)

    moved = tmp_path / "elsewhere"
    shutil.move(graphs, moved)  # a moved folder is the same study
    assert "0 units done, 0 failed, 3 already stored" in _structure(moved, out)
    assert _keys(out) == keys

    bigger = nx.complete_graph(4)
    bigger.add_edge(3, 4)
    nx.write_graphml(bigger, moved / "b.graphml")  # new content: a new unit for b alone
    assert "1 units done, 0 failed, 2 already stored" in _structure(moved, out)
    res = load_results(out).structure
    assert res.set_index("graph")["edges"].to_dict() == {"a": 6, "b": 7, "c": 4}


def test_graph_folder_rows_reach_the_report(tmp_path):
    graphs, out = _graph_dir(tmp_path / "graphs"), tmp_path / "s"
    _structure(graphs, out)
    _ok(["report", str(out), "-o", str(tmp_path / "r.html")])
    table = (tmp_path / "r_tables" / "structure_graphs.csv").read_text().splitlines()
    assert table[0].startswith("cell,graph_id,graph,mean_accuracy,n")
    assert [row.split(",")[2] for row in table[1:]] == ["a", "b", "c"]


def test_pickles_need_allow_pickle(tmp_path):
    graphs, out = _graph_dir(tmp_path / "graphs"), tmp_path / "s"
    with open(graphs / "d.gpickle", "wb") as fh:
        pickle.dump(nx.path_graph(5), fh)
    line = _fails(
        ["structure", "--graphs-from", str(graphs), "--out", str(out)],
        "d.gpickle",
        "unpickling runs code",
        "GraphML",
        "--allow-pickle",
    )
    assert "write_graphml" in line
    assert _keys(out) is None  # nothing stored, not even an empty store
    _structure(graphs, out, "--allow-pickle")
    assert load_results(out).structure["graph"].tolist() == ["a", "b", "c", "d"]


@pytest.mark.parametrize(
    ("graph", "words"),
    [
        (nx.Graph([(0, 1), (2, 3)]), ["bad.graphml", "disconnected"]),
        (nx.empty_graph(3), ["bad.graphml", "disconnected"]),
        (nx.Graph(), ["bad.graphml", "empty"]),
    ],
)
def test_unusable_graphs_are_one_line_errors_before_any_unit(tmp_path, graph, words):
    graphs, out = _graph_dir(tmp_path / "graphs"), tmp_path / "s"
    nx.write_graphml(graph, graphs / "bad.graphml")
    _fails(["structure", "--graphs-from", str(graphs), "--out", str(out)], *words)
    assert _keys(out) is None


def test_empty_or_missing_graph_folder_is_an_error(tmp_path):
    (tmp_path / "empty").mkdir()
    out = tmp_path / "s"
    _fails(["structure", "--graphs-from", str(tmp_path / "empty"), "--out", str(out)], "no graph")
    _fails(["structure", "--graphs-from", str(tmp_path / "none"), "--out", str(out)], "none")
    assert _keys(out) is None


# ----------------------------------------------------------------------------- own CSV data
_PRUNE = ["prune", "--cells", "rnn_tanh", "--targets", "h2h", "--amounts", "100"]
_PRUNE += ["--retrain-epochs", "0", "--epochs", "1", *_TINY]


def _csvs(folder, seed=0):
    from sparsernn.data import DataSpec, make_dataset, write_csv

    folder.mkdir(exist_ok=True)
    train, test = make_dataset(DataSpec(n_strings=80, seed=seed))
    write_csv(train, folder / "train.csv")
    write_csv(test, folder / "test.csv")
    return folder / "train.csv", folder / "test.csv"


def _data_configs(out):
    return [c["data"] for c in _configs(out)]


def test_own_csv_files_key_by_content_not_path(tmp_path, monkeypatch):
    train, test = _csvs(tmp_path / "d")
    out = tmp_path / "s"
    monkeypatch.chdir(tmp_path)  # relative CLI paths: from the working directory
    text = _ok([*_PRUNE, "--train-csv", "d/train.csv", "--test-csv", "d/test.csv", "--out", "s"])
    assert "2 units done" in text
    data = _data_configs(out)
    digest = hashlib.sha256(train.read_bytes()).hexdigest()
    assert all(d["train_csv"] == {"sha256": digest} for d in data)
    assert str(tmp_path) not in json.dumps(_configs(out))  # no path in the stored configs
    keys = _keys(out)

    moved = tmp_path / "moved"
    moved.mkdir()
    shutil.move(train, moved / "my-train.csv")  # moved and renamed: the same study
    shutil.move(test, moved / "my-test.csv")
    status = _ok(["status", "s"]).splitlines()  # no need for the files to read a study
    assert status[2].split()[:4] == ["base", "1", "0", "0"]
    assert len(load_results(out).pruning_points) == 1
    flags = ["--train-csv", str(moved / "my-train.csv"), "--test-csv", str(moved / "my-test.csv")]
    assert "0 units done, 0 failed, 2 already stored" in _ok([*_PRUNE, *flags, "--out", "s"])
    assert _keys(out) == keys

    lines = (moved / "my-train.csv").read_text().splitlines()
    (moved / "my-train.csv").write_text("\n".join(lines[:-1]) + "\n")  # edited: a new study
    assert "2 units done, 0 failed, 0 already stored" in _ok([*_PRUNE, *flags, "--out", "s"])
    assert len(_keys(out)) == 4


def test_own_csv_files_from_toml_resolve_against_its_folder(tmp_path, monkeypatch):
    conf = tmp_path / "conf"
    conf.mkdir()
    _csvs(tmp_path / "d")
    (conf / "study.toml").write_text(
        '[data]\ntrain_csv = "../d/train.csv"\ntest_csv = "../d/test.csv"\n'
    )
    monkeypatch.chdir(tmp_path / "d")  # not the TOML's folder
    out = tmp_path / "s"
    _ok([*_PRUNE, "--config", str(conf / "study.toml"), "--out", str(out)])
    cli_out = tmp_path / "s2"
    _ok([*_PRUNE, "--train-csv", "train.csv", "--test-csv", "test.csv", "--out", str(cli_out)])
    assert _keys(out) == _keys(cli_out)  # same files, same units
    stored = (out / "study.toml").read_text()
    assert str(tmp_path / "d" / "train.csv") in stored  # absolute in the study's own record


def test_missing_or_malformed_csv_is_an_error_and_the_store_is_untouched(tmp_path):
    train, test = _csvs(tmp_path / "d")
    out = tmp_path / "s"
    _ok([*_PRUNE, "--train-csv", str(train), "--test-csv", str(test), "--out", str(out)])
    with ResultsStore.open(out, readonly=True) as store:
        before = (store.get_meta("study"), sorted(store.keys()))
    toml = (out / "study.toml").read_text()
    flags = ["--train-csv", str(train), "--test-csv", str(tmp_path / "nope.csv")]
    _fails([*_PRUNE, *flags, "--out", str(out)], "nope.csv", "no such file")
    test.write_text("string,valid\nBTXSE,1\nBPVVE,7\n")
    flags = ["--train-csv", str(train), "--test-csv", str(test)]
    _fails([*_PRUNE, *flags, "--out", str(out)], "test.csv", "not 0 or 1")
    _fails([*_PRUNE, "--train-csv", str(train), "--out", str(out)], "both")
    with ResultsStore.open(out, readonly=True) as store:
        assert (store.get_meta("study"), sorted(store.keys())) == before
    assert (out / "study.toml").read_text() == toml
