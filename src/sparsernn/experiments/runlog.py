"""Each command's run record in a study's store: when, with which code, on which machine.

:func:`~sparsernn.experiments.run_study` appends one record per command to the meta entry
``runs`` (a list) before its first unit starts, and completes it when the command ends (also on
Ctrl-C or SIGTERM; a SIGKILLed command leaves its record without ``finished``). ``sparsernn
export`` copies the list into the export's manifest, so a results page can name the commit,
versions and CPU of every command that stored its units.
"""

from __future__ import annotations

from typing import Any

from sparsernn._provenance import environment, now
from sparsernn.store import ResultsStore

__all__ = ["RUNS_META", "start_run", "finish_run", "read_runs"]

#: The meta entry holding the run records.
RUNS_META = "runs"


def read_runs(store: ResultsStore) -> list[dict[str, Any]]:
    """The run records of ``store``, oldest first (empty for stores written before them)."""
    runs = store.get_meta(RUNS_META, [])
    return list(runs) if isinstance(runs, list) else []


def start_run(store: ResultsStore, **details: Any) -> int:
    """Append a record (``started``, :func:`~sparsernn._provenance.environment`, ``details``);
    return its index for :func:`finish_run`."""
    runs = read_runs(store)
    store.set_meta(RUNS_META, [*runs, {"started": now(), **environment(), **details}])
    return len(runs)


def finish_run(store: ResultsStore, index: int, **outcome: Any) -> None:
    """Complete record ``index`` with ``finished`` and ``outcome`` (counts, interrupted)."""
    runs = read_runs(store)
    if 0 <= index < len(runs):
        runs[index] = {**runs[index], "finished": now(), **outcome}
        store.set_meta(RUNS_META, runs)
