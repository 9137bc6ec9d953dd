"""Tests for the study runner: executors, failures, retries, blocked units, Ctrl-C, progress."""

from __future__ import annotations

import dataclasses
import multiprocessing
import os
import signal
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import torch
from studyhelpers import snapshot, tiny_study  # noqa: I001  (tests/experiments on sys.path)

from sparsernn.errors import ConfigError, StoreError
from sparsernn.experiments import executors, runner, units
from sparsernn.experiments.progress import Progress
from sparsernn.experiments.runner import StudyRun, run_study
from sparsernn.experiments.units import plan_units
from sparsernn.store import ResultsStore
from sparsernn.train import TrainConfig


@contextmanager
def torch_threads(n: int) -> Iterator[None]:
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


@pytest.fixture(autouse=True)
def _one_torch_thread():
    """One thread: the machine is shared, and oversubscribed threads make torch crawl."""
    with torch_threads(1):
        yield


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, Any]]:
    """The tiny study run inline, uninterrupted."""
    out = tmp_path_factory.mktemp("reference")
    with torch_threads(1):
        run = run_study(tiny_study(), out, workers=1, progress=False)
    assert (run.done, run.failed, run.blocked) == (5, 0, 0)
    return snapshot(out)


# ------------------------------------------------------------------------------ basic runs
def test_run_stores_every_unit_once_and_resumes_as_a_no_op(tmp_path: Path, reference):
    out = tmp_path / "study"
    run = run_study(tiny_study(), out, workers=1, progress=False)
    assert isinstance(run, StudyRun)
    assert (run.total, run.done, run.skipped, run.failed, run.blocked) == (5, 5, 0, 0, 0)
    assert snapshot(out) == reference
    assert (out / "study.toml").is_file()
    again = run_study(tiny_study(), out, workers=1, progress=False)
    assert (again.total, again.done, again.skipped) == (5, 0, 5)
    assert snapshot(out) == reference


def test_kinds_restrict_the_run(tmp_path: Path):
    run = run_study(tiny_study(), tmp_path, kinds=("base",), progress=False)
    assert (run.total, run.done) == (1, 1)
    # Pruning alone runs once the base is stored.
    run = run_study(tiny_study(), tmp_path, kinds=("prune",), progress=False)
    assert (run.total, run.done, run.blocked) == (2, 2, 0)


def test_workers_2_gives_the_same_results_as_workers_1(tmp_path: Path, reference):
    run = run_study(tiny_study(), tmp_path, workers=2, progress=False)
    assert (run.done, run.failed, run.blocked) == (5, 0, 0)
    assert snapshot(tmp_path) == reference


def test_workers_none_means_one_process_per_core(tmp_path: Path, monkeypatch):
    pools: list[tuple[int, int]] = []

    class FakePool(executors._InlineExecutor):
        def __init__(self, workers: int, threads: int, native_said: bool = False) -> None:
            super().__init__()
            pools.append((workers, threads))

    monkeypatch.setattr(executors, "n_cores", lambda: 6)
    monkeypatch.setattr(executors, "_PoolExecutor", FakePool)
    run = run_study(tiny_study(n_graphs=5), tmp_path / "a", workers=None, progress=False)
    assert run.done == 8
    # One pool for the whole study: 6 workers of 1 thread each.
    assert pools == [(6, 1)]
    # Never more processes than units; threads still follow the requested workers.
    run_study(tiny_study(n_graphs=0), tmp_path / "b", workers=3, progress=False)
    assert pools[-1] == (3, 2)
    run_study(tiny_study(n_graphs=0), tmp_path / "c", workers=4, kinds=("base",), progress=False)
    assert pools[-1] == (3, 2)  # unchanged: one unit runs inline


def test_n_cores_is_the_usable_cpu_count():
    expected = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    assert executors.n_cores() == expected


@pytest.mark.parametrize(
    ("cores", "workers", "threads"), [(8, 2, 4), (8, 3, 2), (2, 4, 1), (1, 1, 1)]
)
def test_threads_per_worker_share_the_cores(monkeypatch, cores, workers, threads):
    monkeypatch.setattr(executors, "n_cores", lambda: cores)
    assert executors._threads_per_worker(workers) == threads


def test_worker_init_sets_threads_and_leaves_ctrl_c_to_the_driver():
    old_handler = signal.getsignal(signal.SIGINT)
    try:
        with torch_threads(2):
            executors._worker_init(1)
            assert torch.get_num_threads() == 1
        assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN
    finally:
        signal.signal(signal.SIGINT, old_handler)


@pytest.mark.skipif(not hasattr(signal, "pthread_sigmask"), reason="POSIX signal masks")
def test_a_ctrl_c_while_a_worker_starts_leaves_it_running():
    """A Ctrl-C reaching a worker in the second it spends starting (before its initialiser
    ignores Ctrl-C) once killed it with a traceback on the terminal; the pool now starts its
    workers with Ctrl-C blocked, so the job still finishes."""
    unit = next(u for u in plan_units(tiny_study(n_graphs=1)) if u.kind == "structure")
    pool = executors._PoolExecutor(1, 1)
    try:
        pool.submit((unit,), None)
        pids = [p.pid for p in pool._processes]
        assert pids  # started by submit, and still importing
        for pid in pids:
            os.kill(pid, signal.SIGINT)
        job, results = pool.next_result()
        assert job == (unit,) and results[0]["status"] == "done"
    finally:
        pool.close(cancel=True)


@pytest.mark.skipif(not hasattr(signal, "pthread_sigmask"), reason="POSIX signal masks")
def test_the_drivers_own_ctrl_c_is_not_lost_while_children_are_held():
    """Inside the block the driver's Ctrl-C still arrives (now, through another thread, or at
    the block's end), and the block leaves the mask as it found it."""
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        with pytest.raises(KeyboardInterrupt):
            with executors.ctrl_c_held_for_children():
                assert signal.SIGINT in signal.pthread_sigmask(signal.SIG_BLOCK, [])
                os.kill(os.getpid(), signal.SIGINT)
                time.sleep(0.05)
        assert signal.SIGINT not in signal.pthread_sigmask(signal.SIG_BLOCK, [])
    finally:
        signal.signal(signal.SIGINT, previous)


@pytest.mark.parametrize(
    ("kwargs", "words"),
    [
        ({"executor": "dask"}, "unknown executor 'dask'"),
        ({"workers": 0}, "--workers 0 must be >= 1"),
        ({"gpus_per_unit": -1}, "--gpus-per-unit -1 must be >= 0"),
        ({"address": "head:6379"}, "apply to --executor ray"),
        ({"gpus_per_unit": 1}, "apply to --executor ray"),
        ({"kinds": ("base", "pruning")}, "unknown unit kind 'pruning'"),
    ],
)
def test_bad_arguments_are_one_line_config_errors(tmp_path: Path, kwargs, words):
    with pytest.raises(ConfigError, match=words) as exc:
        run_study(tiny_study(), tmp_path / "study", progress=False, **kwargs)
    assert "\n" not in str(exc.value)
    assert not (tmp_path / "study").exists()


def test_a_device_this_machine_lacks_is_refused_before_anything_runs(tmp_path: Path, monkeypatch):
    """``--device cuda`` without a GPU: one line naming the fix, before the store exists,
    not a failure stored for every unit (the study ran and exited 0 before)."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    study = dataclasses.replace(tiny_study(), train=TrainConfig(epochs=1, device="cuda"))
    with pytest.raises(ConfigError, match="^device 'cuda' requested but no CUDA GPU is "
                       "available; use --device cpu$"):  # fmt: skip
        run_study(study, tmp_path / "study", progress=False)
    assert not (tmp_path / "study").exists()


# ------------------------------------------------------------------- failures and retries
def _failing_structure(graph_id: int):
    real = units._run_structure

    def run(cfg: dict[str, Any]) -> dict[str, Any]:
        if cfg["graph_id"] == graph_id:
            raise RuntimeError(f"simulated failure of graph {graph_id}")
        return real(cfg)

    return run


def test_failing_unit_is_recorded_and_the_study_goes_on(tmp_path: Path, monkeypatch, reference):
    with monkeypatch.context() as patch:
        patch.setattr(units, "_run_structure", _failing_structure(1))
        run = run_study(tiny_study(), tmp_path, workers=1, progress=False)
    assert (run.done, run.failed, run.blocked) == (4, 1, 0)
    assert len(run.failures) == 1
    assert "structure rnn_tanh ws#1" in run.failures[0]
    assert "RuntimeError: simulated failure of graph 1" in run.failures[0]
    with ResultsStore.open(tmp_path, readonly=True) as store:
        failures = store.failures()
    assert len(failures) == 1
    error = failures["error"].iloc[0]
    assert error.startswith("Traceback (most recent call last)")
    assert "_run_structure" in error or "in run" in error
    assert "RuntimeError: simulated failure of graph 1" in error
    failed_key = failures["key"].iloc[0]

    # Without --retry-failed the failed unit is skipped; it stays failed, attempts unchanged.
    again = run_study(tiny_study(), tmp_path, workers=1, progress=False)
    assert (again.done, again.failed, again.skipped) == (0, 0, 5)
    assert snapshot(tmp_path)[failed_key]["attempts"] == 1

    # With it, the unit runs again (now succeeding) and replaces the failure.
    retry = run_study(tiny_study(), tmp_path, workers=1, progress=False, retry_failed=True)
    assert (retry.done, retry.failed, retry.skipped) == (1, 0, 4)
    final = snapshot(tmp_path)
    assert final[failed_key]["status"] == "done"
    assert final[failed_key]["attempts"] == 2
    for key, row in reference.items():
        assert final[key]["metrics"] == row["metrics"]
        assert final[key]["attempts"] == (2 if key == failed_key else 1)


def test_pruning_units_of_a_failed_base_are_blocked_not_crashed(tmp_path: Path, monkeypatch):
    def broken(cfg: dict[str, Any]) -> dict[str, Any]:
        raise MemoryError("simulated")

    with monkeypatch.context() as patch:
        patch.setattr(units, "_run_base", broken)
        run = run_study(tiny_study(), tmp_path, workers=1, progress=False)
    assert (run.done, run.failed, run.blocked) == (2, 1, 2)
    assert run.blocked_units == [
        "prune rnn_tanh both 50% seed=0",
        "prune rnn_tanh both 100% seed=0",
    ]
    with ResultsStore.open(tmp_path, readonly=True) as store:
        assert store.count() == {"done": 2, "failed": 1}
        assert store.keys(kind="prune") == set()
    # A plain rerun skips the failed base, so its pruning units stay blocked ...
    again = run_study(tiny_study(), tmp_path, workers=1, progress=False)
    assert (again.done, again.failed, again.blocked, again.skipped) == (0, 0, 2, 3)
    # ... until --retry-failed trains the base; then they run.
    retry = run_study(tiny_study(), tmp_path, workers=1, progress=False, retry_failed=True)
    assert (retry.done, retry.failed, retry.blocked) == (3, 0, 0)


def _delete(path: Path) -> None:
    path.unlink()


def _truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


@pytest.mark.parametrize("damage", [_delete, _truncate], ids=["deleted", "truncated"])
@pytest.mark.parametrize("kinds", [("prune",), None], ids=["prune-only", "whole-study"])
def test_a_base_whose_checkpoint_is_lost_is_trained_again_with_one_line(
    tmp_path: Path, reference, damage, kinds, capsys
):
    run_study(tiny_study(), tmp_path, kinds=("base",), progress=False)
    (checkpoint,) = (tmp_path / "artefacts").rglob("model.pt")
    damage(checkpoint)
    run = run_study(tiny_study(), tmp_path, kinds=kinds, progress=False)
    assert run.complete and run.blocked == 0 and run.failed == 0
    assert run.done == (3 if kinds else 5)  # the base again, its 2 pruning units (+ 2 graphs)
    (note,) = run.notes
    why = "is missing" if damage is _delete else "is damaged (truncated?)"
    assert note.startswith("base rnn_tanh seed=0: its stored checkpoint ") and why in note
    assert note.endswith("; training it again") and note in capsys.readouterr().err
    stored = snapshot(tmp_path)
    assert {k: v["metrics"] for k, v in stored.items()} == {
        k: v["metrics"] for k, v in reference.items() if kinds is None or v["kind"] != "structure"
    }
    assert run_study(tiny_study(), tmp_path, kinds=kinds, progress=False).notes == []


def test_no_empty_folder_is_made_for_a_base_checkpoint_looked_up(tmp_path: Path):
    run_study(tiny_study(), tmp_path, kinds=("base",), progress=False)
    run_study(tiny_study(), tmp_path, kinds=("prune",), progress=False)
    folders = sorted(p.name for p in (tmp_path / "artefacts").iterdir())
    assert len(folders) == 1 and folders[0].startswith("base-rnn_tanh-s0-")


def test_a_store_with_a_damaged_row_is_refused_before_anything_runs(tmp_path: Path):
    run_study(tiny_study(), tmp_path, kinds=("base",), progress=False)
    path = tmp_path / "results.sqlite"
    data = bytearray(path.read_bytes())
    at = data.index(b'"test_accuracy":') + len('"test_accuracy":')
    data[at] ^= 0x02  # a digit becomes another digit
    path.write_bytes(bytes(data))
    with pytest.raises(StoreError, match=r"holds 1 damaged row\(s\) \(first: unit ") as info:
        run_study(tiny_study(), tmp_path, progress=False)
    assert "sparsernn verify" in str(info.value) and "--repair" in str(info.value)
    with ResultsStore.open(tmp_path, readonly=True) as store:
        assert store.count() == {"done": 1, "failed": 0}  # nothing ran


def test_out_naming_the_store_file_is_refused_up_front(tmp_path: Path):
    run_study(tiny_study(), tmp_path, kinds=("base",), progress=False)
    with pytest.raises(ConfigError) as info:
        run_study(tiny_study(), tmp_path / "results.sqlite", progress=False)
    assert str(info.value) == (
        f"--out {tmp_path / 'results.sqlite'} names a file; --out takes the study directory "
        f"that holds results.sqlite (here --out {tmp_path})"
    )
    with ResultsStore.open(tmp_path, readonly=True) as store:
        assert store.count() == {"done": 1, "failed": 0}


# ------------------------------------------------------------------------------------ Ctrl-C
class _Interrupt:
    """An ``on_result`` callback that raises KeyboardInterrupt at the n-th result."""

    def __init__(self, at: int) -> None:
        self.at, self.seen, self.raised_at = at, 0, 0.0

    def __call__(self, unit, result) -> None:
        self.seen += 1
        if self.seen == self.at:
            self.raised_at = time.perf_counter()
            raise KeyboardInterrupt


def test_ctrl_c_inline_keeps_what_was_stored(tmp_path: Path, reference):
    with pytest.raises(KeyboardInterrupt):
        run_study(tiny_study(), tmp_path, workers=1, progress=False, on_result=_Interrupt(2))
    stored = snapshot(tmp_path)
    assert len(stored) == 2
    assert all(reference[key] == row for key, row in stored.items())
    run = run_study(tiny_study(), tmp_path, workers=1, progress=False)  # the lock was released
    assert (run.skipped, run.done) == (2, 3)
    assert snapshot(tmp_path) == reference


def test_ctrl_c_with_a_pool_cancels_the_queue_and_stops_workers(tmp_path: Path, reference):
    study = tiny_study(n_graphs=12)
    interrupt = _Interrupt(1)
    with pytest.raises(KeyboardInterrupt):
        run_study(study, tmp_path, workers=2, progress=False, on_result=interrupt)
    stopped_after = time.perf_counter() - interrupt.raised_at
    assert multiprocessing.active_children() == []
    assert stopped_after < 5.0  # workers are terminated, not waited for
    stored = snapshot(tmp_path)
    assert len(stored) == 1
    (key,) = stored
    assert stored[key]["status"] == "done" and stored[key]["attempts"] == 1
    run = run_study(study, tmp_path, workers=1, progress=False)
    assert (run.skipped, run.done, run.failed) == (1, len(plan_units(study)) - 1, 0)
    final = snapshot(tmp_path)
    assert all(final[key] == row for key, row in reference.items())
    assert {row["attempts"] for row in final.values()} == {1}


def test_ctrl_c_during_a_commit_waits_for_the_commit():
    # Python's own Ctrl-C handler, whatever this process inherited (a background job of a
    # non-interactive shell starts with SIGINT ignored).
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    reached = False
    with pytest.raises(KeyboardInterrupt):
        with runner._interrupts_deferred():
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(0.05)
            reached = True
    assert reached
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    signal.signal(signal.SIGINT, previous)


def test_a_deferred_ctrl_c_is_raised_as_itself_when_no_python_handler_was_set():
    """With SIGINT at SIG_DFL before the commit, a Ctrl-C held off during it is raised as
    KeyboardInterrupt afterwards (it was once re-sent as SIGTERM: the loop's last signal)."""
    terms: list[int] = []
    previous = {
        signal.SIGINT: signal.signal(signal.SIGINT, signal.SIG_DFL),
        signal.SIGTERM: signal.signal(signal.SIGTERM, lambda n, f: terms.append(n)),
    }
    try:
        with pytest.raises(KeyboardInterrupt):
            with runner._interrupts_deferred():
                signal.raise_signal(signal.SIGINT)  # held: the deferring handler is set
        assert terms == []
        assert signal.getsignal(signal.SIGINT) == signal.SIG_DFL
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


# ---------------------------------------------------------------------------------- progress
def test_progress_bar_goes_to_stderr_with_the_current_unit(tmp_path: Path, capsys):
    run_study(tiny_study(), tmp_path, workers=1, kinds=("base", "prune"), progress=True)
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "units: 100%" in captured.err
    assert "3/3" in captured.err
    assert "base rnn_tanh seed=0" in captured.err
    assert "prune rnn_tanh both 100% seed=0" in captured.err


def test_progress_bar_shows_a_whole_bundle_at_once(capsys):
    """30 units finishing in one burst (a bundle) are on screen right away, not minutes later."""
    planned = [u for u in plan_units(tiny_study(n_graphs=40)) if u.kind == "structure"][:31]
    bar = Progress(True, 40)
    bar.start(planned[0])
    bar.finish(planned[0])
    time.sleep(0.2)  # let tqdm settle on a rate, as it has in a real run
    for unit in planned[1:]:
        bar.start(unit)
    for unit in planned[1:]:
        bar.finish(unit)
    bar.refresh()
    shown = capsys.readouterr().err.replace("\r", "\n").strip().splitlines()[-1]
    bar.close()
    assert "31/40" in shown


def test_no_progress_bar_when_disabled(tmp_path: Path, capsys):
    run_study(tiny_study(), tmp_path, workers=1, kinds=("base",), progress=False)
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err == ""


def test_unreachable_ray_address_fails_fast(tmp_path: Path):
    with socket.socket() as sock:  # a port that nothing listens on once closed
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(ConfigError, match="cannot reach the Ray cluster") as exc:
        executors._check_reachable(f"127.0.0.1:{port}")
    assert "ray start --head" in str(exc.value)
    with pytest.raises(ConfigError, match="must be HOST:PORT"):
        executors._check_reachable("head-without-port")
    executors._check_reachable(None)
    executors._check_reachable("auto")
    executors._check_reachable("ray://head:10001")  # Ray client addresses are left to Ray


def test_results_show_only_the_latest_configuration_of_each_kind(tmp_path: Path):
    import dataclasses

    from sparsernn.experiments.results import load_results

    first = tiny_study()
    run_study(first, tmp_path, kinds=("base", "prune"), workers=1, progress=False)
    longer = dataclasses.replace(
        first, pruning=dataclasses.replace(first.pruning, retrain_epochs=2)
    )
    run_study(longer, tmp_path, kinds=("base", "prune"), workers=1, progress=False)
    run_study(first, tmp_path, kinds=("structure",), workers=1, progress=False)
    res = load_results(tmp_path)
    assert sorted(res.pruning["epoch"].unique()) == [0, 1, 2]  # only the 2-epoch points
    assert len(res.pruning_points) == 2 and len(res.base) == 1 and len(res.structure) == 2
    with ResultsStore.open(tmp_path, readonly=True) as store:
        assert store.count("prune")["done"] == 4  # the 1-epoch points are kept, not shown


# ------------------------------------------------------------------------------- SIGTERM
def _ray_like_sigterm_handler(signum, frame):  # what ray.init installs in a driver
    raise SystemExit(signum)


_ray_like_sigterm_handler.__module__ = "ray._private.worker"


@pytest.mark.parametrize(
    "before", [signal.SIG_DFL, _ray_like_sigterm_handler], ids=["default", "ray_init"]
)
def test_sigterm_stops_a_study_like_ctrl_c_and_keeps_the_store(
    tmp_path: Path, reference, request: pytest.FixtureRequest, before
):
    """SIGTERM (``kill PID``) used to end the process silently; now it raises Terminated."""
    out = tmp_path / "study"
    handler = signal.signal(signal.SIGTERM, before)
    request.addfinalizer(lambda: signal.signal(signal.SIGTERM, handler))

    def terminate_after_first(unit, result):
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(1)  # the handler runs at once; the run must not get here to the next unit

    with pytest.raises(runner.Terminated) as caught:
        run_study(tiny_study(), out, workers=1, progress=False, on_result=terminate_after_first)
    assert isinstance(caught.value, KeyboardInterrupt) and caught.value.signum == signal.SIGTERM
    assert signal.getsignal(signal.SIGTERM) == before  # restored
    stored = snapshot(out)
    assert len(stored) == 1 and stored.items() <= reference.items()
    run = run_study(tiny_study(), out, workers=1, progress=False)  # resumes
    assert (run.skipped, run.done) == (1, 4) and snapshot(out) == reference


# ---------------------------------------------------------------------- artefact folders
def test_artefact_folders_have_readable_names_and_old_ones_still_load(tmp_path: Path, reference):
    out = tmp_path / "study"
    run_study(tiny_study(), out, workers=1, progress=False, kinds=("base",))
    (base_dir,) = (out / "artefacts").iterdir()
    with ResultsStore.open(out) as store:
        (key,) = store.keys(kind="base")
        assert base_dir.name == f"base-rnn_tanh-s0-{key}"
        # A study stored before readable names: the folder is the key alone.
        old = base_dir.rename(out / "artefacts" / key)
        row = store.get(key)
        store.put_done(
            key, "base", row["config"], row["metrics"], row["curve"],
            {"model.pt": old / "model.pt"}, overwrite=True,
        )  # fmt: skip
    run = run_study(tiny_study(), out, workers=1, progress=False)
    assert (run.done, run.failed, run.blocked) == (4, 0, 0)  # pruning read the old folder
    assert [p.name for p in (out / "artefacts").iterdir()] == [key]
    stored = snapshot(out)
    assert {k: v for k, v in stored.items() if k != key} == {
        k: v for k, v in reference.items() if k != key
    }
