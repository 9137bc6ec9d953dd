"""The rows of a results store: its schema, how values become JSON text, and the checks a row
read back must pass.

Every row carries a ``digest``, the SHA-256 of its stored values (:func:`digest`);
:func:`unit_problem` and :func:`meta_problem` compare a row against it and against the shape its
columns must have, and say in a few words what is wrong. :mod:`sparsernn.store` reads and writes
rows through these; :mod:`sparsernn._storecheck` checks and salvages whole files with them.
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import time
from collections.abc import Mapping, Sequence
from typing import Any

from sparsernn._storefile import APPLICATION, SCHEMA_VERSION

__all__ = [
    "JSON_COLUMNS",
    "RESERVED_META",
    "SCHEMA",
    "STATUSES",
    "UNIT_COLUMNS",
    "add_digest_columns",
    "columns",
    "create_schema",
    "digest",
    "dumps",
    "loads",
    "meta_problem",
    "unit_columns_select",
    "unit_problem",
]

STATUSES = ("done", "failed")

RESERVED_META = {"application", "schema_version"}
UNIT_COLUMNS = (
    "key",
    "kind",
    "status",
    "config",
    "metrics",
    "curve",
    "artefacts",
    "error",
    "wall_s",
    "started",
    "finished",
    "host",
    "attempts",
)
JSON_COLUMNS = {"config", "metrics", "curve", "artefacts"}
SCHEMA = """
CREATE TABLE meta (
    name TEXT PRIMARY KEY,
    value TEXT,
    digest TEXT
);
CREATE TABLE units (
    key TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('done', 'failed')),
    config TEXT NOT NULL,
    metrics TEXT,
    curve TEXT,
    artefacts TEXT,
    error TEXT,
    wall_s REAL,
    started REAL,
    finished REAL,
    host TEXT,
    attempts INTEGER NOT NULL DEFAULT 1,
    digest TEXT
);
CREATE INDEX units_kind_status ON units (kind, status)
"""


# --------------------------------------------------------------------------------------------
# JSON encoding


def plain(value: Any) -> Any:
    """Turn ``value`` into plain JSON data: NumPy/torch values via ``tolist``, paths to strings."""
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return float(value)
    if isinstance(value, Mapping):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if isinstance(value, (set, frozenset)):
        return sorted(plain(v) for v in value)
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    if hasattr(value, "tolist"):  # NumPy scalars and arrays, torch tensors
        return plain(value.tolist())
    if hasattr(value, "to_dict"):  # a Config
        return plain(value.to_dict())
    raise TypeError(f"cannot store {type(value).__name__} value {value!r} as JSON")


def dumps(value: Any) -> str | None:
    """``value`` as the JSON text of a column (None stays NULL); NaN is written as ``NaN``."""
    if value is None:
        return None
    return json.dumps(plain(value), allow_nan=True, separators=(",", ":"))


def loads(text: str | None) -> Any:
    """A JSON column's value back (NULL: None)."""
    return None if text is None else json.loads(text)


def digest(values: Sequence[Any]) -> str:
    """SHA-256 of a row's stored values (text, numbers, NULLs), as its ``digest`` column."""
    text = json.dumps(list(values), allow_nan=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


#: What each JSON column of a unit row must decode to, by status ("any": both statuses).
_SHAPES: dict[str, dict[str, tuple[type, ...]]] = {
    "config": {"any": (dict,)},
    "metrics": {"done": (dict,), "failed": (type(None),)},
    "curve": {"any": (list, type(None))},
    "artefacts": {"any": (dict, type(None))},
}


def unit_problem(raw: dict[str, Any], checksum: str | None) -> str | None:
    """What is wrong with a unit row as stored (``raw``: column -> stored value), or None."""
    if checksum is not None and digest([raw[c] for c in UNIT_COLUMNS]) != checksum:
        return "its values differ from their checksum (changed on disk)"
    if not isinstance(raw["key"], str) or not raw["key"]:
        return f"key {raw['key']!r} is not a run key"
    if raw["status"] not in STATUSES:
        return f"status {raw['status']!r} is not one of {', '.join(STATUSES)}"
    if not isinstance(raw["kind"], str) or not raw["kind"]:
        return f"kind {raw['kind']!r} is not a name"
    for name in ("wall_s", "started", "finished"):
        if raw[name] is not None and not _is_number(raw[name]):
            return f"{name} {raw[name]!r} is not a number"
    if not isinstance(raw["attempts"], int) or raw["attempts"] < 1:
        return f"attempts {raw['attempts']!r} is not a count"
    for name, shapes in _SHAPES.items():
        text = raw[name]
        if text is not None and not isinstance(text, str):
            return f"{name} is not text"
        try:
            value = loads(text)
        except ValueError as exc:
            return f"{name} is not valid JSON ({exc})"
        allowed = shapes.get("any", shapes.get(raw["status"], ()))
        if not isinstance(value, allowed):
            return f"{name} holds a {type(value).__name__} where a {allowed[0].__name__} belongs"
    curve = loads(raw["curve"])
    if curve is not None and not all(isinstance(p, dict) for p in curve):
        return "curve holds entries that are not objects"
    artefacts = loads(raw["artefacts"]) or {}
    if not all(isinstance(v, str) for v in artefacts.values()):
        return "artefacts holds a path that is not text"
    if (raw["status"] == "failed") != isinstance(raw["error"], str):
        return "error does not match the status"
    return None


def meta_problem(name: Any, value: Any, checksum: str | None) -> str | None:
    """What is wrong with a meta row as stored, or None."""
    if checksum is not None and digest([name, value]) != checksum:
        return "its value differs from its checksum (changed on disk)"
    if name in RESERVED_META:
        return None if isinstance(value, str) else "its value is not text"
    try:
        loads(value)
    except (TypeError, ValueError) as exc:
        return f"its value is not valid JSON ({exc})"
    return None


# --------------------------------------------------------------------------------------------
# The schema


def create_schema(conn: sqlite3.Connection) -> None:
    """Create the tables and the reserved meta entries of a new store on ``conn``.

    One rollback-journal transaction, so a reader sees either an empty file or the full schema;
    the switch to WAL comes after. A kill inside it leaves a hot journal, which the next open
    rolls back (:func:`sparsernn._storefile.recover_journal`).
    """
    meta = [
        ("application", APPLICATION),
        ("schema_version", str(SCHEMA_VERSION)),
        ("created", repr(time.time())),
    ]
    conn.execute("BEGIN IMMEDIATE")
    try:
        for statement in SCHEMA.split(";"):
            conn.execute(statement)
        conn.executemany(
            "INSERT INTO meta (name, value, digest) VALUES (?, ?, ?)",
            [(name, value, digest([name, value])) for name, value in meta],
        )
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


def columns(conn: sqlite3.Connection, table: str) -> set[str]:
    """The column names of ``table``."""
    return {row[1] for row in conn.execute(f"PRAGMA table_info({table})")}


def add_digest_columns(conn: sqlite3.Connection) -> None:
    """Give a store written before digests its ``digest`` columns (its rows stay unchecked)."""
    missing = [t for t in ("units", "meta") if "digest" not in columns(conn, t)]
    if not missing:
        return
    conn.execute("BEGIN IMMEDIATE")
    try:
        for table in missing:
            conn.execute(f"ALTER TABLE {table} ADD COLUMN digest TEXT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


def unit_columns_select(has_digest: bool) -> str:
    """The unit columns, then the digest (NULL in a store written before digests)."""
    return ", ".join([*UNIT_COLUMNS, "digest" if has_digest else "NULL"])
