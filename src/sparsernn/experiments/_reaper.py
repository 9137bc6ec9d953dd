"""A watchdog that ends a study's helper processes when its driver dies, however it dies.

A driver killed by ``SIGKILL`` runs no cleanup: its pool workers (hundreds of MB each) and a
Ray cluster it started (GCS, raylet, their agents and workers) would run on forever. The driver
starts one small :class:`Reaper` process (plain Python, no imports of this package, so it is up
in a fraction of a second) and tells it, through a pipe, the pid of every helper as it starts.
When the driver ends normally it says ``bye`` and the reaper leaves them alone; when the pipe
closes without a ``bye`` (the driver died), the reaper kills every registered process and its
descendants (read from ``/proc`` where it exists) and exits. The reaper runs in its own session,
so a terminal's Ctrl-C, which the driver handles, does not reach it.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterable
from typing import IO

__all__ = ["Reaper"]

#: The reaper's program (standard library only). It reads ``pid N`` and ``bye`` lines.
_PROGRAM = r"""
import os, signal, sys

def tree(roots):
    # the registered processes and their descendants, read from /proc (Linux)
    children = {}
    try:
        names = os.listdir("/proc")
    except OSError:
        return set(roots)
    for name in names:
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat") as fh:
                ppid = int(fh.read().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        children.setdefault(ppid, []).append(int(name))
    seen, todo = set(), list(roots)
    while todo:
        pid = todo.pop()
        if pid not in seen:
            seen.add(pid)
            todo.extend(children.get(pid, []))
    return seen

pids = set()
for line in sys.stdin:
    word, _, arg = line.strip().partition(" ")
    if word == "bye":
        sys.exit(0)
    if word == "pid" and arg.isdigit():
        pids.add(int(arg))
for pid in tree(pids):
    try:
        os.kill(pid, signal.SIGKILL)
    except OSError:
        pass
"""


class Reaper:
    """The driver's end of the watchdog: :meth:`watch` helpers, :meth:`close` when done."""

    def __init__(self) -> None:
        self._proc: subprocess.Popen[str] | None = subprocess.Popen(
            [sys.executable, "-I", "-S", "-c", _PROGRAM],
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            text=True,
            start_new_session=True,
        )
        self._watched: set[int] = set()

    @property
    def pid(self) -> int | None:
        return None if self._proc is None else self._proc.pid

    def _send(self, line: str) -> None:
        pipe: IO[str] | None = None if self._proc is None else self._proc.stdin
        if pipe is None:
            return
        try:
            pipe.write(line + "\n")
            pipe.flush()
        except (BrokenPipeError, ValueError, OSError):  # the reaper is gone: nothing to tell
            self._proc = None

    def watch(self, pids: Iterable[int | None]) -> None:
        """Kill these processes (and their descendants) if this process dies first."""
        new = {int(p) for p in pids if p} - self._watched
        for pid in sorted(new):
            self._send(f"pid {pid}")
        self._watched |= new

    def close(self) -> None:
        """The driver is done with its helpers: the reaper leaves without killing anything."""
        proc, self._proc = self._proc, None
        if proc is None:
            return
        try:
            if proc.stdin is not None:
                proc.stdin.write("bye\n")
                proc.stdin.close()
        except (BrokenPipeError, ValueError, OSError):
            pass
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()

