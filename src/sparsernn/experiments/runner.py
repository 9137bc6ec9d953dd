"""Run a study's units inline, in local worker processes or on a Ray cluster, resumably.

The driver (this process) is the only writer of the results store: it takes the store's lock,
plans all units, skips those already stored, sends the rest to an executor and commits each
result in one transaction as soon as it arrives. A study killed at any moment (even by SIGKILL)
loses at most the units in flight; rerunning the same command resumes it. Ctrl-C cancels the
queued units, stops the workers without waiting for them, and leaves the store consistent.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import signal
import socket
import sys
import threading
import time
import traceback
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sparsernn.errors import ConfigError, SparsernnError
from sparsernn.experiments.config import StudyConfig
from sparsernn.experiments.inputs import resolve_inputs
from sparsernn.experiments.units import Unit, execute_job, plan_units
from sparsernn.store import ResultsStore, artefact_dir, atomic_write_bytes

__all__ = ["run_study", "StudyRun", "EXECUTORS", "Terminated", "WorkerError"]

EXECUTORS = ("local", "ray")
_KINDS = ("base", "prune", "structure")

#: Units run together (one, or pruning units of one base), with the base's checkpoint or None.
_Job = tuple[tuple[Unit, ...], bytes | None]


class WorkerError(SparsernnError, RuntimeError):
    """A local worker process died (killed, out of memory); finished units are stored."""


@dataclass
class StudyRun:
    """What :func:`run_study` did: counts of units by outcome and the wall time.

    ``blocked`` units are pruning points whose base model is not stored (it failed, or it was
    not run); they stay pending and run once their base is done.
    """

    study_dir: Path
    total: int = 0
    skipped: int = 0
    done: int = 0
    failed: int = 0
    blocked: int = 0
    wall_s: float = 0.0
    failures: list[str] = field(default_factory=list)
    blocked_units: list[str] = field(default_factory=list)


# ------------------------------------------------------------------------------------ helpers
def _n_cores() -> int:
    """CPU cores this process may use (its affinity mask where the OS has one)."""
    try:
        return len(os.sched_getaffinity(0)) or 1
    except AttributeError:  # macOS, Windows
        return os.cpu_count() or 1


def _threads_per_worker(workers: int) -> int:
    """Torch threads of each of ``workers`` local processes, so they share the cores."""
    return max(1, _n_cores() // workers)


def _worker_init(threads: int) -> None:
    """Initialise a local worker: its torch threads, and Ctrl-C left to the driver."""
    import torch

    torch.set_num_threads(threads)
    # A terminal's Ctrl-C reaches the whole process group; the driver alone decides what to do.
    signal.signal(signal.SIGINT, signal.SIG_IGN)


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
            signum, frame = caught[0]
            handler = previous[signum]
            if callable(handler):
                handler(signum, frame)
            elif signum == signal.SIGINT and handler != signal.SIG_IGN:
                raise KeyboardInterrupt
            elif signum == signal.SIGTERM and handler == signal.SIG_DFL:
                signal.raise_signal(signal.SIGTERM)


class _Progress:
    """One tqdm bar on stderr: units finished of those to run, and the unit(s) running now."""

    def __init__(self, enabled: bool, total: int) -> None:
        self._running: dict[str, str] = {}
        self._bar = None
        if enabled:
            from tqdm.auto import tqdm

            # miniters=1: a bundle finishes 30 units at once, which would otherwise make tqdm
            # raise its redraw threshold and leave the bar behind the store for minutes.
            self._bar = tqdm(
                total=total,
                desc="units",
                unit="unit",
                file=sys.stderr,
                dynamic_ncols=True,
                miniters=1,
            )

    def _show(self, refresh: bool) -> None:
        if self._bar is None:
            return
        labels = list(self._running.values())
        if not labels:
            text = ""
        elif len(labels) == 1:
            text = labels[0]
        else:
            text = f"{labels[-1]} (+{len(labels) - 1} running)"
        self._bar.set_postfix_str(text, refresh=refresh)

    def start(self, unit: Unit) -> None:
        self._running[unit.key] = unit.label
        self._show(refresh=True)

    def finish(self, unit: Unit) -> None:
        self._running.pop(unit.key, None)
        self._show(refresh=False)
        if self._bar is not None:
            self._bar.update(1)

    def refresh(self) -> None:
        """Redraw now (after a job's units were counted in one burst)."""
        if self._bar is not None:
            self._bar.refresh()

    def skip(self) -> None:
        if self._bar is not None:
            self._bar.update(1)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()


def _payload(units: tuple[Unit, ...]) -> list[dict[str, Any]]:
    return [{"kind": u.kind, "config": u.config, "runtime": u.runtime} for u in units]


def _lost(error: str) -> dict[str, Any]:
    """A unit whose executor lost it, recorded as failed like a unit that raised."""
    return {"status": "failed", "error": error, "wall_s": None, "started": None}


# ---------------------------------------------------------------------------------- executors
class _InlineExecutor:
    """Runs each unit in this process when its result is asked for."""

    capacity = 1

    def __init__(self) -> None:
        self._queue: deque[_Job] = deque()

    @property
    def in_flight(self) -> int:
        return len(self._queue)

    def submit(self, units: tuple[Unit, ...], base: bytes | None) -> None:
        self._queue.append((units, base))

    def next_result(self) -> tuple[tuple[Unit, ...], list[dict[str, Any]]]:
        units, base = self._queue.popleft()
        return units, execute_job(_payload(units), base)

    def close(self, cancel: bool) -> None:
        self._queue.clear()


class _PoolExecutor:
    """A pool of ``workers`` spawned processes with ``threads`` torch threads each."""

    def __init__(self, workers: int, threads: int) -> None:
        self.capacity = workers
        self._pool = ProcessPoolExecutor(
            workers,
            mp_context=multiprocessing.get_context("spawn"),
            initializer=_worker_init,
            initargs=(threads,),
        )
        self._pending: dict[Future[list[dict[str, Any]]], tuple[Unit, ...]] = {}
        self._finished: deque[Future[list[dict[str, Any]]]] = deque()
        self._processes: set[multiprocessing.process.BaseProcess] = set()

    @property
    def in_flight(self) -> int:
        return len(self._pending)

    def submit(self, units: tuple[Unit, ...], base: bytes | None) -> None:
        self._pending[self._pool.submit(execute_job, _payload(units), base)] = units
        # The processes, to stop them on close (shutdown() forgets them); started on demand.
        self._processes.update((getattr(self._pool, "_processes", None) or {}).values())

    def next_result(self) -> tuple[tuple[Unit, ...], list[dict[str, Any]]]:
        if not self._finished:
            done, _ = wait(self._pending, return_when=FIRST_COMPLETED)
            self._finished.extend(done)
        future = self._finished.popleft()
        units = self._pending.pop(future)
        try:
            return units, future.result()
        except BrokenProcessPool:
            lost = [*units, *(u for job in self._pending.values() for u in job)]
            running = ", ".join(u.label for u in lost)
            raise WorkerError(
                f"a worker process died (killed, or out of memory?) while running {running}; "
                "finished units are stored: rerun to resume, with fewer --workers if memory is "
                "short (a script calling run_study needs if __name__ == '__main__':)"
            ) from None

    def close(self, cancel: bool) -> None:
        """Cancel queued units and stop the workers now, without waiting for running units.

        Without ``cancel`` every unit has finished, so the workers are idle; stopping them
        saves the seconds each would spend tearing down torch.
        """
        terminate = getattr(self._pool, "terminate_workers", None)  # Python >= 3.14
        if terminate is not None:
            terminate()  # shuts the pool down, cancelling queued units, then terminates
            return
        self._pool.shutdown(wait=False, cancel_futures=True)
        for process in self._processes:
            if process.is_alive():
                process.terminate()
        for process in self._processes:
            process.join(timeout=10)


class _RayExecutor:
    """Ray tasks of 1 CPU and ``gpus`` GPUs each, on the cluster at ``address`` (or a new one)."""

    def __init__(self, address: str | None, gpus: float) -> None:
        try:
            import ray
        except ImportError:
            raise ConfigError(
                "--executor ray needs Ray: pip install 'sparsernn[ray]' (or pip install ray)"
            ) from None
        self._ray = ray
        self._started = False
        self._pending: dict[Any, tuple[Unit, ...]] = {}
        self._base_refs: dict[str, Any] = {}  # one object-store copy per base checkpoint
        if not ray.is_initialized():
            _check_reachable(address)
            has_token = _use_ray_token() if address not in (None, "auto") else True
            auth_error = getattr(ray.exceptions, "AuthenticationError", ())
            try:
                ray.init(address=address, log_to_driver=False)
            except auth_error:
                raise ConfigError(
                    f"Ray token authentication (RAY_AUTH_MODE=token) found no token for the "
                    f"cluster at {address}; {_TOKEN_FIX}"
                ) from None
            except (ConnectionError, TimeoutError) as exc:
                hint = "start one with 'ray start --head --port 6379' or check --address"
                if not has_token:  # the port answers, so a token is the likely lack
                    hint = f"if it uses token authentication (`ray start`'s default), {_TOKEN_FIX}"
                raise ConfigError(
                    f"cannot connect to a Ray cluster at {address!r} ({exc}); {hint}"
                ) from None
            self._started = True
        if gpus > 0 and ray.cluster_resources().get("GPU", 0) < gpus:
            self.close(cancel=True)
            raise ConfigError(
                f"--gpus-per-unit {gpus:g}: the Ray cluster has "
                f"{ray.cluster_resources().get('GPU', 0):g} GPUs; start its nodes with GPUs "
                "(ray start --num-gpus N) or drop --gpus-per-unit"
            )
        self._remote = ray.remote(num_cpus=1, num_gpus=gpus)(execute_job)
        resources = ray.available_resources()
        slots = max(1, int(resources.get("CPU", 1)))
        if gpus > 0:
            slots = max(1, min(slots, int(resources.get("GPU", 0) / gpus)))
        self.capacity = 2 * slots  # queued tasks keep a cluster busy between results

    @property
    def in_flight(self) -> int:
        return len(self._pending)

    def submit(self, units: tuple[Unit, ...], base: bytes | None) -> None:
        base_ref = None
        parent = units[0].depends_on
        if base is not None and parent is not None:
            if parent not in self._base_refs:
                self._base_refs[parent] = self._ray.put(base)
            base_ref = self._base_refs[parent]
        self._pending[self._remote.remote(_payload(units), base_ref)] = units

    def next_result(self) -> tuple[tuple[Unit, ...], list[dict[str, Any]]]:
        ready, _ = self._ray.wait(list(self._pending), num_returns=1)
        units = self._pending.pop(ready[0])
        try:
            return units, self._ray.get(ready[0])
        except Exception:  # noqa: BLE001 - a lost task (its worker or node died) is a failed unit
            error = traceback.format_exc()
            return units, [_lost(error) for _ in units]

    def close(self, cancel: bool) -> None:
        try:
            if cancel:
                for ref in self._pending:
                    try:
                        self._ray.cancel(ref)
                    except Exception:  # noqa: BLE001 - best effort while leaving
                        pass
        finally:
            self._base_refs.clear()
            if self._started:
                self._ray.shutdown()


_TOKEN_FIX = (
    "run `ray get-auth-token` on the head node and set RAY_AUTH_TOKEN=<token> here (or save "
    "it as ~/.ray/auth_token, or point RAY_AUTH_TOKEN_PATH at it)"
)


def _use_ray_token() -> bool:
    """Let ``ray.init(address=HOST:PORT)`` present the token the user has; True if one is used.

    ``ray start`` enables token authentication when a token exists, but a driver connecting by
    address does so only with ``RAY_AUTH_MODE=token``. With that variable unset and a token in
    ``RAY_AUTH_TOKEN``, ``RAY_AUTH_TOKEN_PATH`` or Ray's default file (``~/.ray/auth_token``),
    this sets ``RAY_AUTH_MODE=token`` for this process (Ray's own helper, as ``ray start`` does).
    """
    mode = os.environ.get("RAY_AUTH_MODE")
    if mode:
        return mode.lower() == "token"
    try:
        from ray._private.authentication import authentication_token_setup as setup
    except ImportError:  # a Ray without token authentication
        return False
    logger = logging.getLogger(setup.__name__)
    level = logger.level
    logger.setLevel(logging.ERROR)  # its "token authentication is enabled" warning
    try:
        return bool(setup.maybe_enable_token_auth_if_token_available(warn_if_disabled=False))
    except Exception:  # noqa: BLE001 - a changed private API: connect as Ray would by itself
        return False
    finally:
        logger.setLevel(level)


def _check_reachable(address: str | None, timeout: float = 10.0) -> None:
    """Fail fast on a ``HOST:PORT`` nobody listens on (``ray.init`` would retry for minutes)."""
    if address is None or "://" in address or address == "auto":
        return
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit():
        raise ConfigError(f"--address {address!r} must be HOST:PORT (e.g. head:6379) or auto")
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=timeout).close()
    except OSError as exc:
        raise ConfigError(
            f"cannot reach the Ray cluster at {address} ({exc.strerror or exc}); start it with "
            "'ray start --head --port 6379' on the head node, or check --address"
        ) from None


def _make_executor(
    executor: str, workers: int, n_units: int, address: str | None, gpus: float
) -> _InlineExecutor | _PoolExecutor | _RayExecutor:
    if executor == "ray":
        return _RayExecutor(address, gpus)
    if min(workers, n_units) <= 1:
        return _InlineExecutor()
    return _PoolExecutor(min(workers, n_units), _threads_per_worker(workers))


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
    (e.g. ``("base", "prune")`` for ``sparsernn prune``). ``workers=None`` runs one local
    process per core (each with ``cores // workers`` torch threads); ``executor="ray"`` runs
    each unit as a Ray task on the cluster at ``address`` (default: a running local one, else a
    new one), requesting ``gpus_per_unit`` GPUs. The progress bar goes to stderr.

    Pruning points of one base are run in the bundles that ``study.pruning.bundle`` fixes (in
    plan order), always the same bundles, so a resumed study computes exactly what an
    uninterrupted one would; each unit is still stored on its own.

    Raises :class:`~sparsernn.errors.StoreError` when another process is writing to ``out`` or
    its ``results.sqlite`` is not a store, and :class:`WorkerError` when a local worker dies.
    On KeyboardInterrupt, queued units are cancelled and workers stopped; what was stored stays.
    SIGTERM does the same and raises :class:`Terminated` (a KeyboardInterrupt).
    """
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
        if kind not in _KINDS:
            raise ConfigError(f"unknown unit kind {kind!r}; choose from {', '.join(_KINDS)}")
    workers = workers or _n_cores()
    run = StudyRun(Path(out))
    t0 = time.perf_counter()
    planned = study
    if kinds is not None and "structure" not in kinds:  # its graph files are not read
        planned = study.replace(structure=study.structure.replace(enabled=False))
    # Every file the study names is read and checked here, before the store is touched.
    units = plan_units(planned, resolve_inputs(planned))
    units = [u for u in units if kinds is None or u.kind in kinds]
    run.total = len(units)
    with ResultsStore.open(out) as store:
        store.set_meta("study", study.to_dict())
        store.set_meta("kinds", sorted({u.kind for u in units}))
        for kind in {u.kind for u in units}:  # which config each kind of result belongs to
            store.set_meta(f"study:{kind}", study.to_dict())
            # its units' keys, so that results are found without reading the study's files
            store.set_meta(f"keys:{kind}", sorted(u.key for u in units if u.kind == kind))
        atomic_write_bytes(store.study_dir / "study.toml", study.to_toml().encode())
        done = store.keys(status="done")
        failed = store.keys(status="failed")
        todo = [u for u in units if u.key not in done and (retry_failed or u.key not in failed)]
        run.skipped = run.total - len(todo)
        if not todo:
            run.wall_s = time.perf_counter() - t0
            return run
        pool = _make_executor(executor, workers, len(todo), address, gpus_per_unit)
        bar = _Progress(progress, len(todo))
        cancel = True
        try:
            with _sigterm_as_interrupt():
                _drive(todo, _bundles(units), store, run, pool, bar, on_result)
            cancel = False
        finally:
            try:
                pool.close(cancel)
            finally:
                bar.close()
    run.wall_s = time.perf_counter() - t0
    return run


def _drive(
    todo: list[Unit],
    bundles: dict[str, tuple[Unit, ...]],
    store: ResultsStore,
    run: StudyRun,
    pool: _InlineExecutor | _PoolExecutor | _RayExecutor,
    bar: _Progress,
    on_result: Callable[[Unit, dict[str, Any]], None] | None,
) -> None:
    """Feed ``pool`` the jobs whose dependencies are met and commit results as they come.

    A job is one unit or a whole pruning bundle (``bundles`` maps a unit key to its bundle);
    a bundle runs whole even when some of its units are stored already, and only the units in
    ``todo`` are committed.
    """
    pending = {u.key for u in todo}
    ready: deque[_Job] = deque()
    waiting: dict[str, list[tuple[Unit, ...]]] = {}  # base key -> its jobs, until it is run
    stored: dict[str, list[tuple[Unit, ...]]] = {}  # base key -> jobs whose base is stored
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
    for key, jobs in stored.items():
        _release(jobs, _base_checkpoint(store, key), ready, run, bar, pending, first=False)
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
                _commit(store, unit, result, run)
                bar.finish(unit)
            if unit.key in waiting:
                base = _base_checkpoint(store, unit.key)
                _release(waiting.pop(unit.key), base, ready, run, bar, pending, first=True)
            if on_result is not None:
                on_result(unit, result)
        bar.refresh()


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
    ready: deque[_Job],
    run: StudyRun,
    bar: _Progress,
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


def _base_checkpoint(store: ResultsStore, key: str) -> bytes | None:
    """The stored checkpoint of base unit ``key``, or None when it is not done (or lost)."""
    row = store.get(key)
    if row is None or row["status"] != "done":
        return None
    name = (row["artefacts"] or {}).get("model.pt")
    # the canonical locations are the fallback for stores written before paths were normalised
    candidates = [store.study_dir / name] if name else []
    candidates += [artefact_dir(store, key) / "model.pt"]
    candidates += sorted((store.study_dir / "artefacts").glob(f"*-{key}/model.pt"))
    for path in candidates:
        if path.is_file():
            return path.read_bytes()
    return None


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


def _commit(store: ResultsStore, unit: Unit, result: dict[str, Any], run: StudyRun) -> None:
    config = {"kind": unit.kind, **unit.config}
    if result["status"] != "done":
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
    )
    run.done += 1
