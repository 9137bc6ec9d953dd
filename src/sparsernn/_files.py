"""Atomic file writes for the whole package, with the permissions a plain ``open`` would give.

A temporary file in the target's folder is written, fsynced and renamed over the target, so a
reader sees the old file or the new one, never half of one. ``tempfile.mkstemp`` creates its
file 0600; :func:`atomic_write` gives the result the mode of the file it replaces, or
``0o666 & ~umask`` for a new file (0644 under the usual umask 022), as ``open(path, "w")`` does.
"""

from __future__ import annotations

import os
import stat
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

__all__ = [
    "atomic_save",
    "atomic_write",
    "atomic_write_bytes",
    "current_umask",
    "new_file_mode",
    "remove_stale_temporaries",
]


def current_umask() -> int:
    """This process's umask (Linux: read from /proc, so no other thread sees a changed one)."""
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)  # the only portable way to read it is to set it
    os.umask(mask)
    return mask


def new_file_mode(path: str | os.PathLike[str]) -> int:
    """The mode for writing ``path``: the existing file's, else ``0o666 & ~umask``."""
    try:
        return stat.S_IMODE(os.stat(path).st_mode)
    except FileNotFoundError:
        return 0o666 & ~current_umask()


def _fsync_dir(directory: Path) -> None:
    """Make a rename in ``directory`` durable (best effort where directories cannot be opened)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def atomic_write(
    path: str | os.PathLike[str],
    write: Callable[[IO[bytes]], Any],
    *,
    mkdir: bool = True,
) -> Path:
    """Write ``path`` by ``write(binary_file)``; ``path`` is then the old or the new file.

    If ``write`` raises, the temporary file is removed and ``path`` is untouched. ``mkdir``:
    create missing parent folders (else a missing folder raises ``FileNotFoundError``).
    """
    path = Path(path)
    parent = path.parent
    if mkdir:
        parent.mkdir(parents=True, exist_ok=True)
    mode = new_file_mode(path)
    fd, tmp_name = tempfile.mkstemp(dir=parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            os.chmod(tmp_name, mode)
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp_name, path)
    except BaseException:
        try:
            os.unlink(tmp_name)
        except FileNotFoundError:
            pass
        raise
    _fsync_dir(parent)
    return path


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes, *, mkdir: bool = True) -> Path:
    """Write ``data`` to ``path`` atomically (see :func:`atomic_write`)."""
    return atomic_write(path, lambda fh: fh.write(data), mkdir=mkdir)


def atomic_save(
    obj: Any, path: str | os.PathLike[str], save_fn: Callable[[Any, IO[bytes]], Any]
) -> Path:
    """Save ``obj`` by ``save_fn(obj, binary_file)`` atomically (see :func:`atomic_write`).

    ``torch.save`` and ``pickle.dump`` fit ``save_fn`` as they are.
    """
    return atomic_write(path, lambda fh: save_fn(obj, fh))


def _is_temporary(name: str) -> bool:
    """Whether ``name`` is an :func:`atomic_write` temporary: ``.<target>.<random>.tmp``."""
    if not (name.startswith(".") and name.endswith(".tmp")):
        return False
    stem = name[1 : -len(".tmp")]
    target, dot, random = stem.rpartition(".")
    return bool(target and dot and len(random) == 8)


def remove_stale_temporaries(folder: str | os.PathLike[str], min_age_s: float = 0.0) -> int:
    """Remove the temporaries of :func:`atomic_write` in ``folder`` that a kill left behind
    (not renamed into place), those older than ``min_age_s``; return how many went.

    The caller makes sure no other process is writing one there now, or picks an age no write
    takes. Best effort: a file that cannot be removed is left.
    """
    removed = 0
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return 0
    now = time.time()
    for entry in entries:
        if not _is_temporary(entry.name):
            continue
        try:
            if not entry.is_file(follow_symlinks=False):
                continue
            if now - entry.stat(follow_symlinks=False).st_mtime < min_age_s:
                continue
            os.unlink(entry.path)
            removed += 1
        except OSError:
            continue
    return removed
