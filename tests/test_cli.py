"""One smoke test per CLI command on tiny data, plus one-line errors for bad input."""

import torch
from click.testing import CliRunner

from sparsernn.cli import cli


def _ok(args):
    res = CliRunner().invoke(cli, args, catch_exceptions=False)
    assert res.exit_code == 0, res.output
    return res.output


def _fails(args, match):
    res = CliRunner().invoke(cli, args)
    assert res.exit_code == 2, res.output
    lines = [ln for ln in res.output.strip().splitlines() if ln.startswith("error")]
    assert len(lines) == 1 and match in lines[0], res.output
    return res.output


def test_every_command_on_tiny_data(tmp_path):
    d = tmp_path / "data"
    _ok(["data", "generate", "--out", str(d), "--n-strings", "200", "--seed", "3"])
    out = _ok(["data", "check", str(d / "train.csv")])
    assert out.split("label disagrees with reber:")[1].split()[0] == "0"
    ckpt = tmp_path / "m.pt"
    out = _ok(
        [
            "train",
            "--cell",
            "lstm",
            "--epochs",
            "1",
            "--hidden-size",
            "8",
            "--embedding-dim",
            "4",
            "--train-csv",
            str(d / "train.csv"),
            "--test-csv",
            str(d / "test.csv"),
            "--out",
            str(ckpt),
            "--device",
            "cpu",
        ]
    )
    assert "test_accuracy" in out and ckpt.exists()
    assert "accuracy" in _ok(["evaluate", str(ckpt), "--test-csv", str(d / "test.csv")])
    out = _ok(["evaluate", str(ckpt), "--test-csv", str(d / "test.csv"), "--by-kind"])
    assert "alt_TPTVSXXSPV" in out and "n_wrong" in out  # kinds inferred from the CSV
    study = tmp_path / "study"
    common = ["--out", str(study), "--n-strings", "120", "--workers", "1", "--seeds", "1"]
    out = _ok(
        [
            "prune",
            "--cells",
            "gru",
            "--targets",
            "h2h",
            "--amounts",
            "50,100",
            "--retrain-epochs",
            "1",
            "--epochs",
            "1",
            *common,
        ]
    )
    assert "tolerated_sparsity" in out and "after pruning (epoch 0)" in out
    out = _ok(
        [
            "structure",
            "--cells",
            "rnn_tanh",
            "--generators",
            "ba",
            "--graphs",
            "2",
            "--nodes",
            "10:12",
            "--epochs",
            "1",
            *common,
        ]
    )
    assert "mean_accuracy" in out
    plots = {p.name for p in (study / "plots").iterdir()}
    assert plots == {
        "pruning_accuracy.png",
        "recovery_curves.png",
        "training_curves.png",
        "structure_accuracy.png",
        "property_scatter.png",
    }
    assert all((study / "plots" / name).read_bytes()[:4] == b"\x89PNG" for name in plots)
    assert "prune" in _ok(["status", str(study)])
    _ok(["report", str(study), "-o", str(tmp_path / "r.html")])
    assert (tmp_path / "r.html").exists()
    for cmd in (
        [],
        ["data"],
        ["train"],
        ["prune"],
        ["structure"],
        ["reproduce"],
        ["status"],
        ["report"],
        ["evaluate"],
        ["data", "generate"],
        ["data", "check"],
    ):
        assert "Usage" in _ok([*cmd, "--help"])


def test_study_format_checkpoint_via_cli(tmp_path):
    from sparsernn.data import Dataset, write_csv

    state = {"embedding.weight": torch.randn(128, 3)}
    for k in range(3):
        i = 3 if k == 0 else 4
        state |= {
            f"recurrent.recurrent_layers.{k}.weight_ih": torch.randn(4, i),
            f"recurrent.recurrent_layers.{k}.weight_hh": torch.randn(4, 4),
            f"recurrent.recurrent_layers.{k}.bias_ih": torch.randn(4),
            f"recurrent.recurrent_layers.{k}.bias_hh": torch.randn(4),
        }
    state |= {"out.weight": torch.randn(2, 4), "out.bias": torch.randn(2)}
    torch.save(state, tmp_path / "study.pt")
    write_csv(Dataset(["BTXSE", "BPQE"], [1, 0]), tmp_path / "t.csv")
    out = _ok(
        [
            "evaluate",
            str(tmp_path / "study.pt"),
            "--study-format",
            "rnn_relu",
            "--test-csv",
            str(tmp_path / "t.csv"),
        ]
    )
    assert "accuracy" in out


def test_bad_input_gives_one_line_errors(tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text("string,valid\nBTXSE,1\nBPVVE,7\n")
    _fails(["data", "check", str(bad)], "bad.csv")
    bad.write_text("text,label\nBTXSE,1\n")
    _fails(["data", "check", str(bad)], "bad.csv")
    _fails(["prune", "--out", str(tmp_path / "s"), "--amounts", "50,150"], "outside 0..100")
    _fails(["prune", "--out", str(tmp_path / "s"), "--cells", "tcn"], "unknown cell")
    _fails(["prune", "--out", str(tmp_path / "s"), "--targets", "all"], "unknown pruning target")
    _fails(["prune", "--out", str(tmp_path / "s"), "--bundle", "-1"], "bundle=-1")
    _fails(["reproduce", "--out", str(tmp_path / "s"), "--bundle", "-2"], "bundle=-2")
    _fails(["structure", "--out", str(tmp_path / "s"), "--nodes", "5:3"], "nodes")
    _fails(["structure", "--out", str(tmp_path / "s"), "--generators", "xx"], "generator")
    _fails(["status", str(tmp_path / "nowhere")], "no results.sqlite")
    _fails(["report", str(tmp_path / "nowhere")], "no results.sqlite")
    _fails(["data", "generate", "--out", str(tmp_path / "d"), "--mix", "a,b"], "--mix")
    _fails(["train", "--train-csv", str(bad)], "--test-csv")


def test_flags_override_config_file_but_defaults_do_not(tmp_path):
    from sparsernn.experiments.results import load_results

    cfg = tmp_path / "study.toml"
    cfg.write_text('[pruning]\namounts = [30.0]\ntargets = ["i2h"]\nretrain_epochs = 1\n')
    study = tmp_path / "s"
    _ok(
        [
            "prune",
            "--config",
            str(cfg),
            "--cells",
            "rnn_relu",
            "--epochs",
            "1",
            "--n-strings",
            "120",
            "--workers",
            "1",
            "--out",
            str(study),
        ]
    )
    points = load_results(study).pruning_points
    assert points[["target", "amount"]].values.tolist() == [["i2h", 30.0]]


def test_structure_gate_layout_flag_reaches_the_study(tmp_path, monkeypatch):
    import sparsernn.cli.studies as cli_module

    seen = {}

    class _Stop(Exception):
        pass

    def fake_run(study, *args, **kwargs):
        seen["study"] = study
        raise _Stop

    monkeypatch.setattr(cli_module, "_run", fake_run)
    for flag, want in (([], "blocked"), (["--gate-layout", "interleaved"], "interleaved")):
        res = CliRunner().invoke(cli, ["structure", "--out", str(tmp_path / "s"), *flag])
        assert isinstance(res.exception, _Stop), res.output
        assert seen["study"].structure.gate_layout == want
    res = CliRunner().invoke(cli, ["structure", "--gate-layout", "diagonal"])
    assert res.exit_code == 2 and "--gate-layout" in res.output


def test_study_structure_checkpoint_via_cli(tmp_path):
    import pickle
    import sys
    from pathlib import Path

    import networkx as nx

    from sparsernn.data import Dataset, write_csv

    sys.path.insert(0, str(Path(__file__).parent / "nn"))
    from study_format import structure_state

    graph = nx.Graph([(0, 2), (1, 2), (1, 3), (2, 3), (2, 4), (3, 4)])
    torch.save(structure_state(graph, "gru"), tmp_path / "net.pt")
    nx.write_graphml(graph, tmp_path / "g.graphml")
    write_csv(Dataset(["BTXSE", "BPQE", "BPVVE"], [1, 0, 1]), tmp_path / "t.csv")
    args = ["evaluate", str(tmp_path / "net.pt"), "--test-csv", str(tmp_path / "t.csv")]
    out = _ok([*args, "--study-format", "gru", "--graph", str(tmp_path / "g.graphml")])
    assert out.startswith("accuracy ")
    with (tmp_path / "g.gpickle").open("wb") as fh:
        pickle.dump(graph, fh)
    pickled = [*args, "--study-format", "gru", "--graph", str(tmp_path / "g.gpickle")]
    _fails(pickled, "allow_pickle")
    assert "accuracy" in _ok([*pickled, "--allow-pickle"])
    _fails([*args, "--graph", str(tmp_path / "g.graphml")], "--study-format")
    _fails([*args, "--study-format", "gru", "--graph", str(tmp_path / "net.pt")], "unknown suffix")
    wrong = nx.Graph([(0, 1), (1, 2), (2, 3)])
    nx.write_graphml(wrong, tmp_path / "w.graphml")
    _fails([*args, "--study-format", "gru", "--graph", str(tmp_path / "w.graphml")], "right graph")
    _fails(
        [
            "evaluate",
            str(tmp_path / "t.csv"),
            "--test-csv",
            str(tmp_path / "t.csv"),
            "--study-format",
            "gru",
        ],
        "not a PyTorch checkpoint (state dict) file",
    )


def test_sharp_edges_give_one_line_errors(tmp_path, monkeypatch):
    """Each used to misbehave: exit 0 with an empty table, pandas' "Empty DataFrame", a fix
    naming a flag the command lacks, "unreadable checkpoint (IndexError)", a silent SIGTERM."""
    _fails(["train", "--epochs", "0"], "--epochs 0: nothing to train")
    _fails(["structure", "--out", str(tmp_path / "s"), "--graphs", "0"], "nothing was asked for")
    assert not (tmp_path / "s").exists()
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "results.sqlite").write_text("not a database\n")
    out = _fails(["status", str(foreign)], "not a sparsernn results store; give status the")
    assert "another --out" not in out
    out = _fails(["report", str(foreign)], "not a sparsernn results store; give report the")
    assert "another --out" not in out
    _fails(["structure", "--out", str(foreign), "--graphs", "1"], "choose another --out directory")
    csv = tmp_path / "test.csv"
    csv.write_text("string,valid\nBTXSE,1\n")
    out = _fails(["evaluate", str(csv), "--test-csv", str(csv)], "not a sparsernn checkpoint")
    assert "IndexError" not in out
    res = CliRunner().invoke(cli, ["train", "--threads", "0"])
    assert res.exit_code == 2 and "--threads" in res.output

    from sparsernn.experiments import runner

    def terminated(*args, **kwargs):
        raise runner.Terminated

    monkeypatch.setattr(runner, "run_study", terminated)
    res = CliRunner().invoke(cli, ["structure", "--out", str(tmp_path / "t"), "--graphs", "1"])
    assert res.exit_code == 128 + 15
    assert "interrupted: finished units are stored; rerun the command to resume" in res.output


def test_threads_option_reaches_fit_and_evaluate(tmp_path, monkeypatch):
    import sparsernn.train as train_module

    seen = []
    real_fit, real_evaluate = train_module.fit, train_module.evaluate
    monkeypatch.setattr(
        train_module, "fit", lambda *a, **k: seen.append(a[3].threads) or real_fit(*a, **k)
    )
    monkeypatch.setattr(
        train_module,
        "evaluate",
        lambda *a, **k: seen.append(k.get("threads")) or real_evaluate(*a, **k),
    )
    d = tmp_path / "data"
    _ok(["data", "generate", "--out", str(d), "--n-strings", "60"])
    ckpt = tmp_path / "m.pt"
    csvs = ["--train-csv", str(d / "train.csv"), "--test-csv", str(d / "test.csv")]
    small = ["--hidden-size", "4", "--embedding-dim", "2", "--num-layers", "1"]
    _ok(["train", "--epochs", "1", *small, *csvs, "--out", str(ckpt), "--threads", "2"])
    _ok(["evaluate", str(ckpt), "--test-csv", str(d / "test.csv"), "--threads", "2"])
    _ok(["evaluate", str(ckpt), "--test-csv", str(d / "test.csv")])
    assert seen == [2, 2, None]
