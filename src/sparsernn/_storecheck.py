"""Checking a whole results store, and salvaging the rows of a damaged one.

:meth:`sparsernn.store.ResultsStore.verify` runs :func:`check_store` (SQLite's own
``integrity_check``, then every row against its checksum and shape) and gets a
:class:`StoreCheck`; :func:`sparsernn.store.repair` deletes the damaged rows of a file whose
structure is sound, or rebuilds a damaged file from every row that still reads and checks
(:func:`salvage`), after keeping a copy of it (:func:`backup`).
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from sparsernn import _storefile as _file
from sparsernn import _storerows as _rows
from sparsernn.errors import StoreError

__all__ = [
    "StoreCheck",
    "backup",
    "check_store",
    "rebuild_unopenable",
    "replace_store",
    "salvage",
]

#: Rows of a damaged file are read one rowid at a time up to this many (else a plain scan).
_MAX_SALVAGE_ROWID = 5_000_000


@dataclasses.dataclass
class StoreCheck:
    """What :meth:`ResultsStore.verify` found: ``problems`` (one line each; empty: sound),
    the rows read, those written before checksums existed (``unverified``), the rowids of the
    damaged rows (what :func:`repair` sets aside) and whether SQLite found the file's
    structure sound."""

    path: Path
    problems: list[str] = dataclasses.field(default_factory=list)
    units: int = 0
    meta: int = 0
    unverified: int = 0
    damaged_units: list[int] = dataclasses.field(default_factory=list)
    damaged_meta: list[int] = dataclasses.field(default_factory=list)
    structure_ok: bool = True

    @property
    def ok(self) -> bool:
        return not self.problems


def _shown(value: Any) -> str:
    """A stored key or name for a problem line: as it is when printable, else its repr."""
    return value if isinstance(value, str) and value.isprintable() else repr(value)


def _check_meta(conn: sqlite3.Connection, digests: dict[str, bool], check: StoreCheck) -> None:
    """Every meta row against its checksum and shape, into ``check``."""
    digest = "digest" if digests["meta"] else "NULL"
    try:
        for rowid, name, value, checksum in conn.execute(
            f"SELECT rowid, name, value, {digest} FROM meta"
        ):
            check.meta += 1
            check.unverified += checksum is None
            problem = _rows.meta_problem(name, value, checksum)
            if problem is not None:
                check.problems.append(f"meta entry {_shown(name)}: {problem}")
                check.damaged_meta.append(rowid)
    except sqlite3.DatabaseError as exc:
        check.problems.append(f"sqlite: reading meta stopped after {check.meta} rows ({exc})")


def _check_units(conn: sqlite3.Connection, digests: dict[str, bool], check: StoreCheck) -> None:
    """Every unit row against its checksum and shape, into ``check``."""
    select = _rows.unit_columns_select(digests["units"])
    try:
        for row in conn.execute(f"SELECT rowid, {select} FROM units"):
            check.units += 1
            check.unverified += row[-1] is None
            raw = dict(zip(_rows.UNIT_COLUMNS, row[1:-1], strict=True))
            problem = _rows.unit_problem(raw, row[-1])
            if problem is not None:
                check.problems.append(
                    f"unit {_shown(raw['key'])} ({_shown(raw['kind'])}): {problem}"
                )
                check.damaged_units.append(row[0])
    except sqlite3.DatabaseError as exc:
        check.problems.append(f"sqlite: reading units stopped after {check.units} rows ({exc})")


def check_store(
    conn: sqlite3.Connection, digests: dict[str, bool], path: Path, structure: bool
) -> StoreCheck:
    """Check the store at ``path`` open on ``conn`` (``digests``: which tables have the digest
    column); ``structure``: SQLite's ``integrity_check`` first. Changes nothing."""
    check = StoreCheck(path)
    if structure:
        check.problems += _file.integrity_problems(conn)
        check.structure_ok = not check.problems
    _check_meta(conn, digests, check)
    _check_units(conn, digests, check)
    return check


def rebuild_unopenable(path: Path, error: StoreError) -> tuple[StoreCheck, Path | None]:
    """:func:`repair` of a file whose meta table does not read: under the writer lock, a new
    store holding every unit row that still reads and checks (maybe none)."""
    fd = _file.acquire_lock(path.with_name(path.name + ".lock"), path, 0.0)
    try:
        check = StoreCheck(path, problems=[error.problem], structure_ok=False)
        copy = backup(path)
        conn = sqlite3.connect(path, isolation_level=None)
        try:
            try:
                digests = {t: "digest" in _rows.columns(conn, t) for t in ("units", "meta")}
            except sqlite3.DatabaseError:
                digests = {}
            rebuilt = salvage(conn, digests, path)
        finally:
            conn.close()
        replace_store(rebuilt, path)
        return check, copy
    finally:
        _file.release_lock(fd)


def replace_store(rebuilt: Path, path: Path) -> None:
    """Put the rebuilt file in place of ``path`` (whose connections are closed)."""
    for suffix in ("-wal", "-shm", "-journal"):  # the old file's: they must not meet the new one
        path.with_name(path.name + suffix).unlink(missing_ok=True)
    os.replace(rebuilt, path)


def backup(path: Path) -> Path:
    """Copy the store file (and its write-ahead log) beside it; the copy's path."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    copy = path.with_name(f"{path.name}.damaged-{stamp}")
    shutil.copy2(path, copy)
    for suffix in ("-wal", "-journal"):
        side = path.with_name(path.name + suffix)
        if side.is_file() and side.stat().st_size:
            shutil.copy2(side, copy.with_name(copy.name + suffix))
    return copy


def salvage(conn: sqlite3.Connection, digests: dict[str, bool], path: Path) -> Path:
    """A new store file beside ``path`` holding every row ``conn`` still reads that checks
    (``digests``: which tables have the digest column; a table missing there is not read)."""
    target = path.with_name(path.name + ".repairing")
    target.unlink(missing_ok=True)
    new = sqlite3.connect(target, isolation_level=None)
    try:
        _rows.create_schema(new)
        new.execute("BEGIN IMMEDIATE")
        for name, value, checksum in _readable(conn, digests, "meta", "name, value"):
            if (
                name not in _rows.RESERVED_META
                and _rows.meta_problem(name, value, checksum) is None
            ):
                new.execute(
                    "INSERT OR REPLACE INTO meta (name, value, digest) VALUES (?, ?, ?)",
                    (name, value, _rows.digest([name, value])),
                )
        columns = ", ".join(_rows.UNIT_COLUMNS)
        marks = ", ".join("?" for _ in range(len(_rows.UNIT_COLUMNS) + 1))
        for row in _readable(conn, digests, "units", columns):
            raw = dict(zip(_rows.UNIT_COLUMNS, row[:-1], strict=True))
            if _rows.unit_problem(raw, row[-1]) is None:
                values = [raw[c] for c in _rows.UNIT_COLUMNS]
                new.execute(
                    f"INSERT OR REPLACE INTO units ({columns}, digest) VALUES ({marks})",
                    (*values, _rows.digest(values)),
                )
        new.execute("COMMIT")
        new.execute("PRAGMA journal_mode = WAL")
    finally:
        new.close()
    return target


def _readable(
    conn: sqlite3.Connection, digests: dict[str, bool], table: str, columns: str
) -> Iterator[tuple[Any, ...]]:
    """The rows of ``table`` that SQLite can still read (``columns``, then the digest)."""
    if table not in digests:
        return
    digest = "digest" if digests[table] else "NULL"
    try:
        top = conn.execute(f"SELECT max(rowid) FROM {table}").fetchone()[0] or 0
    except sqlite3.DatabaseError:
        top = _MAX_SALVAGE_ROWID + 1
    if top > _MAX_SALVAGE_ROWID:  # read on until the damage stops the scan
        try:
            cursor = conn.execute(f"SELECT {columns}, {digest} FROM {table}")
            rows = iter(cursor.fetchone, None)
            yield from rows
        except sqlite3.DatabaseError:
            return
        return
    for rowid in range(1, top + 1):
        try:
            row = conn.execute(
                f"SELECT {columns}, {digest} FROM {table} WHERE rowid = ?", (rowid,)
            ).fetchone()
        except sqlite3.DatabaseError:
            continue
        if row is not None:
            yield row
