"""Crash safety of a study run through the CLI: SIGKILL and resume, Ctrl-C, a second writer,
a foreign results file, and ``sparsernn status`` on partial studies.

Subprocesses run ``python -m sparsernn.cli reproduce --config SMALL`` (the smoke profile's 18
units with a smaller network and data set: about 3 s) with one torch thread each: the test
machine is shared, and oversubscribed threads are slow.
Metrics are compared exactly: on CPU a unit's numbers depend only on its config (seeded data,
initial weights and batch order), not on thread count, worker process or order of units; the
timing entries (``*time*``) are the only ones left out.
"""

from __future__ import annotations

import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch
from click.testing import CliRunner
from studyhelpers import tiny_study  # noqa: I001  (tests/experiments on sys.path)

from sparsernn.cli import cli
from sparsernn.errors import StoreError
from sparsernn.experiments import study_status, units
from sparsernn.experiments.config import (
    load_study_config,
    merge,
    profile,
)
from sparsernn.experiments.runner import run_study
from sparsernn.store import ResultsStore

N_SMOKE_UNITS = 18
SMALL = """\
profile = "smoke"
embedding_dim = 8
hidden_size = 12
num_layers = 2

[data]
n_strings = 300
"""
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}


def reproduce(out: Path, *extra: str) -> list[str]:
    config = out.parent / "small.toml"
    if not config.exists():
        config.write_text(SMALL)
    return [
        sys.executable,
        "-m",
        "sparsernn.cli",
        "reproduce",
        "--config",
        str(config),
        "--device",
        "cpu",
        "--no-report",
        "--out",
        str(out),
        *extra,
    ]


def start(out: Path, *extra: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        reproduce(out, "--workers", "1", *extra),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=ENV,
    )


def rows(study_dir: Path) -> dict[str, dict[str, Any]]:
    with ResultsStore.open(study_dir, readonly=True) as store:
        return {key: store.get(key) for key in sorted(store.keys())}


def comparable(row: dict[str, Any]) -> dict[str, Any]:
    """What must not depend on how a unit was run: timings are left out."""
    return {
        "kind": row["kind"],
        "status": row["status"],
        "config": row["config"],
        "metrics": {k: v for k, v in (row["metrics"] or {}).items() if "time" not in k},
        "curve": [{k: v for k, v in p.items() if "time" not in k} for p in row["curve"] or []],
    }


def n_done(study_dir: Path) -> int:
    try:
        with ResultsStore.open(study_dir, readonly=True) as store:
            return store.count()["done"]
    except (StoreError, sqlite3.Error):  # not created yet
        return 0


def with_ctrl_c(command: list[str]) -> list[str]:
    """``command`` (a Python command line) run with Ctrl-C at its default, as in a terminal:
    a background job of a non-interactive shell (``make test-slow &``) starts with SIGINT
    ignored, its children inherit that, and a study that never sees Ctrl-C runs to the end."""
    assert command[0] == sys.executable
    restore = (
        "import os, signal, sys; signal.signal(signal.SIGINT, signal.SIG_DFL); "
        "os.execv(sys.executable, [sys.executable, *sys.argv[1:]])"
    )
    return [sys.executable, "-c", restore, *command[1:]]


def wait_for_units(study_dir: Path, n_units: int, proc: subprocess.Popen[str]) -> None:
    """Wait until ``n_units`` units are stored, or fail if ``proc`` ended first."""
    deadline = time.monotonic() + 120
    while n_done(study_dir) < n_units:
        assert proc.poll() is None, f"the study ended early: {proc.communicate()[1][-2000:]}"
        assert time.monotonic() < deadline, "the study made no progress in 120 s"
        time.sleep(0.02)


def assert_same_as(study_dir: Path, reference: dict[str, dict[str, Any]]) -> None:
    with ResultsStore.open(study_dir, readonly=True) as store:
        assert store.get_meta("study") == next(iter(reference.values()))["study"]
    stored = rows(study_dir)
    assert sorted(stored) == sorted(reference)
    for key, row in stored.items():
        assert comparable(row) == comparable(reference[key]), row["kind"]
        assert row["attempts"] == 1, f"{key} ({row['kind']}) ran {row['attempts']} times"
    with sqlite3.connect(study_dir / "results.sqlite") as conn:
        (n_rows,) = conn.execute("SELECT COUNT(*) FROM units").fetchone()
    assert n_rows == len(reference)  # no duplicate keys
    for key, row in stored.items():  # base checkpoints: the same weights
        if row["kind"] == "base":
            ours = torch.load(study_dir / row["artefacts"]["model.pt"], weights_only=True)
            ref_dir = reference[key]["study_dir"]
            ref = torch.load(ref_dir / reference[key]["artefacts"]["model.pt"], weights_only=True)
            assert ours["state_dict"].keys() == ref["state_dict"].keys()
            for name, tensor in ours["state_dict"].items():
                assert torch.equal(tensor, ref["state_dict"][name]), name


def live_processes_in_group(pgid: int) -> list[int]:
    """Processes of group ``pgid`` that are not zombies (dead, waiting to be reaped)."""
    live = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:  # it ended meanwhile
            continue
        state, group = fields[0], int(fields[2])
        if group == pgid and state not in ("Z", "X"):
            live.append(int(stat.parent.name))
    return live


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, Any]]:
    """The study of :func:`reproduce`, run once without interruption (in this process)."""
    out = tmp_path_factory.mktemp("reference")
    config = out / "small.toml"
    config.write_text(SMALL)
    # What `reproduce --config SMALL --device cpu` runs; the tests check the stored study.
    study = merge(load_study_config(config, profile("smoke")), {"train": {"device": "cpu"}})
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        run = run_study(study, out / "study", workers=1, progress=False)
    finally:
        torch.set_num_threads(before)
    assert (run.done, run.failed) == (N_SMOKE_UNITS, 0)
    stored = rows(out / "study")
    for row in stored.values():
        row["study_dir"] = out / "study"
        row["study"] = study.to_dict()
    return stored


@pytest.fixture
def processes() -> Iterator[list[subprocess.Popen[str]]]:
    """Subprocesses that are killed (and resumed first, if stopped) when the test ends."""
    started: list[subprocess.Popen[str]] = []
    yield started
    for proc in started:
        if proc.poll() is None:
            proc.send_signal(signal.SIGCONT)
            proc.kill()
            proc.communicate()


# ------------------------------------------------------------------------------- SIGKILL
def test_sigkill_at_random_moments_then_resume_gives_the_uninterrupted_store(
    tmp_path: Path, reference, processes
):
    rng = random.Random(20240617)
    out = tmp_path / "study"
    # Kill after a random number of stored units (increasing), plus a random part of a unit.
    kill_after = sorted(rng.sample(range(1, 11), 3))
    started_before: dict[str, float] = {}  # key -> `started` of units stored before a kill
    for n_units in kill_after:
        proc = start(out)
        processes.append(proc)
        wait_for_units(out, n_units, proc)
        time.sleep(rng.uniform(0.0, 0.15))
        assert proc.poll() is None, "the study finished before it could be killed"
        proc.kill()
        proc.communicate()
        assert proc.returncode == -signal.SIGKILL
        stored = rows(out)  # the store opens: not corrupt, and the lock died with its holder
        assert N_SMOKE_UNITS > len(stored) >= n_units
        for key, started in started_before.items():
            assert stored[key]["started"] == started, "a stored unit was run again"
        started_before.update({key: row["started"] for key, row in stored.items()})
    final = subprocess.run(
        reproduce(out, "--workers", "1"), capture_output=True, text=True, env=ENV, timeout=300
    )
    assert final.returncode == 0, final.stderr[-2000:]
    assert f"{len(started_before)} already stored" in final.stdout
    assert_same_as(out, reference)
    stored = rows(out)
    for key, started in started_before.items():
        assert stored[key]["started"] == started, "a stored unit was run again"


# -------------------------------------------------------------------------------- Ctrl-C
@pytest.mark.slow  # ~10 s: spawns workers; test_runner covers the same logic in-process
@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs Linux /proc")
def test_ctrl_c_stops_a_pool_run_promptly_and_keeps_the_store(tmp_path: Path, reference):
    out = tmp_path / "study"
    proc = subprocess.Popen(
        with_ctrl_c(reproduce(out, "--workers", "2")),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=ENV,
        start_new_session=True,  # its own process group, as in a terminal
    )
    try:
        wait_for_units(out, 1, proc)
        interrupted = time.monotonic()
        os.killpg(proc.pid, signal.SIGINT)  # what Ctrl-C does: the driver and its workers
        _, stderr = proc.communicate(timeout=30)
        stopped_after = time.monotonic() - interrupted
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.communicate()
    assert proc.returncode == 130, stderr[-2000:]
    assert "interrupted: finished units are stored" in stderr
    assert "Traceback" not in stderr
    assert stopped_after < 10  # running units are not waited for
    # No worker outlives the driver (multiprocessing's resource tracker may take a moment).
    deadline = time.monotonic() + 5
    while live_processes_in_group(proc.pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert live_processes_in_group(proc.pid) == []
    stored = rows(out)
    assert 1 <= len(stored) < N_SMOKE_UNITS
    for key, row in stored.items():
        assert comparable(row) == comparable(reference[key])
        assert row["attempts"] == 1
    with ResultsStore.open(out):  # the writer lock was released
        pass


# ------------------------------------------------------------------- two writers, status
def test_second_writer_is_refused_and_the_first_completes(tmp_path: Path, reference, processes):
    out = tmp_path / "study"
    first = start(out)
    processes.append(first)
    wait_for_units(out, 1, first)
    first.send_signal(signal.SIGSTOP)  # hold the first mid-study, lock taken, deterministically
    try:
        second = subprocess.run(
            reproduce(out, "--workers", "1"), capture_output=True, text=True, env=ENV, timeout=120
        )
        status = study_status(out)  # readers are welcome while a study runs
    finally:
        first.send_signal(signal.SIGCONT)
    assert second.returncode == 2
    lines = second.stderr.strip().splitlines()
    assert len(lines) == 1, second.stderr
    assert lines[0].startswith("error: ")
    assert "in use by another sparsernn process" in lines[0]
    assert f"pid {first.pid}" in lines[0]
    assert second.stdout == ""
    assert "pending" in status
    _, stderr = first.communicate(timeout=300)
    assert first.returncode == 0, stderr[-2000:]
    assert_same_as(out, reference)


def status_table(text: str) -> dict[str, tuple[int, int, int]]:
    table = {}
    for line in text.splitlines()[2:]:
        parts = line.split()
        if len(parts) == 5 and parts[0] in ("base", "prune", "structure"):
            table[parts[0]] = (int(parts[1]), int(parts[2]), int(parts[3]))
    return table


def test_status_counts_done_failed_and_pending(tmp_path: Path, monkeypatch):
    real = units._run_structure

    def fail_graph_1(cfg: dict[str, Any]) -> dict[str, Any]:
        if cfg["graph_id"] == 1:
            raise RuntimeError("simulated")
        return real(cfg)

    monkeypatch.setattr(units, "_run_structure", fail_graph_1)
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        run_study(tiny_study(), tmp_path, kinds=("base", "structure"), progress=False)
    finally:
        torch.set_num_threads(before)
    result = CliRunner().invoke(cli, ["status", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines()[0] == f"study {tmp_path}"
    # pruning units were not asked for (kinds=base, structure): they are not "pending"
    assert status_table(result.stdout) == {
        "base": (1, 0, 0),
        "structure": (1, 1, 0),
    }
    assert "total time spent in units" in result.stdout


def test_status_of_a_missing_directory_is_one_line_and_exit_2(tmp_path: Path):
    result = CliRunner().invoke(cli, ["status", str(tmp_path / "nowhere")])
    assert result.exit_code == 2
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ")
    assert "nowhere" in lines[0] and "results.sqlite" in lines[0]


# --------------------------------------------------------------------- corrupt results file
@pytest.mark.parametrize(
    ("content", "words"),
    [
        (random.Random(0).randbytes(5000), "is not a sparsernn results store"),
        (b"SQLite format 3\x00" + random.Random(1).randbytes(5000), "damaged SQLite file"),
        (b"string,valid\nTXS,1\n", "is not a sparsernn results store"),
    ],
    ids=["garbage", "damaged-sqlite", "csv"],
)
@pytest.mark.parametrize("command", ["reproduce", "status"])
def test_foreign_results_file_is_refused_and_left_untouched(
    tmp_path: Path, content: bytes, words: str, command: str
):
    study_dir = tmp_path / "study"
    study_dir.mkdir()
    path = study_dir / "results.sqlite"
    path.write_bytes(content)
    args = [command, str(study_dir)]
    if command == "reproduce":
        args = ["reproduce", "--profile", "smoke", "--workers", "1", "--no-report", "--out"]
        args.append(str(study_dir))
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ")
    assert words in lines[0]
    assert path.read_bytes() == content
    assert sorted(p.name for p in study_dir.iterdir()) == ["results.sqlite"]
