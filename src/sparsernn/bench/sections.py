"""The benchmark's sections: per-cell steps, K models at once, random-structure networks.

Every timed training step is the engine's own (:class:`sparsernn.train.TrainStep`: forward,
cross-entropy, backward, gradient-norm clipping at 5, the fused Adam that ``fit`` uses), so the
benchmark times exactly what training runs.
"""

from __future__ import annotations

import copy
import os
import platform
import resource
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor, nn

from sparsernn._threads import torch_threads
from sparsernn.batching import EncodedData
from sparsernn.bench.config import BenchConfig, study_train_step
from sparsernn.bench.formatting import cell_line, many_line, structured_line
from sparsernn.bench.projection import project_full_profile
from sparsernn.bench.timing import (
    Timer,
    draw_batches,
    eval_step,
    mean_len,
    peak_gflops,
    step_flops,
    structure_flops,
)
from sparsernn.data import DataSpec, make_dataset
from sparsernn.graphs import graph_to_edges, make_graph
from sparsernn.models import BatchedClassifier, ModelConfig, SequenceClassifier, build_model
from sparsernn.nn.masked import MaskedRNN
from sparsernn.nn.reference import ReferenceClassifier
from sparsernn.nn.structured import StructuredRNN
from sparsernn.prune import TARGETS, magnitude_prune
from sparsernn.tasks import strings_task
from sparsernn.train import resolve_device

__all__ = ["DenseClassifier", "run_benchmark"]

Batches = list[tuple[Tensor, Tensor]]


class DenseClassifier(nn.Module):
    """Embedding -> dense ``torch.nn.RNN/GRU/LSTM`` -> Linear on the last step (column c)."""

    def __init__(self, model: SequenceClassifier) -> None:
        super().__init__()
        self.embedding = copy.deepcopy(model.embedding)
        masked = model.recurrent
        assert isinstance(masked, MaskedRNN)  # column c: the dense twin of a MaskedRNN
        self.recurrent = masked.to_torch()
        self.out = copy.deepcopy(model.out)

    def forward(self, tokens: Tensor) -> Tensor:
        seq, _ = self.recurrent(self.embedding(tokens.t()))
        return self.out(seq[-1])


def _model_flops(config: ModelConfig, batches: Batches) -> float:
    """Matmul GFLOP of one training step of ``config`` on the batches' mean shape."""
    c = config
    n = batches[0][1].shape[0]
    emb = c.embedding_dim or c.hidden_size
    return step_flops(c.cell, n, mean_len(batches), emb, c.hidden_size, c.num_layers) / 1e9


def _bench_cell(cfg: BenchConfig, timer: Timer, base: SequenceClassifier, batches: Batches):
    """(a) slow reference, (b) ours at ``cfg.sparsity``, (c) dense torch.nn: one row."""
    masked = copy.deepcopy(base)
    magnitude_prune(masked, cfg.sparsity, "both")
    variants: dict[str, nn.Module] = {}
    if cfg.reference:
        variants["reference"] = ReferenceClassifier(masked).to(base.out.weight.device)
    variants["masked"] = masked
    variants["dense"] = DenseClassifier(base)
    steps = {name: study_train_step(m) for name, m in variants.items()}
    times = timer.interleaved(steps, batches, cfg.warmup, cfg.repeats)
    evals = {name: eval_step(variants[name]) for name in variants if name != "dense"}
    eval_times = timer.interleaved(evals, batches, min(cfg.warmup, 1), cfg.repeats)
    row: dict[str, Any] = {
        "cell": base.config.cell,
        "batch_size": batches[0][1].shape[0],
        "mean_len": mean_len(batches),
        "step_gflop": _model_flops(base.config, batches),
    }
    for name in variants:
        row[f"{name}_ms"] = times[name]["ms"]
        row[f"{name}_cpu_ms"] = times[name]["cpu_ms"]
        row[f"{name}_saved_mb"] = timer.memory(steps[name], batches[0])["saved_mb"]
    for name in evals:
        row[f"{name}_eval_ms"] = eval_times[name]["ms"]
    row["b_over_a"] = row["masked_ms"] / row["reference_ms"] if cfg.reference else None
    row["b_over_c"] = row["masked_ms"] / row["dense_ms"]
    return row


def _pruning_copies(base: SequenceClassifier, k: int) -> list[SequenceClassifier]:
    """``k`` pruned copies of ``base`` over targets x amounts 10..100, as the pruning grid."""
    targets = list(TARGETS)
    copies = []
    for i in range(k):
        m = copy.deepcopy(base)
        magnitude_prune(m, 0.1 * (1 + (i // len(targets)) % 10), targets[i % len(targets)])
        copies.append(m)
    return copies


def _bench_many(cfg: BenchConfig, timer: Timer, base: SequenceClassifier, batches: Batches):
    """K pruned copies at once (one BatchedClassifier) vs one of them alone."""
    k = cfg.n_models
    copies = _pruning_copies(base, k)
    batched = BatchedClassifier.from_models(copies)
    steps = {"batched": study_train_step(batched), "single": study_train_step(copies[0])}
    times = timer.interleaved(steps, batches, min(cfg.warmup, 2), cfg.many_repeats)
    evals = {"batched": eval_step(batched), "single": eval_step(copies[0])}
    eval_times = timer.interleaved(evals, batches, 1, cfg.many_repeats)
    per_model = times["batched"]["ms"] / k
    return {
        "step_gflop": _model_flops(base.config, batches),
        "cell": base.config.cell,
        "kind": "pruning copies",
        "n_models": k,
        "batch_size": batches[0][1].shape[0],
        "batched_ms": times["batched"]["ms"],
        "per_model_ms": per_model,
        "one_by_one_ms": times["single"]["ms"],
        "speedup": times["single"]["ms"] / per_model,
        "batched_eval_ms": eval_times["batched"]["ms"],
        "single_eval_ms": eval_times["single"]["ms"],
        "batched_saved_mb": timer.memory(steps["batched"], batches[0])["saved_mb"],
    }


def _bench_structured(cfg: BenchConfig, timer: Timer, cell: str, graph: str, batches: Batches):
    """A random-structure net (``graph`` = ``"ws-50"``): reference vs the layer schedule run by
    the compiled loop (``ours``, where it is built) and by PyTorch ops."""
    kind, n = graph.split("-")
    g = make_graph(kind, int(n), seed=0)
    model_cfg = ModelConfig(  # as the structure runner builds it: embedding dim = |layer 0|
        cell=cell, embedding_dim=None, graph_edges=tuple(graph_to_edges(g)), n_nodes=int(n)
    )
    device = batches[0][0].device
    ours = build_model(model_cfg, seed=cfg.seed).to(device)
    variants: dict[str, nn.Module] = {"ours": ours}
    twin = copy.deepcopy(ours)  # same weights, the schedule in PyTorch ops
    assert isinstance(twin.recurrent, StructuredRNN)
    twin.recurrent.kernel = "torch"
    variants["torch"] = twin
    if cfg.reference:
        variants["reference"] = ReferenceClassifier(ours).to(device)
    steps = {name: study_train_step(m) for name, m in variants.items()}
    warm = min(cfg.warmup, 1)
    # The slow reference is timed on its own, after the others: its thousands of small
    # tensors per step make the C library hand memory back to the system, and a variant timed
    # round-robin beside it then faults its large buffers in afresh at every step (the
    # compiled LSTM step measured ~30% slower that way). Training has no such neighbour.
    fast = {name: step for name, step in steps.items() if name != "reference"}
    times = timer.interleaved(fast, batches, warm, cfg.structured_repeats)
    if cfg.reference:
        ref = {"reference": steps["reference"]}
        times.update(timer.interleaved(ref, batches, warm, cfg.structured_repeats))
    evals = timer.interleaved(
        {name: eval_step(variants[name]) for name in ("ours", "torch")},
        batches,
        warm,
        cfg.structured_repeats,
    )
    net = ours.recurrent
    assert isinstance(net, StructuredRNN)
    ref_ms = times["reference"]["ms"] if cfg.reference else None
    flops = structure_flops(net, batches[0][1].shape[0], mean_len(batches))
    return {
        **{f"{name}_gflop": value / 1e9 for name, value in flops.items()},
        "cell": cell,
        "graph": graph,
        "layers": net.n_layers,
        "sublayers": len(net.sublayer_weights()),
        "fused_calls": len(net.plan),
        "batch_size": batches[0][1].shape[0],
        "native": net.uses_native(device),
        "ours_ms": times["ours"]["ms"],
        "torch_ms": times["torch"]["ms"],
        "native_speedup": times["torch"]["ms"] / times["ours"]["ms"],
        "ours_eval_ms": evals["ours"]["ms"],
        "torch_eval_ms": evals["torch"]["ms"],
        "ours_saved_mb": timer.memory(steps["ours"], batches[0])["saved_mb"],
        "reference_ms": ref_ms,
        "speedup": None if ref_ms is None else ref_ms / times["ours"]["ms"],
    }


def _add_flop_rates(results: dict[str, Any], peak: float) -> None:
    """Achieved GFLOP/s (and the share of ``peak``, the speed-up ceiling) of every row."""
    for row in results["many"]:
        row["single_gflops"] = row["step_gflop"] / (row["one_by_one_ms"] / 1e3)
        row["batched_gflops"] = row["step_gflop"] / (row["per_model_ms"] / 1e3)
        row["ceiling_speedup"] = peak / row["single_gflops"]
    for row in results["cells"]:
        row["masked_gflops"] = row["step_gflop"] / (row["masked_ms"] / 1e3)
        row["masked_peak_fraction"] = row["masked_gflops"] / peak
    for row in results["structured"]:
        for kind, ms in (
            ("executed", "torch_ms"),  # the PyTorch layer schedule runs every wide layer dense
            ("useful", "ours_ms"),  # the compiled loop runs only the masks' nonzeros
        ):
            row[f"{kind}_gflops"] = row[f"{kind}_gflop"] / (row[ms] / 1e3)
            row[f"{kind}_peak_fraction"] = row[f"{kind}_gflops"] / peak
        # ours at the dense count: the rate the layer schedule would need to match its time
        row["equivalent_gflops"] = row["executed_gflop"] / (row["ours_ms"] / 1e3)
        row["equivalent_peak_fraction"] = row["equivalent_gflops"] / peak


def _meta(cfg: BenchConfig, device: torch.device) -> dict[str, Any]:
    return {
        "torch": torch.__version__,
        "python": platform.python_version(),
        "machine": platform.processor() or platform.machine(),
        "device": str(device),
        "threads": torch.get_num_threads(),
        "cpu_count": os.cpu_count(),
        "load_avg_start": os.getloadavg()[0],
        "timing": "median ms per step over repeats after warm-up; variants interleaved",
        "memory": "saved_mb = unique storages autograd saves for backward in one step",
        "reference": cfg.reference,
    }


def run_benchmark(
    config: BenchConfig | None = None, *, log: Callable[[str], None] | None = None
) -> dict[str, Any]:
    """Run the benchmark and return its results as JSON-ready data (see ``format_report``)."""
    cfg = config or BenchConfig()
    # threads=None: the caller's count; denormals flushed as in training; both restored after
    with torch_threads(cfg.threads or torch.get_num_threads()):
        return _run(cfg, log or (lambda _msg: None))


def _run(cfg: BenchConfig, say: Callable[[str], None]) -> dict[str, Any]:
    device = resolve_device(cfg.device)
    timer = Timer(device)
    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    data = EncodedData(
        strings_task(make_dataset(DataSpec(n_strings=cfg.n_strings, seed=cfg.seed))[0])
    )
    n_batches = cfg.warmup + max(cfg.repeats, cfg.structured_repeats, cfg.many_repeats)
    sizes = {*cfg.batch_sizes, cfg.structured_batch, cfg.many_batch}
    batches = {bs: draw_batches(data, bs, n_batches, cfg.seed, device) for bs in sizes}
    results: dict[str, Any] = {"meta": _meta(cfg, device), "config": cfg.to_dict()}
    results.update(cells=[], structured=[], many=[])
    for cell in cfg.cells:
        model_cfg = ModelConfig(
            cell=cell,
            embedding_dim=cfg.embedding_dim,
            hidden_size=cfg.hidden_size,
            num_layers=cfg.num_layers,
        )
        base = build_model(model_cfg, seed=cfg.seed).to(device)
        for bs in cfg.batch_sizes:
            results["cells"].append(_bench_cell(cfg, timer, base, batches[bs]))
            say(cell_line(results["cells"][-1]))
        results["many"].append(_bench_many(cfg, timer, base, batches[cfg.many_batch]))
        say(many_line(results["many"][-1]))
    graphs = [f"{kind}-{n}" for kind in cfg.graph_kinds for n in cfg.graph_nodes]
    for cell in cfg.structured_cells:
        for graph in graphs:
            row = _bench_structured(cfg, timer, cell, graph, batches[cfg.structured_batch])
            results["structured"].append(row)
            say(structured_line(row))
    meta = results["meta"]
    meta["peak_gflops"] = peak_gflops(timer, device)
    _add_flop_rates(results, meta["peak_gflops"])
    meta["load_avg_end"] = os.getloadavg()[0]
    rss1 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    meta["peak_rss_mb"], meta["peak_rss_growth_mb"] = rss1 / 1024, (rss1 - rss0) / 1024
    results["projection"] = project_full_profile(results, cfg.cores or os.cpu_count() or 1)
    return results
