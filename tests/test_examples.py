"""The examples run at tiny size, and the LM section of the docs is computed from its data.

The examples' defaults take a few minutes; here each runs with a few steps, which checks
that a user's loop with ``sparsify`` works end to end (the numbers themselves are measured by
``examples/char_lm_grid.py``, not asserted here).
"""

import importlib.util
import json
import sys
from pathlib import Path

import pandas as pd
import pytest

ROOT = Path(__file__).parents[1]


def _load(path: Path):
    """A script of the repository as a module (examples/ and docs/ are not packages)."""
    sys.path.insert(0, str(path.parent))  # char_lm_grid imports char_lm beside it
    try:
        spec = importlib.util.spec_from_file_location(path.stem, path)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[path.stem] = module
        spec.loader.exec_module(module)
        return module
    finally:
        sys.path.remove(str(path.parent))


char_lm = _load(ROOT / "examples" / "char_lm.py")
char_lm_grid = _load(ROOT / "examples" / "char_lm_grid.py")
digits_gru = _load(ROOT / "examples" / "digits_gru.py")
lm_section = _load(ROOT / "docs" / "pages" / "lm.py").lm_section

TINY = {"steps": 6, "batch_size": 4, "seq_len": 16, "hidden_size": 16, "update_every": 2,
        "held_out_chars": 600, "train_chars": 5000}  # fmt: skip


def test_the_stdlib_text_is_there_and_encoded_within_the_alphabet():
    text = char_lm.read_text(char_lm.HELD_OUT_FILES, 1000)
    codes = char_lm.encode(text + "\u00e9")
    assert len(codes) == 1001 and int(codes.max()) == len(char_lm.ALPHABET)  # the other-symbol
    assert char_lm.ALPHABET[int(codes[0])] == text[0]


@pytest.mark.parametrize("method", ["dense", "magnitude", "rigl"])
def test_char_lm_trains_each_method_at_tiny_size(method):
    res = char_lm.run(char_lm.Config(method=method, sparsity=0.9, **TINY))
    assert 0 < res["bpc"] < 8  # log2 of the alphabet is 6.6: a few steps stay near it
    expected = 0.0 if method == "dense" else 0.9
    assert res["achieved_sparsity"] == pytest.approx(expected, abs=0.01)


def test_char_lm_grid_writes_points_and_manifest_and_resumes(tmp_path, capsys):
    args = ["--out", str(tmp_path), "--steps", "4", "--seeds", "0", "--sparsities", "0.5",
            "--methods", "magnitude", "--hidden-size", "8", "--held-out-chars", "400",
            "--train-chars", "3000"]  # fmt: skip
    char_lm_grid.main(args)
    points = pd.read_csv(tmp_path / "points.csv")
    assert list(points["method"]) == ["dense", "magnitude"]
    assert set(char_lm_grid.COLUMNS) == set(points.columns)
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    assert manifest["config"]["steps"] == 4 and manifest["threads"] == 1
    assert {"commit", "date", "python", "torch", "cpu", "wall_s"} <= set(manifest)
    char_lm_grid.main(args)  # everything stored: nothing runs again
    assert len(pd.read_csv(tmp_path / "points.csv")) == 2
    assert capsys.readouterr().out.count("seed 0: bpc") == 2


def test_digits_gru_prunes_a_bidirectional_gru_with_agp():
    cfg = digits_gru.Config(epochs=2, n_samples=200, hidden_size=8, update_every=2)
    res = digits_gru.run(cfg)
    assert 0 <= res["accuracy"] <= 1
    report = res["report"]
    assert set(report["direction"]) == {"forward", "reverse"}
    assert (report["sparsity"] - 0.9).abs().max() <= 1 / report["size"].min()


# ---------------------------------------------------------------------- the docs' LM section
T_975_2 = 4.302652729911275  # Student t, 97.5% quantile, 2 degrees of freedom


def _results(tmp_path, diffs: dict[tuple[str, float], list[float]]) -> Path:
    dense = [1.80, 1.90, 2.00]
    rows = [{"method": "dense", "sparsity": 0.0, "seed": s, "bpc": b, "achieved_sparsity": 0.0}
            for s, b in enumerate(dense)]  # fmt: skip
    for (method, sparsity), d in diffs.items():
        rows += [{"method": method, "sparsity": sparsity, "seed": s, "bpc": dense[s] + d[s],
                  "achieved_sparsity": sparsity} for s in range(3)]  # fmt: skip
    pd.DataFrame(rows).to_csv(tmp_path / "points.csv", index=False)
    manifest = {
        "config": {"hidden_size": 8, "steps": 10, "batch_size": 4, "seq_len": 16},
        "train_chars": 1000,
        "held_out_chars": 100,
        "train_files": ["a.py"],
        "held_out_files": ["b.py"],
        "train_cpu_s": 36.0,
        "date": "2026-12-07T00:00",
        "commit": "abc",
        "python": "3.11",
        "torch": "2",
        "cpu": "x",
        "threads": 1,
    }
    (tmp_path / "manifest.json").write_text(json.dumps(manifest))
    return tmp_path


def test_lm_section_table_is_the_mean_and_t_interval_over_seeds(tmp_path):
    text = lm_section(_results(tmp_path, {("rigl", 0.8): [0.01, 0.02, 0.03]}))
    half = T_975_2 * 0.1 / 3**0.5  # dense: 1.8, 1.9, 2.0 -> sd 0.1
    assert f"| dense    | {1.9:.3f} [{1.9 - half:.3f}, {1.9 + half:.3f}] |" in text
    half = T_975_2 * 0.01 / 3**0.5  # the paired differences: sd 0.01
    assert f"+0.020 [{0.02 - half:+.3f}, {0.02 + half:+.3f}]" in text
    assert "**Yes**" in text and "rigl: tolerated up to 80%" in text and "n = 3 seeds" in text


def test_lm_section_verdict_follows_the_numbers(tmp_path):
    worse = {("magnitude", 0.8): [0.30, 0.31, 0.32], ("magnitude", 0.9): [0.5, 0.6, 0.7],
             ("magnitude", 0.5): [0.0, 0.01, 0.02]}  # fmt: skip
    text = lm_section(_results(tmp_path, worse))
    half = T_975_2 * 0.01 / 3**0.5
    assert "**No**" in text and "magnitude: 80% not tolerated (+0.310 " in text
    assert f"[{0.31 - half:+.3f}, {0.31 + half:+.3f}]" in text
    assert "50%" not in text.split("### Verdict")[1]  # below the claim: not part of it
    unclear = {("rigl", 0.9): [-0.1, 0.2, 0.05]}  # a wide interval across the margin
    (tmp_path / "u").mkdir()
    assert "**The intervals cannot tell**" in lm_section(_results(tmp_path / "u", unclear))
