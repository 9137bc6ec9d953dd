"""The driver's duties toward its workers and the compiled kernel: workers end with a killed
driver, the kernel is built once before the units start (no unit's time), and its fallback is
said once per study."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from studyhelpers import tiny_study  # noqa: I001  (tests/experiments on sys.path)

from sparsernn.experiments import _reaper, units
from sparsernn.experiments.runner import run_study
from sparsernn.nn import native

ENV = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


def _children(pid: int) -> dict[int, str]:
    """The live child processes of ``pid`` and their command lines (Linux /proc)."""
    out = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if int(fields[1]) == pid and fields[0] != "Z":
            out[int(entry.name)] = cmdline
    return out


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads /proc (Linux)")
def test_killing_the_driver_ends_its_workers_within_seconds(tmp_path: Path):
    args = [sys.executable, "-m", "sparsernn.cli", "structure", "--cells", "rnn_tanh",
            "--generators", "ws", "--graphs", "6", "--nodes", "10:12", "--epochs", "50",
            "--n-strings", "400", "--workers", "2", "--device", "cpu", "--out",
            str(tmp_path / "s")]  # fmt: skip
    driver = subprocess.Popen(args, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 180
        workers: dict[int, str] = {}
        while len(workers) < 2:
            assert driver.poll() is None, driver.stderr.read().decode()
            assert time.monotonic() < deadline, "the workers never started"
            time.sleep(0.2)
            workers = {p: c for p, c in _children(driver.pid).items() if "spawn_main" in c}
        time.sleep(1.0)  # let them import and take their first units
        helpers = set(_children(driver.pid))  # the workers and multiprocessing's tracker
        assert set(workers) <= helpers
        driver.send_signal(signal.SIGKILL)
        driver.wait(timeout=30)
        deadline = time.monotonic() + 10  # "no worker survives it by more than a few seconds"
        while any(_alive(p) for p in helpers) and time.monotonic() < deadline:
            time.sleep(0.1)
        survivors = {p: c for p, c in _children(1).items() if p in helpers and _alive(p)}
        survivors.update({p: "?" for p in helpers if _alive(p)})
        assert not survivors, survivors
    finally:
        for pid in _children(driver.pid) if driver.poll() is None else {}:
            os.kill(pid, signal.SIGKILL)
        if driver.poll() is None:
            driver.kill()


# -- the compiled kernel, prepared by the driver ------------------------------------------------


@pytest.fixture
def fresh_cache(monkeypatch, tmp_path):
    """An empty kernel cache and a forgotten library (restored afterwards)."""
    good = native.build()  # the user's own, built by `make install`
    monkeypatch.setenv("SPARSERNN_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setattr(native, "_warned", False)
    native._library.cache_clear()
    yield good
    native._library.cache_clear()


def _copying_compiler(folder: Path, good: Path) -> tuple[str, Path]:
    """A "compiler" that copies a sound build (a real one takes minutes on a busy machine)."""
    log = folder / "builds.log"
    script = folder / "cxx"
    script.write_text(
        "#!/bin/sh\n"
        'if [ "$1" = "--version" ]; then echo "copycxx 1.0"; exit 0; fi\n'
        'prev=""; for a in "$@"; do [ "$prev" = "-o" ] && out="$a"; prev="$a"; done\n'
        f'echo build >> {log}\ncp {good} "$out"\n'
    )
    script.chmod(0o755)
    return str(script), log


def test_a_cold_cache_is_built_once_by_the_driver_before_any_unit(
    tmp_path, monkeypatch, fresh_cache, capfd
):
    cxx, log = _copying_compiler(tmp_path, fresh_cache)
    monkeypatch.setenv("CXX", cxx)
    built_at_start = []
    real = units._run_structure

    def structure(cfg):
        built_at_start.append(native.cached() is not None and log.read_text().count("build"))
        return real(cfg)

    monkeypatch.setattr(units, "_run_structure", structure)
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        run = run_study(tiny_study(), tmp_path / "s", kinds=("structure",), progress=False)
    finally:
        torch.set_num_threads(before)
    assert run.complete and built_at_start == [1, 1]  # built, once, before the first unit
    (note,) = run.notes
    assert note.startswith(
        "sparsernn: building the structure networks' compiled time loop once, before the units "
        "start... done in "
    )
    assert f"(cached in {tmp_path / 'cache'})" in note
    assert [ln for ln in capfd.readouterr().err.splitlines() if "sparsernn:" in ln] == [note]
    again = run_study(tiny_study(n_graphs=3), tmp_path / "s", kinds=("structure",),
                      progress=False)  # fmt: skip
    assert again.notes == [] and log.read_text().count("build") == 1


def test_without_a_compiler_a_pool_study_says_the_fallback_once(tmp_path: Path):
    bare = tmp_path / "bin"  # no c++, g++ or clang++ on this PATH
    bare.mkdir()
    env = {**ENV, "PATH": str(bare), "SPARSERNN_CACHE_DIR": str(tmp_path / "cache")}
    env.pop("CXX", None)
    args = [sys.executable, "-m", "sparsernn.cli", "structure", "--cells", "rnn_tanh",
            "--generators", "ws", "--graphs", "2", "--nodes", "10:12", "--epochs", "1",
            "--n-strings", "120", "--workers", "2", "--device", "cpu", "--out",
            str(tmp_path / "s")]  # fmt: skip
    done = subprocess.run(args, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    lines = [ln for ln in done.stderr.replace("\r", "\n").splitlines() if "PyTorch path" in ln]
    assert lines == [
        "sparsernn: building the structure networks' compiled time loop once, before the units "
        "start... not possible (no C++ compiler found (set $CXX or install g++)); they use the "
        "PyTorch path (same results, slower)"
    ]
    assert "RuntimeWarning" not in done.stderr and "warnings.warn" not in done.stderr
    assert "2 units done, 0 failed" in done.stdout


FAKE_DRIVER = """
import importlib.util, subprocess, sys, time
spec = importlib.util.spec_from_file_location("reaper", sys.argv[2])  # not the whole package
module = importlib.util.module_from_spec(spec)
spec.loader.exec_module(module)
reaper = module.Reaper()
helper = subprocess.Popen(["sh", "-c", "sleep 600 & sleep 600; wait"])  # a child and a grandchild
reaper.watch([helper.pid])
watchdog = reaper.pid
if sys.argv[1] == "bye":
    reaper.close()
print(helper.pid, watchdog, flush=True)
time.sleep(600)
"""


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads /proc (Linux)")
@pytest.mark.parametrize("ending", ["killed", "bye"])
def test_the_reaper_ends_a_killed_drivers_helpers_and_their_children(ending):
    source = Path(_reaper.__file__)
    driver = subprocess.Popen(
        [sys.executable, "-c", FAKE_DRIVER, ending, str(source)], stdout=subprocess.PIPE, text=True
    )
    helper, reaper = (int(x) for x in driver.stdout.readline().split())
    deadline = time.monotonic() + 10
    while len(_children(helper)) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    tree = {helper, *_children(helper)}
    assert len(tree) == 3
    driver.kill()
    driver.wait()
    deadline = time.monotonic() + (10 if ending == "killed" else 1)
    ends = tree | {reaper}  # the reaper leaves once it has killed them
    while (ending == "bye" or any(_alive(p) for p in ends)) and time.monotonic() < deadline:
        time.sleep(0.05)
    try:
        if ending == "killed":
            assert not any(_alive(p) for p in tree)
            assert not _alive(reaper)
        else:  # a driver that said bye keeps its helpers: the reaper is gone already
            assert all(_alive(p) for p in tree) and not _alive(reaper)
    finally:
        for pid in tree:
            if _alive(pid):
                os.kill(pid, signal.SIGKILL)
