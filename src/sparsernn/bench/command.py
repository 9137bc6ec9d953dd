"""The command line of ``python -m sparsernn.bench`` (``make bench``)."""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from sparsernn.bench.config import BenchConfig
from sparsernn.bench.formatting import format_report
from sparsernn.bench.sections import run_benchmark
from sparsernn.bench.threads import format_threads_report, run_threads_benchmark
from sparsernn.errors import ConfigError
from sparsernn.nn.cells import MODES

__all__ = ["main"]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m sparsernn.bench",
        description="Benchmark of training-step times, and a projection of the study's wall time.",
        epilog="Two more tools: python -m sparsernn.bench.profile_structure (where a structure "
        "step's time goes) and python -m sparsernn.bench.compare_kernel_runs NATIVE_DIR "
        "TORCH_DIR (two structure studies, compiled loop against the PyTorch path).",
    )
    parser.add_argument("--quick", action="store_true", help="a run of under two minutes")
    parser.add_argument(
        "--section",
        choices=("steps", "threads", "sparse", "all"),
        default="steps",
        help="steps: the step-time tables and projection (default); threads: one GRU epoch per "
        "thread policy, idle and beside 2 busy processes it starts (~2 min); sparse: the sparse "
        "path against dense torch.nn over cells, sizes, sparsities and batches, with the "
        "crossovers (not part of all); all: steps and threads",
    )
    parser.add_argument(
        "--write-crossover",
        action="store_true",
        help="with --section sparse: write the measured crossovers into the package "
        "(sparsernn/nn/sparse_crossover.json), which MaskedRNN(kernel='auto') reads",
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
    return parser


def _write_json(path: Path, results: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(results, indent=2))


def _threads_section(json_path: Path | None) -> None:
    results = run_threads_benchmark(log=lambda msg: print(msg, flush=True))
    print()
    print(format_threads_report(results))
    if json_path:
        _write_json(json_path.with_name(json_path.stem + "-threads" + json_path.suffix), results)


def _steps_config(args: argparse.Namespace) -> BenchConfig:
    """The BenchConfig the flags ask for (``--quick``: :meth:`BenchConfig.quick`)."""
    changes: dict[str, Any] = {"device": args.device, "threads": args.threads, "cores": args.cores}
    if args.cells:
        cells = tuple(c.strip() for c in args.cells.split(",") if c.strip())
        changes["cells"] = cells
        changes["structured_cells"] = cells if not args.quick else cells[:1]
    if args.no_reference:
        changes["reference"] = False
    return BenchConfig.quick(**changes) if args.quick else BenchConfig(**changes)


def _finish(results: dict[str, Any], t0: float, report, json_path: Path | None) -> None:
    """Print a run's report and wall time; write its JSON where asked."""
    results["meta"]["wall_s"] = time.perf_counter() - t0
    print()
    print(report(results))
    print(f"benchmark wall time {results['meta']['wall_s']:.0f} s")
    if json_path:
        _write_json(json_path, results)


def _sparse_section(args: argparse.Namespace) -> int:
    """``--section sparse``: the grid, the study rows, the crossovers (see bench.sparse)."""
    from sparsernn.bench.sparse import SparseBenchConfig, run_sparse_benchmark
    from sparsernn.bench.sparse_report import crossover_json, format_sparse_report

    changes: dict[str, Any] = {}
    if args.cells:
        changes["cells"] = tuple(c.strip() for c in args.cells.split(",") if c.strip())
    try:
        cfg = SparseBenchConfig.quick(**changes) if args.quick else SparseBenchConfig(**changes)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    t0 = time.perf_counter()
    results = run_sparse_benchmark(cfg, log=lambda msg: print(msg, flush=True))
    _finish(results, t0, format_sparse_report, args.json)
    if args.write_crossover:
        import sparsernn.nn

        target = Path(sparsernn.nn.__file__).with_name("sparse_crossover.json")
        target.write_text(crossover_json(results))
        print(f"crossovers written to {target}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point of ``python -m sparsernn.bench``; returns the exit status."""
    args = _parser().parse_args(argv)
    if args.section == "sparse":
        return _sparse_section(args)
    if args.section in ("threads", "all"):
        _threads_section(args.json)
        if args.section == "threads":
            return 0
    try:
        cfg = _steps_config(args)
        t0 = time.perf_counter()
        results = run_benchmark(cfg, log=lambda msg: print(msg, flush=True))
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    _finish(results, t0, format_report, args.json)
    return 0
