"""The study runner's progress bar: one tqdm line of units finished and the unit(s) running.

It only draws; the runner (:func:`sparsernn.experiments.run_study`) decides what to count.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from sparsernn.experiments.units import Unit

__all__ = ["Progress"]


class Progress:
    """One tqdm bar on stderr: units finished of those to run, and the unit(s) running now."""

    def __init__(self, enabled: bool, total: int) -> None:
        self._running: dict[str, str] = {}
        self._bar = None
        if enabled:
            from tqdm.auto import tqdm

            # miniters=1: a bundle finishes 30 units at once, which would otherwise make tqdm
            # raise its redraw threshold and leave the bar behind the store for minutes.
            self._bar = tqdm(
                total=total,
                desc="units",
                unit="unit",
                file=sys.stderr,
                dynamic_ncols=True,
                miniters=1,
            )

    def _show(self, refresh: bool) -> None:
        if self._bar is None:
            return
        labels = list(self._running.values())
        if not labels:
            text = ""
        elif len(labels) == 1:
            text = labels[0]
        else:
            text = f"{labels[-1]} (+{len(labels) - 1} running)"
        self._bar.set_postfix_str(text, refresh=refresh)

    def start(self, unit: Unit) -> None:
        self._running[unit.key] = unit.label
        self._show(refresh=True)

    def finish(self, unit: Unit) -> None:
        self._running.pop(unit.key, None)
        self._show(refresh=False)
        if self._bar is not None:
            self._bar.update(1)

    def refresh(self) -> None:
        """Redraw now (after a job's units were counted in one burst)."""
        if self._bar is not None:
            self._bar.refresh()

    def skip(self) -> None:
        if self._bar is not None:
            self._bar.update(1)

    def grow(self, n: int) -> None:
        """``n`` more units to run than planned (a base trained again)."""
        if self._bar is not None and self._bar.total is not None:
            self._bar.total += n
            self._bar.refresh()

    def note(self, text: str) -> None:
        """One line on stderr, above the bar when there is one."""
        if self._bar is not None:
            self._bar.write(text, file=sys.stderr)
        else:
            print(text, file=sys.stderr, flush=True)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
