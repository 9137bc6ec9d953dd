"""Where a study's units run: inline, in local worker processes, or as Ray tasks.

Every executor takes jobs (one unit, or a bundle of pruning units of one base, with the base's
checkpoint) and hands back their results as they finish; none touches the results store (the
driver, :func:`sparsernn.experiments.run_study`, is its only writer).

Local workers end with their driver, however it ends: a killed driver (``kill -9``) runs no
cleanup, so each worker asks the kernel for a signal when its parent dies (Linux
``PR_SET_PDEATHSIG``) and also watches its parent pid once a second (elsewhere), and
exits; the resource tracker then ends as its last client goes. A Ray cluster the driver
started itself is watched by :mod:`sparsernn.experiments._reaper`, which stops it when the
driver dies.
"""

from __future__ import annotations

import contextlib
import ctypes
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
from collections.abc import Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from typing import Any

from sparsernn.errors import ConfigError, SparsernnError
from sparsernn.experiments._reaper import Reaper
from sparsernn.experiments.units import Unit, execute_job

__all__ = ["EXECUTORS", "Executor", "Job", "WorkerError", "make_executor", "n_cores"]

EXECUTORS = ("local", "ray")

#: Units run together (one, or pruning units of one base), with the base's checkpoint or None.
Job = tuple[tuple[Unit, ...], bytes | None]


class WorkerError(SparsernnError, RuntimeError):
    """A local worker process died (killed, out of memory); finished units are stored."""


def n_cores() -> int:
    """CPU cores this process may use (its affinity mask where the OS has one)."""
    try:
        return len(os.sched_getaffinity(0)) or 1
    except AttributeError:  # macOS, Windows
        return os.cpu_count() or 1


def _threads_per_worker(workers: int) -> int:
    """Torch threads of each of ``workers`` local processes, so they share the cores."""
    return max(1, n_cores() // workers)


def _worker_init(threads: int, driver: int | None = None, native_said: bool = False) -> None:
    """Initialise a local worker: its torch threads, Ctrl-C left to the driver, its end tied to
    the driver's (``driver``: its pid), and (``native_said``) the compiled kernel's fallback
    left unsaid, the driver having said it once for the study."""
    import torch

    torch.set_num_threads(threads)
    # A terminal's Ctrl-C reaches the whole process group; the driver alone decides what to do.
    # The worker was started with Ctrl-C blocked (:func:`ctrl_c_held_for_children`): ignore it,
    # then unblock, so one that came while Python started is dropped, not raised.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if hasattr(signal, "pthread_sigmask"):
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})
    if driver is not None:
        die_with(driver)
    if native_said:
        from sparsernn.nn import native

        native.fallback_said()


@contextlib.contextmanager
def ctrl_c_held_for_children() -> Iterator[None]:
    """Block Ctrl-C (SIGINT) in this thread while worker processes may be started in it.

    The signal mask passes through fork and exec, so a worker starts with Ctrl-C blocked until
    :func:`_worker_init` ignores it: a Ctrl-C during the second or so a spawned worker spends
    importing no longer kills it with a traceback on the terminal. This process's own Ctrl-C
    is not lost: another thread of it takes the signal at once (Python then raises it in the
    main thread as before), or, with no other thread, it is delivered when the block ends.
    """
    if (
        not hasattr(signal, "pthread_sigmask")
        or threading.current_thread() is not threading.main_thread()
    ):
        yield
        return
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


#: ``prctl`` option: the signal this process gets when the thread that started it ends.
_PR_SET_PDEATHSIG = 1


def die_with(parent: int, poll_s: float = 1.0) -> None:
    """End this process when ``parent`` (its parent process) ends, even by ``SIGKILL``.

    Linux delivers ``SIGKILL`` at the parent's death (``PR_SET_PDEATHSIG``); a daemon thread
    also checks the parent pid every ``poll_s`` seconds (other systems, and the moment before
    the signal was asked for).
    """
    if sys.platform.startswith("linux"):
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        except (OSError, AttributeError):
            pass
    if os.getppid() != parent:  # it died before the signal was asked for
        os._exit(1)

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(poll_s)
        os._exit(1)

    threading.Thread(target=watch, name="sparsernn-die-with-driver", daemon=True).start()


def run_job(units: list[dict[str, Any]], base: bytes | None = None) -> list[dict[str, Any]]:
    """:func:`~sparsernn.experiments.units.execute_job` where the driver could not prepare
    (a Ray node): the compiled kernel is built or loaded first, so its build is no unit's
    time."""
    if any(u["kind"] == "structure" for u in units):
        from sparsernn.nn import native

        native.unavailable_reason()
    return execute_job(units, base)


def _payload(units: tuple[Unit, ...]) -> list[dict[str, Any]]:
    return [{"kind": u.kind, "config": u.config, "runtime": u.runtime} for u in units]


def _lost(error: str) -> dict[str, Any]:
    """A unit whose executor lost it, recorded as failed like a unit that raised."""
    return {"status": "failed", "error": error, "wall_s": None, "started": None}


class _InlineExecutor:
    """Runs each unit in this process when its result is asked for."""

    capacity = 1

    def __init__(self) -> None:
        self._queue: deque[Job] = deque()

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

    def __init__(self, workers: int, threads: int, native_said: bool = False) -> None:
        self.capacity = workers
        self._pool = ProcessPoolExecutor(
            workers,
            mp_context=multiprocessing.get_context("spawn"),
            initializer=_worker_init,
            initargs=(threads, os.getpid(), native_said),
        )
        self._pending: dict[Future[list[dict[str, Any]]], tuple[Unit, ...]] = {}
        self._finished: deque[Future[list[dict[str, Any]]]] = deque()
        self._processes: set[multiprocessing.process.BaseProcess] = set()
        self._reaper = Reaper()  # ends the workers if this process is killed

    @property
    def in_flight(self) -> int:
        return len(self._pending)

    def submit(self, units: tuple[Unit, ...], base: bytes | None) -> None:
        with ctrl_c_held_for_children():  # the pool starts its workers on demand, in submit
            self._pending[self._pool.submit(execute_job, _payload(units), base)] = units
        # The processes, to stop them on close (shutdown() forgets them); started on demand.
        self._processes.update((getattr(self._pool, "_processes", None) or {}).values())
        self._reaper.watch(p.pid for p in self._processes)

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
        try:
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
        finally:
            self._reaper.close()


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
        self._reaper: Reaper | None = None
        self._pending: dict[Any, tuple[Unit, ...]] = {}
        self._base_refs: dict[str, Any] = {}  # one object-store copy per base checkpoint
        if not ray.is_initialized():
            _check_reachable(address)
            if address is None:  # a cluster started here ends with this process
                self._reaper = Reaper()
                self._reaper.watch_children(os.getpid())
            try:
                _connect(ray, address)
            except BaseException:
                if self._reaper is not None:
                    self._reaper.close()
                raise
            self._started = True
            if self._reaper is not None:
                self._reaper.watch(_ray_processes(ray))
        if gpus > 0 and ray.cluster_resources().get("GPU", 0) < gpus:
            self.close(cancel=True)
            raise ConfigError(
                f"--gpus-per-unit {gpus:g}: the Ray cluster has "
                f"{ray.cluster_resources().get('GPU', 0):g} GPUs; start its nodes with GPUs "
                "(ray start --num-gpus N) or drop --gpus-per-unit"
            )
        self._remote = ray.remote(num_cpus=1, num_gpus=gpus)(run_job)
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
            try:
                if self._started:
                    self._ray.shutdown()
            finally:
                if self._reaper is not None:
                    self._reaper.close()


def _ray_processes(ray: Any) -> list[int]:
    """The pids of the processes ``ray.init`` started here (GCS, raylet, ...); their agents
    and workers are their descendants. Empty when Ray's private layout is not as expected."""
    try:
        node = ray._private.worker._global_node
        return [info.process.pid for infos in node.all_processes.values() for info in infos]
    except Exception:  # noqa: BLE001 - a changed private API: the reaper watches nothing
        return []


def _connect(ray: Any, address: str | None) -> None:
    """``ray.init`` at ``address`` (None: a new local cluster), its errors as one line."""
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


def make_executor(
    executor: str,
    workers: int,
    n_units: int,
    address: str | None,
    gpus: float,
    native_said: bool = False,
) -> Executor:
    """The executor of ``executor`` for ``n_units`` units (inline when one worker would do);
    ``native_said``: the driver said why the compiled kernel is unavailable, workers keep
    quiet about it."""
    if executor == "ray":
        return _RayExecutor(address, gpus)
    if min(workers, n_units) <= 1:
        return _InlineExecutor()
    return _PoolExecutor(min(workers, n_units), _threads_per_worker(workers), native_said)


#: Any of the executors: ``capacity``, ``in_flight``, ``submit``, ``next_result``, ``close``.
Executor = _InlineExecutor | _PoolExecutor | _RayExecutor
