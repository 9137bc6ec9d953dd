"""``python -m sparsernn.bench --section sparse``: when does sparsity pay on this machine?

Two parts, every comparison timed round-robin in one process at one torch thread (the
variants of a row see the same load):

- ``torch.sparse`` first (:func:`_torch_sparse_row`): LSTM inference at 90% sparsity through
  CSR tensors (MKL) in a per-step loop, beside dense ``torch.nn`` and the compiled layer;
- the grid (:func:`_grid_row`): per cell, hidden size, batch and phase, one recurrent layer
  (input size = hidden size, ``steps`` time steps) run by dense ``torch.nn`` (``dense``),
  by ``MaskedRNN(kernel="dense")`` (``masked``: the path ``auto`` falls back to; its time does not
  depend on the sparsity) and by the sparse path at each sparsity (``sparse@s``: a
  :class:`~sparsernn.nn.SparseRNN` for inference, ``MaskedRNN(kernel="sparse")`` for a
  training step). *inference* is a forward without autograd; a *training step* is forward,
  mean-square loss, backward and a fused Adam step. Times are process CPU time (see
  ``_meta``). Memory: the stored weight bytes of each variant, and the process's peak RSS
  after each hidden size (a high-water mark).
- the study (:func:`_study_rows`): the study's 3 x 50 classifier at batch 32, the engine's
  training step (``TrainStep``: embedding, cross-entropy, clipping, Adam): dense ``torch.nn``,
  ``MaskedRNN(kernel="dense")`` and the sparse kernel for each of the full profile's 30 pruning
  points (3 targets x 10 amounts, magnitude-pruned), and the 30 copies trained at once
  (``train_many``'s batched step), for the projection of the pruning grid's hours.

Crossovers, the projection and the report are in :mod:`sparsernn.bench.sparse_report`.
"""

from __future__ import annotations

import copy
import dataclasses
import datetime
import math
import os
import platform
import resource
import statistics
import subprocess
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any, cast

import torch
from torch import Tensor, nn

from sparsernn._threads import torch_threads
from sparsernn.batching import EncodedData
from sparsernn.bench.config import study_train_step
from sparsernn.bench.sections import DenseClassifier
from sparsernn.bench.sparse_report import crossovers, grid_line, split_alone, study_line
from sparsernn.bench.timing import draw_batches, eval_step
from sparsernn.config import Config
from sparsernn.data import DataSpec, make_dataset
from sparsernn.errors import ConfigError
from sparsernn.models import BatchedClassifier, ModelConfig, SequenceClassifier, build_model
from sparsernn.nn import MODES, MaskedRNN, SparseRNN, sparse_kernel, sparse_path
from sparsernn.nn.cells import cell_spec
from sparsernn.prune import TARGETS, magnitude_prune
from sparsernn.tasks import strings_task
from sparsernn.train import make_adam

__all__ = ["SparseBenchConfig", "run_sparse_benchmark"]


@dataclasses.dataclass(frozen=True)
class SparseBenchConfig(Config):
    """What the sparse section measures (defaults: the full grid; :meth:`quick` for a smoke run)."""

    cells: tuple[str, ...] = MODES
    hidden_sizes: tuple[int, ...] = (50, 256, 1024)
    sparsities: tuple[float, ...] = (0.0, 0.5, 0.8, 0.9, 0.95, 0.99)
    batch_sizes: tuple[int, ...] = (1, 32)
    steps: int = 50
    warmup: int = 1
    repeats: int = 7
    study: bool = True
    amounts: tuple[int, ...] = (10, 20, 30, 40, 50, 60, 70, 80, 90, 100)
    study_repeats: int = 5
    n_strings: int = 3000
    seed: int = 0

    def __post_init__(self) -> None:
        for cell in self.cells:
            cell_spec(cell)
        if not all(0 <= s < 1 for s in self.sparsities):
            raise ConfigError(f"sparsities {self.sparsities} must be fractions in [0, 1)")
        if min(*self.hidden_sizes, *self.batch_sizes, self.steps, self.repeats) < 1:
            raise ConfigError("hidden sizes, batch sizes, steps and repeats must be >= 1")

    @classmethod
    def quick(cls, **changes: Any) -> SparseBenchConfig:
        """A reduced grid (a few minutes under load; the test suite shrinks it further)."""
        base = {
            "hidden_sizes": (50, 256),
            "sparsities": (0.5, 0.9, 0.99),
            "steps": 20,
            "repeats": 2,
            "amounts": (80, 90),
            "study_repeats": 2,
        }
        return cls(**{**base, **changes})


# ---------------------------------------------------------------------------------- timing
class BlockTimer:
    """Interleaved medians like :meth:`sparsernn.bench.timing.Timer.interleaved`, each sample
    the mean of a block of calls lasting at least ``min_ms`` of CPU time (calibrated on the
    warm-up): single calls of a few ms time bimodally on a loaded machine, locked to the
    round-robin's phase (benchmarks/perf-log.md, "Timing calls of a few milliseconds")."""

    def __init__(self, min_ms: float = 20.0) -> None:
        self.min_ms = min_ms

    def interleaved(self, steps, batches, warmup: int, repeats: int) -> dict[str, dict]:
        number = {}
        for name, fn in steps.items():
            for i in range(warmup):
                fn(*batches[i % len(batches)])
            t0 = time.process_time()
            fn(*batches[0])
            once = 1e3 * (time.process_time() - t0)
            number[name] = max(1, math.ceil(self.min_ms / max(once, 1e-3)))
        cpu: dict[str, list[float]] = {name: [] for name in steps}
        wall: dict[str, list[float]] = {name: [] for name in steps}
        for r in range(repeats):
            for name, fn in steps.items():
                t0, c0 = time.perf_counter(), time.process_time()
                for j in range(number[name]):
                    fn(*batches[(r + j) % len(batches)])
                wall[name].append(1e3 * (time.perf_counter() - t0) / number[name])
                cpu[name].append(1e3 * (time.process_time() - c0) / number[name])
        return {
            name: {
                "ms": statistics.median(wall[name]),
                "cpu_ms": statistics.median(cpu[name]),
                "calls": number[name],
            }  # fmt: skip
            for name in steps
        }


# ---------------------------------------------------------------------------------- the grid
def _random_masks(module: MaskedRNN, sparsity: float, gen: torch.Generator) -> None:
    for name in module.weight_names():
        shape = module.trainable(name).shape
        module.set_mask(name, torch.rand(shape, generator=gen) >= sparsity)


def _weight_bytes(module: nn.Module) -> int:
    """Bytes of the stored weights and index buffers (masks excluded: inference needs none)."""
    tensors = [*module.parameters(), *(b for n, b in module.named_buffers() if "_mask" not in n)]
    return sum(t.numel() * t.element_size() for t in tensors)


def _inference(module: nn.Module) -> Callable[[Tensor, Any], Any]:
    def run(x: Tensor, _: Any) -> None:
        with torch.no_grad():
            module(x)

    return run


def _training(module: nn.Module) -> Callable[[Tensor, Any], Any]:
    params = [p for p in module.parameters() if p.requires_grad]
    opt = make_adam(params, 1e-3)

    def run(x: Tensor, _: Any) -> None:
        opt.zero_grad(set_to_none=True)
        out, _ = module(x)
        out.square().mean().backward()
        opt.step()

    return run


def _grid_variants(cfg, cell: str, hidden: int, phase: str) -> dict[str, nn.Module]:
    """dense torch.nn, the masked dense path and the sparse path at every sparsity."""
    spec = cell_spec(cell)
    gen = torch.Generator().manual_seed(cfg.seed)
    torch.manual_seed(cfg.seed)
    dense = spec.torch_class(hidden, hidden, **spec.torch_kwargs)
    variants: dict[str, nn.Module] = {"dense": dense}
    masked = MaskedRNN.from_torch(dense)
    masked.kernel = "dense"
    _random_masks(masked, max(cfg.sparsities), gen)
    variants["masked"] = masked
    for s in cfg.sparsities:
        twin = MaskedRNN.from_torch(dense)
        _random_masks(twin, s, gen)
        if phase == "infer":
            variants[f"sparse@{s:g}"] = SparseRNN.from_module(twin, kernel="sparse")
        else:
            twin.kernel = "sparse"
            variants[f"sparse@{s:g}"] = twin
    return variants


def _grid_row(cfg, timer: BlockTimer, cell: str, hidden: int, batch: int, phase: str):
    """One row: median ms of every variant of one (cell, hidden, batch, phase), interleaved."""
    variants = _grid_variants(cfg, cell, hidden, phase)
    x = torch.randn(cfg.steps, batch, hidden, generator=torch.Generator().manual_seed(1))
    make = _inference if phase == "infer" else _training
    big = hidden * batch * cfg.steps > 50 * 32 * 50 * 16  # e.g. H = 1024 at batch 32
    repeats = max(3, cfg.repeats // 2) if big else cfg.repeats
    times = timer.interleaved(
        {name: make(m) for name, m in variants.items()}, [(x, x)], cfg.warmup, repeats
    )
    return {
        "cell": cell,
        "hidden": hidden,
        "batch": batch,
        "phase": phase,
        "steps": cfg.steps,
        "ms": {name: t["cpu_ms"] for name, t in times.items()},
        "wall_ms": {name: t["ms"] for name, t in times.items()},
        "weight_bytes": {
            name: _weight_bytes(
                m if phase == "infer" or name == "dense" else SparseRNN.from_module(m)
            )
            for name, m in variants.items()
        },
    }


# ---------------------------------------------------------------------------------- torch.sparse
def _csr_lstm(dense: nn.LSTM, x: Tensor) -> Callable[[Tensor, Any], Any]:
    """One LSTM layer's forward through ``torch.sparse``: the weights as CSR tensors (MKL's
    sparse times dense on CPU), the input product of all steps at once, then one sparse
    product and the gate ops per step, as a Python loop would run them."""
    p = dict(dense.named_parameters())
    with warnings.catch_warnings():  # "sparse CSR support is in beta"
        warnings.simplefilter("ignore", UserWarning)
        w_ih = p["weight_ih_l0"].detach().to_sparse_csr()
        w_hh = p["weight_hh_l0"].detach().to_sparse_csr()
    bias = (p["bias_ih_l0"] + p["bias_hh_l0"]).detach().unsqueeze(1)
    steps, batch, n_in = x.shape

    def run(_x: Tensor, _: Any) -> None:
        with torch.no_grad():
            gi = (w_ih @ x.reshape(steps * batch, n_in).t() + bias).view(-1, steps, batch)
            h = x.new_zeros(dense.hidden_size, batch)
            c = torch.zeros_like(h)
            for t in range(steps):
                i, f, g, o = (gi[:, t] + w_hh @ h).chunk(4, 0)
                c = f.sigmoid() * c + i.sigmoid() * g.tanh()
                h = o.sigmoid() * c.tanh()

    return run


def _block_fill(mask: Tensor, size: int = 4) -> float:
    """Share of the mask's (size x size) blocks holding a kept weight (what BSR would store)."""
    rows, cols = (mask.shape[0] // size) * size, (mask.shape[1] // size) * size
    blocks = mask[:rows, :cols].reshape(rows // size, size, cols // size, size)
    return float(blocks.any(3).any(1).float().mean())


def _torch_sparse_row(cfg, timer: BlockTimer, hidden: int, batch: int) -> dict[str, Any]:
    """LSTM inference at 90%: dense torch.nn, a torch.sparse (CSR) loop, the compiled layer."""
    torch.manual_seed(cfg.seed)
    dense = nn.LSTM(hidden, hidden)
    masked = MaskedRNN.from_torch(dense)
    _random_masks(masked, 0.9, torch.Generator().manual_seed(cfg.seed))
    dense = cast(nn.LSTM, masked.to_torch())
    x = torch.randn(cfg.steps, batch, hidden, generator=torch.Generator().manual_seed(1))
    steps = {
        "dense": _inference(dense),
        "torch.sparse": _csr_lstm(dense, x),
        "compiled": _inference(SparseRNN.from_module(masked, kernel="sparse")),
    }
    big = hidden * batch > 1024 * 16
    times = timer.interleaved(steps, [(x, x)], cfg.warmup, max(3, cfg.repeats // 2) if big
                              else cfg.repeats)  # fmt: skip
    return {
        "hidden": hidden,
        "batch": batch,
        "ms": {k: t["cpu_ms"] for k, t in times.items()},
        "block_fill": _block_fill(dict(masked.masks())["weight_hh_l0"]),
    }


# ---------------------------------------------------------------------------------- the study
def _rnn(model: SequenceClassifier) -> MaskedRNN:
    return cast(MaskedRNN, model.recurrent)


def _copies(base: SequenceClassifier, amounts) -> list[tuple[str, int, SequenceClassifier]]:
    """The pruning grid's points: (target, amount, magnitude-pruned copy), kernel dense."""
    out = []
    for target in TARGETS:
        for amount in amounts:
            m = copy.deepcopy(base)
            magnitude_prune(m, amount / 100, target)
            _rnn(m).kernel = "dense"
            out.append((target, amount, m))
    return out


def _density(model: SequenceClassifier) -> float:
    masks = [m for _, m in _rnn(model).masks()]
    return sum(int(m.sum()) for m in masks) / sum(m.numel() for m in masks)


def _study_rows(cfg, timer: BlockTimer, cell: str, batches) -> dict[str, Any]:
    """The 3 x 50 classifier's training step: dense torch.nn, the masked dense path, the sparse
    kernel at every pruning point, and all points at once (train_many's batched step)."""
    base = build_model(ModelConfig(cell=cell), seed=cfg.seed)
    copies = _copies(base, cfg.amounts)
    sparse = []
    for _, _, m in copies:
        twin = copy.deepcopy(m)
        _rnn(twin).kernel = "sparse"
        sparse.append(twin)
    models: dict[str, nn.Module] = {"dense": DenseClassifier(base), "masked": copies[0][2]}
    models.update({f"sparse/{t}/{a}": s for (t, a, _), s in zip(copies, sparse, strict=True)})
    models["batched"] = BatchedClassifier.from_models([m for _, _, m in copies])
    steps = {name: study_train_step(m) for name, m in models.items()}
    times = timer.interleaved(steps, batches, cfg.warmup, cfg.study_repeats)
    evals = timer.interleaved(
        {k: eval_step(m) for k, m in models.items() if k != "dense"},
        batches, min(cfg.warmup, 1), cfg.study_repeats,
    )  # fmt: skip
    return {
        "cell": cell,
        "batch": batches[0][1].shape[0],
        "n_models": len(copies),
        "ms": {name: t["cpu_ms"] for name, t in times.items()},
        "wall_ms": {name: t["ms"] for name, t in times.items()},
        "eval_ms": {name: t["cpu_ms"] for name, t in evals.items()},
        "points": [{"target": t, "amount": a, "density": _density(m)} for t, a, m in copies],
    }


def _batched_subset_ms(cfg, timer: BlockTimer, cell: str, batches, keep: list[int]) -> float | None:
    """ms of the batched step of only the points ``keep`` (what train_many batches once it
    trains the others alone), scaled to the study rows' timing by a K = all anchor."""
    base = build_model(ModelConfig(cell=cell), seed=cfg.seed)
    copies = [m for _, _, m in _copies(base, cfg.amounts)]
    if not keep or len(keep) == len(copies):
        return None
    steps = {
        "all": study_train_step(BatchedClassifier.from_models(copies)),
        "kept": study_train_step(BatchedClassifier.from_models([copies[i] for i in keep])),
    }
    times = timer.interleaved(steps, batches, cfg.warmup, cfg.study_repeats)
    return times["kept"]["cpu_ms"] / times["all"]["cpu_ms"]


# ---------------------------------------------------------------------------------- running
def _commit() -> str:
    try:
        where = Path(__file__).resolve().parent
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=where,
                             capture_output=True, text=True, timeout=10)  # fmt: skip
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"],
                               cwd=where, capture_output=True, text=True, timeout=10)  # fmt: skip
        return out.stdout.strip() + ("+changes" if dirty.stdout.strip() else "") or "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def _peak_rss_mb() -> float:
    """The process's peak resident memory so far (a high-water mark), MB."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _meta(cfg: SparseBenchConfig) -> dict[str, Any]:
    return {
        "date": datetime.date.today().isoformat(),
        "commit": _commit(),
        "torch": torch.__version__,
        "machine": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "threads": torch.get_num_threads(),
        "compiled": sparse_kernel.unavailable_reason() or "yes",
        "crossover_at_start": {  # the table auto reads now: checked against this run's times
            "table": copy.deepcopy(sparse_path.CROSSOVER),
            "measured": sparse_path.MEASURED["measured"],
            "commit": sparse_path.MEASURED["commit"],
        },
        "load_avg_start": os.getloadavg()[0],
        "timing": (
            "median process CPU ms per call over repeats after warm-up, a row's variants "
            "interleaved (CPU time, not wall: on a loaded machine a call of a few ms is "
            "preempted for a whole time slice or not, by the round-robin's phase; wall medians "
            "are in the JSON as wall_ms)"
        ),
    }


def run_sparse_benchmark(
    config: SparseBenchConfig | None = None, *, log: Callable[[str], None] | None = None
) -> dict[str, Any]:
    """Run the sparse section at one thread (denormals flushed); JSON-ready results."""
    cfg = config or SparseBenchConfig()
    say = log or (lambda _msg: None)
    with torch_threads(1):
        timer = BlockTimer()
        results: dict[str, Any] = {"meta": _meta(cfg), "config": cfg.to_dict()}
        results.update(grid=[], study=[], rss_mb={})
        for hidden in cfg.hidden_sizes:
            for cell in cfg.cells:
                for batch in cfg.batch_sizes:
                    for phase in ("infer", "train"):
                        row = _grid_row(cfg, timer, cell, hidden, batch, phase)
                        results["grid"].append(row)
                        say(grid_line(row))
            results["rss_mb"][str(hidden)] = _peak_rss_mb()
        results["crossover"] = crossovers(results["grid"])
        results["torch_sparse"] = [
            _torch_sparse_row(cfg, timer, hidden, batch)
            for hidden in cfg.hidden_sizes
            for batch in cfg.batch_sizes
        ]
        if cfg.study:
            data = EncodedData(
                strings_task(make_dataset(DataSpec(n_strings=cfg.n_strings, seed=cfg.seed))[0])
            )
            n = cfg.warmup + cfg.study_repeats
            batches = draw_batches(data, 32, n, cfg.seed, torch.device("cpu"))
            for cell in cfg.cells:
                row = _study_rows(cfg, timer, cell, batches)
                keep = split_alone(row, results["crossover"])[1]
                row["batched_kept_scale"] = _batched_subset_ms(cfg, timer, cell, batches, keep)
                results["study"].append(row)
                say(study_line(row))
        results["meta"]["load_avg_end"] = os.getloadavg()[0]
        results["meta"]["peak_rss_mb"] = _peak_rss_mb()
        return results
