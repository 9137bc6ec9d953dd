"""Threads under load: one ``fit`` epoch per thread policy, idle and beside busy processes.

``python -m sparsernn.bench --section threads``. It shows why training runs with one intra-op
thread unless told otherwise (:mod:`sparsernn._threads`): on a loaded machine the threads of
these small operations wait for each other.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from sparsernn._threads import resolve_threads
from sparsernn.data import Dataset, DataSpec, make_dataset
from sparsernn.models import ModelConfig, build_model
from sparsernn.tasks import strings_task
from sparsernn.train import TrainConfig, fit

__all__ = ["run_threads_benchmark", "format_threads_report"]

#: torch's intra-op thread count when this module was imported (its default unless
#: ``OMP_NUM_THREADS`` or the caller changed it before).
_IMPORT_THREADS = torch.get_num_threads()
#: A busy process that ends by itself after this many seconds, should it outlive its killer.
_BUSY_LIMIT_S = 900
_BUSY_CODE = (
    "import time\nend = time.monotonic() + {limit}\nwhile time.monotonic() < end:\n    pass\n"
)
_VARIANT_NAMES = {"default": "default policy", "one": "1 thread forced", "all": "all cores"}


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


def _time_phase(
    phase: str,
    n_busy: int,
    repeats: int,
    epoch: Callable[[str, bool], float],
    say: Callable[[str], None],
) -> dict[str, Any]:
    """Median epoch time of each variant, round-robin, beside ``n_busy`` spinning processes.

    ``epoch(variant, warmup)`` trains one epoch (on a small set for the warm-up) and returns
    its time.
    """
    procs = _start_busy(n_busy) if n_busy else []
    try:
        if procs:
            time.sleep(1.0)  # let the spinners get going
        load_start = os.getloadavg()[0]
        for name in _VARIANT_NAMES:
            epoch(name, True)  # warm-up on a small set
        times: dict[str, list[float]] = {name: [] for name in _VARIANT_NAMES}
        for _r in range(repeats):
            for name in _VARIANT_NAMES:
                times[name].append(epoch(name, False))
                say(f"threads {phase} {name}: {times[name][-1]:.2f} s")
        return {
            "load_avg_start": load_start,
            "load_avg_end": os.getloadavg()[0],
            "epoch_s": {name: statistics.median(t) for name, t in times.items()},
            "all_s": times,
        }
    finally:
        _stop_busy(procs)


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
    train, test = make_dataset(DataSpec(n_strings=n_strings, seed=seed))
    data = strings_task(
        Dataset(train.strings + test.strings, np.concatenate([train.labels, test.labels]))
    )
    warm = strings_task(Dataset(train.strings[:200], train.labels[:200]))
    all_threads = _IMPORT_THREADS if _IMPORT_THREADS > 1 else _n_cores()
    variants = {"default": None, "one": 1, "all": all_threads}

    def epoch(name: str, warmup: bool) -> float:
        model = build_model(ModelConfig(cell=cell), seed=seed)
        cfg = TrainConfig(epochs=1, seed=seed, device="cpu", threads=variants[name])
        return fit(model, warm if warmup else data, None, cfg)[0]["epoch_time"]

    say = log or (lambda _msg: None)
    phases = {"idle": _time_phase("idle", 0, repeats, epoch, say)}
    phases["busy"] = _time_phase("busy", n_busy, repeats, epoch, say)
    meta = {"torch": torch.__version__, "cell": cell, "n_strings": len(data), "repeats": repeats}
    meta.update(n_busy=n_busy, cpu_count=_n_cores(), import_threads=_IMPORT_THREADS)
    meta["omp_num_threads"] = os.environ.get("OMP_NUM_THREADS")
    return {
        "meta": meta,
        "threads": {name: resolve_threads(n) for name, n in variants.items()},
        "phases": phases,
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
