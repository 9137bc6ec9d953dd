"""The command line of ``python -m sparsernn.bench`` (``make bench``, ``benchmarks/run.py``)."""

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


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point of ``python -m sparsernn.bench``; returns the exit status."""
    args = _parser().parse_args(argv)
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
    results["meta"]["wall_s"] = time.perf_counter() - t0
    print()
    print(format_report(results))
    print(f"benchmark wall time {results['meta']['wall_s']:.0f} s")
    if args.json:
        _write_json(args.json, results)
    return 0
