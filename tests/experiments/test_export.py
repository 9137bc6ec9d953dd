"""``sparsernn export``: a study as CSV tables and a manifest, read back as the store reads."""

from __future__ import annotations

import dataclasses
import json

import pandas as pd
import pytest
from studyhelpers import tiny_study

from sparsernn.errors import DataError, StoreError
from sparsernn.experiments import load_results, run_study
from sparsernn.experiments.export import export_study
from sparsernn.experiments.results import TABLES, is_export, load_store_results


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    out = tmp_path_factory.mktemp("study")
    config = dataclasses.replace(tiny_study(n_graphs=2), seeds=(0, 1))
    run_study(config, out, workers=1, progress=False)
    return out


def test_an_export_reads_back_as_the_store_does(study, tmp_path):
    out = export_study(study, tmp_path / "export")
    assert is_export(out) and not is_export(study)
    ours, theirs = load_store_results(study), load_results(out)
    for name in TABLES:
        a, b = getattr(ours, name), getattr(theirs, name)
        assert len(a) or name == "failures", f"{name} is empty: the test would prove nothing"
        pd.testing.assert_frame_equal(a, b, check_exact=True, obj=name)
    assert theirs.study == ours.study and theirs.studies == ours.studies
    assert len(theirs.pruning["epoch"].unique()) == 2  # every epoch: 0 and 1
    assert {"diameter", "closeness_var", "n_parameters"} <= set(theirs.structure.columns)


def test_manifest_names_runs_units_and_tables(study, tmp_path):
    out = export_study(study, tmp_path / "export", run_info=[{"commit": "abc"}])
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["units"]["base"]["done"] == 2 and manifest["units"]["prune"]["done"] == 4
    assert manifest["units"]["structure"]["done"] == 4
    assert manifest["plans"]["prune"]["n_units"] == 4
    (run,) = manifest["runs"]  # one command ran the tiny study
    assert run["done"] == 10 and run["interrupted"] is False and run["finished"] >= run["started"]
    assert {"commit", "python", "torch", "cpu", "cores", "workers"} <= set(run)
    assert manifest["runs_external"] == [{"commit": "abc"}]
    assert manifest["tables"]["pruning"]["rows"] == len(load_results(out).pruning)
    assert not list(out.glob("*.pt")) and sum(f.stat().st_size for f in out.iterdir()) < 200_000


def test_an_edited_table_is_refused(study, tmp_path):
    out = export_study(study, tmp_path / "export")
    table = out / "pruning_points.csv"
    table.write_text(table.read_text().replace("0.", "1.", 1))
    with pytest.raises(DataError, match="differs from its manifest"):
        load_results(out)


def test_export_replaces_an_export_but_never_another_folder(study, tmp_path):
    keep = tmp_path / "mine"
    keep.mkdir()
    (keep / "notes.txt").write_text("precious")
    with pytest.raises(StoreError, match="not a sparsernn export"):
        export_study(study, keep)
    assert (keep / "notes.txt").read_text() == "precious"
    out = export_study(study, tmp_path / "export")
    (out / "stray.txt").write_text("old")
    export_study(study, out)  # again: the old export is replaced whole
    assert not (out / "stray.txt").exists() and is_export(out)
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_export_command(study, tmp_path):
    from click.testing import CliRunner

    from sparsernn.cli import cli

    info = tmp_path / "runs.jsonl"
    info.write_text('{"commit": "abc", "cpu": "x"}\n\n{"commit": "def"}\n')
    out = tmp_path / "export"
    result = CliRunner().invoke(cli, ["export", str(study), str(out), "--run-info", str(info)])
    assert result.exit_code == 0, result.output
    manifest = json.loads((out / "manifest.json").read_text())
    assert [r["commit"] for r in manifest["runs_external"]] == ["abc", "def"]
    info.write_text("[1, 2]\n")
    bad = CliRunner().invoke(cli, ["export", str(study), str(out), "--run-info", str(info)])
    assert bad.exit_code != 0 and "line 1 is not a JSON object" in bad.output
    missing = CliRunner().invoke(cli, ["export", str(tmp_path / "nowhere"), str(out)])
    assert missing.exit_code != 0 and "holds no results.sqlite" in missing.output


def test_a_resumable_export_restores_a_study_that_resumes_with_nothing_to_do(study, tmp_path):
    from sparsernn.experiments.export import restore_study

    out = export_study(study, tmp_path / "export", resumable=True, run_info=[{"commit": "abc"}])
    again = restore_study(out, tmp_path / "elsewhere")
    config = dataclasses.replace(tiny_study(n_graphs=2), seeds=(0, 1))
    run = run_study(config, again, workers=1, progress=False)
    assert (run.done, run.failed, run.blocked, run.skipped) == (0, 0, 0, run.total) and run.total
    # the launcher's records travel with the store into the next export
    later = json.loads((export_study(again, tmp_path / "later") / "manifest.json").read_text())
    assert later["runs_external"] == [{"commit": "abc"}]
    for name in TABLES:
        pd.testing.assert_frame_equal(
            getattr(load_store_results(study), name), getattr(load_results(again), name)
        )
    with pytest.raises(StoreError, match="already holds a study"):
        restore_study(out, again)
    plain = export_study(study, tmp_path / "plain")
    with pytest.raises(StoreError, match="not a resumable export"):
        restore_study(plain, tmp_path / "other")


def test_a_restored_study_reruns_pruning_from_its_copied_base(study, tmp_path):
    """The base checkpoints travel: with the pruning units' rows deleted from the copy, the
    restored study reruns them from the copied base models and stores the same accuracies."""
    import sqlite3

    from sparsernn.experiments.export import restore_study

    out = export_study(study, tmp_path / "export", resumable=True)
    again = restore_study(out, tmp_path / "elsewhere")
    with sqlite3.connect(again / "results.sqlite") as conn:
        conn.execute("DELETE FROM units WHERE kind = 'prune'")
    config = dataclasses.replace(tiny_study(n_graphs=2), seeds=(0, 1))
    run = run_study(config, again, workers=1, progress=False)
    assert run.done == 4 and run.blocked == 0
    cols = ["cell", "seed", "target", "amount", "post_prune_accuracy", "final_accuracy"]
    pd.testing.assert_frame_equal(
        load_results(again).pruning_points[cols], load_store_results(study).pruning_points[cols]
    )


def test_a_damaged_resumable_export_is_refused(study, tmp_path):
    from sparsernn.experiments.export import restore_study

    out = export_study(study, tmp_path / "export", resumable=True)
    model = next((out / "resume" / "artefacts").rglob("model.pt"))
    model.write_bytes(model.read_bytes()[:-10])
    with pytest.raises(DataError, match="differs from its manifest"):
        restore_study(out, tmp_path / "elsewhere")
    assert not (tmp_path / "elsewhere" / "results.sqlite").exists()


def test_text_a_spreadsheet_would_run_is_kept_as_text_and_reads_back_unchanged(tmp_path):
    """A user's graph name like ``=HYPERLINK(...)`` reaches the export's CSV as ``'=...``
    (a spreadsheet shows it as text), and the export reads back equal to what was written."""
    from sparsernn.experiments.export import _write_table
    from sparsernn.experiments.results import _read_table

    names = ["=HYPERLINK(\"http://x\")", "+1+1", "-cmd", "@sum", "'quoted", "''=x", "plain", "-5"]
    frame = pd.DataFrame({"graph": names, "accuracy": [0.5] * len(names)})
    entry = _write_table(frame, tmp_path / "t.csv")
    cells = (tmp_path / "t.csv").read_text().splitlines()[1:]
    assert all(not c.startswith(("=", "+", "@")) for c in cells)
    assert not any(c.startswith("-") and c != "-5,0.5" for c in cells)
    back = _read_table(tmp_path, entry)
    assert back["graph"].tolist() == names and back["accuracy"].tolist() == [0.5] * len(names)
