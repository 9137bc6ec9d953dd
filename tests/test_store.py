"""Tests for the results store: round trips, resume, locking, foreign files and crash safety."""

from __future__ import annotations

import dataclasses
import json
import math
import os
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from sparsernn.config import Config
from sparsernn.errors import StoreError
from sparsernn.store import (
    SCHEMA_VERSION,
    STORE_FILENAME,
    ResultsStore,
    artefact_dir,
    atomic_save,
    atomic_write_bytes,
)

CONFIG = {"model": {"cell": "lstm", "hidden": 8, "layers": (1, 2)}, "seed": 0, "lr": 1e-3}
FIXED = ["key", "kind", "status", "wall_s", "finished", "attempts"]
CURVE = [{"epoch": 1, "loss": 2.5, "ppl": 12.2}, {"epoch": 2, "loss": 2.25, "ppl": 9.5}]


def _run_python(code: str, *args: str, timeout: float = 30.0) -> subprocess.CompletedProcess[str]:
    """Run ``code`` in a fresh interpreter (a separate process, as a second sparsernn would be)."""
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@pytest.fixture
def store(tmp_path: Path):
    with ResultsStore.open(tmp_path / "study") as s:
        yield s


# -- creating, reopening, round trips -----------------------------------------------------------


def test_open_creates_directory_file_and_schema(tmp_path: Path) -> None:
    study = tmp_path / "a" / "b"
    with ResultsStore.open(study) as s:
        assert s.study_dir == study
        assert s.path == study / STORE_FILENAME
        assert s.get_meta("application") == "sparsernn"
        assert s.get_meta("schema_version") == str(SCHEMA_VERSION)
    conn = sqlite3.connect(study / STORE_FILENAME)
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert tables == {"meta", "units"}
    conn.close()


def test_open_accepts_a_file_path(tmp_path: Path) -> None:
    with ResultsStore.open(tmp_path / "mine.sqlite") as s:
        assert s.path == tmp_path / "mine.sqlite"
        s.put_done("k", "base", {}, {"loss": 1.0})
    with ResultsStore.open(tmp_path / "mine.sqlite", readonly=True) as s:
        assert s.has("k")


def test_round_trip_after_reopen(tmp_path: Path) -> None:
    metrics = {
        "loss": np.float32(0.5),
        "n_params": np.int64(1234),
        "per_layer": np.array([0.25, np.nan]),
        "ppl": float("nan"),
        "best": float("inf"),
        "worst": -math.inf,
        "ok": np.bool_(True),
        "nested": {"sparsity": 0.9},
    }
    with ResultsStore.open(tmp_path) as s:
        artefacts = {"ckpt": "artefacts/k1/m.pt"}
        s.put_done("k1", "prune", CONFIG, metrics, CURVE, artefacts, wall_s=3.5, started=100.0)
    with ResultsStore.open(tmp_path, readonly=True) as s:
        unit = s.get("k1")
    assert unit is not None
    assert unit["status"] == "done" and unit["kind"] == "prune" and unit["attempts"] == 1
    assert unit["config"] == {**CONFIG, "model": {**CONFIG["model"], "layers": [1, 2]}}
    got = unit["metrics"]
    assert got["loss"] == 0.5 and type(got["loss"]) is float
    assert got["n_params"] == 1234 and type(got["n_params"]) is int
    assert got["per_layer"][0] == 0.25 and math.isnan(got["per_layer"][1])
    assert math.isnan(got["ppl"])
    assert got["best"] == math.inf and got["worst"] == -math.inf
    assert got["ok"] is True and got["nested"] == {"sparsity": 0.9}
    assert unit["curve"] == CURVE
    assert unit["artefacts"] == {"ckpt": "artefacts/k1/m.pt"}
    assert unit["wall_s"] == 3.5 and unit["started"] == 100.0 and unit["error"] is None
    assert unit["finished"] >= unit["started"] and unit["host"]


def test_float_values_round_trip_exactly(store: ResultsStore) -> None:
    values = [0.1, 1 / 3, 1e-300, np.float32(0.1).item(), 2.0**-1074]
    store.put_done("k", "base", {}, {"v": values})
    assert store.get("k")["metrics"]["v"] == values


def test_config_object_and_wall_time_from_start(store: ResultsStore) -> None:
    @dataclasses.dataclass(frozen=True)
    class Small(Config):
        hidden: int = 4

    started = time.time() - 2.0
    store.put_done("k", "base", Small(), {"loss": 1.0}, started=started)
    unit = store.get("k")
    assert unit["config"] == {"hidden": 4}
    assert 2.0 <= unit["wall_s"] < 60.0


def test_absolute_artefact_paths_are_stored_relative(store: ResultsStore) -> None:
    ckpt = artefact_dir(store, "k") / "model.pt"
    store.put_done("k", "base", {}, {}, artefacts={"ckpt": ckpt, "data": "/elsewhere/x.npy"})
    expected = {"ckpt": "artefacts/k/model.pt", "data": "/elsewhere/x.npy"}
    assert store.get("k")["artefacts"] == expected


def test_unserialisable_value_is_a_type_error_and_nothing_is_stored(store: ResultsStore) -> None:
    with pytest.raises(TypeError, match="cannot store object"):
        store.put_done("k", "base", {}, {"bad": object()})
    assert store.get("k") is None


def test_meta_round_trip(store: ResultsStore) -> None:
    assert store.get_meta("study") is None
    assert store.get_meta("study", default={}) == {}
    store.set_meta("study", {"name": "lstm-ptb", "sparsities": [0.5, 0.9]})
    assert store.get_meta("study") == {"name": "lstm-ptb", "sparsities": [0.5, 0.9]}
    with pytest.raises(ValueError, match="reserved"):
        store.set_meta("schema_version", 2)


def test_update_meta_writes_all_names_or_none(store: ResultsStore) -> None:
    store.update_meta({"plan:base": {"keys": ["a"]}, "study": {"cells": ["gru"]}})
    assert store.get_meta("plan:base") == {"keys": ["a"]}
    assert store.get_meta("study") == {"cells": ["gru"]}
    with pytest.raises(TypeError, match="cannot store object"):
        store.update_meta({"plan:base": {"keys": ["b"]}, "plan:prune": object()})
    with pytest.raises(ValueError, match="reserved"):
        store.update_meta({"plan:base": {"keys": ["c"]}, "application": "x"})
    assert store.get_meta("plan:base") == {"keys": ["a"]}  # neither call changed anything
    assert store.get_meta("plan:prune") is None


# -- resume and retry semantics -----------------------------------------------------------------


def test_has_after_reopen_resumes_a_study(tmp_path: Path) -> None:
    with ResultsStore.open(tmp_path) as s:
        s.put_done("a", "base", {"i": 0}, {"loss": 1.0})
        s.put_failed("b", "base", {"i": 1}, "RuntimeError: diverged")
    with ResultsStore.open(tmp_path) as s:
        assert s.has("a") and not s.has("b") and not s.has("c")
        assert s.has("b", status="failed") and s.has("b", status=None)
        assert s.keys() == {"a", "b"}
        assert s.keys(status="done") == {"a"}
        assert s.keys(kind="other") == set()


def test_put_done_twice_raises_unless_overwrite(store: ResultsStore) -> None:
    store.put_done("k", "base", {}, {"loss": 1.0})
    with pytest.raises(StoreError, match=r"unit k \(base\) is already stored as done.*overwrite"):
        store.put_done("k", "base", {}, {"loss": 2.0})
    assert store.get("k")["metrics"] == {"loss": 1.0}
    store.put_done("k", "base", {}, {"loss": 2.0}, overwrite=True)
    unit = store.get("k")
    assert unit["metrics"] == {"loss": 2.0} and unit["attempts"] == 2


def test_failed_then_done_counts_attempts(store: ResultsStore) -> None:
    store.put_failed("k", "base", {"i": 1}, "CUDA out of memory", wall_s=1.0)
    store.put_failed("k", "base", {"i": 1}, "CUDA out of memory again", wall_s=1.0)
    unit = store.get("k")
    assert unit["status"] == "failed" and unit["attempts"] == 2
    assert unit["error"] == "CUDA out of memory again" and unit["metrics"] is None
    store.put_done("k", "base", {"i": 1}, {"loss": 0.5}, curve=CURVE)
    unit = store.get("k")
    assert unit["status"] == "done" and unit["attempts"] == 3 and unit["error"] is None
    assert store.count() == {"done": 1, "failed": 0}


def test_failure_never_replaces_a_result(store: ResultsStore) -> None:
    store.put_done("k", "base", {}, {"loss": 1.0})
    with pytest.raises(StoreError, match="failure must not replace"):
        store.put_failed("k", "base", {}, "boom")
    assert store.get("k")["status"] == "done"


@pytest.mark.parametrize("key", ["", None])
def test_bad_key_is_refused(store: ResultsStore, key: object) -> None:
    with pytest.raises(ValueError, match="key must be a non-empty string"):
        store.put_done(key, "base", {}, {})  # type: ignore[arg-type]


# -- frames -------------------------------------------------------------------------------------


def _fill(store: ResultsStore) -> None:
    config_b = {"model": {"cell": "gru"}, "sparsity": 0.5}
    metrics_b = {"ppl": 10.0, "status": "x", "wall_s": 9.0}  # two names clash with columns
    store.put_done("b", "prune", config_b, metrics_b, curve=CURVE, wall_s=2.0)
    config_a = {"model": {"cell": "lstm"}, "sparsity": 0.9, "seed": 3}
    metrics_a = {"ppl": 12.0, "eval": {"acc": 0.75}}
    store.put_done("a", "prune", config_a, metrics_a, curve=[{"loss": 3.0}], wall_s=1.0)
    store.put_done("c", "base", {"model": {"cell": "rnn"}}, {"ppl": 20.0}, wall_s=4.0)
    store.put_failed("d", "prune", {"sparsity": 0.99}, "diverged", wall_s=0.5)


def test_frame_column_layout(store: ResultsStore) -> None:
    _fill(store)
    df = store.frame(kind="prune")
    # pandas.json_normalize's order: a record's plain entries, then its flattened nested ones
    config_cols = ["config.sparsity", "config.seed", "config.model.cell"]
    metric_cols = ["ppl", "eval.acc", "metrics.status", "metrics.wall_s"]
    assert list(df.columns) == [*FIXED, *config_cols, *metric_cols]
    assert list(df["key"]) == ["a", "b"]
    assert list(df["config.model.cell"]) == ["lstm", "gru"]
    assert list(df["wall_s"]) == [1.0, 2.0] and list(df["metrics.wall_s"].isna()) == [True, False]
    assert df.loc[df["key"] == "a", "eval.acc"].item() == 0.75
    assert set(store.frame()["key"]) == {"a", "b", "c"}
    assert list(store.frame(status=None)["status"]) == ["done", "done", "done", "failed"]


def test_empty_frames_have_their_columns(store: ResultsStore) -> None:
    assert list(store.frame().columns) == FIXED
    assert list(store.curves().columns) == ["key", "kind", "epoch"]
    assert list(store.failures().columns) == ["key", "kind", "error", "attempts", "finished"]
    assert len(store.frame()) == len(store.curves()) == len(store.failures()) == 0


def test_curves_long_format(store: ResultsStore) -> None:
    _fill(store)
    df = store.curves()
    config_cols = ["config.sparsity", "config.seed", "config.model.cell"]
    assert list(df.columns) == ["key", "kind", "epoch", "loss", "ppl", *config_cols]
    assert list(df["key"]) == ["a", "b", "b"]
    # "a" has no epoch entries, so its epoch is the list index; "b" keeps its own epochs.
    assert list(df["epoch"]) == [0, 1, 2]
    assert list(df["ppl"].iloc[1:]) == [12.2, 9.5]
    assert list(df["config.sparsity"]) == [0.9, 0.5, 0.5]
    assert len(store.curves(kind="base")) == 0


def test_failures_count_and_summary(store: ResultsStore) -> None:
    _fill(store)
    failures = store.failures()
    assert failures[["key", "kind", "error", "attempts"]].to_dict("records") == [
        {"key": "d", "kind": "prune", "error": "diverged", "attempts": 1}
    ]
    assert store.count() == {"done": 3, "failed": 1}
    assert store.count(kind="base") == {"done": 1, "failed": 0}
    summary = store.summary()
    assert summary["done"] == 3 and summary["failed"] == 1
    assert summary["wall_s"] == pytest.approx(7.5)
    assert summary["by_kind"] == {
        "base": {"done": 1, "failed": 0, "wall_s": 4.0},
        "prune": {"done": 2, "failed": 1, "wall_s": 3.5},
    }
    with pytest.raises(ValueError, match="status must be one of"):
        store.keys(status="running")


# -- files that are not ours --------------------------------------------------------------------


def _random_bytes(path: Path) -> None:
    path.write_bytes(np.random.default_rng(0).bytes(4096))


def _text(path: Path) -> None:
    path.write_text("epoch,loss\n1,2.5\n")


def _other_app(path: Path) -> None:
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE photos (id INTEGER PRIMARY KEY, name TEXT)")
    conn.execute("INSERT INTO photos (name) VALUES ('cat.jpg')")
    conn.commit()
    conn.close()


def _other_app_with_meta(path: Path) -> None:
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE meta (name TEXT PRIMARY KEY, value TEXT)")
    conn.execute("CREATE TABLE units (key TEXT, status TEXT, attempts INTEGER)")
    conn.execute("INSERT INTO meta VALUES ('application', 'someoneelse')")
    conn.commit()
    conn.close()


def _future_schema(path: Path) -> None:
    ResultsStore.open(path).close()
    conn = sqlite3.connect(path)
    conn.execute("UPDATE meta SET value = '7' WHERE name = 'schema_version'")
    conn.commit()
    conn.close()


def _damaged(path: Path) -> None:
    _other_app(path)
    data = bytearray(path.read_bytes())
    data[100:4096] = b"\xff" * (4096 - 100)  # keep the header, wreck the schema page
    path.write_bytes(bytes(data))


FOREIGN = {
    "random bytes": (_random_bytes, "is not a sparsernn results store; move it aside"),
    "text file": (_text, "is not a sparsernn results store; move it aside"),
    "other sqlite app": (_other_app, "is not a sparsernn results store; move it aside"),
    "other app with meta": (_other_app_with_meta, "is not a sparsernn results store"),
    "future schema": (
        _future_schema,
        r"schema version 7 is newer than this sparsernn supports \(1\); upgrade sparsernn",
    ),
    "damaged sqlite": (_damaged, "is a damaged SQLite file .*; run `sparsernn verify "),
}


@pytest.mark.parametrize("readonly", [False, True], ids=["writer", "reader"])
@pytest.mark.parametrize("name", list(FOREIGN))
def test_foreign_file_is_refused_and_left_unchanged(
    tmp_path: Path, name: str, readonly: bool
) -> None:
    make, message = FOREIGN[name]
    path = tmp_path / STORE_FILENAME
    make(path)
    for side in tmp_path.glob(STORE_FILENAME + "*-*"):
        side.unlink()  # the -wal/-shm of the setup, so that only the file itself is compared
    before = path.read_bytes()
    listing = sorted(p.name for p in tmp_path.iterdir())
    with pytest.raises(StoreError, match=message) as info:
        ResultsStore.open(tmp_path, readonly=readonly)
    text = str(info.value)
    assert "\n" not in text and str(path) in text
    assert path.read_bytes() == before
    if name != "future schema":  # a reader may leave -shm/-wal beside a store in WAL mode
        assert sorted(p.name for p in tmp_path.iterdir()) == listing


def test_readonly_needs_an_existing_store(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="does not exist; check the directory"):
        ResultsStore.open(tmp_path / "nope", readonly=True)
    assert not (tmp_path / "nope").exists()
    (tmp_path / STORE_FILENAME).touch()
    with pytest.raises(StoreError, match="is empty"):
        ResultsStore.open(tmp_path, readonly=True)


def test_empty_file_is_initialised_by_a_writer(tmp_path: Path) -> None:
    (tmp_path / STORE_FILENAME).touch()  # e.g. left by a crash during creation
    with ResultsStore.open(tmp_path) as s:
        s.put_done("k", "base", {}, {})
        assert s.count() == {"done": 1, "failed": 0}


# -- single writer, concurrent readers ----------------------------------------------------------


def test_second_writer_in_process_is_refused(tmp_path: Path) -> None:
    first = ResultsStore.open(tmp_path)
    try:
        with pytest.raises(StoreError) as info:
            ResultsStore.open(tmp_path)
        assert str(info.value) == (
            f"{tmp_path / STORE_FILENAME} is in use by another sparsernn process "
            f"(pid {os.getpid()}); wait for it to finish or use another study directory"
        )
        with pytest.raises(StoreError, match="in use"):
            ResultsStore.open(tmp_path, lock_timeout=0.1)
    finally:
        first.close()
    ResultsStore.open(tmp_path).close()  # released on close


def test_lock_timeout_waits_for_the_holder(tmp_path: Path) -> None:
    first = ResultsStore.open(tmp_path)
    closer = threading.Timer(0.2, first.close)
    closer.start()
    try:
        with ResultsStore.open(tmp_path, lock_timeout=10.0) as second:
            assert not second.readonly
    finally:
        closer.join()


def test_second_writer_in_another_process_is_refused(tmp_path: Path) -> None:
    code = """
        import sys
        from sparsernn.errors import StoreError
        from sparsernn.store import ResultsStore
        try:
            ResultsStore.open(sys.argv[1]).close()
        except StoreError as exc:
            print(exc)
            sys.exit(3)
    """
    with ResultsStore.open(tmp_path) as s:
        s.put_done("k", "base", {}, {})
        result = _run_python(code, str(tmp_path))
        assert result.returncode == 3, result.stderr
        assert f"is in use by another sparsernn process (pid {os.getpid()})" in result.stdout
    assert _run_python(code, str(tmp_path)).returncode == 0


def test_reader_works_while_a_writer_holds_the_lock(tmp_path: Path) -> None:
    with ResultsStore.open(tmp_path) as writer:
        writer.put_done("a", "base", {}, {"loss": 1.0})
        with ResultsStore.open(tmp_path, readonly=True) as reader:
            assert reader.has("a")
            writer.put_done("b", "base", {}, {"loss": 2.0})
            assert reader.keys() == {"a", "b"}  # sees new commits
            assert list(reader.frame()["key"]) == ["a", "b"]
            with pytest.raises(StoreError, match="opened read-only"):
                reader.put_done("c", "base", {}, {})
            with pytest.raises(StoreError, match="opened read-only"):
                reader.set_meta("study", {})


# -- crash safety -------------------------------------------------------------------------------


def test_kill_during_a_write_loses_only_that_unit(tmp_path: Path) -> None:
    code = """
        import os, sys
        from sparsernn.store import ResultsStore
        store = ResultsStore.open(sys.argv[1])
        for i in range(5):
            store.put_done(f"k{i}", "base", {"i": i}, {"loss": float(i)})

        def die_before_commit(sql):
            if sql.startswith("COMMIT"):
                print("killing", flush=True)
                os.kill(os.getpid(), 9)

        store._conn.set_trace_callback(die_before_commit)
        store.put_done("k5", "base", {"i": 5}, {"loss": 5.0}, curve=[{"loss": 1.0}] * 2000)
        print("not reached", flush=True)
    """
    result = _run_python(code, str(tmp_path))
    assert result.returncode == -9, result.stderr
    assert result.stdout == "killing\n"
    with ResultsStore.open(tmp_path) as s:  # the kernel released the dead writer's lock
        assert s.keys() == {f"k{i}" for i in range(5)}
        assert s.count() == {"done": 5, "failed": 0}
        s.put_done("k5", "base", {"i": 5}, {"loss": 5.0})  # the unit is simply redone
    conn = sqlite3.connect(tmp_path / STORE_FILENAME)
    assert conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
    assert conn.execute("SELECT COUNT(*) FROM units").fetchone() == (6,)
    conn.close()


# -- files beside the store ---------------------------------------------------------------------


def test_atomic_save_keeps_the_old_file_when_saving_fails(tmp_path: Path) -> None:
    path = tmp_path / "ckpt.json"
    atomic_save({"step": 1}, path, lambda obj, fh: fh.write(json.dumps(obj).encode()))
    assert json.loads(path.read_text()) == {"step": 1}

    def broken(obj: object, fh) -> None:
        fh.write(b'{"step": 2, "wei')
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError, match="disk full"):
        atomic_save({"step": 2}, path, broken)
    assert json.loads(path.read_text()) == {"step": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["ckpt.json"]  # no temp file left


def test_atomic_write_bytes_replaces_and_creates_parents(tmp_path: Path) -> None:
    path = tmp_path / "deep" / "blob.bin"
    assert atomic_write_bytes(path, b"old") == path
    atomic_write_bytes(path, b"new contents")
    assert path.read_bytes() == b"new contents"
    assert [p.name for p in path.parent.iterdir()] == ["blob.bin"]


def test_artefact_dir(tmp_path: Path) -> None:
    with ResultsStore.open(tmp_path) as s:
        directory = artefact_dir(s, "abc123")
        assert directory == tmp_path / "artefacts" / "abc123" and directory.is_dir()
        for bad in ["", "..", "a/b"]:
            with pytest.raises(ValueError, match="cannot name a directory"):
                artefact_dir(s, bad)
    with ResultsStore.open(tmp_path, readonly=True) as s:
        assert not artefact_dir(s, "other").exists()
        labelled = artefact_dir(s, "abc123", "prune-gru-h2h-12.5-s0")
        assert labelled == tmp_path / "artefacts" / "prune-gru-h2h-12.5-s0-abc123"
        assert artefact_dir(s, "k", "../a b/c").name == "_a_b_c-k"


def test_relative_artefact_paths_are_stored_relative_to_the_study_dir(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with ResultsStore.open("runs/study") as store:
        path = artefact_dir(store, "k1") / "model.pt"  # relative to the working directory
        path.write_bytes(b"x")
        store.put_done("k1", "base", {}, {}, artefacts={"model.pt": path})
        stored = store.get("k1")["artefacts"]["model.pt"]
    assert stored == "artefacts/k1/model.pt"
    assert (tmp_path / "runs/study" / stored).read_bytes() == b"x"
