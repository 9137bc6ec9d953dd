"""Pruning points retrained together (bundles): planning, equality with one-by-one, resume."""

from __future__ import annotations

import dataclasses
import math
import sqlite3
from pathlib import Path

import pytest
import torch
from studyhelpers import snapshot, tiny_study  # noqa: I001  (tests/experiments on sys.path)

from sparsernn.errors import ConfigError
from sparsernn.experiments import runner, units
from sparsernn.experiments.config import PruningConfig
from sparsernn.experiments.runner import run_study
from sparsernn.experiments.units import plan_units


@pytest.fixture(autouse=True)
def _one_torch_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _study(bundle: int = 0, cells=("rnn_tanh",), amounts=(50, 100)):
    study = tiny_study(n_graphs=0)
    pruning = dataclasses.replace(study.pruning, bundle=bundle, amounts=amounts)
    return dataclasses.replace(study, cells=cells, pruning=pruning)


def _prune_rows(study_dir: Path) -> dict[tuple[str, float], dict]:
    """Pruning rows by (cell, amount), timings left out."""
    rows = snapshot(study_dir)
    with runner.ResultsStore.open(study_dir, readonly=True) as store:
        configs = {k: store.get(k)["config"] for k in rows}
    return {
        (configs[k]["cell"], configs[k]["amount"]): row
        for k, row in rows.items()
        if row["kind"] == "prune"
    }


def test_auto_bundles_a_base_s_points_for_tanh_relu_gru_not_lstm():
    planned = plan_units(_study(cells=("rnn_tanh", "gru", "lstm"), amounts=(10, 20, 30)))
    sizes = {(u.config["cell"], u.config.get("bundle", 1)) for u in planned if u.kind == "prune"}
    assert sizes == {("rnn_tanh", 3), ("gru", 3), ("lstm", 1)}
    jobs = runner._bundles(planned)
    lstm_keys = {u.key for u in planned if u.kind == "prune" and u.config["cell"] == "lstm"}
    assert not lstm_keys & set(jobs)  # one by one
    tanh = [u for u in planned if u.kind == "prune" and u.config["cell"] == "rnn_tanh"]
    # one bundle of all three
    assert {tuple(x.key for x in jobs[u.key]) for u in tanh} == {tuple(u.key for u in tanh)}


def test_explicit_bundle_size_chunks_in_plan_order():
    planned = plan_units(_study(bundle=2, cells=("lstm",), amounts=(10, 20, 30)))
    prune = [u for u in planned if u.kind == "prune"]
    jobs = runner._bundles(planned)
    assert [jobs[u.key] for u in prune] == [tuple(prune[:2]), tuple(prune[:2]), (prune[2],)]


def test_one_by_one_units_keep_their_keys_and_bundled_ones_differ():
    alone = {u.config["amount"]: u.key for u in plan_units(_study(bundle=1)) if u.kind == "prune"}
    together = {u.config["amount"]: u.key for u in plan_units(_study()) if u.kind == "prune"}
    assert "bundle" not in next(u for u in plan_units(_study(bundle=1)) if u.kind == "prune").config
    assert set(alone.values()).isdisjoint(together.values())


@pytest.mark.parametrize("bad", [-1, 1.5, True, "2"])
def test_bad_bundle_is_a_config_error(bad):
    with pytest.raises(ConfigError, match="bundle"):
        PruningConfig(bundle=bad)


def test_bundled_results_equal_one_by_one_up_to_rounding(tmp_path: Path):
    run_study(_study(bundle=1), tmp_path / "alone", workers=1, progress=False)
    run_study(_study(), tmp_path / "together", workers=1, progress=False)
    alone, together = _prune_rows(tmp_path / "alone"), _prune_rows(tmp_path / "together")
    assert alone.keys() == together.keys() and len(alone) == 2
    for point, row in alone.items():
        other = together[point]
        assert other["metrics"].keys() == row["metrics"].keys()
        for name, value in row["metrics"].items():
            assert math.isclose(other["metrics"][name], value, abs_tol=1e-5), (point, name)
        for a, b in zip(row["curve"], other["curve"], strict=True):
            for name, value in a.items():
                assert math.isclose(b[name], value, abs_tol=1e-5), (point, name)


def test_bundle_runs_through_train_many(tmp_path: Path, monkeypatch):
    calls: list[int] = []
    real = units._run_prune_many

    def spy(cfgs, base_bytes):
        calls.append(len(cfgs))
        return real(cfgs, base_bytes)

    monkeypatch.setattr(units, "_run_prune_many", spy)
    run = run_study(_study(), tmp_path, workers=1, progress=False)
    assert (run.done, run.failed) == (3, 0)
    assert calls == [2]  # one job for both points


def test_half_stored_bundle_is_rerun_whole_and_matches_an_uninterrupted_run(tmp_path: Path):
    run_study(_study(), tmp_path / "whole", workers=1, progress=False)
    reference = snapshot(tmp_path / "whole")

    class Stop(Exception):
        pass

    seen: list[str] = []

    def stop_after_first_point(unit, result):
        if unit.kind == "prune":
            seen.append(unit.key)
            raise Stop

    out = tmp_path / "cut"
    with pytest.raises(Stop):
        run_study(_study(), out, workers=1, progress=False, on_result=stop_after_first_point)
    partial = snapshot(out)
    assert len([r for r in partial.values() if r["kind"] == "prune"]) == 1
    resumed = run_study(_study(), out, workers=1, progress=False)
    assert (resumed.done, resumed.skipped) == (1, 2)  # only the missing point is committed
    assert snapshot(out) == reference
    assert snapshot(out)[seen[0]]["attempts"] == 1  # the stored mate was not written again


def test_failing_bundle_fails_each_of_its_units(tmp_path: Path, monkeypatch):
    def broken(cfgs, base_bytes):
        raise RuntimeError("simulated bundle failure")

    monkeypatch.setattr(units, "_run_prune_many", broken)
    run = run_study(_study(), tmp_path, workers=1, progress=False)
    assert (run.done, run.failed) == (1, 2)
    assert all("simulated bundle failure" in line for line in run.failures)


def _as_old_store(study_dir: Path, drop_bundle: bool) -> None:
    """Rewrite the meta of a store as versions before plan records wrote it: ``study``,
    ``kinds`` and ``study:<kind>`` (no ``plan:<kind>``, no ``keys:<kind>``); optionally
    without ``pruning.bundle``, as versions before bundles wrote it."""
    from sparsernn.store import ResultsStore

    with ResultsStore.open(study_dir) as store:
        study = store.get_meta("study")
        if drop_bundle:
            del study["pruning"]["bundle"]
        kinds = [k for k in ("base", "prune", "structure") if store.get_meta(f"plan:{k}")]
        store.update_meta({"study": study, "kinds": kinds, **{f"study:{k}": study for k in kinds}})
    with sqlite3.connect(study_dir / "results.sqlite") as conn:
        conn.execute("DELETE FROM meta WHERE name LIKE 'plan:%'")
    conn.close()


def test_stores_from_before_bundles_still_show_their_points(tmp_path: Path):
    from sparsernn.experiments import load_results, study_status

    run_study(_study(bundle=1), tmp_path, workers=1, progress=False)
    _as_old_store(tmp_path, drop_bundle=True)
    results = load_results(tmp_path)
    assert len(results.pruning_points) == 2
    assert results.studies["prune"]["pruning"]["bundle"] == 1  # what those stores ran
    prune_line = next(x for x in study_status(tmp_path).splitlines() if "prune" in x)
    assert prune_line.split()[1:4] == ["2", "0", "0"]  # done, failed, pending
    again = run_study(_study(bundle=1), tmp_path, workers=1, progress=False)
    assert (again.done, again.skipped) == (0, 3)  # the same keys: nothing runs again
