"""The store remembers what each command planned: per kind its config and keys (issue 13)."""

from __future__ import annotations

import dataclasses
import html
import re
import sqlite3
from pathlib import Path

import pytest
from click.testing import CliRunner
from studyhelpers import tiny_study  # noqa: I001  (tests/experiments on sys.path)

from sparsernn.cli import cli
from sparsernn.errors import ConfigError
from sparsernn.experiments import load_results, read_plans, run_study, study_status
from sparsernn.experiments.config import load_study_config, load_study_plans
from sparsernn.experiments.units import plan_units
from sparsernn.store import ResultsStore

_TINY = ["--n-strings", "120", "--workers", "1", "--seeds", "1", "--device", "cpu"]
_PRUNE = ["prune", "--cells", "rnn_tanh", "--targets", "h2h", "--amounts", "50,100"]
_PRUNE += ["--retrain-epochs", "1", "--epochs", "1", *_TINY]
_STRUCTURE = ["structure", "--cells", "rnn_tanh", "--generators", "ws", "--graphs", "2"]
_STRUCTURE += ["--nodes", "10:12", "--epochs", "1", "--batch-size", "32", *_TINY]


def _ok(args: list[str]) -> str:
    result = CliRunner().invoke(cli, args, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.output


def _status(study_dir: Path) -> dict[str, tuple[int, int, int]]:
    """``kind -> (done, failed, pending)`` from ``sparsernn status``."""
    rows = [line.split() for line in _ok(["status", str(study_dir)]).splitlines()[2:-1]]
    return {row[0]: (int(row[1]), int(row[2]), int(row[3])) for row in rows}


def _keys(study_dir: Path) -> set[str]:
    with ResultsStore.open(study_dir, readonly=True) as store:
        return store.keys()


def test_prune_then_structure_keeps_each_kinds_own_plan(tmp_path: Path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "d"
    assert "3 units done" in _ok([*_PRUNE, "--out", str(out)])
    assert "2 units done" in _ok([*_STRUCTURE, "--out", str(out)])

    # each kind counted against its own plan: no phantom pending units of another config
    assert _status(out) == {"base": (1, 0, 0), "prune": (2, 0, 0), "structure": (2, 0, 0)}
    res = load_results(out)
    assert set(res.studies) == {"base", "prune", "structure"}
    prune, structure = res.studies["prune"], res.studies["structure"]
    assert prune["train"]["epochs"] == 1 and prune["pruning"]["amounts"] == [50.0, 100.0]
    assert prune["pruning"]["retrain_epochs"] == 1 and res.studies["base"] == prune
    assert structure["structure"]["n_graphs"] == 2 and structure["structure"]["epochs"] == 1
    assert structure["train"]["epochs"] == 50  # the structure command's own (unused) default
    assert structure["pruning"]["amounts"] == [10.0 * i for i in range(1, 11)]
    assert res.study == structure  # the last command's config
    assert len(res.pruning_points) == 2 and len(res.structure) == 2 and len(res.base) == 1

    # the report shows each kind with the configuration that produced it
    assert "report:" in _ok(["report", str(out)])
    page = html.unescape((out / "report.html").read_text())
    blocks = dict(re.findall(r"<details><summary>(.*?)</summary><pre>(.*?)</pre>", page, re.S))
    prune_block = blocks["Study configuration of the base and prune units"]  # one command's
    structure_block = blocks["Study configuration of the structure units"]
    assert re.search(r"amounts = \[\s*50\.0,\s*100\.0,\s*\]", prune_block), prune_block
    assert re.search(r"\[train\]\s*epochs = 1\b", prune_block)
    assert re.search(r"n_graphs = 2\b", structure_block)
    assert re.search(r"\[train\]\s*epochs = 50\b", structure_block)

    # the written study.toml reruns what the directory holds: no new unit, the same plans
    keys, toml = _keys(out), (out / "study.toml").read_text()
    assert [kinds for kinds, _ in load_study_plans(out / "study.toml")] == [
        ("base", "prune"),
        ("structure",),
    ]
    rerun = _ok(
        ["reproduce", "--config", str(out / "study.toml"), "--out", str(out), "--no-report"]
    )
    assert rerun.count("0 units done, 0 failed") == 2, rerun
    assert _keys(out) == keys
    assert load_results(out).studies == res.studies
    assert (out / "study.toml").read_text() == toml
    # a command given the file takes the plan of its own kind
    assert "0 units done, 0 failed, 3 already stored" in _ok(
        [*_PRUNE, "--config", str(out / "study.toml"), "--out", str(out)]
    )
    assert _keys(out) == keys


def test_a_later_command_replaces_only_the_kinds_it_plans(tmp_path: Path):
    first = tiny_study()
    run_study(first, tmp_path, progress=False)
    pruning = dataclasses.replace(first.pruning, amounts=(100,))
    second = dataclasses.replace(first, pruning=pruning)
    run_study(second, tmp_path, kinds=("base", "prune"), progress=False)
    with ResultsStore.open(tmp_path, readonly=True) as store:
        plans = read_plans(store)
    planned = {
        kind: {u.key for u in plan_units(study) if u.kind == kind}
        for kind, study in (("prune", second), ("structure", first))
    }
    assert plans["prune"].config == plans["base"].config == second.to_dict()
    assert plans["structure"].config == first.to_dict()
    assert (
        plans["prune"].keys == planned["prune"] and plans["structure"].keys == planned["structure"]
    )
    res = load_results(tmp_path)
    assert list(res.pruning_points["amount"]) == [100.0]  # the 50% point is an old plan's
    assert _status(tmp_path) == {"base": (1, 0, 0), "prune": (1, 0, 0), "structure": (2, 0, 0)}


def test_a_multi_plan_file_needs_a_kind_or_reproduce(tmp_path: Path):
    run_study(tiny_study(), tmp_path, kinds=("structure",), progress=False)
    run_study(tiny_study(n_graphs=0), tmp_path, kinds=("base", "prune"), progress=False)
    path = tmp_path / "study.toml"
    assert load_study_config(path, kind="structure").structure.n_graphs == 2
    assert load_study_config(path, kind="prune").structure.n_graphs == 0
    with pytest.raises(ConfigError, match="holds 2 plans .* sparsernn reproduce --config"):
        load_study_config(path)
    path.write_text('cells = ["gru"]\n[[plan]]\nkinds = ["base"]\n')
    with pytest.raises(ConfigError, match="holds nothing else; move cells"):
        load_study_plans(path)
    path.write_text('[[plan]]\nkinds = ["bases"]\n')
    with pytest.raises(ConfigError, match="kinds = \\['bases'\\]"):
        load_study_plans(path)


def _forget_plans(study_dir: Path, keep_keys: bool) -> None:
    """Make a store look as versions before plan records wrote it: meta ``study``, ``kinds``,
    ``study:<kind>`` and (``keep_keys``) ``keys:<kind>``, no ``plan:<kind>``."""
    with ResultsStore.open(study_dir) as store:
        plans = read_plans(store)
        old = {"kinds": sorted(plans)}
        for kind, plan in plans.items():
            old[f"study:{kind}"] = plan.config
            if keep_keys:
                old[f"keys:{kind}"] = sorted(plan.keys or ())
        store.update_meta(old)
    with sqlite3.connect(study_dir / "results.sqlite") as conn:
        conn.execute("DELETE FROM meta WHERE name LIKE 'plan:%'")
    conn.close()


@pytest.mark.parametrize("keep_keys", [True, False])
def test_stores_from_before_plan_records_still_load(tmp_path: Path, keep_keys: bool):
    run_study(tiny_study(), tmp_path, kinds=("base", "prune"), progress=False)
    _forget_plans(tmp_path, keep_keys)
    res = load_results(tmp_path)
    assert set(res.studies) == {"base", "prune"} and len(res.pruning_points) == 2
    assert _status(tmp_path) == {"base": (1, 0, 0), "prune": (2, 0, 0)}
    # a new command carries the old plans over as records beside its own
    run_study(tiny_study(), tmp_path, kinds=("structure",), progress=False)
    assert set(load_results(tmp_path).studies) == {"base", "prune", "structure"}
    assert _status(tmp_path) == {"base": (1, 0, 0), "prune": (2, 0, 0), "structure": (2, 0, 0)}
    assert "prune" in study_status(tmp_path)
