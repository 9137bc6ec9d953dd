"""Tests for sparsernn.data.dataset: DataSpec, make_dataset, Dataset, CSV IO and encode."""

from __future__ import annotations

import os
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from sparsernn.data import (
    EMBEDDED_REBER,
    Dataset,
    DataSpec,
    encode,
    make_dataset,
    read_csv,
    reber,
    write_csv,
)
from sparsernn.data.negatives import STUDY_ALTERNATIVES, alternative_family, alternative_kind
from sparsernn.data.reber import reber_variant
from sparsernn.data.spec import _apportion
from sparsernn.errors import ConfigError, DataError


@pytest.fixture(scope="module")
def study() -> tuple[Dataset, Dataset]:
    return make_dataset(DataSpec())


# ------------------------------------------------------------------------------------ DataSpec
def test_spec_defaults_and_counts() -> None:
    spec = DataSpec()
    assert spec.n_valid == 12500 and spec.n_test == 6250
    # SPEC 2.1: the eight alternative grammars' exact counts per 12,500 negatives.
    assert spec.n_negatives == {
        "alt_TPTVSXXSPV": 2000,
        "alt_TPXSVTXSPV": 500,
        "alt_TPSXTVPVXS": 1500,
        "alt_PTSXTVXSPV": 1500,
        "alt_ACDFJIHGLK": 2000,
        "alt_MNOQCAURFD": 1500,
        "alt_MNOQWVURZY": 2000,
        "alt_QOMNCAURFD": 1500,
    }
    half = DataSpec(n_strings=12500).n_negatives  # scaled with n_strings
    assert half["alt_TPXSVTXSPV"] == 250 and sum(half.values()) == 6250


def test_apportion_largest_remainder() -> None:
    assert _apportion(51, (0.5, 0.3, 0.2)) == [26, 15, 10]  # 25.5, 15.3, 10.2
    assert _apportion(10, (1 / 3, 1 / 3, 1 / 3)) == [4, 3, 3]
    assert sum(_apportion(12499, (0.56, 0.44, 0.0))) == 12499


def test_spec_round_trips() -> None:
    raw = {
        "grammar": "embedded_reber",
        "negative_mix": {"alternative": 0.5, "iid_foreign": 0.25, "edit": 0.25},
        "alternative_grammars": {"TPTVSXXSPV": 1, "ACDFJIHGLK": 3},
        "seed": 3,
    }
    spec = DataSpec.from_dict(raw)  # the boundary makes mappings canonical pairs
    assert spec.negative_mix == (("alternative", 0.5), ("iid_foreign", 0.25), ("edit", 0.25))
    assert spec.alternative_grammars == (("TPTVSXXSPV", 1.0), ("ACDFJIHGLK", 3.0))
    assert DataSpec.from_json(spec.to_json()) == spec
    assert DataSpec.from_toml(spec.to_toml()) == spec
    assert DataSpec.from_toml("negative_mix = {edit = 1.0}").negative_mix == (("edit", 1.0),)
    # A legacy three-number mix (foreign, transition, edit), as old stores recorded it.
    legacy = DataSpec.from_dict({"negative_mix": [0.5, 0.5, 0]})
    assert legacy.negative_mix == (("iid_foreign", 0.5), ("broken_transition", 0.5))


def test_spec_constructor_validates_and_does_not_rewrite() -> None:
    """Raw input that would give the same data another key is refused, not rewritten."""
    with pytest.raises(ConfigError, match="canonical pairs"):
        DataSpec(negative_mix={"edit": 1.0})  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="canonical pairs"):
        DataSpec(negative_mix=(("edit", 1),))  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="as text"):
        DataSpec(train_csv=Path("a.csv"), test_csv="b.csv")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="must be an integer"):
        DataSpec(seed=np.int64(3))  # type: ignore[arg-type]
    assert DataSpec.from_dict({"seed": np.int64(3)}).to_dict() == DataSpec(seed=3).to_dict()


@pytest.mark.parametrize(
    "changes, field",
    [
        ({"grammar": "tomita"}, "grammar"),
        ({"n_strings": 3}, "n_strings"),
        ({"n_strings": 10.0}, "n_strings"),
        ({"valid_fraction": 0.0}, "valid_fraction"),
        ({"valid_fraction": 1.0}, "valid_fraction"),
        ({"n_strings": 10, "valid_fraction": 0.01}, "valid_fraction"),
        ({"test_fraction": 1.5}, "test_fraction"),
        ({"negative_mix": (0.5, 0.4, 0.0)}, "negative_mix"),
        ({"negative_mix": (1.2, -0.2, 0.0)}, "negative_mix"),
        ({"negative_mix": (0.5, 0.5)}, "negative_mix"),
        ({"negative_mix": {"foreign": 1.0}}, "negative_mix"),
        ({"negative_mix": {"swap": 1.0}}, "negative_mix"),
        ({"alternative_grammars": {"TPSXTVXSPV": 1.0}}, "alternative_grammars"),
        ({"alternative_grammars": {"TPTVSXXSPV": 0.0}}, "alternative_grammars"),
        ({"alternative_grammars": {}}, "alternative_grammars"),
        ({"min_length": 0}, "min_length"),
        ({"min_length": 20, "max_length": 19}, "max_length"),
        ({"min_length": 1, "max_length": 4}, "min_length/max_length"),
        ({"seed": -1}, "seed"),
    ],
)
def test_spec_validation(changes: dict, field: str) -> None:
    with pytest.raises(ConfigError, match=f"DataSpec.{field}"):
        DataSpec(**changes)


# -------------------------------------------------------------------------------- make_dataset
def test_study_dataset(study: tuple[Dataset, Dataset]) -> None:
    train, test = study
    assert (len(train), len(test)) == (18750, 6250)
    assert (int(train.labels.sum()), int(test.labels.sum())) == (9375, 3125)
    counts = Counter(train.kinds + test.kinds)
    assert {k: v for k, v in counts.items() if k != "valid"} == DataSpec().n_negatives
    everything = train.strings + test.strings
    assert len(set(everything)) == 25000  # unique, so train and test are disjoint
    assert all(11 <= len(s) <= 53 for s in everything)
    for part in (train, test):
        pairs = zip(part.strings, part.labels.tolist(), strict=True)
        assert all(reber.accepts(s) == bool(y) for s, y in pairs)
        assert part.labels.dtype == np.int64
    # The study reports mode 22; the dedupe of walk samples puts it near there.
    assert 20 <= train.summary()["length_mode"] <= 25


def test_shuffled(study: tuple[Dataset, Dataset]) -> None:
    train, _ = study
    # Valid strings are spread through the order: each block of 1000 is 50% +- 6 sd.
    for k in range(0, 18000, 1000):
        assert abs(train.labels[k : k + 1000].mean() - 0.5) < 6 * 0.016


def test_deterministic_and_seed_dependent() -> None:
    spec = DataSpec(
        n_strings=200,
        negative_mix=(("alternative", 0.4), ("iid_foreign", 0.3), ("edit", 0.3)),
        seed=5,
    )
    a, b = make_dataset(spec), make_dataset(spec)
    assert a[0] == b[0] and a[1] == b[1]
    c = make_dataset(spec.replace(seed=6))
    assert c[0].strings != a[0].strings


def test_mix_with_edits_and_embedded() -> None:
    legacy_mix = (0.5, 0.3, 0.2)  # (iid_foreign, broken_transition, edit) shares
    spec = DataSpec.from_dict(
        dict(grammar="embedded_reber", n_strings=103, negative_mix=legacy_mix, test_fraction=0.2)
    )
    train, test = make_dataset(spec)
    assert len(train) + len(test) == 103 and len(test) == 21
    kinds = train.kinds + test.kinds
    names = ("valid", "iid_foreign", "broken_transition", "edit")
    assert [kinds.count(k) for k in names] == [52, 26, 15, 10]
    assert int(test.labels.sum()) == round(21 * 52 / 103)
    assert train.name == "embedded_reber/train"


def test_too_few_distinct_strings() -> None:
    with pytest.raises(ConfigError, match="distinct"):
        make_dataset(DataSpec(n_strings=10, min_length=5, max_length=5))


# ------------------------------------------------------------------------------------- Dataset
def test_dataset_indexing_and_summary() -> None:
    ds = Dataset(["BTXSE", "BAE", "BPVVE", "BTE"], [1, 0, 1, 0], ["valid", "foreign"] * 2, "x")
    assert len(ds) == 4 and ds[0] == ("BTXSE", 1)
    assert ds[1:3].strings == ["BAE", "BPVVE"] and ds[1:3].kinds == ["foreign", "valid"]
    assert ds[np.array([3, 0])].labels.tolist() == [0, 1]
    assert ds[ds.labels == 1].strings == ["BTXSE", "BPVVE"]
    assert len(ds[[]]) == 0
    s = ds.summary()
    assert (s["n"], s["n_valid"], s["n_invalid"]) == (4, 2, 2)
    assert (s["length_min"], s["length_max"], s["length_mode"]) == (3, 5, 3)
    assert s["kinds"] == {"foreign": 2, "valid": 2}
    with pytest.raises(DataError, match="labels must be 0 or 1"):
        Dataset(["a"], [2])
    with pytest.raises(DataError, match="one label per string"):
        Dataset(["a", "b"], [1])


# -------------------------------------------------------------------------------------- CSV IO
def test_csv_round_trip(tmp_path: Path) -> None:
    train, _ = make_dataset(DataSpec(n_strings=40, seed=2))
    path = write_csv(train, tmp_path / "train.csv")
    assert path.read_text().splitlines()[0] == "string,valid"
    assert path.stat().st_mode & 0o777 == 0o644
    back = read_csv(path)
    assert back.strings == train.strings and back.labels.tolist() == train.labels.tolist()
    assert back.kinds is None


def test_csv_with_index_column(tmp_path: Path) -> None:
    df = pd.DataFrame({"string": ["BTXSE", "BAXE", "BPVVE"], "valid": [1, 0, 1]})
    path = tmp_path / "study.csv"
    df.to_csv(path, index=True)
    assert path.read_text().startswith(",string,valid")
    ds = read_csv(path)
    assert ds.strings == ["BTXSE", "BAXE", "BPVVE"] and ds.labels.tolist() == [1, 0, 1]
    # And pandas reads what we write.
    write_csv(ds, tmp_path / "out.csv")
    assert pd.read_csv(tmp_path / "out.csv")["valid"].tolist() == [1, 0, 1]


@pytest.mark.parametrize(
    "text, match",
    [
        ("string,valid\nBTXSE,1\nBAE,2\n", r"data row 2 \(line 3\).*not 0 or 1"),
        (",string,valid\n0,BTXSE,1\n1,,0\n", r"data row 2 \(line 3\).*empty string"),
        ("string,valid\nBTXSE,1\nBT\u00e9E,0\n", r"data row 2 \(line 3\).*code 233"),
        ("string,valid\nBTXSE,1,7\n", r"data row 1 \(line 2\).*3 fields"),
        ("string,label\nBTXSE,1\n", "lacks column.*valid"),
        ("text\nBTXSE\n", "lacks column.*string, valid"),
        ("", "file is empty"),
        ("string,valid\n", "no data rows"),
    ],
)
def test_bad_csv(tmp_path: Path, text: str, match: str) -> None:
    path = tmp_path / "bad_data.csv"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(DataError, match=match) as info:
        read_csv(path)
    message = str(info.value)
    assert "bad_data.csv" in message and "\n" not in message


def test_missing_and_non_utf8_files(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="nowhere.csv: no such file"):
        read_csv(tmp_path / "nowhere.csv")
    path = tmp_path / "latin.csv"
    path.write_bytes(b"string,valid\nBTXSE,1\nB\xe9E,0\n")
    with pytest.raises(DataError, match="latin.csv: line 3: .*not UTF-8"):
        read_csv(path)


def test_write_csv_does_not_clobber(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "data.csv"
    path.write_text("string,valid\nBTXSE,1\n")
    ds = Dataset(["BPVVE", "BAE"], [1, 0])
    monkeypatch.setattr(os, "replace", lambda *a, **k: (_ for _ in ()).throw(OSError("disk")))
    with pytest.raises(OSError, match="disk"):
        write_csv(ds, path)
    monkeypatch.undo()
    assert path.read_text() == "string,valid\nBTXSE,1\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data.csv"]  # temp file removed
    with pytest.raises(DataError, match="data.csv: dataset row 2: empty string"):
        write_csv(Dataset(["BTXSE", ""], [1, 0]), path)
    assert path.read_text() == "string,valid\nBTXSE,1\n"


# -------------------------------------------------------------------------------------- encode
def test_encode() -> None:
    x = encode(["BTXSE", "BE"])
    assert x.dtype == np.int64 and x.shape == (2, 5)
    assert x[0].tolist() == [ord(c) for c in "BTXSE"]
    assert x[1].tolist() == [66, 69, 0, 0, 0]
    assert encode([]).shape == (0, 0)
    with pytest.raises(DataError, match=r"strings\[1\] .*'X' at index 1 has code 88"):
        encode(["BE", "BX"], vocab_size=70)
    with pytest.raises(DataError, match="code 233"):
        encode(["B\u00e9"])
    with pytest.raises(DataError, match="padding"):
        encode(["B\x00E"])
    with pytest.raises(ConfigError, match="vocab_size"):
        encode(["B"], vocab_size=1)


# ------------------------------------------------------------------- the study's negatives
# Per-length counts in the study's 25,000 strings (SPEC 2.1), by class and negative family.
_SPEC_LENGTHS = {
    "valid": "11:24 12:36 13:53 14:78 15:115 16:169 17:248 18:364 19:534 20:783 21:1124 "
    "22:1431 23:1538 24:1426 25:1159 26:863 27:671 28:515 29:375 30:255 31:199 32:165 33:98 "
    "34:76 35:52 36:38 37:32 38:18 39:13 40:15 41:11 42:7 43:2 44:1 45:4 46:3 47:2 49:2 53:1",
    "foreign_letters": "11:96 12:144 13:212 14:312 15:459 16:651 17:807 18:874 19:803 20:680 "
    "21:494 22:408 23:280 24:185 25:169 26:125 27:96 28:44 29:38 30:39 31:28 32:13 33:13 34:11 "
    "35:5 36:5 37:2 39:1 40:1 44:1 45:1 47:2 48:1",
    "reber_letters": "11:96 12:144 13:211 14:298 15:412 16:536 17:659 18:667 19:579 20:488 "
    "21:361 22:273 23:223 24:136 25:93 26:84 27:69 28:44 29:34 30:25 31:15 32:12 33:11 34:7 "
    "35:4 36:4 37:5 39:1 40:3 41:1 42:1 43:2 44:2",
}


def _tv(a: Counter, b: Counter) -> float:
    na, nb = sum(a.values()), sum(b.values())
    return 0.5 * sum(abs(a[k] / na - b[k] / nb) for k in set(a) | set(b))


def test_every_negative_is_a_walk_of_its_grammar_and_invalid(study) -> None:
    train, test = study
    grammars = {alternative_kind(l): reber_variant(l) for l, _ in STUDY_ALTERNATIVES}
    for s, kind in zip(train.strings + test.strings, train.kinds + test.kinds, strict=True):
        if kind == "valid":
            continue
        assert not reber.accepts(s), s
        assert grammars[kind].accepts(s), (kind, s)


def test_length_profiles_match_the_study(study) -> None:
    """Each class's length distribution is within TV 0.04 of SPEC 2.1's counts (n = 25,000;
    measured 0.010-0.026 over seeds 0-2, as SPEC expects about 0.02 from sampling alone)."""
    train, test = study
    ours: dict[str, Counter] = {g: Counter() for g in _SPEC_LENGTHS}
    for s, kind in zip(train.strings + test.strings, train.kinds + test.kinds, strict=True):
        group = "valid" if kind == "valid" else alternative_family(kind[len("alt_") :])
        ours[group][len(s)] += 1
    for group, text in _SPEC_LENGTHS.items():
        spec = Counter({int(k): int(v) for k, v in (p.split(":") for p in text.split())})
        assert sum(ours[group].values()) == sum(spec.values())  # 12,500 / 7,000 / 5,500
        assert _tv(ours[group], spec) < 0.04, group


def test_embedded_alternatives_are_embedded_walks() -> None:
    train, test = make_dataset(DataSpec(grammar="embedded_reber", n_strings=400, seed=2))
    for s, kind in zip(train.strings + test.strings, train.kinds + test.kinds, strict=True):
        if kind == "valid":
            assert EMBEDDED_REBER.accepts(s)
            continue
        assert not EMBEDDED_REBER.accepts(s)
        assert reber_variant(kind[len("alt_") :], embedded=True).accepts(s)
        assert s[1] == s[-2] and s[1] in "TP"  # the frame is the embedded grammar's


def test_user_alternative_grammar() -> None:
    spec = DataSpec(n_strings=300, alternative_grammars=(("TPSXTVXSPA", 1.0),))
    train, _ = make_dataset(spec)
    negs = [s for s, k in zip(train.strings, train.kinds, strict=True) if k != "valid"]
    assert negs and all(reber_variant("TPSXTVXSPA").accepts(s) for s in negs)
    assert all(not reber.accepts(s) for s in negs)


def test_spec_from_files_and_fingerprint(tmp_path: Path) -> None:
    train, test = make_dataset(DataSpec(n_strings=40, seed=4))
    write_csv(train, tmp_path / "a.csv")
    write_csv(test, tmp_path / "b.csv")
    spec = DataSpec.from_dict(
        {"train_csv": str(tmp_path / "a.csv"), "test_csv": tmp_path / "b.csv"}  # a Path is fine
    )
    got_train, got_test = make_dataset(spec)
    assert got_train.strings == train.strings and got_test.strings == test.strings
    fp = spec.fingerprint()
    assert set(fp["train_csv"]) == {"sha256"} and str(tmp_path) not in str(fp)
    (tmp_path / "moved").mkdir()
    os.replace(tmp_path / "a.csv", tmp_path / "moved" / "a.csv")
    moved = spec.replace(train_csv=str(tmp_path / "moved" / "a.csv"))
    assert moved.fingerprint() == fp  # moving a file keeps the identity
    (tmp_path / "b.csv").write_text("string,valid\nBTXSE,1\n")
    assert moved.fingerprint()["test_csv"] != fp["test_csv"]  # editing it changes it
    (tmp_path / "b.csv").write_text("string,valid\nBTXSE,2\n")
    with pytest.raises(DataError, match="not 0 or 1"):
        moved.fingerprint()
    with pytest.raises(ConfigError, match="both files"):
        DataSpec(train_csv="x.csv")
