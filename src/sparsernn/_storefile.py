"""The SQLite file under a results store: finding, checking, locking and recovering it.

:class:`sparsernn.store.ResultsStore` opens its file through these helpers: a study directory
means ``<dir>/results.sqlite``; an existing file is checked (SQLite header, then the ``meta``
table) before anything is written next to it; one writer holds an exclusive ``flock`` on
``results.sqlite.lock``, which records its pid for the message another writer gets.

A writer killed inside a rollback-journal transaction (creating the schema, switching to WAL)
leaves a *hot journal*, ``results.sqlite-journal``: SQLite rolls it back at the next read-write
open, but a ``mode=ro`` connection cannot, and refuses the file. :func:`recover_journal` does
that rollback under the writer lock, for writers and readers alike. A reader of a folder it
cannot write opens the file ``immutable`` (no ``-shm`` to create) when no write-ahead log is
pending. Every SQLite error becomes one :class:`StoreError` line (:func:`sqlite_problem`).
"""

from __future__ import annotations

import errno
import os
import shlex
import sqlite3
import stat
import time
import urllib.parse
from pathlib import Path

from sparsernn.errors import StoreError

__all__ = [
    "APPLICATION",
    "SCHEMA_VERSION",
    "STORE_FILENAME",
    "acquire_lock",
    "DamagedStore",
    "connect_readonly",
    "damaged",
    "has_hot_journal",
    "header",
    "integrity_problems",
    "recover_journal",
    "recover_journal_as_reader",
    "release_lock",
    "resolve",
    "sqlite_problem",
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


def _beside(path: Path, suffix: str) -> Path:
    return path.with_name(path.name + suffix)


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


def has_hot_journal(path: Path) -> bool:
    """Whether a rollback journal with content lies beside ``path`` (a killed transaction's)."""
    return _size(_beside(path, "-journal")) > 0


def _writable(folder: Path) -> bool:
    return os.access(folder, os.W_OK | os.X_OK)


#: The fix of a store that cannot be used at all (the CLI words it per command).
_ELSEWHERE = "move it aside or use another study directory"


def _unusable(problem: str) -> StoreError:
    return StoreError(problem, _ELSEWHERE, elsewhere=True)


def _not_ours(path: Path) -> StoreError:
    return _unusable(f"{path} is not a sparsernn results store")


def _error_name(exc: sqlite3.Error) -> str:
    """SQLite's primary result code name (``SQLITE_FULL``), or "" on Pythons before 3.11."""
    name = str(getattr(exc, "sqlite_errorname", "") or "")
    return name.split("_")[0] + "_" + name.split("_")[1] if name.count("_") > 1 else name


class DamagedStore(StoreError):
    """A store whose file or rows are damaged: ``sparsernn verify DIR --repair`` deals with it
    (:func:`sparsernn.store.repair`)."""


def damaged(problem: str, folder: Path) -> DamagedStore:
    """The error of a store whose content is damaged, with the commands that deal with it."""
    where = shlex.quote(str(folder))
    return DamagedStore(
        problem,
        f"run `sparsernn verify {where}` to list the damage, then `sparsernn verify {where} "
        "--repair` to set it aside (the old file is kept; a rerun recomputes those units)",
    )


def sqlite_problem(exc: sqlite3.Error, path: Path) -> StoreError:
    """One line for an SQLite error on the store ``path``: what happened and the fix."""
    message = str(exc)
    name = _error_name(exc)
    folder = path.parent
    if name == "SQLITE_FULL" or "disk is full" in message:
        return StoreError(
            f"{path}: the disk is full ({message})",
            "free some space and rerun the command: the units stored so far are kept",
        )
    if name in ("SQLITE_CORRUPT", "SQLITE_NOTADB") or "malformed" in message:
        return damaged(f"{path} is damaged ({message})", folder)
    if name in ("SQLITE_BUSY", "SQLITE_LOCKED") or "locked" in message:
        return StoreError(f"{path} is locked by another program ({message}); wait for it and retry")
    if name in ("SQLITE_READONLY", "SQLITE_CANTOPEN", "SQLITE_PERM") or "readonly" in message:
        return StoreError(
            f"{path} cannot be written ({message})",
            f"make {folder} and the files in it writable, or copy the study directory and use "
            "the copy",
        )
    return StoreError(
        f"{path}: SQLite error ({message})",
        "check the disk and the file's permissions, then rerun the command",
    )


def connect_readonly(path: Path) -> sqlite3.Connection:
    """A read-only connection (a ``mode=ro`` URI): it can neither create nor change the file.

    SQLite's readers of a WAL database create ``-shm`` beside it; in a folder this process
    cannot write, the file is opened ``immutable`` instead, which is exact while no
    write-ahead log is pending (none is when no writer is running).
    """
    uri = "file:" + urllib.parse.quote(str(path.resolve())) + "?mode=ro"
    if not _writable(path.parent):
        if _size(_beside(path, "-wal")) > 0:
            raise StoreError(
                f"{path} has writes in its log {path.name}-wal that SQLite can read only with "
                f"write access to {path.parent}",
                "make the folder writable, or copy it (cp -a) and use the copy",
            )
        uri += "&immutable=1"
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
        if _error_name(exc) == "SQLITE_READONLY" and has_hot_journal(path):
            raise StoreError(
                f"{path} holds a transaction a killed writer left unfinished "
                f"({path.name}-journal), which only a writer can roll back",
                f"make {path.parent} writable and rerun, or run any study command on it once",
            ) from None
        raise damaged(f"{path} is a damaged SQLite file ({message})", path.parent) from None
    if rows.get("application") != APPLICATION:
        raise _not_ours(path)
    try:
        version = int(rows.get("schema_version", ""))
    except (TypeError, ValueError):
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


def recover_journal(path: Path) -> None:
    """Roll back a transaction a killed writer left (a hot ``-journal``): one read-write open.

    The caller holds the writer lock. A file SQLite cannot read is left as it is: the checks
    that follow name the problem. A journal that is not SQLite's is ignored by SQLite.
    """
    if not has_hot_journal(path):
        return
    try:
        conn = sqlite3.connect(path, timeout=10.0, isolation_level=None)
    except sqlite3.Error:
        return
    try:
        conn.execute("PRAGMA schema_version").fetchall()  # the first read rolls it back
    except sqlite3.Error:
        pass
    finally:
        conn.close()


def recover_journal_as_reader(path: Path) -> None:
    """For a reader: roll back a killed writer's hot journal when no writer is running.

    Takes the writer lock for the moment of the rollback (no wait); a running writer owns
    its journal, and a folder this process cannot write is left for :func:`_check_meta` to
    name.
    """
    if not has_hot_journal(path) or not _writable(path.parent):
        return
    try:
        fd = acquire_lock(_beside(path, ".lock"), path, 0.0)
    except StoreError:
        return
    try:
        recover_journal(path)
    finally:
        release_lock(fd)


def acquire_lock(lock_path: Path, db_path: Path, timeout: float) -> int:
    """Take the exclusive advisory writer lock, retrying for ``timeout`` seconds; return its fd.

    The lock file is opened with ``O_NOFOLLOW`` (a symbolic link planted there is refused, not
    followed and truncated) and must be a regular file.
    """
    import fcntl  # POSIX only; imported here so that reading a store works everywhere

    flags = os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0)
    try:
        fd = os.open(lock_path, flags, 0o644)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise StoreError(
                f"{lock_path} is a symbolic link; remove it (rm {shlex.quote(str(lock_path))}) "
                "and rerun: sparsernn creates its lock file itself"
            ) from None
        raise StoreError(
            f"cannot create the lock file {lock_path} ({exc.strerror})",
            f"make {lock_path.parent} writable, or copy the study directory and use the copy",
        ) from None
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise StoreError(f"{lock_path} is not a regular file; remove it and rerun")
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


def integrity_problems(conn: sqlite3.Connection, limit: int = 20) -> list[str]:
    """SQLite's own check of the file's structure (``PRAGMA integrity_check``): one line per
    problem, at most ``limit`` (and a count of the rest); empty when the file is sound."""
    try:
        rows = [str(r[0]) for r in conn.execute("PRAGMA integrity_check").fetchall()]
    except sqlite3.DatabaseError as exc:
        return [f"sqlite: the integrity check could not run ({exc})"]
    if rows == ["ok"]:
        return []
    lines = [f"sqlite: {r}" for r in rows[:limit]]
    if len(rows) > limit:
        lines.append(f"sqlite: ... and {len(rows) - limit} more problems")
    return lines
