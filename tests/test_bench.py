"""A tiny smoke run of the benchmark: structure of the results, table and JSON (no timings)."""

import json

import pytest
import torch

from sparsernn import bench
from sparsernn.bench import (
    BenchConfig,
    command,
    format_report,
    project_full_profile,
    run_benchmark,
    threads,
)
from sparsernn.bench.timing import step_flops, structure_flops
from sparsernn.errors import ConfigError

TINY = BenchConfig(
    cells=("rnn_relu", "lstm"),
    batch_sizes=(32,),
    embedding_dim=6,
    hidden_size=6,
    num_layers=2,
    warmup=0,
    repeats=1,
    graph_kinds=("ws", "ba"),
    graph_nodes=(10,),
    structured_cells=("gru",),
    structured_repeats=1,
    n_models=3,
    many_repeats=1,
    n_strings=200,
    threads=1,
)


@pytest.fixture(scope="module")
def results():
    return run_benchmark(TINY)


def test_results_structure(results):
    assert set(results) == {"meta", "config", "cells", "structured", "many", "projection"}
    assert results["meta"]["threads"] == 1 and results["meta"]["reference"] is True
    assert [(r["cell"], r["batch_size"]) for r in results["cells"]] == [
        ("rnn_relu", 32),
        ("lstm", 32),
    ]
    for r in results["cells"]:
        for name in ("reference", "masked", "dense"):
            assert r[f"{name}_ms"] > 0 and r[f"{name}_saved_mb"] > 0
        assert r["b_over_a"] == pytest.approx(r["masked_ms"] / r["reference_ms"])
        assert r["b_over_c"] == pytest.approx(r["masked_ms"] / r["dense_ms"])
    assert [r["graph"] for r in results["structured"]] == ["ws-10", "ba-10"]
    assert all(r["speedup"] > 0 and r["layers"] >= 2 for r in results["structured"])
    assert not any("wavefront" in key for r in results["structured"] for key in r)
    peak = results["meta"]["peak_gflops"]
    for r in results["structured"]:
        assert 0 < r["useful_gflop"] < r["executed_gflop"]
        # ours runs the compiled loop here (the tests build it), timed beside PyTorch ops
        assert r["native"] is True and r["torch_ms"] > 0 and r["torch_eval_ms"] > 0
        assert r["native_speedup"] == pytest.approx(r["torch_ms"] / r["ours_ms"])
        assert r["executed_gflops"] == pytest.approx(r["executed_gflop"] / r["torch_ms"] * 1e3)
        assert r["useful_gflops"] == pytest.approx(r["useful_gflop"] / r["ours_ms"] * 1e3)
        assert r["equivalent_gflops"] == pytest.approx(r["executed_gflop"] / r["ours_ms"] * 1e3)
        assert r["useful_peak_fraction"] == pytest.approx(r["useful_gflops"] / peak)
    assert [(r["cell"], r["n_models"]) for r in results["many"]] == [("rnn_relu", 3), ("lstm", 3)]
    assert results["meta"]["peak_gflops"] > 0
    for r in results["many"]:
        assert r["single_gflops"] == pytest.approx(r["step_gflop"] / r["one_by_one_ms"] * 1e3)
        assert r["ceiling_speedup"] == pytest.approx(
            results["meta"]["peak_gflops"] / r["single_gflops"]
        )
    hours = results["projection"]["hours"]
    assert set(hours) == {"reference", "masked", "best"}
    kernels = results["projection"]["structure_by_kernel"]
    assert kernels["ours"] == hours["masked"]["structure"] and kernels["torch"] > 0
    assert set(results["projection"]["base_epoch_s"]) == {"rnn_relu", "lstm"}
    assert all(h["total"] > 0 for h in hours.values())


def test_report_and_json(results, tmp_path):
    text = format_report(results)
    for heading in ("Training step", "K models at once", "StructuredRNN", "Projected wall time"):
        assert heading in text
    assert "rnn_relu" in text and "ws-10" in text
    assert "useful" in text and "% peak" in text
    path = tmp_path / "bench.json"
    path.write_text(json.dumps(results))
    assert json.loads(path.read_text())["config"]["cells"] == ["rnn_relu", "lstm"]


def test_step_flops_hand_computed():
    # GRU, 2 layers of 4 units on 3 inputs, batch 2, 5 steps: forward 2*2*5*12*(3+4) +
    # 2*2*5*12*(4+4) = 1680 + 1920 = 3600 FLOPs; a training step is 3x that
    assert step_flops("gru", 2, 5, 3, 4, 2) == 3 * 3600
    assert step_flops("rnn_tanh", 1, 1, 1, 1, 1) == 3 * 2 * 2


@pytest.mark.parametrize(("cell", "gates"), [("rnn_tanh", 1), ("gru", 3), ("lstm", 4)])
def test_structure_flops_hand_computed(cell, gates):
    """The study's 5-node example (layers [0, 0, 1, 2, 3], sizes [2, 1, 1, 1], input 2)."""
    import networkx as nx

    from sparsernn.nn.structured import StructuredRNN

    net = StructuredRNN(nx.Graph([(0, 2), (1, 2), (1, 3), (2, 3), (2, 4), (3, 4)]), cell)
    flops = structure_flops(net, batch=4, steps=10)
    per_row = 3 * 2 * 4 * 10  # forward + backward, multiply-add = 2, batch 4, 10 steps
    # wide layers (width W, input I): input->0 (2, 2), 0->{1,2} (2, 2), 1->{2,3} (2, 1),
    # 2->{3} (1, 1); dense G*W*(I + W) each
    assert flops["executed"] == per_row * gates * (2 * 4 + 2 * 4 + 2 * 3 + 1 * 2)
    # i2h edges: input 2x2 full, 0->1 two (0-2, 1-2), 0->2 (1-3), 1->2 (2-3), 1->3 (2-4),
    # 2->3 (3-4): 10 per gate; h2h block-diagonal: 2*2 + five 1x1 sub-layers = 9 per gate
    assert flops["useful"] == per_row * gates * (10 + 9)
    assert set(flops) == {"executed", "useful"}


def test_projection_counts_the_full_profile():
    row = {"cell": "gru", "batch_size": 32, "masked_ms": 10.0, "masked_eval_ms": 2.0}
    fake = {
        "cells": [row],
        "many": [
            {
                "cell": "gru",
                "batch_size": 32,
                "n_models": 30,
                "batched_ms": 150.0,
                "batched_eval_ms": 30.0,
                "one_by_one_ms": 10.0,
                "single_eval_ms": 2.0,
            }
        ],
        "structured": [
            {
                "cell": "gru",
                "ours_ms": 20.0,
                "ours_eval_ms": 4.0,
                "torch_ms": 60.0,
                "torch_eval_ms": 8.0,
                "reference_ms": None,
            }
        ],
    }
    projection = project_full_profile(fake, cores=2)
    hours = projection["hours"]
    torch_epoch = (147 * 60.0 + 49 * 8.0) / 1e3
    assert projection["structure_by_kernel"]["torch"] == pytest.approx(
        4 * 200 * 15 * torch_epoch / 3600
    )
    epoch = (586 * 10.0 + 196 * 2.0) / 1e3
    assert hours["masked"]["base"] == pytest.approx(4 * 50 * epoch / 3600)
    assert hours["masked"]["pruning"] == pytest.approx(4 * 30 * (10 * epoch + 0.392) / 3600)
    batched_epoch = (586 * 150.0 + 196 * 30.0) / 1e3
    assert hours["best"]["pruning"] == pytest.approx(4 * (10 * batched_epoch + 5.88) / 3600)
    graph_epoch = (147 * 20.0 + 49 * 4.0) / 1e3
    assert hours["masked"]["structure"] == pytest.approx(4 * 200 * 15 * graph_epoch / 3600)
    assert hours["reference"]["total"] is None
    assert hours["masked"]["wall"] == pytest.approx(hours["masked"]["total"] / 2)
    assert hours["reference"]["wall"] is None


def test_main_writes_json(monkeypatch, tmp_path, results, capsys):
    seen = {}

    def fake_run(cfg, log=None):
        seen["cfg"] = cfg
        return results

    monkeypatch.setattr(command, "run_benchmark", fake_run)
    out = tmp_path / "out.json"
    assert bench.main(["--quick", "--threads", "1", "--cells", "gru", "--json", str(out)]) == 0
    assert seen["cfg"].cells == ("gru",) and seen["cfg"].threads == 1
    assert seen["cfg"].repeats < BenchConfig().repeats
    assert json.loads(out.read_text())["cells"]
    assert "Projected wall time" in capsys.readouterr().out


def test_cuda_without_a_gpu_is_one_clear_line(capsys):
    if torch.cuda.is_available():
        pytest.skip("a GPU is present")
    assert bench.main(["--quick", "--device", "cuda"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["error: device 'cuda' requested but no CUDA GPU is available; use --device cpu"]


def test_profile_script_prints_its_table():
    """``python -m sparsernn.bench.profile_structure`` on a tiny net: every category's row,
    shares ~100%."""
    import re
    import subprocess
    import sys

    tool = ["-m", "sparsernn.bench.profile_structure"]
    for kernel, own_row in (
        ("torch", "Python in the hand-written time loops"),
        ("native", "compiled time loop (forward + backward)"),
    ):
        args = ["--graph", "ws-10", "--batch", "8", "--steps", "1", "--kernel", kernel]
        out = subprocess.run(
            [sys.executable, *tool, *args], capture_output=True, text=True, check=True
        ).stdout
        assert "gru ws-10" in out and f"kernel {kernel}" in out and "dispatch floor" in out
        shares = [int(m) for m in re.findall(r"^\| [^|]+ \| [\d.]+ \| (\d+)% \|", out, re.M)]
        assert len(shares) >= 5 and 90 <= sum(shares) <= 110
        assert own_row in out
        (blas,) = re.findall(r"^\| BLAS \(mm/addmm/bmm\) \| [\d.]+ \| \d+% \| (\d+) \|", out, re.M)
        # the compiled loop makes no matmul call: only the output layer's 3 remain
        assert (int(blas) <= 3) == (kernel == "native")


def test_config_validation():
    with pytest.raises(ConfigError):
        BenchConfig(cells=("nope",))
    with pytest.raises(ConfigError):
        BenchConfig(repeats=0)
    with pytest.raises(ConfigError):
        BenchConfig(cores=0)
    assert bench.main(["--cells", "nope"]) == 2


def test_threads_section_structure_and_cleanup(monkeypatch):
    """A tiny run: every variant timed in both phases, the busy processes gone afterwards."""
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    started = []
    real_start = threads._start_busy
    monkeypatch.setattr(threads, "_start_busy", lambda n: started.extend(real_start(n)) or started)
    res = bench.run_threads_benchmark(n_strings=40, repeats=1, n_busy=1)
    assert res["threads"]["default"] == 1 == res["threads"]["one"]
    assert res["threads"]["all"] >= 1
    for phase in ("idle", "busy"):
        assert set(res["phases"][phase]["epoch_s"]) == {"default", "one", "all"}
        assert all(t > 0 for t in res["phases"][phase]["epoch_s"].values())
    assert len(started) == 1 and all(p.poll() is not None for p in started)
    table = bench.format_threads_report(res)
    assert "| default policy | 1 |" in table and "busy / 1 thread" in table


@pytest.mark.parametrize("cell", ["rnn_relu", "gru", "lstm"])
def test_the_timed_reference_computes_the_models_function(cell):
    """Column (a) times the same function as (b): outputs and gradients of the copied weights."""
    import copy

    from sparsernn.graphs import graph_to_edges, make_graph
    from sparsernn.models import ModelConfig, build_model
    from sparsernn.nn.reference import ReferenceClassifier
    from sparsernn.prune import magnitude_prune

    stacked = build_model(ModelConfig(cell=cell, embedding_dim=3, hidden_size=5, num_layers=2), 0)
    magnitude_prune(stacked, 0.6)
    g = make_graph("ba", 12, seed=1)
    edges = tuple(graph_to_edges(g))
    graph_cfg = ModelConfig(cell=cell, embedding_dim=None, graph_edges=edges, n_nodes=12)
    tokens = torch.randint(1, 128, (4, 7))
    for model in (stacked, build_model(graph_cfg, 0)):
        model = copy.deepcopy(model).double()
        ref = ReferenceClassifier(model).double()
        ours_out, ref_out = model(tokens), ref(tokens)
        assert torch.allclose(ours_out, ref_out, atol=1e-10)
        ours_out.sum().backward()
        ref_out.sum().backward()
        assert torch.allclose(model.embedding.weight.grad, ref.embedding.weight.grad, atol=1e-10)
        assert torch.allclose(model.out.weight.grad, ref.out.weight.grad, atol=1e-10)
