"""The ``sparsernn`` command line: a thin layer over the library (click).

Every command parses options into the library's configs and calls one public function.
Problems with the user's input become one ``error: ...`` line and exit status 2.
"""

from __future__ import annotations

import dataclasses
import functools
import os
import sys
from pathlib import Path

import click

from sparsernn.errors import ConfigError, SparsernnError, StoreError
from sparsernn.nn.cells import MODES as ALL_CELLS


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
    name = click.get_current_context(silent=True)
    name = name.info_name if name is not None else ""
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


def _seeds(n: int) -> tuple[int, ...]:
    if n < 1:
        raise ConfigError(f"--seeds {n} must be >= 1 (the number of seeds, 0..N-1)")
    return tuple(range(n))


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="sparsernn")
def cli() -> None:
    """Study sparsity in recurrent networks: magnitude pruning and random-graph structure."""


# ----------------------------------------------------------------------------------- data
@cli.group()
def data() -> None:
    """Generate and check Reber-grammar data sets (the study's CSV format)."""


@data.command("generate")
@click.option(
    "--out",
    "out",
    type=click.Path(path_type=Path),
    required=True,
    help="Directory for train.csv and test.csv.",
)
@click.option("--grammar", default="reber", show_default=True, help="reber or embedded_reber.")
@click.option("--n-strings", default=25000, show_default=True, help="Total strings (train+test).")
@click.option(
    "--mix",
    default="alternative=1",
    show_default=True,
    help="Shares of negative kinds, KIND=SHARE,...: alternative (the study's), iid_foreign, "
    "broken_transition, edit.",
)
@click.option("--min-length", default=11, show_default=True)
@click.option("--max-length", default=53, show_default=True)
@click.option("--test-fraction", default=0.25, show_default=True)
@click.option("--seed", default=0, show_default=True)
@_friendly
def data_generate(out, grammar, n_strings, mix, min_length, max_length, test_fraction, seed):
    """Write train.csv and test.csv (header string,valid) for a generated data set."""
    from sparsernn.data import DataSpec, make_dataset, write_csv

    spec = DataSpec(
        grammar=grammar,
        n_strings=n_strings,
        negative_mix=_mix(mix),
        min_length=min_length,
        max_length=max_length,
        test_fraction=test_fraction,
        seed=seed,
    )
    train, test = make_dataset(spec)
    out.mkdir(parents=True, exist_ok=True)
    write_csv(train, out / "train.csv")
    write_csv(test, out / "test.csv")
    (out / "dataspec.json").write_text(spec.to_json())
    click.echo(f"wrote {len(train)} train and {len(test)} test strings to {out}")


@data.command("check")
@click.argument("csv_files", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--grammar", default="reber", show_default=True, help="reber or embedded_reber.")
@_friendly
def data_check(csv_files, grammar):
    """Validate CSV files and describe them per class and negative kind.

    Give train and test files together to check that they share no string. A string labelled
    both valid and invalid is an error.
    """
    from sparsernn.data import get_grammar, read_csv
    from sparsernn.data.describe import check_labels_agree, describe, duplicates

    g = get_grammar(grammar)
    sets = [read_csv(f) for f in csv_files]
    for path, ds in zip(csv_files, sets, strict=True):
        check_labels_agree(ds, str(path))
        wrong = sum(int(g.accepts(s)) != int(y) for s, y in zip(ds.strings, ds.labels, strict=True))
        dup = duplicates(ds)
        click.echo(f"{path}: {len(ds)} strings, {int(ds.labels.sum())} valid")
        click.echo(describe(ds, g).to_string(index=False, float_format=lambda x: f"{x:.3f}"))
        click.echo(f"label disagrees with {g.name}: {wrong}")
        click.echo(
            f"duplicated strings: {len(dup)} ({int(dup['count'].sum()) if len(dup) else 0} rows)"
        )
    for i, a in enumerate(sets):
        for j in range(i + 1, len(sets)):
            shared = len(set(a.strings) & set(sets[j].strings))
            click.echo(f"strings in both {csv_files[i]} and {csv_files[j]}: {shared}")


@data.command("compare")
@click.argument("file_a", type=click.Path(path_type=Path))
@click.argument("file_b", type=click.Path(path_type=Path))
@click.option("--grammar", default="reber", show_default=True, help="reber or embedded_reber.")
@_friendly
def data_compare(file_a, file_b, grammar):
    """Compare two CSV data sets per class, family and negative kind (counts, lengths, TV)."""
    from sparsernn.data import read_csv
    from sparsernn.data.describe import compare, letter_share_tv

    a, b = read_csv(file_a), read_csv(file_b)
    click.echo(f"a = {file_a} ({len(a)} strings), b = {file_b} ({len(b)} strings)")
    table = compare(a, b, grammar)
    click.echo(table.to_string(index=False, float_format=lambda x: f"{x:.3f}"))
    for cls, tv in letter_share_tv(a, b).items():
        click.echo(f"letter-share TV ({cls}): {tv:.3f}")
    click.echo(f"strings in both: {len(set(a.strings) & set(b.strings))}")


# ----------------------------------------------------------------------------------- train
_THREADS = click.option(
    "--threads",
    type=click.IntRange(min=1),
    default=None,
    help="Torch intra-op threads [default: OMP_NUM_THREADS if set, else 1: these small models "
    "gain nothing from more, and a busy machine makes more much slower].",
)


class _ConfigOption(click.Option):
    """An option that defaults to None, so that only the flags the user gives set config fields,
    and shows the config dataclass's own default in ``--help`` (read when help is shown)."""

    def __init__(self, *args, field: str, **kwargs) -> None:
        super().__init__(*args, default=None, **kwargs)
        self.field = field  # "module:Class.name"
        self.own_help = self.help or ""

    def get_help_record(self, ctx: click.Context):
        import dataclasses
        import importlib

        where, name = self.field.rsplit(".", 1)
        module, cls = where.split(":")
        fields = dataclasses.fields(getattr(importlib.import_module(module), cls))
        default = next(f.default for f in fields if f.name == name)
        if isinstance(default, bool):  # a --flag/--no-flag pair: name the one that applies
            default = (self.opts if default else self.secondary_opts)[0]
        self.help = f"{self.own_help}  [default: {default}]".strip()
        return super().get_help_record(ctx)


def _config_option(flag: str, field: str, **kwargs):
    """``click.option(flag)`` for config ``field`` ("module:Class.name"), see _ConfigOption."""
    return click.option(flag, cls=_ConfigOption, field=field, **kwargs)


_TRAIN = "sparsernn.train:TrainConfig"
_MODEL = "sparsernn.models:ModelConfig"
_DATA = "sparsernn.data:DataSpec"


def _config_fields(cls, given: dict) -> dict:
    """The entries of ``given`` that are fields of the dataclass ``cls``."""
    import dataclasses

    names = {f.name for f in dataclasses.fields(cls)}
    return {k: v for k, v in given.items() if k in names}


@cli.command()
@_config_option("--cell", f"{_MODEL}.cell", type=click.Choice(ALL_CELLS))
@_config_option("--epochs", f"{_TRAIN}.epochs", type=int)
@_config_option("--batch-size", f"{_TRAIN}.batch_size", type=int)
@_config_option("--lr", f"{_TRAIN}.lr", type=float)
@_config_option("--clip", f"{_TRAIN}.clip", type=float, help="Gradient-norm clip (0 = off).")
@_config_option("--hidden-size", f"{_MODEL}.hidden_size", type=int)
@_config_option("--num-layers", f"{_MODEL}.num_layers", type=int)
@_config_option("--embedding-dim", f"{_MODEL}.embedding_dim", type=int)
@click.option("--train-csv", type=click.Path(path_type=Path), help="Train on this CSV.")
@click.option("--test-csv", type=click.Path(path_type=Path), help="Evaluate on this CSV.")
@_config_option(
    "--n-strings",
    f"{_DATA}.n_strings",
    type=int,
    help="Size of the generated data set when no CSV is given.",
)
@_config_option("--grammar", f"{_DATA}.grammar", help="Generated task: reber or embedded_reber.")
@_config_option(
    "--seed",
    f"{_TRAIN}.seed",
    type=int,
    help="Seed of the data, the initial weights and the batch order.",
)
@_config_option("--device", f"{_TRAIN}.device", help="auto, cpu or cuda.")
@_config_option(
    "--bucket/--no-bucket",
    f"{_TRAIN}.bucket",
    help="Batch strings of similar length (faster; deviates from the study).",
)
@click.option("--out", type=click.Path(path_type=Path), help="Save the checkpoint here.")
@_THREADS
@_friendly
def train(out, **flags):
    """Train the study's base model and print its per-epoch table."""
    from sparsernn._seed import derive_seed
    from sparsernn.data import DataSpec, make_dataset
    from sparsernn.models import ModelConfig, build_model
    from sparsernn.train import TrainConfig, fit, resolve_device, save_checkpoint

    given = {k: v for k, v in flags.items() if v is not None}
    if given.get("epochs", 1) < 1:
        raise ConfigError(f"--epochs {given['epochs']}: nothing to train; give --epochs 1 or more")
    if ("train_csv" in given) != ("test_csv" in given):
        raise ConfigError("give both --train-csv and --test-csv, or neither (generated data)")
    if given.get("clip") == 0:
        given["clip"] = None  # no clipping
    data_cfg = DataSpec(**_config_fields(DataSpec, given))
    train_cfg = TrainConfig(**_config_fields(TrainConfig, given))
    model_cfg = ModelConfig(**_config_fields(ModelConfig, given))
    train_set, test_set = make_dataset(data_cfg)
    model = build_model(model_cfg, seed=derive_seed(train_cfg.seed, "init", model_cfg.cell))
    model = model.to(resolve_device(train_cfg.device))
    history = fit(model, train_set, test_set, train_cfg, progress=model_cfg.cell)
    if out is not None:
        save_checkpoint(out, model, history[-1] if history else {})
    click.echo(
        _table(
            history,
            ["epoch", "train_loss", "train_accuracy", "test_loss", "test_accuracy", "epoch_time"],
        )
    )
    if out:
        click.echo(f"saved checkpoint to {out}")


@cli.command()
@click.argument("checkpoint", type=click.Path(path_type=Path))
@click.option("--test-csv", type=click.Path(path_type=Path), required=True)
@click.option(
    "--study-format",
    "cell",
    default=None,
    type=click.Choice(ALL_CELLS),
    help="The checkpoint is the study's own format, of this cell type.",
)
@click.option(
    "--graph",
    "graph_file",
    type=click.Path(path_type=Path),
    help="With --study-format: the checkpoint is a study random-structure network of this "
    "graph (.graphml, .edgelist or node-link .json).",
)
@click.option(
    "--allow-pickle",
    is_flag=True,
    help="Let --graph read a .gpickle (unpickling runs code: only for files you trust).",
)
@click.option("--batch-size", default=32, show_default=True)
@click.option("--by-kind", is_flag=True, help="Also print accuracy per class and negative kind.")
@_THREADS
@_friendly
def evaluate(checkpoint, test_csv, cell, graph_file, allow_pickle, batch_size, by_kind, threads):
    """Evaluate a checkpoint (ours, or the study's with --study-format CELL) on a CSV."""
    from sparsernn.compat import load_study_checkpoint, load_study_structure_checkpoint
    from sparsernn.data import read_csv
    from sparsernn.train import evaluate as _evaluate
    from sparsernn.train import load_checkpoint

    if graph_file is not None and not cell:
        raise ConfigError("--graph needs --study-format CELL (it reads the study's networks)")
    if graph_file is not None:
        from sparsernn.graphs import read_graph

        graph = read_graph(graph_file, allow_pickle=allow_pickle)
        model = load_study_structure_checkpoint(checkpoint, graph, cell)
    elif cell:
        model = load_study_checkpoint(checkpoint, cell)
    else:
        model = load_checkpoint(checkpoint)[0]
    test = read_csv(test_csv)
    res = _evaluate(model, test, batch_size, threads=threads)
    click.echo(f"accuracy {res['accuracy']:.4f}  loss {res['loss']:.4f}")
    if by_kind:
        from sparsernn.train import accuracy_by_kind

        table = accuracy_by_kind(model, test, batch_size, threads=threads)
        click.echo(table.to_string(index=False, float_format=lambda x: f"{x:.4f}"))


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
    return wrapper


def _data_options(fn):
    """``--grammar``, ``--train-csv``, ``--test-csv``, passed on as one ``data_flags`` dict."""

    @functools.wraps(fn)
    def wrapper(*args, grammar, train_csv, test_csv, **kwargs):
        flags = {"grammar": grammar, "train_csv": train_csv, "test_csv": test_csv}
        return fn(*args, data_flags=flags, **kwargs)

    opts = [
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
    over = _given(grammar=flags["grammar"])
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
        over["seeds"] = list(_seeds(flags.seeds))
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
    return run


def _given(**values) -> dict:
    """Only the flags the user gave: they override the config file (or the study defaults)."""
    return {k: v for k, v in values.items() if v is not None}


@cli.command()
@click.option("--cells", help="Comma list or 'all'.  [default: all]")
@click.option("--targets", help="Comma list of both, i2h, h2h.  [default: both,i2h,h2h]")
@click.option("--amounts", help="start:stop:step (inclusive) or comma list.  [default: 10:100:10]")
@click.option("--scope", type=click.Choice(["global", "layer"]), help="[default: global]")
@click.option("--retrain-epochs", type=int, help="[default: 10]")
@click.option("--epochs", type=int, help="Base-model epochs.  [default: 50]")
@click.option("--tolerance", type=float, help="Accuracy tolerance (fraction).  [default: 0.01]")
@_BUNDLE
@_study_options
@_data_options
@_friendly
def prune(
    cells,
    targets,
    amounts,
    scope,
    retrain_epochs,
    epochs,
    tolerance,
    flags,
    bundle,
    data_flags,
):
    """Pruning study: train base models, prune by magnitude, retrain with masks fixed.

    Defaults are the study's protocol; flags override a --config file.
    """
    from sparsernn.experiments import pruning_summary
    from sparsernn.experiments.config import StudyConfig, merge, parse_range

    over = _common(flags, data_flags)
    if cells is not None:
        over["cells"] = list(_cells(cells))
    if epochs is not None:
        over.setdefault("train", {})["epochs"] = epochs
    over["pruning"] = _given(
        targets=list(_names(targets)) if targets is not None else None,
        scope=scope,
        amounts=list(parse_range(amounts, what="--amounts")) if amounts is not None else None,
        retrain_epochs=retrain_epochs,
        tolerance=tolerance,
        bundle=bundle,
    )
    study = merge(_start(flags.config_file, StudyConfig(), "prune"), over, "command line")
    _run(study, flags, ("base", "prune"))
    for name, table in pruning_summary(flags.out, study.pruning.tolerance).items():
        click.echo(f"\n{name}:\n{table.to_string(index=False)}")


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
@_friendly
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
    from sparsernn.experiments import structure_summary
    from sparsernn.experiments.config import StudyConfig, merge, parse_range

    node_range = None
    if nodes is not None:
        lo_hi = parse_range(nodes, what="--nodes")
        if len(lo_hi) != 2 or any(v != int(v) for v in lo_hi):
            raise ConfigError(f"--nodes {nodes!r} must be lo:hi, e.g. 10:50")
        node_range = [int(lo_hi[0]), int(lo_hi[1])]
    over = _common(flags, data_flags)
    if cells is not None:
        over["cells"] = list(_cells(cells))
    over["structure"] = _given(
        generators=list(_names(generators)) if generators is not None else None,
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
    _run(study, flags, ("structure",))
    click.echo("\n" + structure_summary(flags.out).to_string(index=False))


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
@_friendly
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
    for kinds, planned in plans:
        _run(merge(planned, over), flags, kinds)
    if report:
        from sparsernn.report import build_report

        path = build_report(flags.out, Path(flags.out) / "report.html")
        click.echo(f"report: {path}")


@cli.command()
@click.argument("study_dir", type=click.Path(path_type=Path))
@_friendly
def status(study_dir):
    """Summarise a study directory: units done, pending, failed, time spent."""
    from sparsernn.experiments import study_status

    click.echo(study_status(study_dir))


@cli.command()
@click.argument("study_dir", type=click.Path(path_type=Path))
@click.option(
    "-o",
    "--output",
    type=click.Path(path_type=Path),
    default=None,
    help="HTML file [default: STUDY_DIR/report.html].",
)
@_friendly
def report(study_dir, output):
    """Write one self-contained HTML report (tables as CSV/Markdown beside it)."""
    from sparsernn.report import build_report

    if not (Path(study_dir) / "results.sqlite").exists():
        raise ConfigError(
            f"{study_dir} holds no results.sqlite; run a study with --out {study_dir}"
        )
    path = build_report(study_dir, output or Path(study_dir) / "report.html")
    click.echo(f"report: {path}")


def _table(rows: list[dict], cols: list[str]) -> str:
    lines = ["  ".join(f"{c:>14}" for c in cols)]
    for r in rows:
        cells = []
        for c in cols:
            v = r.get(c, "")
            cells.append(f"{v:>14.4f}" if isinstance(v, float) else f"{v!s:>14}")
        lines.append("  ".join(cells))
    return "\n".join(lines)


def main() -> None:
    """Console-script entry point."""
    os.environ.setdefault("PYTHONWARNINGS", "ignore::DeprecationWarning")
    cli(prog_name="sparsernn")


if __name__ == "__main__":
    main()
