"""What every command shares: the ``sparsernn`` click group and turning errors into one line."""

from __future__ import annotations

import functools
import os
import sys

import click

from sparsernn.errors import ConfigError, SparsernnError, StoreError
from sparsernn.nn.cells import MODES as ALL_CELLS
from sparsernn.tasks import DIFFICULTY

#: The names ``--task`` accepts (:data:`sparsernn.tasks.TASKS`).
ALL_TASKS = tuple(DIFFICULTY)


def _friendly(fn):
    """Turn library errors into one line on stderr and exit status 2."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except SparsernnError as exc:
            click.echo(f"error: {_own_fix(exc)}", err=True)
            sys.exit(2)
        except KeyboardInterrupt as exc:  # Ctrl-C, or SIGTERM during a study (Terminated)
            click.echo(
                "interrupted: finished units are stored; rerun the command to resume", err=True
            )
            sys.exit(128 + int(getattr(exc, "signum", 2)))

    return wrapper


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


def _cells(text: str) -> tuple[str, ...]:
    # validated where every config is: StudyConfig (sparsernn.nn.cells.cell_spec)
    return ALL_CELLS if text.strip() == "all" else tuple(c.strip() for c in text.split(","))


def _names(text: str) -> tuple[str, ...]:
    return tuple(t.strip() for t in text.split(",") if t.strip())


def _mix(text: str) -> dict[str, str]:
    """``"alternative=0.5,edit=0.5"`` as a mapping (DataSpec validates kinds and shares)."""
    pairs = [p.split("=") for p in _names(text)]
    if not pairs or any(len(p) != 2 for p in pairs):
        raise ConfigError(f"--mix {text!r} must be KIND=SHARE pairs, e.g. alternative=0.5,edit=0.5")
    return {k.strip(): v.strip() for k, v in pairs}


def _log_options(fn):
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


def _note_capped(asked: int | None, spec) -> None:
    """Say on stderr (one line) when a finite task has fewer examples than ``--n-strings``."""
    if asked is not None and spec.n_strings < asked:
        click.echo(
            f"note: the {spec.task} task has {spec.n_strings} examples; using all "
            f"{spec.n_strings}, not {asked}",
            err=True,
        )


def _seeds(n: int) -> tuple[int, ...]:
    if n < 1:
        raise ConfigError(f"--seeds {n} must be >= 1 (the number of seeds, 0..N-1)")
    return tuple(range(n))


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="sparsernn")
def cli() -> None:
    """Study sparsity in recurrent networks: magnitude pruning and random-graph structure."""


def main() -> None:
    """Console-script entry point."""
    os.environ.setdefault("PYTHONWARNINGS", "ignore::DeprecationWarning")
    cli(prog_name="sparsernn")
