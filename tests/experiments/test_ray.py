"""The Ray executor on a local two-CPU cluster gives the local executor's results."""

from __future__ import annotations

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
