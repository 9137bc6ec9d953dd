"""The results store of a study directory: one SQLite file holding every finished unit of work.

A study is hundreds of independent units (a base-model training, a pruning point with its
retraining curve, a structure-graph training), each identified by the hash of its frozen config.
The store records each unit once, in one transaction, so a study killed at any moment resumes by
skipping the keys already ``done``. Layout of a study directory::

    <study_dir>/results.sqlite        the store (SQLite, WAL mode, synchronous=FULL)
    <study_dir>/results.sqlite.lock   advisory lock of the single writer, holds its pid
    <study_dir>/artefacts/<label>-<key>/  checkpoints and other files of one unit
                                      (``<label>``, e.g. ``base-gru-s0``, since labels exist)

One process writes (it holds an exclusive ``flock`` on the lock file until it closes the store);
any number of processes may read at the same time with ``readonly=True``, which takes no lock and
opens the database read-only, so ``sparsernn status DIR`` works while a study runs.

JSON columns (``config``, ``metrics``, ``curve``, ``artefacts``) are written by :mod:`json` with
``allow_nan=True``: NaN and infinities are stored as the tokens ``NaN``/``Infinity`` and come back
as the same floats. NumPy scalars and arrays (anything with ``tolist``) are stored as plain numbers
and lists. SQLite's own ``json_*`` functions before 3.42 reject those tokens; read the columns
through this module.

Every row carries a ``digest``: the SHA-256 of its stored values. A row read back is checked
against it and against the shape its columns must have (JSON objects where objects belong), so a
value changed on disk is an error naming the unit, never a silently different number;
:meth:`ResultsStore.verify` checks a whole store (with SQLite's ``integrity_check``) and
:func:`repair` sets damaged rows aside. Rows written before digests existed (the column is
added when a writer opens such a store) are read unchecked.

The schema, the JSON encoding and the checks of one row live in :mod:`sparsernn._storerows`;
whole-store checks and salvage in :mod:`sparsernn._storecheck`; the file itself (finding,
locking, recovering it) in :mod:`sparsernn._storefile`.
"""

from __future__ import annotations

import os
import socket
import sqlite3
import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sparsernn import _storecheck as _check
from sparsernn import _storefile as _file
from sparsernn import _storerows as _rows
from sparsernn._files import atomic_save, atomic_write_bytes, remove_stale_temporaries
from sparsernn._storecheck import StoreCheck
from sparsernn._storefile import SCHEMA_VERSION, STORE_FILENAME
from sparsernn._storerows import STATUSES
from sparsernn.errors import StoreError

if TYPE_CHECKING:
    import pandas as pd

__all__ = [
    "SCHEMA_VERSION",
    "STORE_FILENAME",
    "STATUSES",
    "ResultsStore",
    "StoreCheck",
    "artefact_dir",
    "repair",
    "atomic_save",  # re-exported: the atomic-write helpers live in sparsernn._files
    "atomic_write_bytes",
]

_StrPath = str | os.PathLike[str]
_FRAME_COLUMNS = ["key", "kind", "status", "wall_s", "finished", "attempts"]
#: Temporary files of killed atomic writes are removed from the study directory when older
#: than this (a report may be writing one there right now); in ``artefacts/``, which only the
#: writer writes, at once.
_STALE_TEMPORARY_S = 600.0


def _flat(dicts: list[Mapping[str, Any] | None]) -> pd.DataFrame:
    """One row per dict, nested dicts flattened to dotted columns (``{"a": {"b": 1}}``: ``a.b``)."""
    import pandas as pd

    return pd.json_normalize([dict(d or {}) for d in dicts], sep=".")


# --------------------------------------------------------------------------------------------
# The store


class ResultsStore:
    """Finished and failed units of one study, keyed by run key, in ``<study_dir>/results.sqlite``.

    Open with :meth:`open` (or the constructor); use as a context manager or call :meth:`close`.
    A writer holds the study's lock until it closes; ``readonly=True`` takes no lock.
    """

    def __init__(self, path: _StrPath, *, readonly: bool = False, lock_timeout: float = 0.0):
        self._path = _file.resolve(path)
        self._readonly = readonly
        self._mutex = threading.RLock()
        self._lock_fd: int | None = None
        self._conn = self._open_readonly() if readonly else self._open_writer(lock_timeout)
        self._digests = self._digest_columns()

    @classmethod
    def open(
        cls, path: _StrPath, *, readonly: bool = False, lock_timeout: float = 0.0
    ) -> ResultsStore:
        """Open (creating if needed, unless ``readonly``) the store of a study dir or file.

        Raises :class:`StoreError` if the file is not a sparsernn store, has a newer schema, or
        another process is writing to it (after retrying for ``lock_timeout`` seconds).
        """
        return cls(path, readonly=readonly, lock_timeout=lock_timeout)

    def _open_readonly(self) -> sqlite3.Connection:
        if _file.header(self._path) is not None:
            _file.recover_journal_as_reader(self._path)
        header = _file.header(self._path)
        if not header:
            state = "does not exist" if header is None else "is empty"
            raise StoreError(
                f"{self._path} {state}; check the directory, or run a study there first"
            )
        _file.validate_existing(self._path)
        conn = _file.connect_readonly(self._path)
        conn.execute("PRAGMA query_only = ON")
        return conn

    def _open_writer(self, lock_timeout: float) -> sqlite3.Connection:
        # Check an existing file before creating anything next to it, so a foreign file is
        # never touched; check again under the lock in case another writer created it meanwhile.
        # (A killed writer's hot journal is rolled back under the lock first: until then a
        # read-only check would refuse a sound file.)
        if _file.header(self._path) and not _file.has_hot_journal(self._path):
            _file.validate_existing(self._path)
        try:
            self._path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreError(
                f"cannot create study directory {self._path.parent} ({exc.strerror})",
                "choose another study directory",
                elsewhere=True,
            ) from None
        lock_path = self._path.with_name(self._path.name + ".lock")
        self._lock_fd = _file.acquire_lock(lock_path, self._path, lock_timeout)
        try:
            _file.recover_journal(self._path)
            is_new = not _file.header(self._path)
            if not is_new:
                _file.validate_existing(self._path)
            try:
                conn = sqlite3.connect(
                    self._path, timeout=10.0, isolation_level=None, check_same_thread=False
                )
                if is_new:
                    _rows.create_schema(conn)
                conn.execute("PRAGMA journal_mode = WAL")
                conn.execute("PRAGMA synchronous = FULL")
                _rows.add_digest_columns(conn)
            except sqlite3.Error as exc:
                raise _file.sqlite_problem(exc, self._path) from None
            self._remove_stale_temporaries()
            return conn
        except BaseException:
            _file.release_lock(self._lock_fd)
            self._lock_fd = None
            raise

    def _remove_stale_temporaries(self) -> None:
        """Temporary files of atomic writes a kill interrupted (never renamed into place)."""
        remove_stale_temporaries(self.study_dir, min_age_s=_STALE_TEMPORARY_S)
        artefacts = self.study_dir / "artefacts"
        if artefacts.is_dir():
            for folder in [artefacts, *(p for p in artefacts.iterdir() if p.is_dir())]:
                remove_stale_temporaries(folder)

    def _digest_columns(self) -> dict[str, bool]:
        """Per table, whether it has the ``digest`` column (stores written before it lack it)."""
        return {table: "digest" in _rows.columns(self._conn, table) for table in ("units", "meta")}

    # -- lifecycle ---------------------------------------------------------------------------

    @property
    def path(self) -> Path:
        """The SQLite file."""
        return self._path

    @property
    def study_dir(self) -> Path:
        """The study directory holding the store and ``artefacts/``."""
        return self._path.parent

    @property
    def readonly(self) -> bool:
        return self._readonly

    def close(self) -> None:
        """Close the database and release the writer lock; safe to call twice."""
        with self._mutex:
            try:
                self._conn.close()
            finally:
                if self._lock_fd is not None:
                    _file.release_lock(self._lock_fd)
                    self._lock_fd = None

    def __enter__(self) -> ResultsStore:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        mode = "readonly" if self._readonly else "writer"
        return f"ResultsStore({str(self._path)!r}, {mode})"

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        """One write transaction: all of it is committed, or none of it."""
        if self._readonly:
            raise StoreError(
                f"{self._path} was opened read-only; open it without readonly=True to write"
            )
        with self._mutex, self._sqlite_errors():
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                yield self._conn
            except BaseException:
                if self._conn.in_transaction:
                    self._conn.execute("ROLLBACK")
                raise
            self._conn.execute("COMMIT")

    @contextmanager
    def _sqlite_errors(self) -> Iterator[None]:
        """SQLite's errors as one-line :class:`StoreError` s (full disk, damaged file...)."""
        try:
            yield
        except sqlite3.Error as exc:
            raise _file.sqlite_problem(exc, self._path) from None

    def _query(self, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        with self._mutex, self._sqlite_errors():
            return self._conn.execute(sql, params).fetchall()

    # -- meta --------------------------------------------------------------------------------

    def set_meta(self, name: str, value: Any) -> None:
        """Store a JSON value under ``name`` (e.g. ``"study"``: the study config)."""
        self.update_meta({name: value})

    def update_meta(self, values: Mapping[str, Any]) -> None:
        """Store several JSON values by name in one transaction: all of them, or none."""
        reserved = sorted(set(values) & _rows.RESERVED_META)
        if reserved:
            raise ValueError(f"meta name {reserved[0]!r} is reserved by the store")
        texts = [(name, _rows.dumps(value)) for name, value in values.items()]
        rows = [(name, text, _rows.digest([name, text])) for name, text in texts]
        with self._transaction() as conn:
            conn.executemany(
                "INSERT OR REPLACE INTO meta (name, value, digest) VALUES (?, ?, ?)", rows
            )

    def get_meta(self, name: str, default: Any = None) -> Any:
        """The value stored by :meth:`set_meta` (reserved names come back as raw text).

        Raises :class:`StoreError` when the stored value is damaged.
        """
        digest = ", digest" if self._digests["meta"] else ", NULL"
        rows = self._query(f"SELECT value{digest} FROM meta WHERE name = ?", (name,))
        if not rows:
            return default
        value, checksum = rows[0]
        problem = _rows.meta_problem(name, value, checksum)
        if problem is not None:
            raise _file.damaged(f"{self._path}: meta entry {name!r} is damaged ({problem})",
                                self.study_dir)  # fmt: skip
        return value if name in _rows.RESERVED_META else _rows.loads(value)

    # -- writes ------------------------------------------------------------------------------

    def put_done(
        self,
        key: str,
        kind: str,
        config: Mapping[str, Any],
        metrics: Mapping[str, Any],
        curve: list[Mapping[str, Any]] | None = None,
        artefacts: Mapping[str, str | os.PathLike[str]] | None = None,
        wall_s: float | None = None,
        started: float | None = None,
        *,
        overwrite: bool = False,
    ) -> None:
        """Record a finished unit in one transaction.

        Replaces a ``failed`` row (a retry; ``attempts`` goes up by one). A key already ``done``
        raises :class:`StoreError` unless ``overwrite=True``. Absolute artefact paths inside the
        study directory are stored relative to it.
        """
        if not isinstance(metrics, Mapping):
            raise TypeError(f"metrics must be a dict, got {type(metrics).__name__}")
        if curve is not None and not all(isinstance(row, Mapping) for row in curve):
            raise TypeError("curve must be a list of dicts (one per epoch)")
        values = {
            "metrics": _rows.dumps(metrics),
            "curve": _rows.dumps(list(curve)) if curve is not None else None,
            "artefacts": _rows.dumps(self._relative(artefacts)) if artefacts is not None else None,
            "error": None,
        }
        self._put(key, kind, "done", config, values, wall_s, started, overwrite)

    def put_failed(
        self,
        key: str,
        kind: str,
        config: Mapping[str, Any],
        error: str,
        wall_s: float | None = None,
        started: float | None = None,
    ) -> None:
        """Record a failed unit in one transaction; a failed key may fail again (``attempts``+1).

        A key already ``done`` raises :class:`StoreError`: a failure must not erase a result.
        """
        values = {"metrics": None, "curve": None, "artefacts": None, "error": str(error)}
        self._put(key, kind, "failed", config, values, wall_s, started, False)

    def _put(
        self,
        key: str,
        kind: str,
        status: str,
        config: Mapping[str, Any],
        values: dict[str, Any],
        wall_s: float | None,
        started: float | None,
        overwrite: bool,
    ) -> None:
        if not isinstance(key, str) or not key:
            raise ValueError(f"key must be a non-empty string, got {key!r}")
        if not isinstance(kind, str) or not kind:
            raise ValueError(f"kind must be a non-empty string, got {kind!r}")
        if hasattr(config, "to_dict"):
            config = config.to_dict()
        if not isinstance(config, Mapping):
            raise TypeError(f"config must be a dict or Config, got {type(config).__name__}")
        finished = time.time()
        if wall_s is None and started is not None:
            wall_s = finished - started
        row = {
            "key": key,
            "kind": kind,
            "status": status,
            "config": _rows.dumps(config),
            **values,
            "wall_s": None if wall_s is None else float(wall_s),
            "started": None if started is None else float(started),
            "finished": finished,
            "host": socket.gethostname(),
        }
        with self._transaction() as conn:
            sql = "SELECT status, attempts FROM units WHERE key = ?"
            old = conn.execute(sql, (key,)).fetchone()
            if old is not None and old[0] == "done" and not overwrite:
                if status == "done":
                    action = "pass overwrite=True to replace it"
                else:
                    action = "a failure must not replace a stored result"
                raise StoreError(
                    f"unit {key} ({kind}) is already stored as done in {self._path}; {action}"
                )
            row["attempts"] = 1 if old is None else old[1] + 1
            row["digest"] = _rows.digest([row[c] for c in _rows.UNIT_COLUMNS])
            names = ", ".join(row)
            marks = ", ".join("?" for _ in row)
            conn.execute(
                f"INSERT OR REPLACE INTO units ({names}) VALUES ({marks})", tuple(row.values())
            )

    def _relative(self, artefacts: Mapping[str, Any]) -> dict[str, str]:
        """Artefact paths as strings, relative to the study directory when inside it.

        A relative path is taken relative to the working directory (as ``open`` would), so
        ``runs/x/artefacts/k/model.pt`` for a store in ``runs/x`` is stored as
        ``artefacts/k/model.pt``, which stays valid when the study directory moves.
        """
        root = self.study_dir.resolve()
        out = {}
        for name, value in artefacts.items():
            p = Path(value)
            if p.resolve().is_relative_to(root):
                p = p.resolve().relative_to(root)
            out[str(name)] = p.as_posix()
        return out

    # -- reads -------------------------------------------------------------------------------

    def has(self, key: str, status: str | None = "done") -> bool:
        """Whether ``key`` is stored with ``status`` (any status when None)."""
        if status is None:
            rows = self._query("SELECT 1 FROM units WHERE key = ?", (key,))
        else:
            rows = self._query("SELECT 1 FROM units WHERE key = ? AND status = ?", (key, status))
        return bool(rows)

    def get(self, key: str) -> dict[str, Any] | None:
        """The decoded row of ``key`` (JSON columns as Python objects), or None.

        Raises :class:`StoreError` when the row is damaged (see :meth:`verify`).
        """
        rows = self._query(f"SELECT {self._unit_select} FROM units WHERE key = ?", (key,))
        return self._decode(rows[0]) if rows else None

    @property
    def _unit_select(self) -> str:
        """The unit columns, then the digest (NULL in a store written before digests)."""
        return _rows.unit_columns_select(self._digests["units"])

    def _decode(self, row: tuple[Any, ...]) -> dict[str, Any]:
        """A row of :attr:`_unit_select` with its JSON columns decoded, after checking it."""
        raw = dict(zip(_rows.UNIT_COLUMNS, row[:-1], strict=True))
        problem = _rows.unit_problem(raw, row[-1])
        if problem is not None:
            raise _file.damaged(
                f"{self._path}: stored unit {raw['key']} is damaged ({problem})", self.study_dir
            )
        return {
            name: _rows.loads(v) if name in _rows.JSON_COLUMNS else v for name, v in raw.items()
        }

    def _where(self, kind: str | None, status: str | None) -> tuple[str, tuple[Any, ...]]:
        if status is not None and status not in STATUSES:
            raise ValueError(f"status must be one of {STATUSES} or None, got {status!r}")
        clauses, params = [], []
        if kind is not None:
            clauses.append("kind = ?")
            params.append(kind)
        if status is not None:
            clauses.append("status = ?")
            params.append(status)
        return (" WHERE " + " AND ".join(clauses) if clauses else ""), tuple(params)

    def _rows(self, kind: str | None, status: str | None) -> list[dict[str, Any]]:
        where, params = self._where(kind, status)
        sql = f"SELECT {self._unit_select} FROM units{where} ORDER BY key"
        return [self._decode(row) for row in self._query(sql, params)]

    def keys(self, kind: str | None = None, status: str | None = None) -> set[str]:
        """Keys of the units of ``kind`` with ``status`` (None: any)."""
        where, params = self._where(kind, status)
        return {row[0] for row in self._query(f"SELECT key FROM units{where}", params)}

    def count(self, kind: str | None = None) -> dict[str, int]:
        """Number of units per status, e.g. ``{"done": 12, "failed": 1}`` (zeros included)."""
        where, params = self._where(kind, None)
        sql = f"SELECT status, COUNT(*) FROM units{where} GROUP BY status"
        counts = dict.fromkeys(STATUSES, 0)
        counts.update(dict(self._query(sql, params)))
        return counts

    def frame(self, kind: str | None = None, status: str | None = "done") -> pd.DataFrame:
        """One row per unit: ``key, kind, status, wall_s, finished, attempts``, config, metrics.

        Config entries become ``config.<name>`` columns and metrics keep their names; nested dicts
        are flattened with dots (``config.model.cell``) by :func:`pandas.json_normalize`, in its
        column order. A metric whose name clashes with another column is renamed
        ``metrics.<name>``. Rows are sorted by key; ``status=None``: all units.
        """
        import pandas as pd

        units = self._rows(kind, status)
        fixed = pd.DataFrame.from_records(
            [[u[c] for c in _FRAME_COLUMNS] for u in units], columns=_FRAME_COLUMNS
        )
        config = _flat([u["config"] for u in units]).add_prefix("config.")
        metrics = _flat([u["metrics"] for u in units])
        clash = [c for c in metrics if c in _FRAME_COLUMNS or c.startswith(("config.", "metrics."))]
        metrics = metrics.rename(columns={c: f"metrics.{c}" for c in clash})
        return pd.concat([fixed, config, metrics], axis=1)

    def curves(self, kind: str | None = None) -> pd.DataFrame:
        """Training curves in long format: one row per (unit, epoch) of the ``done`` units.

        Columns: ``key, kind, epoch``, the curve dict's entries (flattened), then ``config.*``.
        ``epoch`` is taken from the curve dict when present, else the 0-based list index.
        """
        import pandas as pd

        units = [u for u in self._rows(kind, "done") if u["curve"]]
        rows = [(u["key"], u["kind"], i) for u in units for i in range(len(u["curve"]))]
        ids = pd.DataFrame(rows, columns=["key", "kind", "epoch"])
        points = _flat([point for u in units for point in u["curve"]])
        if "epoch" in points:
            ids["epoch"] = points.pop("epoch").fillna(ids["epoch"])
        clash = [c for c in points if c in ("key", "kind") or c.startswith("config.")]
        points = points.rename(columns={c: f"curve.{c}" for c in clash})
        config = _flat([u["config"] for u in units]).add_prefix("config.")
        config = config.loc[config.index.repeat([len(u["curve"]) for u in units])]
        return pd.concat([ids, points, config.reset_index(drop=True)], axis=1)

    def failures(self) -> pd.DataFrame:
        """The failed units: ``key, kind, error, attempts, finished``, sorted by key."""
        import pandas as pd

        columns = ["key", "kind", "error", "attempts", "finished"]
        records = [{c: unit[c] for c in columns} for unit in self._rows(None, "failed")]
        return pd.DataFrame.from_records(records, columns=columns)

    def verify(self, structure: bool = True) -> StoreCheck:
        """Check the whole store; change nothing (:func:`repair` sets damaged rows aside).

        ``structure``: run SQLite's ``integrity_check`` of the file's pages and indexes (a full
        read); then every row is checked against its checksum and the shape of its columns.
        """
        with self._mutex:
            return _check.check_store(self._conn, self._digests, self._path, structure)

    def summary(self) -> dict[str, Any]:
        """Totals for a status line: ``done``, ``failed``, ``wall_s`` overall and ``by_kind``."""
        rows = self._query(
            "SELECT kind, status, COUNT(*), COALESCE(SUM(wall_s), 0) FROM units "
            "GROUP BY kind, status ORDER BY kind"
        )
        by_kind: dict[str, dict[str, Any]] = {}
        for kind, status, n_units, wall_s in rows:
            entry = by_kind.setdefault(kind, {**dict.fromkeys(STATUSES, 0), "wall_s": 0.0})
            entry[status] = n_units
            entry["wall_s"] += float(wall_s)
        totals: dict[str, Any] = {status: 0 for status in STATUSES}
        totals["wall_s"] = 0.0
        for entry in by_kind.values():
            for name in (*STATUSES, "wall_s"):
                totals[name] += entry[name]
        return {**totals, "by_kind": by_kind}


def artefact_dir(
    store: ResultsStore, key: str, label: str | None = None, *, create: bool = True
) -> Path:
    """``<study_dir>/artefacts/<label>-<key>/`` (``<key>/`` without a label), created on demand
    (not for a read-only store, nor with ``create=False``: a path to look at).

    ``label`` is a readable prefix such as ``base-gru-s0``; characters other than letters,
    digits, ``.``, ``_`` and ``-`` become ``_``. Folders named by the key alone (studies run
    before labels) stay valid: the store records each artefact's actual path.
    """
    if not key or key in (".", "..") or "/" in key or os.sep in key:
        raise ValueError(f"key {key!r} cannot name a directory")
    name = key
    if label:
        name = "".join(c if c.isascii() and (c.isalnum() or c in "._-") else "_" for c in label)
        name = f"{name.strip('.')}-{key}"
    directory = store.study_dir / "artefacts" / name
    if create and not store.readonly:
        directory.mkdir(parents=True, exist_ok=True)
    return directory


def repair(path: _StrPath) -> tuple[StoreCheck, Path | None]:
    """Set the damaged rows of a store aside; return what :meth:`ResultsStore.verify` found and
    the copy of the damaged file (None when nothing was damaged).

    The file is first copied to ``results.sqlite.damaged-<time>`` (with its ``-wal``), so
    nothing is lost. A store whose SQLite structure is sound loses its damaged rows; one whose
    structure is damaged is rebuilt from every row that still reads and checks. Either way a
    rerun of the study recomputes the units set aside. Takes the writer lock.
    """
    try:
        store = ResultsStore.open(path)
    except _file.DamagedStore as exc:  # its meta table does not read: rebuild what does
        return _check.rebuild_unopenable(_file.resolve(path), exc)
    with store:
        check = store.verify()
        if check.ok:
            return check, None
        copy = _check.backup(store.path)
        if check.structure_ok:
            with store._transaction() as conn:
                for table, rowids in (("units", check.damaged_units), ("meta", check.damaged_meta)):
                    conn.executemany(f"DELETE FROM {table} WHERE rowid = ?", [(r,) for r in rowids])
            return check, copy
        rebuilt = _check.salvage(store._conn, store._digests, store.path)
        store._conn.close()
        _check.replace_store(rebuilt, store.path)
        store._conn = sqlite3.connect(store.path, isolation_level=None, check_same_thread=False)
    return check, copy
