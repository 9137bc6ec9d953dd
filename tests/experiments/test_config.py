"""Tests for study configs: validation, profiles, TOML round trips, ranges and run keys."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from sparsernn.config import config_key
from sparsernn.data import DataSpec
from sparsernn.errors import ConfigError
from sparsernn.experiments.config import (
    PROFILES,
    PruningConfig,
    StructureConfig,
    StudyConfig,
    load_study_config,
    merge,
    parse_range,
    profile,
)
from sparsernn.experiments.units import plan_units
from sparsernn.train import TrainConfig


def _one_line(exc: pytest.ExceptionInfo[ConfigError]) -> str:
    message = str(exc.value)
    assert message and "\n" not in message
    return message


# ----------------------------------------------------------------------------------- validation
@pytest.mark.parametrize(
    ("make", "words"),
    [
        (lambda: StudyConfig(cells=("gru", "transformer")), ["unknown cell", "'transformer'"]),
        (lambda: StudyConfig(cells=()), ["no cells"]),
        (lambda: StudyConfig(seeds=()), ["no seeds"]),
        (lambda: StudyConfig(hidden_size=0), ["hidden_size"]),
        (lambda: PruningConfig(amounts=(50, 150)), ["150", "outside 0..100"]),
        (lambda: PruningConfig(amounts=(-1,)), ["-1", "outside 0..100"]),
        (lambda: PruningConfig(targets=("both", "weights")), ["unknown pruning target"]),
        (lambda: PruningConfig(scope="row"), ["unknown pruning scope", "'row'"]),
        (lambda: PruningConfig(retrain_epochs=-1), ["retrain_epochs"]),
        (lambda: PruningConfig(tolerance=1.0), ["tolerance"]),
        (lambda: StructureConfig(generators=("ws", "kleinberg")), ["unknown graph generator"]),
        (lambda: StructureConfig(nodes=(5, 3)), ["nodes range 5:3"]),
        (lambda: StructureConfig(nodes=(20, 12)), ["nodes range 20:12"]),
        (lambda: StructureConfig(n_graphs=-1), ["n_graphs"]),
        (lambda: StructureConfig(epochs=0), ["epochs"]),
        (lambda: StructureConfig(gate_layout="mixed"), ["unknown gate_layout", "'mixed'"]),
    ],
)
def test_invalid_values_raise_one_line_config_errors(make, words):
    with pytest.raises(ConfigError) as exc:
        make()
    message = _one_line(exc)
    for word in words:
        assert word in message


def test_config_error_is_a_value_error():
    with pytest.raises(ValueError):
        PruningConfig(amounts=(150,))


@pytest.mark.parametrize(
    ("overrides", "words"),
    [
        ({"cells": ["gru", "gruu"]}, ["unknown cell"]),
        ({"pruning": {"amounts": [150]}}, ["150"]),
        ({"pruning": {"targets": ["x"]}}, ["unknown pruning target"]),
        ({"pruning": {"scope": "x"}}, ["unknown pruning scope"]),
        ({"structure": {"generators": ["x"]}}, ["unknown graph generator"]),
        ({"structure": {"nodes": [5, 3]}}, ["nodes range 5:3"]),
        ({"pruning": {"amount": [50]}}, ["unknown PruningConfig field", "amount"]),
        ({"colour": "red"}, ["unknown StudyConfig field", "colour"]),
        ({"seeds": 3}, ["expected a list"]),
        ({"hidden_size": "big"}, ["overrides"]),
    ],
)
def test_merge_turns_bad_overrides_into_one_line_config_errors(overrides, words):
    with pytest.raises(ConfigError) as exc:
        merge(StudyConfig(), overrides)
    message = _one_line(exc)
    for word in words:
        assert word in message


def test_profiles_are_valid_and_smoke_is_smallest():
    assert set(PROFILES) == {"smoke", "quick", "full"}
    sizes = {name: len(plan_units(cfg)) for name, cfg in PROFILES.items()}
    assert sizes["smoke"] < sizes["quick"] < sizes["full"]
    assert profile("full") == StudyConfig()
    with pytest.raises(ConfigError) as exc:
        profile("huge")
    assert "unknown profile 'huge'" in _one_line(exc)


def test_full_profile_follows_the_study_protocol():
    units = plan_units(profile("full"))
    kinds = [u.kind for u in units]
    # 4 cells x 1 seed bases; 3 targets x 10 amounts each; 2 generators x 100 graphs each
    assert kinds.count("base") == 4
    assert kinds.count("prune") == 4 * 3 * 10
    assert kinds.count("structure") == 4 * 2 * 100
    assert len({u.key for u in units}) == len(units)


# -------------------------------------------------------------------------------------- TOML
@pytest.mark.parametrize("name", sorted(PROFILES))
def test_toml_round_trip_keeps_config_and_keys(tmp_path: Path, name: str):
    cfg = PROFILES[name]
    path = tmp_path / "study.toml"
    path.write_text(cfg.to_toml())
    back = load_study_config(path)
    assert back == cfg
    assert back.key == cfg.key
    assert [u.key for u in plan_units(back)] == [u.key for u in plan_units(cfg)]


def test_toml_round_trip_of_a_custom_config(tmp_path: Path):
    cfg = StudyConfig(
        cells=("lstm",),
        seeds=(3, 4),
        hidden_size=7,
        data=DataSpec(n_strings=100, seed=5),
        train=TrainConfig(epochs=3, lr=0.01, eval_batch_size=64, clip=None),
        pruning=PruningConfig(targets=("i2h",), amounts=(12.5, 100.0), scope="layer", bundle=4),
        structure=StructureConfig(enabled=False, generators=("er",), nodes=(11, 11)),
    )
    path = tmp_path / "custom.toml"
    path.write_text(cfg.to_toml())
    assert 'clip = "none"' in path.read_text()  # TOML has no null; the default (5.0) is not None
    assert "eval_batch_size = 64" in path.read_text()
    back = load_study_config(path)
    assert back == cfg and back.key == cfg.key
    assert back.train.clip is None


def test_profile_key_at_the_top_of_a_file_picks_the_base(tmp_path: Path):
    path = tmp_path / "study.toml"
    path.write_text('profile = "quick"\nseeds = [0, 1]\n\n[train]\nepochs = 7\n')
    cfg = load_study_config(path)
    quick = profile("quick")
    assert cfg.seeds == (0, 1)
    assert cfg.train.epochs == 7
    assert cfg.train.batch_size == quick.train.batch_size
    assert cfg.data == quick.data and cfg.pruning == quick.pruning
    assert cfg.structure == quick.structure


def test_file_without_profile_overrides_the_given_base(tmp_path: Path):
    path = tmp_path / "study.toml"
    path.write_text("[pruning]\nretrain_epochs = 3\n")
    smoke = profile("smoke")
    assert load_study_config(path, smoke) == dataclasses.replace(
        smoke, pruning=dataclasses.replace(smoke.pruning, retrain_epochs=3)
    )
    assert load_study_config(path).pruning.amounts == StudyConfig().pruning.amounts


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ('profile = "huge"\n', ["unknown profile 'huge'"]),
        ("[pruning]\namounts = [150]\n", ["150"]),
        ("[pruning\n", ["invalid TOML"]),
        ("[structure]\nnodes = [5, 3]\n", ["nodes range 5:3"]),
        ("cells = ['gru', 'elman']\n", ["unknown cell"]),
    ],
)
def test_bad_toml_files_raise_one_line_config_errors(tmp_path: Path, text: str, words):
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(ConfigError) as exc:
        load_study_config(path)
    message = _one_line(exc)
    for word in words:
        assert word in message


def test_missing_toml_file_is_a_config_error(tmp_path: Path):
    with pytest.raises(ConfigError) as exc:
        load_study_config(tmp_path / "nope.toml")
    assert "no such config file" in _one_line(exc)


# ------------------------------------------------------------------------------------ ranges
def test_parse_range_inclusive_start_stop_step():
    values = parse_range("10:100:10")
    assert values == (10, 20, 30, 40, 50, 60, 70, 80, 90, 100)
    assert len(values) == 10
    assert parse_range("0:1:0.25") == (0, 0.25, 0.5, 0.75, 1)
    assert parse_range(" 90:100:20 ") == (90,)


def test_parse_range_lists_pairs_and_single_values():
    assert parse_range("10,20") == (10, 20)
    assert parse_range("10, 20 ,") == (10, 20)
    assert parse_range("50") == (50,)
    assert parse_range("10:50") == (10, 50)


@pytest.mark.parametrize("text", ["abc", "10:x:10", "10:100:0", "10:100:-5", "1:2:3:4", "10,,b"])
def test_parse_range_bad_text_is_a_config_error(text: str):
    with pytest.raises(ConfigError) as exc:
        parse_range(text, what="--amounts")
    message = _one_line(exc)
    assert "--amounts" in message and repr(text.strip()) in message


@pytest.mark.parametrize("text", ["", " ", "100:10:10"])
def test_parse_range_that_selects_nothing_is_a_config_error(text: str):
    with pytest.raises(ConfigError) as exc:
        parse_range(text, what="--amounts")
    assert "no values" in _one_line(exc)


# ---------------------------------------------------------------------------------- run keys
def test_same_config_gives_the_same_keys():
    a, b = profile("smoke"), StudyConfig.from_dict(profile("smoke").to_dict())
    assert a is not b and a.key == b.key
    assert [u.key for u in plan_units(a)] == [u.key for u in plan_units(b)]


def test_keys_do_not_depend_on_dict_order():
    data = profile("smoke").to_dict()
    reordered = {name: data[name] for name in reversed(list(data))}
    reordered["train"] = {name: data["train"][name] for name in reversed(list(data["train"]))}
    assert list(reordered) != list(data)
    assert StudyConfig.from_dict(reordered).key == profile("smoke").key
    assert config_key({"a": 1, "b": {"c": 2, "d": 3}}) == config_key(
        {"b": {"d": 3, "c": 2}, "a": 1}
    )


def test_int_and_float_amounts_give_the_same_key():
    """TOML and the CLI (``from_dict``) make amounts floats; a unit's amount is one anyway."""
    assert PruningConfig.from_dict({"amounts": [50, 100]}).key == PruningConfig(
        amounts=(50.0, 100.0)
    ).key
    assert PruningConfig.from_dict({"amounts": [50, 100]}).amounts == (50.0, 100.0)
    keys = [
        [u.key for u in plan_units(StudyConfig(cells=("gru",), pruning=PruningConfig(amounts=a)))]
        for a in ((50,), (50.0,))
    ]
    assert keys[0] == keys[1]  # built directly, an int amount still plans the same units


_CHANGES = {
    "cells": ("gru",),
    "seeds": (0, 1),
    "embedding_dim": 49,
    "hidden_size": 49,
    "num_layers": 2,
    "data.n_strings": 601,
    "data.seed": 1,
    "data.max_length": 40,
    "train.epochs": 7,
    "train.lr": 2e-3,
    "train.batch_size": 16,
    "train.clip": 1.0,
    "train.device": "cpu",
    "pruning.amounts": (50, 90),
    "pruning.targets": ("both",),
    "pruning.scope": "layer",
    "pruning.retrain_epochs": 2,
    "structure.n_graphs": 3,
    "structure.generators": ("ws",),
    "structure.nodes": (10, 15),
    "structure.epochs": 5,
}


def _changed(cfg: StudyConfig, dotted: str, value: object) -> StudyConfig:
    if "." not in dotted:
        return dataclasses.replace(cfg, **{dotted: value})
    section, name = dotted.split(".")
    inner = dataclasses.replace(getattr(cfg, section), **{name: value})
    return dataclasses.replace(cfg, **{section: inner})


@pytest.mark.parametrize("dotted", sorted(_CHANGES))
def test_any_change_gives_a_different_key(dotted: str):
    cfg = profile("smoke")
    changed = _changed(cfg, dotted, _CHANGES[dotted])
    assert changed != cfg
    assert changed.key != cfg.key
    # Units: the set of unit keys changes too (which units depends on what was changed).
    assert {u.key for u in plan_units(changed)} != {u.key for u in plan_units(cfg)}


def test_unit_keys_change_only_for_units_a_change_touches():
    cfg = profile("smoke")
    more = _changed(cfg, "pruning.retrain_epochs", 5)
    old = {u.kind: set() for u in plan_units(cfg)}
    for u in plan_units(cfg):
        old[u.kind].add(u.key)
    new = {u.kind: set() for u in plan_units(more)}
    for u in plan_units(more):
        new[u.kind].add(u.key)
    assert new["base"] == old["base"] and new["structure"] == old["structure"]
    assert not new["prune"] & old["prune"]


@pytest.mark.parametrize(
    ("generators", "words", "absent"),
    [
        (("ws",), ["'ws'", "Watts-Strogatz", "k = n // 5 >= 2", "n >= 10"], "Barabasi"),
        (("ba",), ["'ba'", "Barabasi-Albert", "m = n // 10 >= 1", "n >= 10"], "Watts"),
        (("er",), ["'er'", "Erdos-Renyi", "n >= 10"], "Barabasi"),
    ],
)
def test_small_node_range_names_the_generator_that_needs_more(generators, words, absent):
    with pytest.raises(ConfigError) as exc:
        StructureConfig(generators=generators, nodes=(5, 8))
    message = _one_line(exc)
    assert "nodes range 5:8" in message and absent not in message
    for word in words:
        assert word in message


def test_graph_folder_needs_no_generator_node_range():
    cfg = StructureConfig(generators=("ws",), nodes=(5, 8), graphs_from="/some/folder")
    assert cfg.graphs_from == "/some/folder" and cfg.allow_pickle is False
    with pytest.raises(ConfigError, match="nodes range 9:8"):
        StructureConfig(nodes=(9, 8), graphs_from="/some/folder")


def test_relative_paths_in_toml_resolve_against_its_folder(tmp_path):
    sub = tmp_path / "conf"
    sub.mkdir()
    (sub / "study.toml").write_text('[structure]\ngraphs_from = "../graphs"\n')
    study = load_study_config(sub / "study.toml")
    assert study.structure.graphs_from == str(tmp_path / "graphs")
    (sub / "abs.toml").write_text(f'[structure]\ngraphs_from = "{tmp_path / "g"}"\n')
    assert load_study_config(sub / "abs.toml").structure.graphs_from == str(tmp_path / "g")


def test_gate_layout_round_trips_and_enters_keys_only_when_not_blocked(tmp_path: Path):
    base = profile("smoke")
    # the default keeps the keys runs had before gate_layout existed: nothing is added to them
    units = [u for u in plan_units(base) if u.kind == "structure"]
    assert all("gate_layout" not in u.config and "gate_layout" not in str(u.config) for u in units)
    assert all("gate_layout" not in str(u.config) for u in plan_units(base) if u.kind == "base")
    study = dataclasses.replace(
        base, structure=dataclasses.replace(base.structure, gate_layout="interleaved")
    )
    path = tmp_path / "study.toml"
    path.write_text(study.to_toml())
    back = load_study_config(path)
    assert back == study and back.structure.gate_layout == "interleaved"
    assert StudyConfig.from_json(study.to_json()) == study
    inter = [u for u in plan_units(back) if u.kind == "structure"]
    assert all(u.config["gate_layout"] == "interleaved" for u in inter)
    assert {u.key for u in inter}.isdisjoint(u.key for u in units)
    merged = merge(base, {"structure": {"gate_layout": "interleaved"}}, "command line")
    assert merged.structure.gate_layout == "interleaved"
