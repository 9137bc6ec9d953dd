"""The ``sparsernn`` command line: a thin layer over the library (click).

Every command parses options into the library's configs and calls one public function.
Problems with the user's input become one ``error: ...`` line and exit status 2. The commands
live in one module per group (``data``, ``training``, ``studies``); importing this package
registers them all on :data:`cli`.
"""

from sparsernn.cli import data, studies, training  # noqa: F401  (registers the commands)
from sparsernn.cli.base import cli, main

__all__ = ["cli", "main"]
