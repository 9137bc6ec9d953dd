"""What every command shares: the ``sparsernn`` click group and turning errors into one line."""

from __future__ import annotations

import errno
import functools
import os
import sqlite3
import sys
from typing import Any

import click

from sparsernn.errors import ConfigError, SparsernnError, StoreError
from sparsernn.nn.cells import MODES as ALL_CELLS
from sparsernn.tasks import DIFFICULTY

__all__ = [
    "ALL_CELLS",
    "ALL_TASKS",
    "cli",
    "data_conflicts",
    "friendly",
    "log_options",
    "main",
    "note_capped",
    "parse_cells",
    "parse_mix",
    "parse_names",
    "parse_seeds",
]

#: The names ``--task`` accepts (:data:`sparsernn.tasks.TASKS`).
ALL_TASKS = tuple(DIFFICULTY)


def friendly(fn):
    """Turn library errors, and the system's (a full disk, a folder that cannot be written),
    into one line on stderr and exit status 2."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except SparsernnError as exc:
            click.echo(f"error: {_own_fix(exc)}", err=True)
            sys.exit(2)
        except OSError as exc:
            click.echo(f"error: {_os_problem(exc)}", err=True)
            sys.exit(2)
        except sqlite3.Error as exc:  # (the store words its own; this is the last resort)
            click.echo(f"error: SQLite: {exc}; check the disk and the study directory", err=True)
            sys.exit(2)
        except KeyboardInterrupt as exc:  # Ctrl-C, or SIGTERM during a study (Terminated)
            click.echo(
                "interrupted: finished units are stored; rerun the command to resume", err=True
            )
            sys.exit(128 + int(getattr(exc, "signum", 2)))

    return wrapper


def _os_problem(exc: OSError) -> str:
    """One line for an error of the system: the file, what happened and what to do."""
    what = exc.strerror or str(exc) or type(exc).__name__
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        fix = "free some disk space and rerun the command (finished units are stored)"
    elif exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        fix = "make it writable or choose another location, then rerun the command"
    else:
        fix = "check the path, then rerun the command"
    where = f"{exc.filename}: " if exc.filename else ""
    return " ".join(f"{where}{what}; {fix}".split())


def _own_fix(exc: SparsernnError) -> str:
    """The message, with a store's "use another directory" fix worded for this command."""
    if not (isinstance(exc, StoreError) and exc.elsewhere):
        return str(exc)
    ctx = click.get_current_context(silent=True)
    name = (ctx.info_name or "") if ctx is not None else ""
    if name in ("status", "report"):
        fix = f"give {name} the directory a study command wrote (its --out DIR)"
    else:
        fix = "move it aside or choose another --out directory"
    return f"{exc.problem}; {fix}"


def parse_cells(text: str) -> tuple[str, ...]:
    """``--cells``: ``"all"`` or a comma-separated list (validated where every config is:
    StudyConfig, by :func:`sparsernn.nn.cells.cell_spec`)."""
    return ALL_CELLS if text.strip() == "all" else tuple(c.strip() for c in text.split(","))


def parse_names(text: str) -> tuple[str, ...]:
    """A comma-separated list, blanks dropped."""
    return tuple(t.strip() for t in text.split(",") if t.strip())


def parse_mix(text: str) -> dict[str, str]:
    """``"alternative=0.5,edit=0.5"`` as a mapping (DataSpec validates kinds and shares)."""
    pairs = [p.split("=") for p in parse_names(text)]
    if not pairs or any(len(p) != 2 for p in pairs):
        raise ConfigError(f"--mix {text!r} must be KIND=SHARE pairs, e.g. alternative=0.5,edit=0.5")
    return {k.strip(): v.strip() for k, v in pairs}


def log_options(fn):
    """``--log BACKEND`` (repeatable) and ``--log-dir DIR``: training curves copied to
    TensorBoard / MLflow (:mod:`sparsernn.tracking`), off by default."""
    fn = click.option(
        "--log-dir",
        type=click.Path(path_type=str),
        default="runs",
        show_default=True,
        help="Where --log writes (TensorBoard runs, MLflow's mlflow.db).",
    )(fn)
    return click.option(
        "--log",
        "log",
        multiple=True,
        type=click.Choice(["tensorboard", "mlflow"]),
        help="Also log every training curve here (repeatable; pip install "
        "'sparsernn[tracking]').",
    )(fn)


def note_capped(asked: int | None, spec) -> None:
    """Say on stderr (one line) when a finite task has fewer examples than ``--n-strings``."""
    if asked is not None and spec.n_strings < asked:
        click.echo(
            f"note: the {spec.task} task has {spec.n_strings} examples; using all "
            f"{spec.n_strings}, not {asked}",
            err=True,
        )


def data_conflicts(task: str | None, grammar: str | None, csv: bool) -> None:
    """Refuse data flags that contradict each other instead of ignoring one of them."""
    from sparsernn.tasks import GRAMMAR_TASKS

    if task is not None and grammar is not None and task != grammar:
        what = "names another grammar" if task in GRAMMAR_TASKS else "generates its own data"
        raise ConfigError(
            f"--task {task} {what}, so --grammar {grammar} would be ignored; give one of them "
            "(--task embedded_reber is the same as --grammar embedded_reber)"
        )
    if csv and grammar is not None:
        raise ConfigError(
            f"--grammar {grammar} applies to generated data, not to --train-csv/--test-csv; "
            "drop one of them"
        )


def parse_seeds(n: int) -> tuple[int, ...]:
    """``--seeds N``: the seeds ``0..N-1``."""
    if n < 1:
        raise ConfigError(f"--seeds {n} must be >= 1 (the number of seeds, 0..N-1)")
    return tuple(range(n))



class _OneLineGroup(click.Group):
    """The command group, with click's usage errors (an unknown option or choice) as one
    ``error: ...`` line naming the ``--help`` to read, like every other error."""

    def main(
        self,
        args: Any = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        standalone_mode: bool = True,
        **extra: Any,
    ) -> Any:
        if not standalone_mode:
            return super().main(args, prog_name, complete_var, False, **extra)
        try:
            rv = super().main(args, prog_name, complete_var, False, **extra)
        except click.UsageError as exc:
            if type(exc).__name__ == "NoArgsIsHelpError":  # a bare group: its help, as click
                exc.show()
                sys.exit(exc.exit_code)
            where = exc.ctx.command_path if exc.ctx is not None else "sparsernn"
            message = " ".join(exc.format_message().split())
            click.echo(f"error: {message} (see {where} --help)", err=True)
            sys.exit(exc.exit_code)
        except click.ClickException as exc:
            click.echo(f"error: {' '.join(exc.format_message().split())}", err=True)
            sys.exit(exc.exit_code)
        except click.Abort:
            click.echo("aborted", err=True)
            sys.exit(1)
        sys.exit(rv if isinstance(rv, int) else 0)


@click.group(cls=_OneLineGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="sparsernn")
def cli() -> None:
    """Study sparsity in recurrent networks: magnitude pruning and random-graph structure."""


def main() -> None:
    """Console-script entry point."""
    os.environ.setdefault("PYTHONWARNINGS", "ignore::DeprecationWarning")
    cli(prog_name="sparsernn")
