"""A watchdog that ends a study's helper processes when its driver dies, however it dies.

A driver killed by ``SIGKILL`` runs no cleanup: its pool workers (hundreds of MB each) and a
Ray cluster it started (GCS, raylet, their agents and workers) would run on forever. The driver
starts one small :class:`Reaper` process (plain Python, no imports of this package, so it is up
in a fraction of a second) and tells it, through a pipe, the pid of every helper as it starts.
When the driver ends normally it says ``bye`` and the reaper leaves them alone; when the pipe
closes without a ``bye`` (the driver died), the reaper kills every registered process and its
descendants and exits. It reads the descendants from ``/proc`` (Linux) every second while the
driver lives: a helper that shares its fate with the driver dies with it at once, orphaning its
own children (Ray's agents) before the reaper could look. The reaper runs in its own session,
so a terminal's Ctrl-C, which the driver handles, does not reach it.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterable
from typing import IO

__all__ = ["Reaper"]

#: The reaper's program (standard library only). It reads ``pid N``, ``children N`` (N's
#: children started from now on) and ``bye`` lines.
_PROGRAM = r"""
import os, select, signal, sys

def processes():
    # pid -> (parent pid, start time) of every process, from /proc (Linux); {} elsewhere
    out = {}
    try:
        names = os.listdir("/proc")
    except OSError:
        return out
    for name in names:
        if name.isdigit():
            try:
                with open(f"/proc/{name}/stat") as fh:
                    fields = fh.read().rsplit(")", 1)[1].split()
                out[int(name)] = (int(fields[1]), int(fields[19]))
            except (OSError, ValueError, IndexError):
                pass
    return out

known = {}  # every process registered, or seen below one: pid -> start time (None: unknown)
parents = set()  # processes whose children started after the reaper are watched too
born = processes().get(os.getpid(), (0, 0))[1]

def refresh():
    # remember the descendants now: once the driver is dead, some are orphaned at once
    table = processes()
    children = {}
    for pid, (ppid, started) in table.items():
        children.setdefault(ppid, []).append(pid)
        if ppid in parents and started >= born and pid != os.getpid():
            known.setdefault(pid, started)
    todo = [pid for pid in known if pid in table]
    while todo:
        for child in children.get(todo.pop(), []):
            if child not in known:
                known[child] = table[child][1]
                todo.append(child)

fd, pending = sys.stdin.fileno(), b""
while True:
    ready, _, _ = select.select([fd], [], [], 1.0)
    if not ready:
        refresh()
        continue
    chunk = os.read(fd, 4096)
    if not chunk:
        break  # the driver is gone without a bye
    pending += chunk
    while b"\n" in pending:
        line, pending = pending.split(b"\n", 1)
        word, _, arg = line.decode().strip().partition(" ")
        if word == "bye":
            sys.exit(0)
        if word == "pid" and arg.isdigit():
            known.setdefault(int(arg), processes().get(int(arg), (0, None))[1])
        if word == "children" and arg.isdigit():
            parents.add(int(arg))
    refresh()
refresh()
table = processes()
for pid, started in known.items():
    if pid in table and started in (None, table[pid][1]):  # not a new process of that pid
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass
    elif not table:
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

    def watch_children(self, pid: int) -> None:
        """Kill the processes ``pid`` starts from now on (and their descendants) if this
        process dies first: for helpers whose pids are not known in time (Ray's)."""
        self._send(f"children {pid}")

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

