"""Faults a results store meets on disk: a writer killed inside schema creation, changed bytes,
a full disk, a read-only folder, a planted lock symlink, temporaries of killed writes. Each
ends in one line naming the problem and the fix, and nothing stored is lost."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from sparsernn import _storefile
from sparsernn.cli import cli
from sparsernn.errors import StoreError
from sparsernn.store import STORE_FILENAME, ResultsStore, repair

METRICS = {"accuracy": 0.8125, "loss": 0.4375}


def _filled(study: Path, n: int = 6) -> None:
    with ResultsStore.open(study) as store:
        store.set_meta("study", {"cells": ["gru"]})
        for i in range(n):
            metrics = {**METRICS, "accuracy": 0.5 + i / 64}
            store.put_done(f"unit{i}", "base", {"i": i}, metrics, curve=[{"epoch": 1}])


def _flip(path: Path, needle: bytes, offset: int = 0, bit: int = 0x01) -> None:
    """Flip one bit of the byte ``offset`` after the (single) occurrence of ``needle``."""
    data = bytearray(path.read_bytes())
    assert data.count(needle) == 1, needle
    data[data.index(needle) + offset] ^= bit
    path.write_bytes(bytes(data))


# -- 1. a writer killed inside schema creation --------------------------------------------------

KILL_AT_COMMIT = """
    import os, signal, sqlite3, sys
    connect = sqlite3.connect

    def dying_connect(*args, **kwargs):
        conn = connect(*args, **kwargs)
        conn.execute("PRAGMA cache_size = 1")  # pages reach the file before COMMIT
        conn.set_trace_callback(
            lambda sql: sql.startswith("COMMIT") and os.kill(os.getpid(), signal.SIGKILL)
        )
        return conn

    sqlite3.connect = dying_connect
    from sparsernn.store import ResultsStore
    ResultsStore.open(sys.argv[1])
"""


def _killed_inside_schema_creation(study: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(KILL_AT_COMMIT), str(study)],
        capture_output=True,
        timeout=60,
    )
    assert result.returncode == -9, result.stderr
    journal = study / (STORE_FILENAME + "-journal")
    assert journal.stat().st_size > 0 and (study / STORE_FILENAME).stat().st_size > 0


def test_a_writer_killed_inside_schema_creation_leaves_a_store_the_next_writer_uses(tmp_path):
    study = tmp_path / "study"
    _killed_inside_schema_creation(study)
    with ResultsStore.open(study) as store:  # rolls the journal back, then creates the schema
        store.put_done("k", "base", {}, METRICS)
    assert not (study / (STORE_FILENAME + "-journal")).exists()
    with ResultsStore.open(study, readonly=True) as store:
        assert store.get("k")["metrics"] == METRICS and store.verify().ok


def test_a_reader_after_the_kill_rolls_back_and_says_the_store_is_empty(tmp_path):
    study = tmp_path / "study"
    _killed_inside_schema_creation(study)
    result = CliRunner().invoke(cli, ["status", str(study)])
    assert result.exit_code == 2
    (line,) = result.stderr.strip().splitlines()
    assert line == f"error: {study / STORE_FILENAME} is empty; check the directory, or run a " \
        "study there first"  # fmt: skip
    assert not (study / (STORE_FILENAME + "-journal")).exists()


def test_a_hot_journal_of_a_filled_store_is_rolled_back_for_a_reader(tmp_path):
    """A writer killed mid-transaction on a store holding units (as in the switch to WAL):
    the reader rolls it back and sees every committed unit."""
    study = tmp_path / "study"
    _filled(study)
    code = """
        import os, signal, sqlite3, sys
        conn = sqlite3.connect(sys.argv[1], isolation_level=None)
        conn.execute("PRAGMA journal_mode = DELETE")
        conn.execute("PRAGMA cache_size = 1")
        conn.execute("BEGIN IMMEDIATE")
        conn.execute("UPDATE units SET metrics = 'half-written'")
        conn.execute("INSERT INTO units (key, kind, status, config) VALUES ('x', 'b', 'done', '')")
        conn.execute("INSERT INTO meta (name, value) VALUES ('pad', randomblob(200000))")
        os.kill(os.getpid(), signal.SIGKILL)
    """
    path = study / STORE_FILENAME
    done = subprocess.run([sys.executable, "-c", textwrap.dedent(code), str(path)], timeout=60)
    assert done.returncode == -9
    assert _storefile.has_hot_journal(path)
    with ResultsStore.open(study, readonly=True) as store:
        assert store.keys() == {f"unit{i}" for i in range(6)}
        assert store.get("unit0")["metrics"] == {**METRICS, "accuracy": 0.5}
        assert store.verify().ok
    assert not _storefile.has_hot_journal(path)


# -- 2. changed bytes, verify and repair --------------------------------------------------------


def test_a_flipped_digit_in_a_metric_is_an_error_naming_the_unit_not_a_new_number(tmp_path):
    study = tmp_path / "study"
    _filled(study)
    _flip(study / STORE_FILENAME, b'"accuracy":0.546875', offset=len('"accuracy":0.5'))
    with ResultsStore.open(study, readonly=True) as store:
        assert store.get("unit0")["metrics"]["accuracy"] == 0.5  # the other units still read
        with pytest.raises(StoreError) as info:
            store.get("unit3")
        with pytest.raises(StoreError, match="unit3 is damaged"):
            store.frame()
    text = str(info.value)
    assert "\n" not in text and "unit3 is damaged" in text and "changed on disk" in text
    assert f"sparsernn verify {study} --repair" in text


def test_verify_lists_each_damaged_row_and_exits_1_and_repair_sets_them_aside(tmp_path):
    study = tmp_path / "study"
    _filled(study)
    path = study / STORE_FILENAME
    _flip(path, b'"accuracy":0.546875', offset=len('"accuracy":0.5'))  # unit3: a value
    _flip(path, b'"accuracy":0.578125', offset=0, bit=0x20)  # unit5: JSON no longer parses
    _flip(path, b'{"cells":["gru"]}', offset=3)  # the study config in meta
    before = path.read_bytes()
    runner = CliRunner()
    result = runner.invoke(cli, ["verify", str(study)])
    assert result.exit_code == 1
    damage = sorted(result.stderr.strip().splitlines())
    assert len(damage) == 3 and all(line.startswith("damaged: ") for line in damage)
    assert "meta entry study" in damage[0] and "unit3 (base)" in damage[1]
    assert "unit5 (base)" in damage[2]
    assert "3 problem(s)" in result.stdout and "--repair" in result.stdout
    assert path.read_bytes() == before  # verify changes nothing

    result = runner.invoke(cli, ["verify", str(study), "--repair"])
    assert result.exit_code == 0, result.output
    assert "repaired" in result.stdout
    (backup,) = study.glob(STORE_FILENAME + ".damaged-*")
    assert backup.read_bytes() == before  # nothing stored is lost
    with ResultsStore.open(study, readonly=True) as store:
        assert store.keys() == {"unit0", "unit1", "unit2", "unit4"}
        assert store.get_meta("study") is None
    assert runner.invoke(cli, ["verify", str(study)]).exit_code == 0


def test_structural_damage_is_found_by_integrity_check_and_repair_keeps_what_reads(tmp_path):
    study = tmp_path / "study"
    _filled(study, n=40)
    path = study / STORE_FILENAME
    with sqlite3.connect(path) as conn:  # the units' primary-key index: its page is wrecked
        (root,) = conn.execute(
            "SELECT rootpage FROM sqlite_master WHERE name = 'sqlite_autoindex_units_1'"
        ).fetchone()
        page = conn.execute("PRAGMA page_size").fetchone()[0]
    conn.close()
    data = bytearray(path.read_bytes())
    data[(root - 1) * page + 8 : root * page] = b"\xa5" * (page - 8)
    path.write_bytes(bytes(data))
    with ResultsStore.open(study, readonly=True) as store:
        check = store.verify()
    assert not check.ok and not check.structure_ok
    assert all(p.startswith("sqlite: ") for p in check.problems)
    check, backup = repair(study)
    assert backup is not None and backup.exists()
    with ResultsStore.open(study, readonly=True) as store:
        assert store.verify().ok
        assert store.keys() == {f"unit{i}" for i in range(40)}  # the table itself was intact
        assert store.get("unit7")["metrics"]["accuracy"] == 0.5 + 7 / 64


def test_a_store_written_before_checksums_reads_and_gets_them_from_its_next_writer(tmp_path):
    study = tmp_path / "study"
    _filled(study, n=2)
    path = study / STORE_FILENAME
    conn = sqlite3.connect(path)
    for table in ("units", "meta"):
        conn.execute(f"ALTER TABLE {table} DROP COLUMN digest")
    conn.commit()
    conn.close()
    with ResultsStore.open(study, readonly=True) as store:  # a reader changes nothing
        assert store.get("unit1")["metrics"]["accuracy"] == 0.5 + 1 / 64
        assert store.verify().unverified == 2 + 4
    with ResultsStore.open(study) as store:
        store.put_done("new", "base", {}, {"accuracy": 0.25})
    with ResultsStore.open(study, readonly=True) as store:
        check = store.verify()
    assert check.ok and check.unverified == 6 and check.units == 3
    _flip(path, b'{"accuracy":0.25}', offset=len('{"accuracy":0.2'))
    with ResultsStore.open(study, readonly=True) as store:
        assert store.verify().problems == [
            "unit new (base): its values differ from their checksum (changed on disk)"
        ]


# -- 3, 4, 11. the folder, the disk, the lock file ---------------------------------------------


def test_a_full_disk_is_one_line_and_the_stored_units_stay(tmp_path):
    study = tmp_path / "study"
    _filled(study, n=3)
    with ResultsStore.open(study) as store:
        pages = store._conn.execute("PRAGMA page_count").fetchone()[0]
        store._conn.execute(f"PRAGMA max_page_count = {pages + 1}")  # what SQLite says on ENOSPC
        with pytest.raises(StoreError) as info:
            store.put_done("big", "base", {}, METRICS, curve=[{"x": "y" * 1000}] * 200)
    text = str(info.value)
    assert "\n" not in text and "the disk is full" in text and "free some space" in text
    with ResultsStore.open(study, readonly=True) as store:
        assert store.keys() == {"unit0", "unit1", "unit2"} and store.verify().ok


def test_a_reader_in_a_folder_it_cannot_write_reads_without_creating_files(tmp_path, monkeypatch):
    study = tmp_path / "study"
    _filled(study, n=2)
    listing = sorted(p.name for p in study.iterdir())
    uris: list[str] = []
    connect = sqlite3.connect

    def recording(database, *args, **kwargs):
        uris.append(str(database))
        return connect(database, *args, **kwargs)

    monkeypatch.setattr(sqlite3, "connect", recording)
    monkeypatch.setattr(_storefile, "_writable", lambda folder: False)
    with ResultsStore.open(study, readonly=True) as store:
        assert store.keys() == {"unit0", "unit1"}
    assert uris and all(uri.endswith("?mode=ro&immutable=1") for uri in uris)
    assert sorted(p.name for p in study.iterdir()) == listing  # no -shm, -wal or lock


def test_a_pending_log_in_a_folder_it_cannot_write_is_one_line(tmp_path, monkeypatch):
    study = tmp_path / "study"
    with ResultsStore.open(study) as writer:  # a writer elsewhere keeps its log open
        writer.put_done("k", "base", {}, METRICS)
        monkeypatch.setattr(_storefile, "_writable", lambda folder: False)
        with pytest.raises(StoreError) as info:
            ResultsStore.open(study, readonly=True)
    text = str(info.value)
    assert "\n" not in text and "-wal" in text and "copy it (cp -a)" in text


def test_a_study_command_in_a_folder_it_cannot_write_is_one_line(tmp_path, monkeypatch):
    study = tmp_path / "study"
    _filled(study, n=1)

    def refuse(path, *args, **kwargs):
        raise PermissionError(13, "Permission denied", str(path))

    monkeypatch.setattr(_storefile.os, "open", refuse)
    with pytest.raises(StoreError) as info:
        ResultsStore.open(study)
    assert str(info.value) == (
        f"cannot create the lock file {study / STORE_FILENAME}.lock (Permission denied); make "
        f"{study} writable, or copy the study directory and use the copy"
    )


def test_a_symlink_planted_as_the_lock_file_is_refused_not_followed(tmp_path):
    study = tmp_path / "study"
    _filled(study, n=1)
    victim = tmp_path / "victim.txt"
    victim.write_text("precious\n")
    lock = study / (STORE_FILENAME + ".lock")
    lock.unlink()
    lock.symlink_to(victim)
    with pytest.raises(StoreError, match="is a symbolic link; remove it") as info:
        ResultsStore.open(study)
    assert "\n" not in str(info.value)
    assert victim.read_text() == "precious\n"


# -- 8. temporaries of killed atomic writes -----------------------------------------------------


def test_temporaries_of_killed_writes_are_removed_by_the_next_writer(tmp_path):
    study = tmp_path / "study"
    _filled(study, n=1)
    unit = study / "artefacts" / "base-gru-s0-abc"
    unit.mkdir(parents=True)
    killed = [unit / ".model.pt.k3j_x9q2.tmp", study / ".study.toml.a1b2c3d4.tmp"]
    for path in killed:
        path.write_bytes(b"half")
    old = time.time() - 3600
    os.utime(killed[1], (old, old))
    fresh = study / ".report.html.zzzzzzzz.tmp"  # a report being written right now
    fresh.write_bytes(b"")
    keep = [unit / "model.pt", unit / ".hidden.tmp", study / "notes.tmp"]
    for path in keep:
        path.write_bytes(b"mine")
    ResultsStore.open(study).close()
    assert not any(path.exists() for path in killed)
    assert fresh.exists() and all(path.read_bytes() == b"mine" for path in keep)
