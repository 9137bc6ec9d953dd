"""The SQLite file under a results store: finding, checking and locking it.

:class:`sparsernn.store.ResultsStore` opens its file through these helpers: a study directory
means ``<dir>/results.sqlite``; an existing file is checked (SQLite header, then the ``meta``
table) before anything is written next to it; one writer holds an exclusive ``flock`` on
``results.sqlite.lock``, which records its pid for the message another writer gets.
"""

from __future__ import annotations

import os
import sqlite3
import time
import urllib.parse
from pathlib import Path

from sparsernn.errors import StoreError

__all__ = [
    "APPLICATION",
    "SCHEMA_VERSION",
    "STORE_FILENAME",
    "acquire_lock",
    "connect_readonly",
    "header",
    "release_lock",
    "resolve",
    "validate_existing",
]

SCHEMA_VERSION = 1
STORE_FILENAME = "results.sqlite"
APPLICATION = "sparsernn"

_SQLITE_MAGIC = b"SQLite format 3\x00"
_FILE_SUFFIXES = {".sqlite", ".sqlite3", ".db"}


def resolve(path: str | os.PathLike[str]) -> Path:
    """A study directory means ``<dir>/results.sqlite``; an existing or ``*.sqlite`` file itself."""
    p = Path(path).expanduser()
    if p.is_dir():
        return p / STORE_FILENAME
    if p.is_file() or p.suffix in _FILE_SUFFIXES:
        return p
    return p / STORE_FILENAME


def header(path: Path) -> bytes | None:
    """The first 16 bytes of ``path``, or None when it does not exist."""
    try:
        with open(path, "rb") as fh:
            return fh.read(len(_SQLITE_MAGIC))
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise StoreError(f"{path} cannot be read ({exc.strerror}); check its permissions") from None


#: The fix of a store that cannot be used at all (the CLI words it per command).
_ELSEWHERE = "move it aside or use another study directory"


def _unusable(problem: str) -> StoreError:
    return StoreError(problem, _ELSEWHERE, elsewhere=True)


def _not_ours(path: Path) -> StoreError:
    return _unusable(f"{path} is not a sparsernn results store")


def connect_readonly(path: Path) -> sqlite3.Connection:
    """A read-only connection (a ``mode=ro`` URI): it can neither create nor change the file."""
    uri = "file:" + urllib.parse.quote(str(path.resolve())) + "?mode=ro"
    return sqlite3.connect(
        uri, uri=True, timeout=10.0, isolation_level=None, check_same_thread=False
    )


def _check_meta(conn: sqlite3.Connection, path: Path) -> None:
    """Raise :class:`StoreError` unless ``conn`` is a sparsernn store of a supported schema."""
    try:
        rows = dict(conn.execute("SELECT name, value FROM meta").fetchall())
        conn.execute("SELECT key, status, attempts FROM units LIMIT 0").fetchall()
    except sqlite3.DatabaseError as exc:
        message = str(exc)
        if message.startswith("no such"):
            raise _not_ours(path) from None
        if "locked" in message:
            raise StoreError(
                f"{path} is locked by another program ({message}); wait for it and retry"
            ) from None
        raise _unusable(f"{path} is a damaged SQLite file ({message})") from None
    if rows.get("application") != APPLICATION:
        raise _not_ours(path)
    try:
        version = int(rows.get("schema_version", ""))
    except ValueError:
        raise _unusable(
            f"{path} has an unreadable schema version {rows.get('schema_version')!r}"
        ) from None
    if version > SCHEMA_VERSION:
        raise StoreError(
            f"{path}: schema version {version} is newer than this sparsernn supports "
            f"({SCHEMA_VERSION}); upgrade sparsernn"
        )
    if version < 1:
        raise _unusable(f"{path}: schema version {version} is unknown")


def validate_existing(path: Path) -> None:
    """Check an existing non-empty file without writing to it (header, then the meta table)."""
    if header(path) != _SQLITE_MAGIC:
        raise _not_ours(path)
    try:
        conn = connect_readonly(path)
    except sqlite3.Error as exc:
        raise StoreError(f"{path} cannot be opened ({exc}); check its permissions") from None
    try:
        _check_meta(conn, path)
    finally:
        conn.close()


def acquire_lock(lock_path: Path, db_path: Path, timeout: float) -> int:
    """Take the exclusive advisory writer lock, retrying for ``timeout`` seconds; return its fd."""
    import fcntl  # POSIX only; imported here so that reading a store works everywhere

    fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
    deadline = time.monotonic() + max(timeout, 0.0)
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            break
        except BlockingIOError:
            if time.monotonic() >= deadline:
                holder = os.pread(fd, 64, 0).decode(errors="replace").strip() or "unknown"
                os.close(fd)
                raise StoreError(
                    f"{db_path} is in use by another sparsernn process (pid {holder}); wait for "
                    "it to finish or use another study directory"
                ) from None
            time.sleep(min(0.05, max(deadline - time.monotonic(), 0.0)))
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    return fd


def release_lock(fd: int) -> None:
    """Empty the lock file's pid, release the lock and close ``fd``."""
    import fcntl

    try:
        os.ftruncate(fd, 0)
        fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)
