"""Sparsity methods in the studies: ``sparsernn prune --method M``, unit keys, stored columns."""

import pytest
from click.testing import CliRunner

from sparsernn.cli import cli
from sparsernn.data import DataSpec
from sparsernn.errors import ConfigError
from sparsernn.experiments import load_results
from sparsernn.experiments.config import PruningConfig, StudyConfig, load_study_config
from sparsernn.experiments.units import plan_units
from sparsernn.train import TrainConfig

SIX = ["magnitude", "random", "snip", "lottery", "set", "rigl"]


def _study(**pruning):
    return StudyConfig(
        cells=("gru",),
        data=DataSpec(n_strings=100),
        train=TrainConfig(epochs=1),
        pruning=PruningConfig(
            **{"targets": ("both",), "amounts": (50,), "retrain_epochs": 1, **pruning}
        ),
    )


def _prune_units(study):
    return [u for u in plan_units(study) if u.kind == "prune"]


def test_magnitude_keeps_the_keys_of_studies_made_before_methods():
    old = _prune_units(_study())
    assert "method" not in old[0].config and "method_options" not in old[0].config
    assert [u.key for u in _prune_units(_study(method="magnitude"))] == [u.key for u in old]
    other = _prune_units(_study(method="random"))
    assert other[0].config["method"] == "random" and other[0].key != old[0].key


def test_methods_carry_their_options_and_from_scratch_ones_the_base_training():
    (unit,) = _prune_units(_study(method="lottery", rounds=2))
    assert unit.config["method_options"] == {"rounds": 2, "rewind_epoch": 0}
    assert unit.config["retrain"]["epochs"] == 1  # the base's epochs (retrain_epochs is 1 too)
    (unit,) = _prune_units(_study(method="set", retrain_epochs=3))
    assert unit.config["retrain"]["epochs"] == 1  # not retrain_epochs: set trains from scratch
    (unit,) = _prune_units(_study(method="snip", retrain_epochs=3))
    assert unit.config["retrain"]["epochs"] == 3


def test_several_methods_share_the_base_models(tmp_path):
    study = _study(method=("magnitude", "set"))
    assert study.pruning.method == ("magnitude", "set")
    units = [u for u in plan_units(study) if u.kind != "structure"]
    assert [u.kind for u in units] == ["base", "prune", "prune"]
    assert units[1].depends_on == units[2].depends_on == units[0].key
    path = tmp_path / "study.toml"
    path.write_text(study.to_toml())
    assert load_study_config(path) == study
    with pytest.raises(ConfigError, match="unknown pruning method 'obd'"):
        _study(method="obd")
    with pytest.raises(ConfigError, match="each method once"):
        _study(method=("set", "set"))


def _prune_args(out, cell: str, target: str, amounts: str, *extra: str) -> list[str]:
    """A tiny ``sparsernn prune`` command line (1 epoch, 1 retraining epoch, 120 strings)."""
    return [
        "prune", "--out", str(out), "--cells", cell, "--targets", target, "--amounts", amounts,
        "--epochs", "1", "--retrain-epochs", "1", "--n-strings", "120", "--seeds", "1",
        "--workers", "1", *extra,
    ]  # fmt: skip


def test_prune_cli_runs_every_method_and_stores_method_and_sparsity(tmp_path):
    out = tmp_path / "study"
    args = _prune_args(out, "gru", "both", "50,90", "--method", ",".join(SIX))
    res = CliRunner().invoke(cli, args, catch_exceptions=False)
    assert res.exit_code == 0, res.output
    assert "0 failed" in res.output
    res_set = CliRunner().invoke(cli, [*args[:-1], "set"], catch_exceptions=False)
    assert res_set.exit_code == 0 and "already stored" in res_set.output
    results = load_results(out)
    pruning = results.pruning
    assert sorted(pruning["method"].unique()) == sorted(["set"])  # the last plan's units
    assert {"method", "amount", "overall_sparsity"} <= set(pruning.columns)


def test_every_method_reaches_the_asked_sparsity(tmp_path):
    out = tmp_path / "study"
    method = ",".join([*SIX, "agp"])
    args = _prune_args(out, "lstm", "h2h", "80", "--scope", "gate", "--method", method)
    res = CliRunner().invoke(cli, args, catch_exceptions=False)
    assert res.exit_code == 0, res.output
    points = load_results(out).pruning_points
    assert sorted(points["method"]) == sorted([*SIX, "agp"])
    n_selected = 3 * 4 * 50 * 50  # h2h of three LSTM layers, hidden 50
    for row in points.itertuples():
        assert abs(row.overall_sparsity - row.amount / 100) <= 4 * 3 / n_selected, row.method
        assert row.overall_sparsity == row.achieved_sparsity
        assert row.model_sparsity < row.overall_sparsity  # i2h untouched


def test_every_methods_unit_keys_are_those_of_the_code_before_the_registry():
    """Keys of all seven methods' units (two cells, two targets, two amounts), pinned from
    commit 245b372, before dispatch moved into the method classes: stored studies of any
    method resume unchanged (the profiles' keys are pinned in tests/experiments)."""
    import hashlib

    study = StudyConfig(
        cells=("gru", "lstm"),
        data=DataSpec(n_strings=100),
        train=TrainConfig(epochs=1),
        pruning=PruningConfig(
            targets=("both", "h2h"),
            amounts=(50, 90),
            retrain_epochs=2,
            method=("magnitude", "random", "snip", "agp", "lottery", "set", "rigl"),
        ),
    )
    units = [u for u in plan_units(study) if u.kind != "structure"]
    keys = [f"{u.kind}:{u.key}" for u in units]
    digest = hashlib.sha256("\n".join(keys).encode()).hexdigest()
    assert (len(keys), digest) == (
        58,
        "73322e5d899b70ba5578c05d93720123eb8bd2dc45d5791a5981f71968d438de",
    )
    by_label = {(u.config["cell"], u.config.get("method"), u.config.get("target"),
                 u.config.get("amount")): u.key for u in units}  # fmt: skip
    assert by_label[("gru", None, "both", 50.0)] == "fdc2ad45c2a7e9d3"  # magnitude: no entry
    assert by_label[("lstm", "rigl", "h2h", 90.0)] == "3c3ea7674f77b108"
    assert by_label[("gru", "lottery", "both", 50.0)] == "d047c5b56a7dcc62"
    assert by_label[("lstm", "agp", "both", 90.0)] == "3103bebe4e3eacad"
