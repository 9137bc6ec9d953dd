"""Benchmark of training-step times, and a projection of the full study's wall time.

``python -m sparsernn.bench [--quick] [--device cpu|cuda] [--threads N] [--json out.json]``
``python -m sparsernn.bench --section threads``: threads under load (:func:`run_threads_benchmark`)

What is timed (a "step" is what :func:`sparsernn.train.fit` does per batch: forward,
cross-entropy, backward, gradient-norm clipping at 5, Adam):

- per cell and batch size (the study's 3 x 50 model, batches drawn from a shuffled epoch of the
  Reber data set, so lengths are realistic): (a) the slow reference (``benchmarks/reference.py``:
  per-step Python loop, masks multiplied at every step), (b) :class:`~sparsernn.nn.MaskedRNN`
  inside :class:`~sparsernn.models.SequenceClassifier` at 80% sparsity, (c) dense
  ``torch.nn.RNN/GRU/LSTM`` with the same embedding and linear layer;
- random-structure networks (WS and BA graphs of 50 and 25 nodes, batch 128): the slow
  one-module-per-sub-layer reference vs :class:`~sparsernn.nn.structured.StructuredRNN`;
- K models at once (:func:`sparsernn.train.train_many`): K pruned copies of one model in one set of
  batched ops vs the same models one by one.

Every number is the median over ``repeats`` steps after ``warmup`` steps; variants compared with
each other are timed interleaved (round-robin, same batches) so that load changes on a shared
machine hit them alike. Memory is the size of the tensors autograd saves for backward in one
step (unique storages, via ``saved_tensors_hooks``), plus CUDA's ``max_memory_allocated`` on
GPU; the process's peak RSS is reported once. The projection multiplies measured step and
evaluation-batch times by the step counts of the ``full`` profile.
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import importlib.util
import json
import math
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from sparsernn._threads import resolve_threads, torch_threads
from sparsernn.config import Config
from sparsernn.data import Dataset, DataSpec, make_dataset
from sparsernn.errors import ConfigError
from sparsernn.graphs import graph_to_edges, make_graph
from sparsernn.models import BatchedClassifier, ModelConfig, SequenceClassifier, build_model
from sparsernn.nn.cells import MODES
from sparsernn.prune import TARGETS, magnitude_prune
from sparsernn.train import EncodedData, TrainConfig, TrainStep, fit, resolve_device

__all__ = [
    "BenchConfig",
    "FULL_PROFILE",
    "run_benchmark",
    "format_report",
    "run_threads_benchmark",
    "format_threads_report",
    "main",
]

#: torch's intra-op thread count when this module was imported (its default unless
#: ``OMP_NUM_THREADS`` or the caller changed it before).
_IMPORT_THREADS = torch.get_num_threads()

#: Step counts of the ``full`` profile used for the projection (SPEC sections 3-5).
FULL_PROFILE: dict[str, int] = {
    "cells": 4,
    "n_train": 18_750,
    "n_test": 6_250,
    "base_epochs": 50,
    "base_batch": 32,
    "pruning_points": 30,
    "retrain_epochs": 10,
    "graphs": 200,
    "graph_epochs": 15,
    "graph_batch": 128,
}


@dataclasses.dataclass(frozen=True)
class BenchConfig(Config):
    """What to benchmark (defaults: the full benchmark; :meth:`quick` for a < 2 minute run)."""

    cells: tuple[str, ...] = MODES
    batch_sizes: tuple[int, ...] = (32, 128)
    embedding_dim: int = 50
    hidden_size: int = 50
    num_layers: int = 3
    sparsity: float = 80.0
    warmup: int = 3
    repeats: int = 15
    graph_kinds: tuple[str, ...] = ("ws", "ba")
    graph_nodes: tuple[int, ...] = (50, 25)
    structured_cells: tuple[str, ...] = MODES
    structured_batch: int = 128
    structured_repeats: int = 5
    n_models: int = 30
    many_batch: int = 32
    many_repeats: int = 5
    n_strings: int = 25_000
    reference: bool = True
    device: str = "cpu"
    threads: int | None = 1
    #: Cores the projected study would run on (one single-threaded worker each); None = this
    #: machine's core count.
    cores: int | None = None
    seed: int = 0

    def __post_init__(self) -> None:
        for cell in (*self.cells, *self.structured_cells):
            if cell not in MODES:
                raise ConfigError(f"unknown cell {cell!r}; choose from {', '.join(MODES)}")
        for name in ("warmup",):
            if getattr(self, name) < 0:
                raise ConfigError(f"{name}={getattr(self, name)} must be >= 0")
        for name in ("repeats", "structured_repeats", "many_repeats", "n_models", "many_batch"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name}={getattr(self, name)} must be >= 1")
        if not 0 <= self.sparsity <= 100:
            raise ConfigError(f"sparsity={self.sparsity} must be a percentage in 0..100")
        if self.threads is not None and self.threads < 1:
            raise ConfigError(f"threads={self.threads} must be >= 1")
        if self.cores is not None and self.cores < 1:
            raise ConfigError(f"cores={self.cores} must be >= 1")
        if any(b < 1 for b in (*self.batch_sizes, self.structured_batch)):
            raise ConfigError("batch sizes must be >= 1")

    @classmethod
    def quick(cls, **changes: Any) -> BenchConfig:
        """A run of under two minutes on 2 CPU cores: fewer repeats, GRU-only structure nets."""
        base = {
            "warmup": 1,
            "repeats": 4,
            "structured_cells": ("gru",),
            "structured_repeats": 2,
            "many_repeats": 2,
        }
        return cls(**{**base, **changes})


# ---------------------------------------------------------------------- models under test
class DenseClassifier(nn.Module):
    """Embedding -> dense ``torch.nn.RNN/GRU/LSTM`` -> Linear on the last step (column c)."""

    def __init__(self, model: SequenceClassifier) -> None:
        super().__init__()
        self.embedding = copy.deepcopy(model.embedding)
        self.recurrent = model.recurrent.to_torch()
        self.out = copy.deepcopy(model.out)

    def forward(self, tokens: Tensor) -> Tensor:
        seq, _ = self.recurrent(self.embedding(tokens.t()))
        return self.out(seq[-1])


def _load_reference():
    """``benchmarks/reference.py`` of the source tree, or None when it is not there."""
    path = Path(__file__).resolve().parents[2] / "benchmarks" / "reference.py"
    if not path.is_file():
        return None
    spec = importlib.util.spec_from_file_location("sparsernn_bench_reference", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _train_step(model: nn.Module) -> Callable[[Tensor, Tensor], None]:
    """The engine's step (:class:`sparsernn.train.TrainStep`) as ``fit`` takes it."""
    return TrainStep(model, lr=1e-3, clip=5.0)


def _eval_step(model: nn.Module) -> Callable[[Tensor, Tensor], None]:
    """One evaluation batch as :func:`sparsernn.train.evaluate` does it (no autograd)."""

    @torch.no_grad()
    def step(tokens: Tensor, labels: Tensor) -> None:
        logits = model(tokens)
        if logits.dim() == 3:  # K models at once
            logits = logits.reshape(-1, logits.shape[-1])
            labels = labels.repeat(logits.shape[0] // labels.shape[0])
        F.cross_entropy(logits, labels, reduction="sum")
        logits.argmax(-1)

    return step


# ---------------------------------------------------------------------- timing helpers
class _Timer:
    def __init__(self, device: torch.device) -> None:
        self.cuda = device.type == "cuda"

    def sync(self) -> None:
        if self.cuda:
            torch.cuda.synchronize()

    def interleaved(
        self,
        steps: dict[str, Callable[[Tensor, Tensor], None]],
        batches: Sequence[tuple[Tensor, Tensor]],
        warmup: int,
        repeats: int,
    ) -> dict[str, dict[str, float]]:
        """Median wall and CPU ms per step of each variant, timed round-robin on one batch list."""
        for fn in steps.values():
            for i in range(warmup):
                fn(*batches[i % len(batches)])
        wall: dict[str, list[float]] = {name: [] for name in steps}
        cpu: dict[str, list[float]] = {name: [] for name in steps}
        for r in range(repeats):
            tokens, labels = batches[(warmup + r) % len(batches)]
            for name, fn in steps.items():
                self.sync()
                t0, c0 = time.perf_counter(), time.process_time()
                fn(tokens, labels)
                self.sync()
                wall[name].append(1e3 * (time.perf_counter() - t0))
                cpu[name].append(1e3 * (time.process_time() - c0))
        return {
            name: {"ms": statistics.median(wall[name]), "cpu_ms": statistics.median(cpu[name])}
            for name in steps
        }

    def memory(self, fn: Callable[[Tensor, Tensor], None], batch: tuple[Tensor, Tensor]) -> dict:
        """MB saved for backward in one step (and CUDA peak allocation above the start)."""
        seen: dict[int, int] = {}

        def pack(t: Tensor) -> Tensor:
            storage = t.untyped_storage()
            seen[storage.data_ptr()] = storage.nbytes()
            return t

        out: dict[str, float] = {}
        if self.cuda:
            torch.cuda.reset_peak_memory_stats()
            start = torch.cuda.memory_allocated()
        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            fn(*batch)
        out["saved_mb"] = sum(seen.values()) / 2**20
        if self.cuda:
            out["cuda_peak_mb"] = (torch.cuda.max_memory_allocated() - start) / 2**20
        return out


def _batches(data: EncodedData, batch_size: int, n: int, seed: int, device) -> list:
    order = np.random.default_rng(seed).permutation(len(data))
    out = []
    for tokens, labels in data.batches(order, batch_size):
        out.append((tokens.to(device), labels.to(device)))
        if len(out) == n:
            break
    return out


# ---------------------------------------------------------------------- the benchmark
def run_benchmark(
    config: BenchConfig | None = None, *, log: Callable[[str], None] | None = None
) -> dict[str, Any]:
    """Run the benchmark and return its results as JSON-ready data (see :func:`format_report`)."""
    cfg = config or BenchConfig()
    # threads=None: the caller's count; denormals flushed as in training; both restored after
    with torch_threads(cfg.threads or torch.get_num_threads()):
        return _run(cfg, log or (lambda _msg: None))


def _run(cfg: BenchConfig, say: Callable[[str], None]) -> dict[str, Any]:
    device = resolve_device(cfg.device)
    timer = _Timer(device)
    reference = _load_reference() if cfg.reference else None
    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    train_set, _ = make_dataset(DataSpec(n_strings=cfg.n_strings, seed=cfg.seed))
    data = EncodedData(train_set)
    results: dict[str, Any] = {
        "meta": {
            "torch": torch.__version__,
            "python": platform.python_version(),
            "machine": platform.processor() or platform.machine(),
            "device": str(device),
            "threads": torch.get_num_threads(),
            "cpu_count": os.cpu_count(),
            "load_avg_start": os.getloadavg()[0],
            "timing": "median ms per step over repeats after warm-up; variants interleaved",
            "memory": "saved_mb = unique storages autograd saves for backward in one step",
            "reference": reference is not None,
        },
        "config": cfg.to_dict(),
        "cells": [],
        "structured": [],
        "many": [],
    }
    n_batches = cfg.warmup + max(cfg.repeats, cfg.structured_repeats, cfg.many_repeats)
    batch_sets = {
        bs: _batches(data, bs, n_batches, cfg.seed, device)
        for bs in {*cfg.batch_sizes, cfg.structured_batch, cfg.many_batch}
    }
    for cell in cfg.cells:
        base = build_model(
            ModelConfig(
                cell=cell,
                embedding_dim=cfg.embedding_dim,
                hidden_size=cfg.hidden_size,
                num_layers=cfg.num_layers,
            ),
            seed=cfg.seed,
        ).to(device)
        for bs in cfg.batch_sizes:
            results["cells"].append(_bench_cell(cfg, timer, reference, base, batch_sets[bs]))
            say(_cell_line(results["cells"][-1]))
        results["many"].append(_bench_many(cfg, timer, base, batch_sets[cfg.many_batch]))
        say(_many_line(results["many"][-1]))
    for cell in cfg.structured_cells:
        for kind in cfg.graph_kinds:
            for n in cfg.graph_nodes:
                row = _bench_structured(
                    cfg, timer, reference, cell, kind, n, batch_sets[cfg.structured_batch], device
                )
                results["structured"].append(row)
                say(_structured_line(row))
    results["meta"]["peak_gflops"] = _peak_gflops(timer, device)
    for row in results["many"]:
        _add_flop_rates(row, results["meta"]["peak_gflops"])
    for row in results["cells"]:
        row["masked_gflops"] = row["step_gflop"] / (row["masked_ms"] / 1e3)
        row["masked_peak_fraction"] = row["masked_gflops"] / results["meta"]["peak_gflops"]
    results["meta"]["load_avg_end"] = os.getloadavg()[0]
    rss1 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    results["meta"]["peak_rss_mb"] = rss1 / 1024
    results["meta"]["peak_rss_growth_mb"] = (rss1 - rss0) / 1024
    results["projection"] = project_full_profile(results, cfg.cores or os.cpu_count() or 1)
    return results


def _mean_len(batches) -> float:
    return float(np.mean([b[0].shape[1] for b in batches]))


def _bench_cell(cfg, timer, reference, base, batches) -> dict[str, Any]:
    cell, bs = base.config.cell, batches[0][1].shape[0]
    masked = copy.deepcopy(base)
    magnitude_prune(masked, cfg.sparsity, "both")
    variants: dict[str, nn.Module] = {}
    if reference is not None:
        variants["reference"] = reference.ReferenceClassifier(masked).to(base.out.weight.device)
    variants["masked"] = masked
    variants["dense"] = DenseClassifier(base)
    steps = {name: _train_step(m) for name, m in variants.items()}
    times = timer.interleaved(steps, batches, cfg.warmup, cfg.repeats)
    evals = {name: _eval_step(variants[name]) for name in variants if name != "dense"}
    eval_times = timer.interleaved(evals, batches, min(cfg.warmup, 1), cfg.repeats)
    mc = base.config
    length = _mean_len(batches)
    flop = _step_flops(cell, bs, length, mc.embedding_dim, mc.hidden_size, mc.num_layers)
    row: dict[str, Any] = {
        "cell": cell,
        "batch_size": bs,
        "mean_len": _mean_len(batches),
        "step_gflop": flop / 1e9,
    }
    for name in variants:
        row[f"{name}_ms"] = times[name]["ms"]
        row[f"{name}_cpu_ms"] = times[name]["cpu_ms"]
        row[f"{name}_saved_mb"] = timer.memory(steps[name], batches[0])["saved_mb"]
    for name in evals:
        row[f"{name}_eval_ms"] = eval_times[name]["ms"]
    row["b_over_a"] = row["masked_ms"] / row["reference_ms"] if reference is not None else None
    row["b_over_c"] = row["masked_ms"] / row["dense_ms"]
    return row


def _bench_many(cfg, timer, base, batches) -> dict[str, Any]:
    """K pruned copies (targets x amounts, as the pruning grid) at once vs one by one."""
    k = cfg.n_models
    targets = list(TARGETS)
    copies = []
    for i in range(k):
        m = copy.deepcopy(base)
        amount = 10 * (1 + (i // len(targets)) % 10)
        magnitude_prune(m, amount, targets[i % len(targets)])
        copies.append(m)
    batched = BatchedClassifier.from_models(copies)
    steps = {
        "batched": _train_step(batched),
        "single": _train_step(copies[0]),
    }
    times = timer.interleaved(steps, batches, min(cfg.warmup, 2), cfg.many_repeats)
    evals = timer.interleaved(
        {"batched": _eval_step(batched), "single": _eval_step(copies[0])},
        batches,
        1,
        cfg.many_repeats,
    )
    per_model = times["batched"]["ms"] / k
    mc = base.config
    return {
        "step_gflop": _step_flops(
            mc.cell,
            batches[0][1].shape[0],
            _mean_len(batches),
            mc.embedding_dim,
            mc.hidden_size,
            mc.num_layers,
        )
        / 1e9,
        "cell": base.config.cell,
        "kind": "pruning copies",
        "n_models": k,
        "batch_size": batches[0][1].shape[0],
        "batched_ms": times["batched"]["ms"],
        "per_model_ms": per_model,
        "one_by_one_ms": times["single"]["ms"],
        "speedup": times["single"]["ms"] / per_model,
        "batched_eval_ms": evals["batched"]["ms"],
        "single_eval_ms": evals["single"]["ms"],
        "batched_saved_mb": timer.memory(steps["batched"], batches[0])["saved_mb"],
    }


def _step_flops(cell: str, batch: int, steps: float, emb: int, hidden: int, layers: int) -> float:
    """Matmul FLOPs of one dense training step of a stacked model (masks not exploited).

    Forward: ``2 B T G H (I_l + H)`` per layer (input and recurrent projections); the backward
    needs two matmuls of that size per forward one (input and weight gradients): 3x in all.
    Elementwise work, the embedding and the output layer are left out (a lower bound).
    """
    g = {"rnn_tanh": 1, "rnn_relu": 1, "gru": 3, "lstm": 4}[cell]
    inputs = [emb] + [hidden] * (layers - 1)
    return 3 * sum(2 * batch * steps * g * hidden * (i + hidden) for i in inputs)


def _peak_gflops(timer: _Timer, device: torch.device, n: int = 1024) -> float:
    """This process's dense fp32 matmul rate (GFLOP/s), the ceiling for any training step."""
    a = torch.randn(n, n, device=device)
    b = torch.randn(n, n, device=device)
    times = timer.interleaved({"mm": lambda x, y: a @ b}, [(a, b)] * 8, 3, 5)
    return 2 * n**3 / (times["mm"]["ms"] / 1e3) / 1e9


def _add_flop_rates(row: dict[str, Any], peak: float) -> None:
    """Achieved GFLOP/s per model, one by one and K at once, and the speed-up ceiling."""
    flop = row["step_gflop"]
    row["single_gflops"] = flop / (row["one_by_one_ms"] / 1e3)
    row["batched_gflops"] = flop / (row["per_model_ms"] / 1e3)
    row["ceiling_speedup"] = peak / row["single_gflops"]


def _bench_structured(cfg, timer, reference, cell, kind, n, batches, device) -> dict[str, Any]:
    graph = make_graph(kind, n, seed=0)
    model_cfg = ModelConfig(  # as the structure runner builds it: embedding dim = |layer 0|
        cell=cell, embedding_dim=None, graph_edges=tuple(graph_to_edges(graph)), n_nodes=n
    )
    ours = build_model(model_cfg, seed=cfg.seed).to(device)
    wavefront = copy.deepcopy(ours)
    wavefront.recurrent.schedule = "wavefront"  # same weights, the other schedule
    variants: dict[str, nn.Module] = {"ours": ours, "wavefront": wavefront}
    if reference is not None:
        variants["reference"] = reference.ReferenceClassifier(ours).to(device)
    steps = {name: _train_step(m) for name, m in variants.items()}
    times = timer.interleaved(steps, batches, min(cfg.warmup, 1), cfg.structured_repeats)
    evals = timer.interleaved(
        {"ours": _eval_step(ours)}, batches, min(cfg.warmup, 1), cfg.structured_repeats
    )
    net = ours.recurrent
    row: dict[str, Any] = {
        "cell": cell,
        "graph": f"{kind}-{n}",
        "layers": net.n_layers,
        "sublayers": len(net.sublayer_weights()),
        "fused_calls": len(net.plan),
        "batch_size": batches[0][1].shape[0],
        "ours_ms": times["ours"]["ms"],
        "wavefront_ms": times["wavefront"]["ms"],
        "ours_eval_ms": evals["ours"]["ms"],
        "ours_saved_mb": timer.memory(steps["ours"], batches[0])["saved_mb"],
        "reference_ms": times["reference"]["ms"] if reference is not None else None,
    }
    row["speedup"] = row["reference_ms"] / row["ours_ms"] if reference is not None else None
    return row


# ---------------------------------------------------------------------- projection
def project_full_profile(results: dict[str, Any], cores: int = 1) -> dict[str, Any]:
    """Hours of the ``full`` profile from measured step and eval-batch times.

    ``total`` is the work of one single-threaded process; ``wall`` divides it by ``cores``,
    since the study's units are independent and run one per core (``--workers``): this
    assumes each worker keeps the measured per-thread speed while all cores are busy (the
    benchmark's own timings are taken on the same, possibly loaded, machine).

    Per cell: base = 50 epochs x (586 steps at batch 32 + 196 eval batches); pruning = 30
    points x (10 such epochs + the epoch-0 evaluation), one by one or the 30 copies at once;
    structure = 200 graphs x 15 epochs x (147 steps at batch 128 + 49 eval batches), with the
    mean over the measured graphs standing in for the study's 10..50-node graphs. The mean over
    the measured cells is multiplied by the number of cells; None where nothing was measured.
    """
    p = FULL_PROFILE
    tr, te = math.ceil(p["n_train"] / p["base_batch"]), math.ceil(p["n_test"] / p["base_batch"])
    gtr = math.ceil(p["n_train"] / p["graph_batch"])
    gte = math.ceil(p["n_test"] / p["graph_batch"])

    def secs(step_ms: float | None, eval_ms: float | None, steps: int, evals: int):
        if step_ms is None or eval_ms is None:
            return None
        return (steps * step_ms + evals * eval_ms) / 1e3

    def over_cells(per_cell: dict[str, float | None]) -> float | None:
        known = [v for v in per_cell.values() if v is not None]
        return None if not known else float(np.mean(known)) * p["cells"] / 3600

    rows = {r["cell"]: r for r in results["cells"] if r["batch_size"] == p["base_batch"]}
    hours: dict[str, dict[str, float | None]] = {}
    for variant in ("reference", "masked"):
        epoch = {
            c: secs(r.get(f"{variant}_ms"), r.get(f"{variant}_eval_ms"), tr, te)
            for c, r in rows.items()
        }
        zero = {c: secs(0.0, r.get(f"{variant}_eval_ms"), 0, te) for c, r in rows.items()}
        hours[variant] = {
            "base": over_cells({c: e and p["base_epochs"] * e for c, e in epoch.items()}),
            "pruning": over_cells(
                {
                    c: None
                    if e is None
                    else p["pruning_points"] * (p["retrain_epochs"] * e + zero[c])
                    for c, e in epoch.items()
                }
            ),
        }
    best = {}  # per cell the faster of K-at-once and one by one
    for r in results["many"]:
        if r["batch_size"] != p["base_batch"]:
            continue
        chunks = math.ceil(p["pruning_points"] / r["n_models"])
        epoch = secs(r["batched_ms"], r["batched_eval_ms"], tr, te)
        together = chunks * (p["retrain_epochs"] * epoch + te * r["batched_eval_ms"] / 1e3)
        alone = secs(r["one_by_one_ms"], r["single_eval_ms"], tr, te)
        alone = p["pruning_points"] * (p["retrain_epochs"] * alone + te * r["single_eval_ms"] / 1e3)
        best[r["cell"]] = min(together, alone)
    hours["best"] = {"base": hours["masked"]["base"], "pruning": over_cells(best)}
    for variant, key in (("reference", "reference"), ("ours", "masked")):
        per_graph: dict[str, list[float]] = {}
        for r in results["structured"]:
            eval_ms = r["ours_eval_ms"] if variant == "ours" else _ref_eval(r)
            e = secs(r.get(f"{variant}_ms"), eval_ms, gtr, gte)
            if e is not None:
                per_graph.setdefault(r["cell"], []).append(e)
        cost = {
            c: p["graphs"] * p["graph_epochs"] * float(np.mean(v)) for c, v in per_graph.items()
        }
        hours[key]["structure"] = over_cells(cost)
    hours["best"]["structure"] = hours["masked"]["structure"]
    for h in hours.values():
        parts = [h.get(k) for k in ("base", "pruning", "structure")]
        h["total"] = sum(parts) if all(x is not None for x in parts) else None
        h["wall"] = None if h["total"] is None else h["total"] / cores
    return {
        "profile": dict(p),
        "cores": cores,
        "hours": hours,
        "base_epoch_s": {
            c: secs(r["masked_ms"], r["masked_eval_ms"], tr, te) for c, r in rows.items()
        },
        "note": (
            "reference = slow per-step loops; masked = our single-model paths, one model at a "
            "time; best = the same with each cell's 30 pruning copies trained at once where "
            "that is faster (sparsernn.train.train_many)"
        ),
    }


def _ref_eval(row: dict[str, Any]) -> float | None:
    """Reference eval-batch time of a structured net: ours scaled by the training-step ratio."""
    if row.get("reference_ms") is None:
        return None
    return row["ours_eval_ms"] * row["reference_ms"] / row["ours_ms"]


# ---------------------------------------------------------------------- report
def _f(x: float | None, fmt: str = "{:.1f}") -> str:
    return "n/a" if x is None else fmt.format(x)


def _cell_line(r: dict[str, Any]) -> str:
    return (
        f"{r['cell']:<9} bs {r['batch_size']:>3}  len {r['mean_len']:4.1f}  "
        f"(a) ref {_f(r.get('reference_ms')):>7}  (b) masked {_f(r['masked_ms']):>6}  "
        f"(c) dense {_f(r['dense_ms']):>6}  b/a {_f(r['b_over_a'], '{:.2f}'):>5}  "
        f"b/c {_f(r['b_over_c'], '{:.2f}'):>5}  saved MB a/b/c "
        f"{_f(r.get('reference_saved_mb'))}/{_f(r['masked_saved_mb'])}/{_f(r['dense_saved_mb'])}"
        + (
            f"  (b) {r['masked_gflops']:.0f} GFLOP/s = {100 * r['masked_peak_fraction']:.0f}% peak"
            if "masked_gflops" in r
            else ""
        )
    )


def _many_line(r: dict[str, Any]) -> str:
    return (
        f"{r['cell']:<9} K={r['n_models']} {r['kind']} bs {r['batch_size']}: "
        f"{_f(r['batched_ms'])} ms/step = {_f(r['per_model_ms'], '{:.2f}')} ms per model vs "
        f"{_f(r['one_by_one_ms'], '{:.2f}')} one by one -> {_f(r['speedup'], '{:.2f}')}x"
        + (
            f"  [{_f(r['single_gflops'], '{:.0f}')} -> {_f(r['batched_gflops'], '{:.0f}')} "
            f"GFLOP/s; ceiling {_f(r['ceiling_speedup'], '{:.1f}')}x]"
            if "ceiling_speedup" in r
            else ""
        )
    )


def _structured_line(r: dict[str, Any]) -> str:
    return (
        f"{r['cell']:<9} {r['graph']:<6} layers {r['layers']:>2} sub-layers {r['sublayers']:>3} "
        f"fused calls {r['fused_calls']:>2} bs {r['batch_size']}: ref {_f(r['reference_ms']):>7} "
        f"ours {_f(r['ours_ms']):>6} -> {_f(r['speedup'], '{:.2f}')}x"
        f"  (wavefront {_f(r.get('wavefront_ms')):>6})"
    )


def format_report(results: dict[str, Any]) -> str:
    """The results as plain-text tables (training step, ms, median)."""
    m = results["meta"]
    lines = [
        f"sparsernn benchmark: torch {m['torch']}, device {m['device']}, "
        f"{m['threads']} thread(s) of {m['cpu_count']} CPUs, load avg {m['load_avg_start']:.1f}"
        f" -> {m.get('load_avg_end', float('nan')):.1f}",
        f"timing: {m['timing']}; memory: {m['memory']}",
        "",
        "Training step (ms): (a) slow reference, (b) MaskedRNN 80% sparse, (c) dense torch.nn",
    ]
    lines += [_cell_line(r) for r in results["cells"]]
    lines += [
        "",
        "K models at once (pruning copies); [matmul GFLOP/s per model one by one -> at once; "
        f"ceiling = peak {_f(m.get('peak_gflops'), '{:.0f}')} GFLOP/s / one by one]",
    ]
    lines += [_many_line(r) for r in results["many"]]
    lines += ["", "StructuredRNN training step (ms): slow reference vs ours (layer schedule)"]
    lines += [_structured_line(r) for r in results["structured"]]
    proj = results.get("projection")
    if proj:
        lines += ["", "Projected wall time of the full profile (hours)"]
        cores = proj.get("cores", 1)
        lines.append(
            f"{'':<10} {'base':>8} {'pruning':>8} {'structure':>9} {'total':>8} "
            f"{f'wall on {cores} cores':>17}"
        )
        for name, h in proj["hours"].items():
            lines.append(
                f"{name:<10} {_f(h.get('base'), '{:.2f}'):>8} {_f(h.get('pruning'), '{:.2f}'):>8}"
                f" {_f(h.get('structure'), '{:.2f}'):>9} {_f(h.get('total'), '{:.2f}'):>8}"
                f" {_f(h.get('wall'), '{:.2f}'):>17}"
            )
        lines.append("(total: one single-threaded process; wall: the units spread over the cores)")
        lines.append(proj["note"])
        epochs = ", ".join(f"{c} {_f(v)}" for c, v in proj["base_epoch_s"].items())
        lines.append(f"base epoch (18,750 strings, batch 32, + evaluation), s: {epochs}")
    lines.append(f"peak RSS {m.get('peak_rss_mb', 0):.0f} MB")
    return "\n".join(lines)


# ---------------------------------------------------------------------- threads under load
#: A busy process that ends by itself after this many seconds, should it outlive its killer.
_BUSY_LIMIT_S = 900
_BUSY_CODE = (
    "import time\nend = time.monotonic() + {limit}\nwhile time.monotonic() < end:\n    pass\n"
)


def _n_cores() -> int:
    try:
        return len(os.sched_getaffinity(0)) or 1
    except AttributeError:  # macOS, Windows
        return os.cpu_count() or 1


def _start_busy(n: int) -> list[subprocess.Popen]:
    """``n`` processes spinning one core each (bounded: each ends after ``_BUSY_LIMIT_S``)."""
    code = _BUSY_CODE.format(limit=_BUSY_LIMIT_S)
    return [subprocess.Popen([sys.executable, "-c", code]) for _ in range(n)]


def _stop_busy(procs: list[subprocess.Popen]) -> None:
    for proc in procs:
        proc.kill()
    for proc in procs:
        proc.wait()


def run_threads_benchmark(
    *,
    cell: str = "gru",
    n_strings: int = 3000,
    repeats: int = 3,
    n_busy: int = 2,
    seed: int = 0,
    log: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """One :func:`~sparsernn.train.fit` epoch per thread policy, idle and beside busy processes.

    Variants: ``default`` (``TrainConfig()``: the library's policy), ``one`` (1 thread forced)
    and ``all`` (torch's own default at import: one thread per core). Each phase (``idle``: no
    extra load; ``busy``: ``n_busy`` spinning processes this function starts and kills) times
    the variants round-robin ``repeats`` times on the same ``n_strings`` strings (the study's
    3 x 50 model, batch 32, evaluation excluded) and keeps the median epoch time.
    """
    say = log or (lambda _msg: None)
    train, test = make_dataset(DataSpec(n_strings=n_strings, seed=seed))
    data = EncodedData(
        Dataset(train.strings + test.strings, np.concatenate([train.labels, test.labels]))
    )
    warm = EncodedData(Dataset(train.strings[:200], train.labels[:200]))
    all_threads = _IMPORT_THREADS if _IMPORT_THREADS > 1 else _n_cores()
    variants = {"default": None, "one": 1, "all": all_threads}
    threads = {name: resolve_threads(n) for name, n in variants.items()}
    model_cfg = ModelConfig(cell=cell)

    def epoch(name: str, dataset: EncodedData) -> float:
        model = build_model(model_cfg, seed=seed)
        cfg = TrainConfig(epochs=1, seed=seed, device="cpu", threads=variants[name])
        return fit(model, dataset, None, cfg)[0]["epoch_time"]

    phases: dict[str, dict[str, Any]] = {}
    for phase in ("idle", "busy"):
        procs = _start_busy(n_busy) if phase == "busy" else []
        try:
            if procs:
                time.sleep(1.0)  # let the spinners get going
            load_start = os.getloadavg()[0]
            for name in variants:
                epoch(name, warm)
            times: dict[str, list[float]] = {name: [] for name in variants}
            for _r in range(repeats):
                for name in variants:
                    times[name].append(epoch(name, data))
                    say(f"threads {phase} {name} ({threads[name]}): {times[name][-1]:.2f} s")
            phases[phase] = {
                "load_avg_start": load_start,
                "load_avg_end": os.getloadavg()[0],
                "epoch_s": {name: statistics.median(t) for name, t in times.items()},
                "all_s": times,
            }
        finally:
            _stop_busy(procs)
    return {
        "meta": {
            "torch": torch.__version__,
            "cell": cell,
            "n_strings": len(data),
            "repeats": repeats,
            "n_busy": n_busy,
            "cpu_count": _n_cores(),
            "import_threads": _IMPORT_THREADS,
            "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
        },
        "threads": threads,
        "phases": phases,
    }


_VARIANT_NAMES = {
    "default": "default policy",
    "one": "1 thread forced",
    "all": "all cores",
}


def format_threads_report(results: dict[str, Any]) -> str:
    """The threads-under-load results as a Markdown table (seconds per epoch, ratios)."""
    m, ph = results["meta"], results["phases"]
    idle, busy = ph["idle"]["epoch_s"], ph["busy"]["epoch_s"]
    lines = [
        f"threads under load: {m['cell']} 3x50, {m['n_strings']} strings, batch 32, one fit "
        f"epoch (evaluation excluded), median of {m['repeats']}, variants interleaved; "
        f"torch {m['torch']}, {m['cpu_count']} cores, OMP_NUM_THREADS={m['omp_num_threads']}",
        f"idle: load average {ph['idle']['load_avg_start']:.1f} -> "
        f"{ph['idle']['load_avg_end']:.1f} (no busy process of ours); busy: {m['n_busy']} "
        f"spinning processes, load average {ph['busy']['load_avg_start']:.1f} -> "
        f"{ph['busy']['load_avg_end']:.1f}",
        "",
        "| variant | threads | idle s | busy s | busy / idle | idle / 1 thread | busy / 1 thread |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, label in _VARIANT_NAMES.items():
        lines.append(
            f"| {label} | {results['threads'][name]} | {idle[name]:.2f} | {busy[name]:.2f} | "
            f"{busy[name] / idle[name]:.2f} | {idle[name] / idle['one']:.2f} | "
            f"{busy[name] / busy['one']:.2f} |"
        )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point of ``python -m sparsernn.bench``."""
    parser = argparse.ArgumentParser(
        prog="python -m sparsernn.bench", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--quick", action="store_true", help="a run of under two minutes")
    parser.add_argument(
        "--section",
        choices=("steps", "threads", "all"),
        default="steps",
        help="steps: the step-time tables and projection (default); threads: one GRU epoch per "
        "thread policy, idle and beside 2 busy processes it starts (~2 min); all: both",
    )
    parser.add_argument("--device", default="cpu", help="cpu or cuda (default cpu)")
    parser.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch intra-op threads (default 1: on a shared, loaded machine multi-threaded "
        "steps of these small models get slower, not faster)",
    )
    parser.add_argument("--json", type=Path, default=None, help="also write the results here")
    parser.add_argument(
        "--cells", default=None, help="comma-separated subset of " + ",".join(MODES)
    )
    parser.add_argument("--no-reference", action="store_true", help="skip the slow references")
    parser.add_argument(
        "--cores",
        type=int,
        default=None,
        help="cores of the projected study run (default: this machine's)",
    )
    args = parser.parse_args(argv)
    if args.section in ("threads", "all"):
        threads_results = run_threads_benchmark(log=lambda msg: print(msg, flush=True))
        print()
        print(format_threads_report(threads_results))
        if args.json:
            path = args.json.with_name(args.json.stem + "-threads" + args.json.suffix)
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(threads_results, indent=2))
        if args.section == "threads":
            return 0
    changes: dict[str, Any] = {"device": args.device, "threads": args.threads, "cores": args.cores}
    if args.cells:
        cells = tuple(c.strip() for c in args.cells.split(",") if c.strip())
        changes["cells"] = cells
        changes["structured_cells"] = cells if not args.quick else cells[:1]
    if args.no_reference:
        changes["reference"] = False
    try:
        cfg = BenchConfig.quick(**changes) if args.quick else BenchConfig(**changes)
        t0 = time.perf_counter()
        results = run_benchmark(cfg, log=lambda msg: print(msg, flush=True))
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    results["meta"]["wall_s"] = time.perf_counter() - t0
    print()
    print(format_report(results))
    print(f"benchmark wall time {results['meta']['wall_s']:.0f} s")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
