"""Where and with what a run happened: commit, versions, CPU, for a study's run records.

A results page states the commit, machine and software of the run it shows; the runner stores
one :func:`environment` record per command in the study's store (meta ``runs``), and
``sparsernn export`` copies them into the export's manifest.
"""

from __future__ import annotations

import datetime
import importlib.metadata
import os
import platform
import subprocess
from pathlib import Path
from typing import Any

__all__ = ["environment", "git_commit", "now"]


def now() -> str:
    """The current UTC time, ISO 8601 to the second."""
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


def git_commit(path: str | os.PathLike[str] | None = None) -> dict[str, Any] | None:
    """``{"commit": sha, "dirty": bool}`` of the git checkout holding ``path`` (default: this
    package's source), or None when it is not in one (a wheel install) or git is missing.

    ``dirty``: tracked files differ from the commit (untracked files are ignored).
    """
    where = Path(path) if path is not None else Path(__file__).resolve().parent
    try:
        sha = _git(where, "rev-parse", "HEAD")
        changed = _git(where, "status", "--porcelain", "--untracked-files=no")
    except (OSError, subprocess.SubprocessError):
        return None
    if sha is None or changed is None:
        return None
    return {"commit": sha, "dirty": bool(changed)}


def _git(where: Path, *args: str) -> str | None:
    done = subprocess.run(
        ["git", "-C", str(where), *args], capture_output=True, text=True, timeout=10, check=False
    )
    return done.stdout.strip() if done.returncode == 0 else None


def _cpu_model() -> str:
    """The CPU's model name (Linux: /proc/cpuinfo), else what :mod:`platform` knows."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _version() -> str | None:
    """The installed sparsernn's version (None when run from a source tree not installed)."""
    try:
        return importlib.metadata.version("sparsernn")
    except importlib.metadata.PackageNotFoundError:
        return None


def environment() -> dict[str, Any]:
    """This process's software and machine: package version and commit, Python, torch, numpy,
    OS, CPU model and core count (no host or user names)."""
    import numpy
    import torch

    return {
        "sparsernn": _version(),
        **(git_commit() or {"commit": None, "dirty": None}),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "numpy": numpy.__version__,
        "platform": platform.platform(),
        "cpu": _cpu_model(),
        "cores": os.cpu_count(),
    }
