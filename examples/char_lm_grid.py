"""Bits per character against sparsity, per method and seed: the character-level language model
of ``char_lm.py`` over a grid, stored as data for ``docs/pages/lm.py`` (``make docs``).

    nice -n 10 python examples/char_lm_grid.py --out results/lm

Writes ``points.csv`` (one row per seed x method x sparsity, the dense model as sparsity 0,
with the achieved sparsity) and ``manifest.json`` (commit, date, versions, CPU, threads,
configuration, wall time). A run that stops resumes: rows already in ``points.csv`` are kept.
``--jobs N`` trains N models at once, each on one thread (the numbers do not change).
"""

from __future__ import annotations

import argparse
import concurrent.futures
import dataclasses
import datetime
import json
import multiprocessing
import platform
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import torch

sys.path.insert(0, str(Path(__file__).parent))
import char_lm  # noqa: E402 - the example beside this script

COLUMNS = [
    "method",
    "sparsity",
    "seed",
    "achieved_sparsity",
    "bpc",
    "train_loss_bits",
    "train_s",
    "train_cpu_s",
]


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _commit() -> str:
    def git(*args: str) -> str:
        return subprocess.run(["git", *args], capture_output=True, text=True, check=False).stdout

    head = git("rev-parse", "HEAD").strip() or "unknown"
    dirty = git("status", "--porcelain", "--untracked-files=no").strip()
    return head + ("+dirty" if dirty else "")


def grid(methods: list[str], sparsities: list[float], seeds: list[int]):
    """``(method, sparsity, seed)`` of every run: the dense models first, then each sparsity
    in the order given, all seeds and methods (a grid cut short has whole sparsities)."""
    for seed in seeds:
        yield "dense", 0.0, seed
    for sparsity in sparsities:
        for seed in seeds:
            for method in methods:
                yield method, sparsity, seed


def _run(base: char_lm.Config, key: tuple[str, float, int], train_text: str, held_out_text: str):
    method, sparsity, seed = key
    cfg = dataclasses.replace(base, method=method, sparsity=sparsity, seed=seed)
    return char_lm.run(cfg, train_text, held_out_text)


def _results(jobs: int, base: char_lm.Config, todo: list, train_text: str, held_out_text: str):
    """``(key, result)`` of every run of ``todo``, as they finish (``jobs`` at once)."""
    if jobs == 1:
        for key in todo:
            yield key, _run(base, key, train_text, held_out_text)
        return
    context = multiprocessing.get_context("spawn")  # fresh interpreters: no forked torch state
    with concurrent.futures.ProcessPoolExecutor(jobs, mp_context=context) as pool:
        runs = {pool.submit(_run, base, key, train_text, held_out_text): key for key in todo}
        for future in concurrent.futures.as_completed(runs):
            yield runs[future], future.result()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("results/lm"))
    parser.add_argument("--methods", default="magnitude,rigl")
    parser.add_argument("--sparsities", default="0.5,0.8,0.9,0.95")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--steps", type=int, default=char_lm.Config.steps)
    parser.add_argument("--hidden-size", type=int, default=char_lm.Config.hidden_size)
    parser.add_argument("--held-out-chars", type=int, default=char_lm.Config.held_out_chars)
    parser.add_argument("--train-chars", type=int, default=char_lm.Config.train_chars)
    parser.add_argument("--jobs", type=int, default=1, help="runs at once (each one thread)")
    args = parser.parse_args(argv)
    base = char_lm.Config(
        steps=args.steps,
        hidden_size=args.hidden_size,
        held_out_chars=args.held_out_chars,
        train_chars=args.train_chars,
    )
    methods = args.methods.split(",")
    sparsities = [float(s) for s in args.sparsities.split(",")]
    seeds = [int(s) for s in args.seeds.split(",")]
    args.out.mkdir(parents=True, exist_ok=True)
    points_path = args.out / "points.csv"
    done = pd.read_csv(points_path) if points_path.exists() else pd.DataFrame(columns=COLUMNS)
    have = {(r.method, float(r.sparsity), int(r.seed)) for r in done.itertuples()}
    train_text = char_lm.read_text(char_lm.TRAIN_FILES, base.train_chars)
    held_out_text = char_lm.read_text(char_lm.HELD_OUT_FILES, base.held_out_chars)
    started, commit = time.perf_counter(), _commit()  # the code that trains, not later code
    todo = [key for key in grid(methods, sparsities, seeds) if key not in have]
    for (method, sparsity, seed), res in _results(args.jobs, base, todo, train_text, held_out_text):
        row = {"method": method, "sparsity": sparsity, "seed": seed, **res}
        done = pd.concat([done, pd.DataFrame([row])[COLUMNS]], ignore_index=True)
        done.to_csv(points_path, index=False)
        print(
            f"{method:>10} {sparsity:.2f} seed {seed}: bpc {res['bpc']:.4f} "
            f"({res['achieved_sparsity']:.3f} sparse, {res['train_cpu_s']:.0f} s CPU)",
            flush=True,
        )
    manifest_path = args.out / "manifest.json"
    earlier = json.loads(manifest_path.read_text()) if manifest_path.exists() else {}
    config = dataclasses.asdict(base)
    for name in ("method", "sparsity", "seed"):
        config.pop(name)
    manifest = {
        "commit": commit,
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "cpu": _cpu_model(),
        "threads": base.threads,
        "jobs": args.jobs,
        "config": config,
        "grid": {"methods": ["dense", *methods], "sparsities": sparsities, "seeds": seeds},
        "method_options": "char_lm.method_options: magnitude prunes once at steps // 2 "
        "(dense first half, fine-tuned second half); rigl updates every update_every steps "
        "until 75% of the steps; target both (every LSTM weight matrix), scope gate",
        "train_files": list(char_lm.TRAIN_FILES),
        "held_out_files": list(char_lm.HELD_OUT_FILES),
        "train_chars": len(train_text),
        "held_out_chars": len(held_out_text),
        "wall_s": earlier.get("wall_s", 0.0) + time.perf_counter() - started,
        "train_wall_s": float(done["train_s"].sum()),
        "train_cpu_s": float(done["train_cpu_s"].sum()),
    }
    manifest_path.write_text(json.dumps(manifest, indent=2) + "\n")
    print(f"wrote {points_path} ({len(done)} rows) and {manifest_path}")


if __name__ == "__main__":
    main()
