"""describe/compare of data sets and the `data check` / `data compare` commands."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from sparsernn.cli import cli
from sparsernn.data import Dataset, DataSpec, make_dataset, write_csv
from sparsernn.data.describe import (
    compare,
    conflicting_labels,
    describe,
    duplicates,
    infer_kinds,
    letter_share_tv,
    total_variation,
)


@pytest.fixture(scope="module")
def sets() -> tuple[Dataset, Dataset]:
    return make_dataset(DataSpec(n_strings=2000, seed=3))


def test_total_variation_by_hand() -> None:
    assert total_variation([1, 1, 2, 2], [1, 2]) == 0.0
    assert total_variation([1, 2], [3]) == 1.0
    # p = (1/2, 1/2, 0), q = (1/4, 1/4, 1/2): TV = 0.5 * (1/4 + 1/4 + 1/2) = 0.5
    assert total_variation([5, 6], [5, 6, 7, 7]) == pytest.approx(0.5)
    assert np.isnan(total_variation([], [1]))


def test_infer_kinds_recovers_the_generator_kinds(sets) -> None:
    train, _ = sets
    inferred = infer_kinds(dataclasses.replace(train, kinds=None))
    # A string may be a walk of two alternative grammars; then the first listed one is named.
    agree = np.mean([a == b for a, b in zip(inferred, train.kinds, strict=True)])
    assert agree > 0.995
    other = Dataset(["BTXSE", "BTSE", "BQQE"], [1, 0, 0])
    assert infer_kinds(other) == ["valid", "other_reber_letters", "other_foreign_letters"]


def test_describe_counts(sets) -> None:
    train, _ = sets
    table = describe(train).set_index(["level", "kind"])
    assert table.loc[("all", "all"), "n"] == len(train)
    assert table.loc[("class", "valid"), "n"] == int(train.labels.sum())
    fam = table.xs("family")["n"]
    assert fam.sum() == len(train) - int(train.labels.sum())
    kinds = table.xs("kind")["n"]
    assert kinds.sum() == fam.sum() and len(kinds) == 8  # the eight alternative grammars


def test_compare_same_and_different(sets) -> None:
    train, test = sets
    same = compare(train, train).set_index(["level", "kind"])
    assert (same["length_tv"].fillna(0) == 0).all()
    legacy = {"n_strings": 2000, "seed": 3, "negative_mix": (0.56, 0.44, 0)}
    old, _ = make_dataset(DataSpec.from_dict(legacy))
    diff = compare(train, dataclasses.replace(old, kinds=None)).set_index(["level", "kind"])
    # Old negatives copy the valid strings' lengths (mean ~23.6), the study's are ~18.7.
    assert diff.loc[("class", "invalid"), "length_tv"] > 0.3
    assert diff.loc[("class", "valid"), "length_tv"] == 0.0
    assert diff.loc[("kind", "other_foreign_letters"), "n_a"] == 0
    assert letter_share_tv(train, train) == {"valid": 0.0, "invalid": 0.0}


def test_duplicates_and_conflicts() -> None:
    ds = Dataset(["BTXSE", "BPVVE", "BTXSE", "BQE", "BQE"], [1, 1, 0, 0, 0])
    dup = duplicates(ds)
    assert sorted(dup["string"]) == ["BQE", "BTXSE"] and dup["count"].tolist() == [2, 2]
    bad = conflicting_labels(ds)
    assert bad.to_dict("records") == [{"string": "BTXSE", "rows_valid": [1], "rows_invalid": [3]}]


def _invoke(args: list[str]):
    return CliRunner().invoke(cli, args)


def test_cli_check_and_compare(sets, tmp_path: Path) -> None:
    train, test = sets
    write_csv(train, tmp_path / "train.csv")
    write_csv(test, tmp_path / "test.csv")
    res = _invoke(["data", "check", str(tmp_path / "train.csv"), str(tmp_path / "test.csv")])
    assert res.exit_code == 0, res.output
    assert "alt_TPXSVTXSPV" in res.output and "kinds: None" not in res.output
    assert "strings in both" in res.output and res.output.rstrip().endswith(": 0")
    res = _invoke(["data", "compare", str(tmp_path / "train.csv"), str(tmp_path / "test.csv")])
    assert res.exit_code == 0, res.output
    assert "length_tv" in res.output and "letter-share TV (invalid)" in res.output


def test_cli_check_refuses_strings_labelled_both_ways(tmp_path: Path) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text("string,valid\nBTXSE,1\nBPVVE,1\nBTXSE,0\n")
    res = _invoke(["data", "check", str(bad)])
    assert res.exit_code == 2
    errors = [ln for ln in res.output.splitlines() if ln.startswith("error")]
    assert len(errors) == 1 and "'BTXSE' in data rows [1] (1) and [3] (0)" in errors[0]
