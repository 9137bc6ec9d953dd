"""The study commands (``prune``, ``structure``, ``reproduce``) and ``status``/``report``."""

from __future__ import annotations

import dataclasses
import functools
import os
import sys
from pathlib import Path

import click

from sparsernn.cli.base import (
    ALL_TASKS,
    cli,
    data_conflicts,
    friendly,
    log_options,
    note_capped,
    parse_cells,
    parse_names,
    parse_seeds,
)
from sparsernn.errors import ConfigError


# ----------------------------------------------------------------------------------- studies
@dataclasses.dataclass(frozen=True)
class _StudyFlags:
    """The options every study command takes, passed on as one ``flags`` argument."""

    out: Path
    config_file: Path | None
    seeds: int | None
    n_strings: int | None
    workers: int | None
    executor: str
    address: str | None
    gpus_per_unit: float
    retry_failed: bool
    device: str | None
    log: tuple[str, ...] = ()
    log_dir: str = "runs"


def _study_options(fn):
    """The options of :class:`_StudyFlags`, passed on as one ``flags`` argument."""
    names = [f.name for f in dataclasses.fields(_StudyFlags)]

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        flags = _StudyFlags(**{name: kwargs.pop(name) for name in names})
        return fn(*args, flags=flags, **kwargs)

    opts = [
        click.option(
            "--out",
            type=click.Path(path_type=Path),
            required=True,
            help="Study directory (results store, artefacts, report).",
        ),
        click.option(
            "--config",
            "config_file",
            type=click.Path(path_type=Path),
            help="Study TOML file; flags override it.",
        ),
        click.option("--seeds", type=int, help="Number of seeds (0..N-1)."),
        click.option("--n-strings", type=int, help="Data set size."),
        click.option(
            "--workers",
            type=int,
            default=None,
            help="Local worker processes [default: number of cores].",
        ),
        click.option(
            "--executor", type=click.Choice(["local", "ray"]), default="local", show_default=True
        ),
        click.option("--address", default=None, help="Ray cluster address (HOST:PORT or auto)."),
        click.option(
            "--gpus-per-unit",
            default=0.0,
            show_default=True,
            help="GPUs each unit requests from Ray.",
        ),
        click.option("--retry-failed", is_flag=True, help="Rerun units that failed before."),
        click.option("--device", default=None, help="auto, cpu or cuda."),
    ]
    for opt in reversed(opts):
        wrapper = opt(wrapper)
    return log_options(wrapper)


def _data_options(fn):
    """``--task``, ``--difficulty``, ``--grammar``, ``--train-csv``, ``--test-csv``, passed on
    as one ``data_flags`` dict."""
    names = ("task", "difficulty", "grammar", "train_csv", "test_csv")

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        flags = {name: kwargs.pop(name) for name in names}
        return fn(*args, data_flags=flags, **kwargs)

    opts = [
        click.option(
            "--task", type=click.Choice(ALL_TASKS), help="Task (docs/tasks.md).  [default: reber]"
        ),
        click.option("--difficulty", type=int, help="The task's length or delay knob."),
        click.option(
            "--grammar",
            type=click.Choice(["reber", "embedded_reber"]),
            help="Generated task.  [default: reber]",
        ),
        click.option(
            "--train-csv",
            type=click.Path(path_type=Path),
            help="Train on this CSV (header string,valid) instead of generated data; "
            "with --test-csv.",
        ),
        click.option("--test-csv", type=click.Path(path_type=Path), help="Evaluate on this CSV."),
    ]
    for opt in reversed(opts):
        wrapper = opt(wrapper)
    return wrapper


def _data_flags(flags: dict) -> dict:
    """The ``[data]`` overrides of :func:`_data_options`; CSV paths made absolute (cwd)."""
    over = _given(grammar=flags["grammar"], task=flags["task"], difficulty=flags["difficulty"])
    for name in ("train_csv", "test_csv"):
        if flags[name] is not None:
            over[name] = os.path.abspath(Path(flags[name]).expanduser())
    return over


_BUNDLE = click.option(
    "--bundle",
    type=int,
    default=None,
    help="Retrain N pruning points of one base model together (1: one by one; 0: auto, "
    "i.e. all points for tanh/ReLU/GRU, LSTM one by one).  [default: 0]",
)


def _start(config_file, base, kind):
    """The study to run: ``base``, or the ``--config`` file's plan of ``kind`` over it."""
    from sparsernn.experiments.config import load_study_config

    return load_study_config(config_file, base, kind) if config_file else base


def _common(flags: _StudyFlags, data_flags: dict) -> dict:
    """The overrides every study command takes from its flags (seeds, data, device)."""
    over: dict = {}
    if flags.seeds is not None:
        over["seeds"] = list(parse_seeds(flags.seeds))
    csv = data_flags["train_csv"] is not None or data_flags["test_csv"] is not None
    data_conflicts(data_flags["task"], data_flags["grammar"], csv)
    data = _data_flags(data_flags)
    if flags.n_strings is not None:
        data["n_strings"] = flags.n_strings
    if data:
        over["data"] = data
    if flags.device is not None:
        over["train"] = {"device": flags.device}
    return over


def _run(study, flags: _StudyFlags, kinds):
    """Run ``study``'s units of ``kinds`` into ``--out`` and print what happened."""
    from sparsernn.experiments.runner import run_study

    note_capped(flags.n_strings, study.data)
    out = flags.out
    run = run_study(
        study,
        out,
        workers=flags.workers,
        executor=flags.executor,
        address=flags.address,
        gpus_per_unit=flags.gpus_per_unit,
        retry_failed=flags.retry_failed,
        kinds=kinds,
    )
    click.echo(
        f"{run.done} units done, {run.failed} failed, {run.skipped} already stored, "
        f"{run.blocked} blocked, in {run.wall_s:.1f} s -> {out}"
    )
    for line in run.failures[:10]:
        click.echo(f"  failed: {line}", err=True)
    if len(run.failures) > 10:
        click.echo(f"  ... and {len(run.failures) - 10} more (sparsernn status {out})", err=True)
    if flags.log:  # copied from the store, which stays the source of truth
        from sparsernn.tracking import log_study

        n_runs = log_study(out, flags.log, flags.log_dir, keys=run.done_keys)
        click.echo(f"logged {n_runs} stored curves to {', '.join(flags.log)} in {flags.log_dir}")
    return run


def _exit_if_incomplete(runs) -> None:
    """After a study command's output: exit 1 with one line when units failed or wait for a
    failed base (scripts must see it), naming --retry-failed."""
    from sparsernn.experiments.runner import StudyRun

    total = StudyRun(
        Path("."), failed=sum(r.failed for r in runs), blocked=sum(r.blocked for r in runs)
    )
    problem = total.problem()
    if problem is not None:
        click.echo(f"error: {problem}", err=True)
        sys.exit(1)


def _given(**values) -> dict:
    """Only the flags the user gave: they override the config file (or the study defaults)."""
    return {k: v for k, v in values.items() if v is not None}


@cli.command()
@click.option("--cells", help="Comma list or 'all'.  [default: all]")
@click.option("--targets", help="Comma list of both, i2h, h2h.  [default: both,i2h,h2h]")
@click.option("--amounts", help="start:stop:step (inclusive) or comma list.  [default: 10:100:10]")
@click.option(
    "--scope",
    type=click.Choice(["global", "layer", "gate"]),
    help="One threshold over all layers, per matrix, or per gate block.  [default: global]",
)
@click.option(
    "--method",
    help="Sparsity method, or a comma list (each runs the grid over the same base models): "
    "magnitude, random, snip, agp, lottery, set, rigl.  [default: magnitude]",
)
@click.option("--retrain-epochs", type=int, help="[default: 10]")
@click.option("--epochs", type=int, help="Base-model epochs.  [default: 50]")
@click.option("--tolerance", type=float, help="Accuracy tolerance (fraction).  [default: 0.01]")
@_BUNDLE
@_study_options
@_data_options
@friendly
def prune(
    cells,
    targets,
    amounts,
    scope,
    method,
    retrain_epochs,
    epochs,
    tolerance,
    flags,
    bundle,
    data_flags,
):
    """Pruning study: train base models, prune (by magnitude, or --method), retrain with
    masks fixed.

    Defaults are the study's protocol; flags override a --config file.
    """
    from sparsernn.experiments.config import StudyConfig, merge, parse_range
    from sparsernn.report import pruning_summary

    over = _common(flags, data_flags)
    if cells is not None:
        over["cells"] = list(parse_cells(cells))
    if epochs is not None:
        over.setdefault("train", {})["epochs"] = epochs
    over["pruning"] = _given(
        targets=list(parse_names(targets)) if targets is not None else None,
        scope=scope,
        method=method,
        amounts=list(parse_range(amounts, what="--amounts")) if amounts is not None else None,
        retrain_epochs=retrain_epochs,
        tolerance=tolerance,
        bundle=bundle,
    )
    study = merge(_start(flags.config_file, StudyConfig(), "prune"), over, "command line")
    run = _run(study, flags, ("base", "prune"))
    for name, table in pruning_summary(flags.out, study.pruning.tolerance).items():
        click.echo(f"\n{name}:\n{table.to_string(index=False)}")
    _exit_if_incomplete([run])


@cli.command()
@click.option("--cells", help="Comma list or 'all'.  [default: all]")
@click.option("--generators", help="Comma list of ws, ba, er.  [default: ws,ba]")
@click.option("--graphs", "n_graphs", type=int, help="Graphs per generator.  [default: 100]")
@click.option("--nodes", help="Node-count range lo:hi.  [default: 10:50]")
@click.option("--epochs", type=int, help="[default: 15]")
@click.option("--batch-size", type=int, help="[default: 128]")
@click.option(
    "--gate-layout",
    type=click.Choice(["blocked", "interleaved"]),
    help="GRU/LSTM i2h mask rows: graph-faithful, or the study's code.  [default: blocked]",
)
@click.option(
    "--graphs-from",
    type=click.Path(path_type=Path),
    help="Folder of graph files (*.graphml, *.edgelist, node-link *.json), one graph each, "
    "instead of generated graphs.",
)
@click.option(
    "--allow-pickle",
    is_flag=True,
    default=None,
    help="Also read *.gpickle files in --graphs-from (unpickling runs code: trusted files only).",
)
@_study_options
@_data_options
@friendly
def structure(
    cells,
    generators,
    n_graphs,
    nodes,
    epochs,
    batch_size,
    gate_layout,
    graphs_from,
    allow_pickle,
    flags,
    data_flags,
):
    """Random-structure study: graphs -> layered DAG networks -> accuracy and properties.

    Defaults are the study's protocol; flags override a --config file.
    """
    from sparsernn.experiments.config import StudyConfig, merge, parse_range
    from sparsernn.report import structure_summary

    if n_graphs is not None and n_graphs < 0:
        raise ConfigError(f"--graphs {n_graphs}: give the graphs per generator, 1 or more")
    node_range = None
    if nodes is not None:
        lo_hi = parse_range(nodes, what="--nodes")
        if len(lo_hi) != 2 or any(v != int(v) for v in lo_hi):
            raise ConfigError(f"--nodes {nodes!r} must be lo:hi, e.g. 10:50")
        node_range = [int(lo_hi[0]), int(lo_hi[1])]
    over = _common(flags, data_flags)
    if cells is not None:
        over["cells"] = list(parse_cells(cells))
    over["structure"] = _given(
        generators=list(parse_names(generators)) if generators is not None else None,
        n_graphs=n_graphs,
        nodes=node_range,
        epochs=epochs,
        batch_size=batch_size,
        gate_layout=gate_layout,
        graphs_from=os.path.abspath(graphs_from.expanduser()) if graphs_from else None,
        allow_pickle=allow_pickle,
    )
    study = merge(_start(flags.config_file, StudyConfig(), "structure"), over, "command line")
    if not study.structure.enabled or study.structure.n_graphs < 1:
        what = f"{study.structure.n_graphs} graphs per generator"
        if not study.structure.enabled:
            what = "structure.enabled = false"
        raise ConfigError(f"{what}: nothing was asked for; give --graphs 1 or more")
    run = _run(study, flags, ("structure",))
    click.echo("\n" + structure_summary(flags.out).to_string(index=False))
    _exit_if_incomplete([run])


@cli.command()
@click.option(
    "--profile",
    "profile_name",
    default="smoke",
    show_default=True,
    type=click.Choice(["smoke", "quick", "full"]),
)
@_study_options
@_BUNDLE
@click.option("--report/--no-report", default=True, show_default=True)
@_data_options
@friendly
def reproduce(
    profile_name,
    flags,
    bundle,
    report,
    data_flags,
):
    """Run the whole study (base, pruning, structure) for a profile, then write the report.

    With a study directory's ``study.toml`` as --config, each of its plans runs again with
    the kinds it planned, so the directory gets no unit it does not already have.
    """
    from sparsernn.experiments.config import load_study_plans, merge, profile

    over = _common(flags, data_flags)
    if bundle is not None:
        over["pruning"] = {"bundle": bundle}
    start = profile(profile_name)
    config_file = flags.config_file
    plans = load_study_plans(config_file, start) if config_file else [(None, start)]
    runs = [_run(merge(planned, over), flags, kinds) for kinds, planned in plans]
    if report:
        from sparsernn.report import build_report

        path = build_report(flags.out, Path(flags.out) / "report.html")
        click.echo(f"report: {path}")
    _exit_if_incomplete(runs)


@cli.command()
@click.argument("study_dir", type=click.Path(path_type=Path))
@friendly
def status(study_dir):
    """Summarise a study directory: units done, pending, failed, time spent."""
    from sparsernn.experiments import study_status

    click.echo(study_status(study_dir))


@cli.command()
@click.argument("study_dir", type=click.Path(path_type=Path))
@click.option(
    "--repair",
    is_flag=True,
    help="Set the damaged units aside (the damaged file is kept beside the store); a rerun "
    "of the study recomputes them.",
)
@friendly
def verify(study_dir, repair):
    """Check a study's results store: SQLite's integrity check, then every stored row.

    One line per problem; exit status 1 when the store is damaged (0 after --repair).
    """
    from sparsernn.experiments.status import verify_study

    lines, sound = verify_study(study_dir, fix=repair)
    for line in lines:
        click.echo(line, err=line.startswith("damaged: "))
    if not sound:
        sys.exit(1)


@cli.command()
@click.argument("study_dir", type=click.Path(path_type=Path))
@click.option(
    "-o",
    "--output",
    type=click.Path(path_type=Path),
    default=None,
    help="HTML file [default: STUDY_DIR/report.html].",
)
@friendly
def report(study_dir, output):
    """Write one self-contained HTML report (tables as CSV/Markdown beside it)."""
    from sparsernn.experiments.status import study_store
    from sparsernn.report import build_report

    study_dir = study_store(study_dir)
    path = build_report(study_dir, output or study_dir / "report.html")
    click.echo(f"report: {path}")


@cli.command()
@click.argument("study_dir", type=click.Path(path_type=Path))
@click.argument("out", type=click.Path(path_type=Path))
@click.option(
    "--run-info",
    type=click.Path(path_type=Path, dir_okay=False),
    default=None,
    help="JSON-lines file of run records (commit, versions, CPU) for commands that stored "
    "units before the store kept its own; listed in the manifest as runs_external.",
)
@click.option(
    "--resumable",
    is_flag=True,
    help="Also copy the store and base checkpoints into OUT/resume, so that sparsernn restore "
    "can recreate the study directory elsewhere and the study resume there.",
)
@friendly
def export(study_dir, out, run_info, resumable):
    """Write STUDY_DIR's results as CSV tables and a manifest to OUT (versionable data;
    load_results(OUT) reads it as it reads the study)."""
    from sparsernn.experiments.export import export_study, read_run_info

    if not (Path(study_dir) / "results.sqlite").exists():
        raise ConfigError(
            f"{study_dir} holds no results.sqlite; give the --out folder of a study command"
        )
    records = read_run_info(run_info) if run_info is not None else None
    path = export_study(study_dir, out, run_info=records, resumable=resumable)
    click.echo(f"export: {path}")


@cli.command()
@click.argument("export_dir", type=click.Path(path_type=Path))
@click.argument("study_dir", type=click.Path(path_type=Path))
@friendly
def restore(export_dir, study_dir):
    """Recreate STUDY_DIR from a resumable export (sparsernn export --resumable); rerun the
    study's commands with --out STUDY_DIR to resume it."""
    from sparsernn.experiments.export import restore_study

    path = restore_study(export_dir, study_dir)
    click.echo(f"restored: {path} (rerun the study with --out {path} to resume it)")
