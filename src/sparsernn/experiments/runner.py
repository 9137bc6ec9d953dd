"""Run a study's units inline, in local worker processes or on a Ray cluster, resumably.

The driver (this process) is the only writer of the results store: it takes the store's lock,
plans all units, skips those already stored, sends the rest to an executor and commits each
result in one transaction as soon as it arrives. A study killed at any moment (even by SIGKILL)
loses at most the units in flight; rerunning the same command resumes it. Ctrl-C cancels the
queued units, stops the workers without waiting for them, and leaves the store consistent.

A base model stored as done whose checkpoint is missing or damaged (deleted, truncated) is
trained again, with one line saying so, before its pruning units run: training is seeded, so
it gives the model that was lost. A store with damaged rows is refused up front (one line
naming ``sparsernn verify DIR --repair``). Worker processes end with the driver, even when it
is killed (``SIGKILL``): see :mod:`sparsernn.experiments.executors`.
"""

from __future__ import annotations

import functools
import io
import os
import shlex
import signal
import sys
import threading
import time
import zipfile
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sparsernn._files import atomic_write_bytes
from sparsernn._storefile import damaged
from sparsernn.errors import ConfigError
from sparsernn.experiments import executors
from sparsernn.experiments.config import KINDS, StudyConfig
from sparsernn.experiments.executors import EXECUTORS, Executor, Job, WorkerError
from sparsernn.experiments.inputs import resolve_inputs
from sparsernn.experiments.plans import planned_kinds, record_plans
from sparsernn.experiments.progress import Progress
from sparsernn.experiments.runlog import finish_run, start_run
from sparsernn.experiments.units import Unit, plan_units
from sparsernn.store import ResultsStore, artefact_dir
from sparsernn.train import resolve_device

__all__ = ["run_study", "StudyRun", "EXECUTORS", "Terminated", "WorkerError"]


@dataclass
class StudyRun:
    """What :func:`run_study` did: counts of units by outcome and the wall time.

    ``blocked`` units are pruning points whose base model is not stored (it failed, or it was
    not run); they stay pending and run once their base is done. ``notes`` are the lines the
    run said besides its progress (a base trained again, the compiled kernel built).
    :attr:`complete` is False when units failed or were blocked.
    """

    study_dir: Path
    total: int = 0
    skipped: int = 0
    done: int = 0
    done_keys: list[str] = field(default_factory=list)  # the units this run finished
    failed: int = 0
    failures: list[str] = field(default_factory=list)  # "<unit label>: <last error line>"
    blocked: int = 0
    blocked_units: list[str] = field(default_factory=list)
    wall_s: float = 0.0
    notes: list[str] = field(default_factory=list)

    @property
    def complete(self) -> bool:
        """Whether every unit of the plan is stored as done now (none failed or blocked)."""
        return not (self.failed or self.blocked)

    def problem(self) -> str | None:
        """One line saying what is incomplete and what to do about it, or None."""
        if self.complete:
            return None
        parts = []
        if self.failed:
            parts.append(f"{self.failed} unit(s) failed")
        if self.blocked:
            parts.append(f"{self.blocked} wait for a base model that failed or was not run")
        return (
            f"{' and '.join(parts)} (the other results are stored); rerun the same command "
            "with --retry-failed to try them again"
        )


# ------------------------------------------------------------------------- signals, progress
class Terminated(KeyboardInterrupt):
    """SIGTERM reached a running study: it stops as on Ctrl-C (queued units cancelled, workers
    stopped, what was stored stays). ``signum`` lets a caller exit with ``128 + signum``."""

    signum = signal.SIGTERM


def _raise_terminated(signum: int, frame: Any) -> None:
    raise Terminated


@contextmanager
def _sigterm_as_interrupt() -> Iterator[None]:
    """During a study, SIGTERM raises :class:`Terminated` (unless the caller handles SIGTERM)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.getsignal(signal.SIGTERM)
    # ray.init installs a handler that only calls sys.exit: replace it too, not a caller's own
    ours_to_replace = previous == signal.SIG_DFL or (
        callable(previous) and getattr(previous, "__module__", "") == "ray._private.worker"
    )
    if not ours_to_replace:  # the caller's own handler, or SIGTERM ignored: leave it
        yield
        return
    signal.signal(signal.SIGTERM, _raise_terminated)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


@contextmanager
def _interrupts_deferred() -> Iterator[None]:
    """Hold off Ctrl-C and SIGTERM while a result is committed, so counts match the store."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    caught: list[tuple[int, Any]] = []
    signums = (signal.SIGINT, signal.SIGTERM)
    previous = {
        n: signal.signal(n, lambda signum, frame: caught.append((signum, frame))) for n in signums
    }
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        if caught:
            first, frame = caught[0]
            handler = previous[signal.Signals(first)]
            if callable(handler):
                handler(first, frame)
            elif first == signal.SIGINT and handler != signal.SIG_IGN:
                raise KeyboardInterrupt
            elif first == signal.SIGTERM and handler == signal.SIG_DFL:
                signal.raise_signal(signal.SIGTERM)


# ---------------------------------------------------------------------------------- the study
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
    ``retry_failed``. A pruning unit starts once its base model is stored; if the base failed
    its pruning units are counted ``blocked``. ``kinds`` restricts the run to some unit kinds
    (e.g. ``("base", "prune")`` for ``sparsernn prune``); the store records, per kind run,
    ``study`` and the planned keys (:mod:`sparsernn.experiments.plans`). ``workers=None`` runs
    one local process per core (each with ``cores // workers`` torch threads);
    ``executor="ray"`` runs each unit as a Ray task on the cluster at ``address`` (default: a
    running local one, else a new one), requesting ``gpus_per_unit`` GPUs. The progress bar
    goes to stderr.

    Pruning points of one base are run in the bundles that ``study.pruning.bundle`` fixes (in
    plan order), always the same bundles, so a resumed study computes exactly what an
    uninterrupted one would; each unit is still stored on its own.

    Raises :class:`~sparsernn.errors.StoreError` when another process is writing to ``out`` or
    its ``results.sqlite`` is not a store, and :class:`WorkerError` when a local worker dies.
    On KeyboardInterrupt, queued units are cancelled and workers stopped; what was stored stays.
    SIGTERM does the same and raises :class:`Terminated` (a KeyboardInterrupt).
    """
    _check_options(workers, executor, address, gpus_per_unit, kinds)
    _check_out(out)
    pool_args = (executor, workers or executors.n_cores(), address, gpus_per_unit)
    run = StudyRun(Path(out))
    t0 = time.perf_counter()
    every = _plan(study, None if kinds is None else (*kinds, "base"))
    units = [u for u in every if kinds is None or u.kind in kinds]
    if executor == "local":  # Ray's workers may have the GPUs this machine lacks
        _check_devices(units)
    run.total = len(units)
    with ResultsStore.open(out) as store:
        _check_rows(store)
        record_plans(store, study, units, planned_kinds(study, kinds))
        done = store.keys(status="done")
        failed = store.keys(status="failed")
        todo = [u for u in units if u.key not in done and (retry_failed or u.key not in failed)]
        run.skipped = run.total - len(todo)
        if todo:
            _run_todo(store, run, todo, every, units, pool_args, progress, on_result)
    run.wall_s = time.perf_counter() - t0
    return run


def _run_todo(
    store: ResultsStore,
    run: StudyRun,
    todo: list[Unit],
    every: list[Unit],
    units: list[Unit],
    pool_args: tuple[str, int, str | None, float],
    progress: bool,
    on_result: Callable[[Unit, dict[str, Any]], None] | None,
) -> None:
    """Run the units ``todo`` (of the planned ``units``; ``every`` adds the bases they need)
    in a pool made from ``pool_args`` (executor, workers, address, GPUs per unit), recording
    the run in ``store`` (its start, and its outcome however it ends)."""
    executor, workers, address, gpus_per_unit = pool_args
    argv = [Path(sys.argv[0]).name, *sys.argv[1:]]  # the command line, for the record
    kinds_run = sorted({u.kind for u in todo})
    record = start_run(store, kinds=kinds_run, executor=executor, workers=workers, argv=argv)
    interrupted = True
    try:
        said = _prepare_kernel(todo, executor, run)
        pool = executors.make_executor(
            executor, workers, len(todo), address, gpus_per_unit, native_said=said
        )
        bar = Progress(progress, len(todo))
        bases = {u.key: u for u in every if u.kind == "base"}
        drive = functools.partial(
            _drive, todo, _bundles(units), bases, store, run, pool, bar, on_result
        )
        _run_then_stop(drive, pool, bar)
        interrupted = False
    finally:
        outcome = {"done": run.done, "failed": run.failed, "interrupted": interrupted}
        finish_run(store, record, **outcome)


def _prepare_kernel(todo: list[Unit], executor: str, run: StudyRun) -> bool:
    """Build the structure networks' compiled time loop here, once, before any unit starts
    (one line while it builds: its time is no unit's), or say once for the whole study why
    those networks run the PyTorch path. True when that was said (workers then keep quiet).

    Local executors only: a Ray node builds its own before its first structure unit.
    """
    from sparsernn.nn import native

    devices = {u.config["train"]["device"] for u in todo if u.kind == "structure"}
    on_cpu = any(resolve_device(d).type == "cpu" for d in devices)
    if executor != "local" or not on_cpu or native.disabled():
        return False
    if native.cached() is not None:
        reason = native.unavailable_reason()  # loads it: a cheap check, silent when it works
        if reason is not None:
            _say(run, None, native.fallback_line(reason))
        native.fallback_said()
        return reason is not None
    start = "sparsernn: building the structure networks' compiled time loop once, before the "
    start += "units start..."
    print(start, end="", file=sys.stderr, flush=True)
    t0 = time.perf_counter()
    reason = native.unavailable_reason()
    if reason is None:
        end = f" done in {time.perf_counter() - t0:.0f} s (cached in {native.cache_dir()})"
    else:
        end = f" not possible ({reason}); they use the PyTorch path (same results, slower)"
    print(end, file=sys.stderr, flush=True)
    run.notes.append(start + end)
    native.fallback_said()
    return reason is not None


def _check_out(out: str | os.PathLike[str]) -> None:
    """Refuse an ``out`` that names a file (``--out D/results.sqlite``): it is a directory."""
    path = Path(out)
    if path.is_file() or path.suffix.lower() in (".sqlite", ".sqlite3", ".db"):
        raise ConfigError(
            f"--out {out} names a file; --out takes the study directory that holds "
            f"results.sqlite (here --out {shlex.quote(str(path.parent))})"
        )
    if path.exists() and not path.is_dir():
        raise ConfigError(f"--out {out} is not a directory; give a study directory")


def _check_rows(store: ResultsStore) -> None:
    """Refuse a store with damaged rows (one line naming the first and the fix)."""
    check = store.verify(structure=False)
    if not check.ok:
        raise damaged(
            f"{store.path} holds {len(check.problems)} damaged row(s) (first: "
            f"{check.problems[0]})",
            store.study_dir,
        )


def _check_options(
    workers: int | None,
    executor: str,
    address: str | None,
    gpus_per_unit: float,
    kinds: tuple[str, ...] | None,
) -> None:
    """Raise :class:`ConfigError` for options of :func:`run_study` that cannot work."""
    if executor not in EXECUTORS:
        raise ConfigError(f"unknown executor {executor!r}; choose from {', '.join(EXECUTORS)}")
    if workers is not None and workers < 1:
        raise ConfigError(f"--workers {workers} must be >= 1")
    if gpus_per_unit < 0:
        raise ConfigError(f"--gpus-per-unit {gpus_per_unit} must be >= 0")
    if executor != "ray" and (address is not None or gpus_per_unit > 0):
        raise ConfigError(
            "--address and --gpus-per-unit apply to --executor ray; locally use --device cuda"
        )
    for kind in kinds or ():
        if kind not in KINDS:
            raise ConfigError(f"unknown unit kind {kind!r}; choose from {', '.join(KINDS)}")


def _check_devices(units: list[Unit]) -> None:
    """Raise :class:`ConfigError` up front when the units ask for a device this machine lacks
    (``--device cuda`` without a GPU), rather than failing every unit with it."""
    sections = [u.config.get(k) for u in units for k in ("train", "retrain")]
    for device in sorted({s["device"] for s in sections if isinstance(s, dict) and "device" in s}):
        resolve_device(device)


def _plan(study: StudyConfig, kinds: tuple[str, ...] | None) -> list[Unit]:
    """The units of ``study`` of ``kinds``; every file the study names is read and checked
    here, before the store is touched (graph files only when structure units are run)."""
    planned = study
    if kinds is not None and "structure" not in kinds:
        planned = study.replace(structure=study.structure.replace(enabled=False))
    units = plan_units(planned, resolve_inputs(planned))
    return [u for u in units if kinds is None or u.kind in kinds]


def _run_then_stop(drive: Callable[[], None], pool: Executor, bar: Progress) -> None:
    """Run ``drive()``; on any exit stop ``pool`` (cancelling queued units unless all ran)."""
    cancel = True
    try:
        with _sigterm_as_interrupt():
            drive()
        cancel = False
    finally:
        try:
            pool.close(cancel)
        finally:
            bar.close()


def _drive(
    todo: list[Unit],
    bundles: dict[str, tuple[Unit, ...]],
    bases: dict[str, Unit],
    store: ResultsStore,
    run: StudyRun,
    pool: Executor,
    bar: Progress,
    on_result: Callable[[Unit, dict[str, Any]], None] | None,
) -> None:
    """Feed ``pool`` the jobs whose dependencies are met and commit results as they come.

    A job is one unit or a whole pruning bundle (``bundles`` maps a unit key to its bundle);
    a bundle runs whole even when some of its units are stored already, and only the units in
    ``todo`` are committed. A stored base (of ``bases``) whose checkpoint is lost is trained
    again first.
    """
    pending = {u.key for u in todo}
    again: set[str] = set()  # stored bases trained again: their rows are replaced
    ready: deque[Job] = deque()
    waiting: dict[str, list[tuple[Unit, ...]]] = {}  # base key -> its jobs, until it is run
    stored = _queue(todo, bundles, pending, ready, waiting)
    for key, jobs in stored.items():
        checkpoint, lost = _base_checkpoint(store, key)
        if lost is not None and key in bases:
            _say(run, bar, f"{bases[key].label}: its stored checkpoint {lost}; training it again")
            again.add(key)
            pending.add(key)
            waiting[key] = jobs
            ready.append(((bases[key],), None))
            bar.grow(1)
        else:
            _release(jobs, checkpoint, ready, run, bar, pending, first=False)
    while ready or pool.in_flight:
        while ready and pool.in_flight < pool.capacity:
            job, base = ready.popleft()
            for unit in job:
                if unit.key in pending:
                    bar.start(unit)
            pool.submit(job, base)
        job, results = pool.next_result()
        for unit, result in zip(job, results, strict=True):
            if unit.key not in pending:
                continue  # a bundle-mate stored by an earlier run
            with _interrupts_deferred():
                _commit(store, unit, result, run, overwrite=unit.key in again)
                bar.finish(unit)
            if unit.key in waiting:
                base, _ = _base_checkpoint(store, unit.key)
                _release(waiting.pop(unit.key), base, ready, run, bar, pending, first=True)
            if on_result is not None:
                on_result(unit, result)
        bar.refresh()


def _queue(
    todo: list[Unit],
    bundles: dict[str, tuple[Unit, ...]],
    pending: set[str],
    ready: deque[Job],
    waiting: dict[str, list[tuple[Unit, ...]]],
) -> dict[str, list[tuple[Unit, ...]]]:
    """Sort the jobs of ``todo`` (each once): those with no dependency into ``ready``, those
    whose base is ``pending`` into ``waiting`` (by base key); return the rest, whose base is
    not run now, by base key (they need its stored checkpoint)."""
    stored: dict[str, list[tuple[Unit, ...]]] = {}
    queued: set[tuple[str, ...]] = set()
    for unit in todo:
        job = bundles.get(unit.key, (unit,))
        if tuple(u.key for u in job) in queued:
            continue
        queued.add(tuple(u.key for u in job))
        if unit.depends_on is None:
            ready.append((job, None))
        elif unit.depends_on in pending:
            waiting.setdefault(unit.depends_on, []).append(job)
        else:  # the base is not run now: use its stored checkpoint, if any
            stored.setdefault(unit.depends_on, []).append(job)
    return stored


def _bundles(units: list[Unit]) -> dict[str, tuple[Unit, ...]]:
    """Each bundled pruning unit's key -> its bundle: consecutive units of one base, in plan
    order, ``config["bundle"]`` at a time. Fixed by the study config alone."""
    groups: dict[tuple[str, int], list[Unit]] = {}
    for unit in units:
        size = unit.config.get("bundle", 1) if unit.kind == "prune" else 1
        if size > 1:
            groups.setdefault((unit.depends_on or "", size), []).append(unit)
    out: dict[str, tuple[Unit, ...]] = {}
    for (_, size), members in groups.items():
        for i in range(0, len(members), size):
            bundle = tuple(members[i : i + size])
            out.update((u.key, bundle) for u in bundle)
    return out


def _release(
    jobs: list[tuple[Unit, ...]],
    base: bytes | None,
    ready: deque[Job],
    run: StudyRun,
    bar: Progress,
    pending: set[str],
    *,
    first: bool,
) -> None:
    """Queue pruning ``jobs`` with their base's checkpoint (``first``: next in line), or
    count their pending units blocked when the base has none (it failed, or was not run)."""
    if base is None:
        for job in jobs:
            for unit in (u for u in job if u.key in pending):
                run.blocked += 1
                run.blocked_units.append(unit.label)
                bar.skip()
    elif first:
        ready.extendleft((job, base) for job in reversed(jobs))
    else:
        ready.extend((job, base) for job in jobs)


def _say(run: StudyRun, bar: Progress | None, text: str) -> None:
    """A line for the user (stderr, above the progress bar) also kept in ``run.notes``."""
    run.notes.append(text)
    if bar is not None:
        bar.note(text)
    else:
        print(text, file=sys.stderr, flush=True)


def _base_checkpoint(store: ResultsStore, key: str) -> tuple[bytes | None, str | None]:
    """The stored checkpoint of base unit ``key``: ``(bytes, None)``; ``(None, None)`` when the
    base is not done; ``(None, why)`` when it is done but its checkpoint is lost or damaged."""
    row = store.get(key)
    if row is None or row["status"] != "done":
        return None, None
    name = (row["artefacts"] or {}).get("model.pt")
    # the canonical locations are the fallback for stores written before paths were normalised
    candidates = [store.study_dir / name] if name else []
    candidates += [artefact_dir(store, key, create=False) / "model.pt"]
    candidates += sorted((store.study_dir / "artefacts").glob(f"*-{key}/model.pt"))
    for path in candidates:
        if path.is_file():
            data = path.read_bytes()
            if _sound_checkpoint(data):
                return data, None
            root = store.study_dir
            shown = path.relative_to(root) if path.is_relative_to(root) else path
            return None, f"{shown} is damaged (truncated?)"
    return None, f"{name or 'model.pt'} is missing"


def _sound_checkpoint(data: bytes) -> bool:
    """Whether ``data`` is a whole ``torch.save`` zip archive (every member's CRC checks)."""
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            return bool(archive.namelist()) and archive.testzip() is None
    except (zipfile.BadZipFile, OSError, EOFError, ValueError):
        return False


def _artefact_label(unit: Unit) -> str:
    """A readable prefix for a unit's artefact folder: ``base-gru-s0``,
    ``prune-gru-h2h-50-s0``, ``structure-gru-ws-3-s0``."""
    c = unit.config
    if unit.kind == "base":
        parts = [c["cell"]]
    elif unit.kind == "prune":
        parts = [c["cell"], c["target"], f"{c['amount']:g}"]
    else:
        parts = [c["cell"], c["generator"], str(c["graph_id"])]
    return "-".join([unit.kind, *parts, f"s{c['seed']}"])


def _commit(
    store: ResultsStore, unit: Unit, result: dict[str, Any], run: StudyRun, overwrite: bool = False
) -> None:
    config = {"kind": unit.kind, **unit.config}
    if result["status"] != "done":
        if not overwrite:  # a base trained again keeps its row: only its checkpoint was lost
            store.put_failed(
                unit.key, unit.kind, config, result["error"], result["wall_s"], result["started"]
            )
        run.failed += 1
        lines = result["error"].strip().splitlines() or ["unknown error"]
        run.failures.append(f"{unit.label}: {lines[-1]}")
        return
    artefacts = {}
    for name, data in result.get("files", {}).items():
        path = artefact_dir(store, unit.key, _artefact_label(unit)) / name
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
        overwrite=overwrite,
    )
    run.done += 1
    run.done_keys.append(unit.key)
