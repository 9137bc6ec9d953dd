"""Exceptions that carry a one-line, user-facing message naming the problem and the fix.

The CLI turns every :class:`SparsernnError` into ``error: <message>`` and exit status 2; library
users can catch the specific subclasses. Each also derives from the builtin a Python user would
expect (``ValueError`` for bad values), so generic handlers keep working.
"""

from __future__ import annotations

__all__ = ["SparsernnError", "ConfigError", "DataError", "GraphError", "StoreError"]


class SparsernnError(Exception):
    """Base class: a problem with the user's input or environment, not a bug in sparsernn."""


class ConfigError(SparsernnError, ValueError):
    """An option or configuration value is out of range or unknown."""


class DataError(SparsernnError, ValueError):
    """A data file or data set is malformed."""


class GraphError(SparsernnError, ValueError):
    """A graph cannot be turned into a network or a property is undefined for it."""


class StoreError(SparsernnError):
    """A results store is corrupt, foreign, locked or of an unknown schema version.

    ``problem`` and ``fix`` are the two halves of the message. ``elsewhere=True`` marks a store
    that cannot be used at all, whose fix is another directory: each command words that fix with
    its own arguments (``--out DIR`` for a study, the ``STUDY_DIR`` argument for ``status``).
    """

    def __init__(self, problem: str, fix: str = "", *, elsewhere: bool = False) -> None:
        super().__init__(f"{problem}; {fix}" if fix else problem)
        self.problem = problem
        self.fix = fix
        self.elsewhere = elsewhere
