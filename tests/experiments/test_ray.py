"""The Ray executor on a local two-CPU cluster gives the local executor's results."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch
from studyhelpers import snapshot, tiny_study  # noqa: I001  (tests/experiments on sys.path)

from sparsernn.errors import ConfigError
from sparsernn.experiments.runner import run_study
from sparsernn.store import ResultsStore

ray = pytest.importorskip("ray")


@pytest.fixture(scope="module")
def cluster():
    """A local Ray cluster of 2 CPUs for this module (starting one takes 10-20 s)."""
    if ray.is_initialized():
        ray.shutdown()
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        yield ray
    finally:
        ray.shutdown()


@pytest.mark.slow  # ~25 s on 2 cores, nearly all of it starting a local Ray instance
def test_ray_executor_gives_the_local_results(tmp_path: Path, cluster):
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        local = run_study(tiny_study(), tmp_path / "local", workers=1, progress=False)
    finally:
        torch.set_num_threads(before)
    remote = run_study(tiny_study(), tmp_path / "ray", executor="ray", progress=False)
    assert (local.done, local.failed, local.blocked) == (5, 0, 0)
    assert (remote.done, remote.failed, remote.blocked) == (5, 0, 0)
    assert snapshot(tmp_path / "ray") == snapshot(tmp_path / "local")
    # The driver wrote everything: pruning units got the base checkpoint through Ray.
    with ResultsStore.open(tmp_path / "ray", readonly=True) as store:
        assert store.count() == {"done": 5, "failed": 0}
        base = store.get(next(iter(store.keys(kind="base"))))
        assert (tmp_path / "ray" / base["artefacts"]["model.pt"]).is_file()
    assert cluster.is_initialized()  # a cluster run_study did not start is left running

    # Resuming through Ray runs nothing again.
    again = run_study(tiny_study(), tmp_path / "ray", executor="ray", progress=False)
    assert (again.done, again.skipped) == (0, 5)


def test_gpus_per_unit_on_a_cluster_without_gpus_is_a_config_error(tmp_path: Path, cluster):
    with pytest.raises(ConfigError, match="the Ray cluster has 0 GPUs") as exc:
        run_study(tiny_study(), tmp_path, executor="ray", gpus_per_unit=1, progress=False)
    assert "\n" not in str(exc.value)
    assert cluster.is_initialized()


# ------------------------------------------------------------------ token authentication
def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _cli(args: list[str], env: dict[str, str], timeout: float = 240):
    import subprocess
    import sys

    return subprocess.run(
        [sys.executable, "-m", "sparsernn.cli", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=timeout,
    )


@pytest.mark.slow  # ~40-60 s: a real `ray start` head, a study through it, a refused client
def test_address_of_a_token_protected_cluster(tmp_path: Path):
    """`ray start` enables token auth when a token exists; `--address HOST:PORT` used to fail
    with "Authentication token is missing or incorrect". Loopback only; the head is stopped by
    ending the `ray start --block` process group we started (not `ray stop`, which would stop
    every Ray on the machine)."""
    import os
    import shutil
    import signal
    import socket
    import subprocess
    import sys
    import tempfile
    import time

    ray_cli = str(Path(sys.executable).with_name("ray"))
    home = tmp_path / "home"  # the token lives in $HOME/.ray/auth_token, Ray's default file
    home.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_")}
    env.update(HOME=str(home), OMP_NUM_THREADS="1", PYTHONWARNINGS="ignore")
    subprocess.run([ray_cli, "get-auth-token", "--generate"], env=env, check=True,
                   capture_output=True, timeout=60)  # fmt: skip
    port = _free_port()
    ray_tmp = tempfile.mkdtemp(prefix="srnn-ray-", dir="/tmp")  # short: Unix socket paths
    head = subprocess.Popen(
        [ray_cli, "start", "--head", "--block", "--port", str(port),
         "--node-ip-address", "127.0.0.1", "--num-cpus", "2", "--include-dashboard=false",
         "--disable-usage-stats", "--temp-dir", ray_tmp],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert head.poll() is None and time.monotonic() < deadline, "no Ray head"
                time.sleep(0.5)
        study = ["structure", "--cells", "rnn_tanh", "--generators", "ws", "--graphs", "1",
                 "--nodes", "10:12", "--epochs", "1", "--n-strings", "100", "--device", "cpu",
                 "--executor", "ray", "--address", f"127.0.0.1:{port}"]  # fmt: skip
        ok = _cli([*study, "--out", str(tmp_path / "s")], env)
        assert ok.returncode == 0, ok.stderr[-3000:]
        assert "1 units done, 0 failed" in ok.stdout
        # No token here (an empty $HOME): one line saying how to get it.
        other = tmp_path / "home2"
        other.mkdir()
        refused = _cli([*study, "--out", str(tmp_path / "t")], {**env, "HOME": str(other)})
        assert refused.returncode == 2, refused.stderr[-3000:]
        (line,) = [ln for ln in refused.stderr.splitlines() if ln.startswith("error:")]
        assert "ray get-auth-token" in line and "RAY_AUTH_TOKEN" in line
    finally:
        head.send_signal(signal.SIGTERM)  # `ray start --block` then stops its Ray processes
        try:
            head.wait(timeout=40)
        except subprocess.TimeoutExpired:
            pass
        try:
            os.killpg(head.pid, signal.SIGKILL)  # whatever of that group outlived it
        except ProcessLookupError:
            pass
        head.wait()
        shutil.rmtree(ray_tmp, ignore_errors=True)


def test_no_token_for_an_address_says_how_to_get_one(tmp_path: Path, monkeypatch):
    """Fast and without a cluster: what a driver without a token is told (see the slow test)."""
    from sparsernn.experiments import executors

    monkeypatch.delenv("RAY_AUTH_MODE", raising=False)
    monkeypatch.setattr(executors, "_check_reachable", lambda address: None)
    monkeypatch.setattr(executors, "_use_ray_token", lambda: False)
    monkeypatch.setattr(ray, "is_initialized", lambda: False)

    def refused(**kwargs):
        raise ConnectionError("Failed to connect to Ray cluster at 127.0.0.1:6379")

    monkeypatch.setattr(ray, "init", refused)
    with pytest.raises(ConfigError) as exc:
        run_study(tiny_study(), tmp_path, executor="ray", address="127.0.0.1:6379", progress=False)
    message = str(exc.value)
    assert "\n" not in message and "token authentication" in message
    assert "ray get-auth-token" in message and "RAY_AUTH_TOKEN" in message


def test_a_token_in_the_default_file_enables_token_mode(tmp_path: Path, monkeypatch):
    from sparsernn.experiments import executors

    monkeypatch.setenv("HOME", str(tmp_path))
    for name in ("RAY_AUTH_MODE", "RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH"):
        monkeypatch.delenv(name, raising=False)
    from ray._raylet import AuthenticationTokenLoader

    AuthenticationTokenLoader.instance().reset_cache()  # a token cached by an earlier ray.init
    try:
        assert executors._use_ray_token() is False and "RAY_AUTH_MODE" not in os.environ
        (tmp_path / ".ray").mkdir()
        (tmp_path / ".ray" / "auth_token").write_text("a" * 64)
        AuthenticationTokenLoader.instance().reset_cache()
        assert executors._use_ray_token() is True and os.environ["RAY_AUTH_MODE"] == "token"
    finally:
        from ray._raylet import Config

        os.environ.pop("RAY_AUTH_MODE", None)
        Config.initialize("")  # this process's Ray config back to no token mode
        AuthenticationTokenLoader.instance().reset_cache()


def _descendants(pid: int) -> set[int]:
    """``pid``'s live descendants (Linux /proc)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if fields[0] != "Z":
                children.setdefault(int(fields[1]), []).append(int(entry.name))
    out, todo = set(), [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            if child not in out:
                out.add(child)
                todo.append(child)
    return out


def _alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


@pytest.mark.slow  # ~1 min: a driver that starts its own local Ray cluster, then is killed
@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads /proc (Linux)")
def test_a_killed_driver_takes_the_ray_cluster_it_started_with_it(tmp_path: Path):
    import signal
    import subprocess
    import sys
    import time

    env = {**os.environ, "OMP_NUM_THREADS": "1", "RAY_USAGE_STATS_ENABLED": "0"}
    args = [sys.executable, "-m", "sparsernn.cli", "structure", "--cells", "rnn_tanh",
            "--generators", "ws", "--graphs", "8", "--nodes", "10:12", "--epochs", "50",
            "--n-strings", "400", "--executor", "ray", "--device", "cpu", "--out",
            str(tmp_path / "s")]  # fmt: skip
    driver = subprocess.Popen(args, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    helpers: set[int] = set()
    try:
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline and driver.poll() is None:
            helpers |= _descendants(driver.pid)
            cmdlines = []
            for pid in helpers:
                try:
                    cmdlines.append(Path(f"/proc/{pid}/cmdline").read_bytes())
                except OSError:
                    pass
            if any(b"ray::run_job" in c for c in cmdlines):  # a Ray worker runs a unit
                break
            time.sleep(0.5)
        assert driver.poll() is None, "the study ended before its Ray workers were seen"
        time.sleep(2.0)
        helpers |= _descendants(driver.pid)
        driver.send_signal(signal.SIGKILL)
        driver.wait(timeout=30)
        deadline = time.monotonic() + 15
        while any(_alive(p) for p in helpers) and time.monotonic() < deadline:
            time.sleep(0.2)
        survivors = {p for p in helpers if _alive(p)}
        assert not survivors, [Path(f"/proc/{p}/cmdline").read_bytes()[:80] for p in survivors]
    finally:
        for pid in helpers | ({driver.pid} if driver.poll() is None else set()):
            if _alive(pid):
                os.kill(pid, signal.SIGKILL)
