"""Run a study's units inline, in local worker processes or on a Ray cluster, resumably.

The driver (this process) is the only writer of the results store: it plans all units, skips
those already stored, sends the rest to an executor and commits each result in one transaction
as soon as it arrives, so an interrupted study loses at most the units in flight.
"""

from __future__ import annotations

import multiprocessing
import os
import time
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sparsernn.errors import ConfigError
from sparsernn.experiments.config import StudyConfig
from sparsernn.experiments.units import Unit, execute, plan_units
from sparsernn.store import ResultsStore, artefact_dir, atomic_write_bytes

__all__ = ["run_study", "StudyRun", "EXECUTORS"]

EXECUTORS = ("local", "ray")


@dataclass
class StudyRun:
    """What :func:`run_study` did: counts of units by outcome and the wall time."""

    study_dir: Path
    total: int = 0
    skipped: int = 0
    done: int = 0
    failed: int = 0
    blocked: int = 0
    wall_s: float = 0.0
    failures: list[str] = field(default_factory=list)


def _worker_init(threads: int) -> None:
    import torch

    torch.set_num_threads(threads)


def _execute_local(jobs, workers: int) -> Iterator[tuple[Unit, dict[str, Any]]]:
    """Yield (unit, result) as units finish; ``jobs`` yields (unit, base_bytes) lazily."""
    if workers <= 1:
        for unit, base in jobs:
            yield unit, execute({"kind": unit.kind, "config": unit.config}, base)
        return
    threads = max(1, (os.cpu_count() or 1) // workers)
    ctx = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(
        workers, mp_context=ctx, initializer=_worker_init, initargs=(threads,)
    ) as pool:
        pending = {}
        it = iter(jobs)
        exhausted = False
        while True:
            while not exhausted and len(pending) < 2 * workers:
                try:
                    unit, base = next(it)
                except StopIteration:
                    exhausted = True
                    break
                fut = pool.submit(execute, {"kind": unit.kind, "config": unit.config}, base)
                pending[fut] = unit
            if not pending:
                return
            finished, _ = wait(pending, return_when=FIRST_COMPLETED)
            for fut in finished:
                yield pending.pop(fut), fut.result()


def _execute_ray(jobs, address: str | None, gpus: float) -> Iterator[tuple[Unit, dict[str, Any]]]:
    try:
        import ray
    except ImportError:
        raise ConfigError(
            "--executor ray needs Ray: pip install 'sparsernn[ray]' (or pip install ray)"
        ) from None
    if not ray.is_initialized():
        ray.init(address=address, ignore_reinit_error=True, log_to_driver=False)
    remote = ray.remote(num_cpus=1, num_gpus=gpus)(execute)
    capacity = max(1, int(ray.available_resources().get("CPU", 1)))
    pending: dict[Any, Unit] = {}
    it = iter(jobs)
    exhausted = False
    while True:
        while not exhausted and len(pending) < 2 * capacity:
            try:
                unit, base = next(it)
            except StopIteration:
                exhausted = True
                break
            pending[remote.remote({"kind": unit.kind, "config": unit.config}, base)] = unit
        if not pending:
            return
        ready, _ = ray.wait(list(pending), num_returns=1)
        for ref in ready:
            yield pending.pop(ref), ray.get(ref)


def run_study(
    study: StudyConfig,
    out: str | os.PathLike[str],
    *,
    workers: int | None = 1,
    executor: str = "local",
    address: str | None = None,
    gpus_per_unit: float = 0.0,
    retry_failed: bool = False,
    kinds: tuple[str, ...] | None = None,
    progress: bool = True,
    on_result: Callable[[Unit, dict[str, Any]], None] | None = None,
) -> StudyRun:
    """Run (or resume) every unit of ``study`` in directory ``out``; return what happened.

    Units already stored as done are skipped; failed ones are skipped unless
    ``retry_failed``. Pruning units start once their base model is stored. ``kinds`` restricts
    the run to some unit kinds (e.g. ``("base", "prune")`` for ``sparsernn prune``).
    """
    if executor not in EXECUTORS:
        raise ConfigError(f"unknown executor {executor!r}; choose from {', '.join(EXECUTORS)}")
    if workers is not None and workers < 1:
        raise ConfigError(f"--workers {workers} must be >= 1")
    workers = workers or os.cpu_count() or 1
    run = StudyRun(Path(out))
    t0 = time.perf_counter()
    units = [u for u in plan_units(study) if kinds is None or u.kind in kinds]
    run.total = len(units)
    with ResultsStore.open(out) as store:
        store.set_meta("study", study.to_dict())
        (Path(out) / "study.toml").write_text(study.to_toml())
        done = store.keys(status="done")
        failed = store.keys(status="failed")
        todo = [u for u in units if u.key not in done and (retry_failed or u.key not in failed)]
        run.skipped = run.total - len(todo)
        first = [u for u in todo if u.depends_on is None]
        second = [u for u in todo if u.depends_on is not None]
        bar = _bar(progress, len(todo))
        try:
            for phase in (first, second):
                jobs = _jobs(phase, store, run)
                if executor == "ray":
                    results = _execute_ray(jobs, address, gpus_per_unit)
                else:
                    results = _execute_local(jobs, workers)
                for unit, result in results:
                    _commit(store, unit, result, run)
                    if on_result is not None:
                        on_result(unit, result)
                    if bar is not None:
                        bar.set_postfix_str(f"{unit.label} [{result['status']}]", refresh=False)
                        bar.update(1)
            if bar is not None and run.blocked:
                bar.update(run.blocked)
        finally:
            if bar is not None:
                bar.close()
    run.wall_s = time.perf_counter() - t0
    return run


def _jobs(units: list[Unit], store: ResultsStore, run: StudyRun):
    """(unit, base checkpoint bytes or None); units whose base is missing are counted blocked."""
    cache: dict[str, bytes | None] = {}
    for unit in units:
        base = None
        if unit.depends_on is not None:
            if unit.depends_on not in cache:
                row = store.get(unit.depends_on)
                ok = row is not None and row["status"] == "done"
                path = store.study_dir / row["artefacts"]["model.pt"] if ok else None
                cache[unit.depends_on] = path.read_bytes() if path and path.exists() else None
            base = cache[unit.depends_on]
            if base is None:
                run.blocked += 1
                continue
        yield unit, base


def _commit(store: ResultsStore, unit: Unit, result: dict[str, Any], run: StudyRun) -> None:
    config = {"kind": unit.kind, **unit.config}
    if result["status"] != "done":
        store.put_failed(
            unit.key, unit.kind, config, result["error"], result["wall_s"], result["started"]
        )
        run.failed += 1
        run.failures.append(f"{unit.label}: {result['error'].strip().splitlines()[-1]}")
        return
    artefacts = {}
    for name, data in result.get("files", {}).items():
        path = artefact_dir(store, unit.key) / name
        atomic_write_bytes(path, data)
        artefacts[name] = path
    store.put_done(
        unit.key,
        unit.kind,
        config,
        result["metrics"],
        result["curve"],
        artefacts,
        wall_s=result["wall_s"],
        started=result["started"],
    )
    run.done += 1


def _bar(progress: bool, total: int):
    if not progress:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, desc="units", unit="unit", dynamic_ncols=True)
