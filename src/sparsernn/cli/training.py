"""``sparsernn train`` and ``sparsernn evaluate``: one model at a time."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import click
import pandas as pd

from sparsernn.cli.base import (
    ALL_CELLS,
    ALL_TASKS,
    cli,
    data_conflicts,
    friendly,
    log_options,
    note_capped,
)
from sparsernn.errors import ConfigError

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
    help="Size of the generated data set (examples of any task) when no CSV is given.",
)
@_config_option(
    "--grammar",
    f"{_DATA}.grammar",
    type=click.Choice(["reber", "embedded_reber"]),
    help="Generated strings.",
)
@_config_option(
    "--task", f"{_DATA}.task", type=click.Choice(ALL_TASKS), help="Task (docs/tasks.md)."
)
@_config_option(
    "--difficulty", f"{_DATA}.difficulty", type=int, help="The task's length or delay knob."
)
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
@log_options
@friendly
def train(out, log, log_dir, **flags):
    """Train the study's base model (on any --task) and print its per-epoch table."""
    from sparsernn._seed import derive_seed
    from sparsernn.data import DataSpec
    from sparsernn.experiments.inputs import check_data
    from sparsernn.models import ModelConfig, build_model
    from sparsernn.tasks import model_fields, spec_fields, task_data
    from sparsernn.train import TrainConfig, resolve_device, save_checkpoint

    given = {k: v for k, v in flags.items() if v is not None}
    if given.get("epochs", 1) < 1:
        raise ConfigError(f"--epochs {given['epochs']}: nothing to train; give --epochs 1 or more")
    if ("train_csv" in given) != ("test_csv" in given):
        raise ConfigError("give both --train-csv and --test-csv, or neither (generated data)")
    csv = "train_csv" in given
    data_conflicts(given.get("task"), given.get("grammar"), csv)
    if given.get("clip") == 0:
        given["clip"] = None  # no clipping
    data_cfg = DataSpec.from_dict(spec_fields(_config_fields(DataSpec, given)))  # one key
    check_data(data_cfg)
    note_capped(given.get("n_strings"), data_cfg)
    train_cfg = TrainConfig(**_config_fields(TrainConfig, given))
    model_cfg = ModelConfig(**model_fields(data_cfg), **_config_fields(ModelConfig, given))
    train_set, test_set = task_data(data_cfg)
    model = build_model(model_cfg, seed=derive_seed(train_cfg.seed, "init", model_cfg.cell))
    model = model.to(resolve_device(train_cfg.device))
    history = _fit_logged(model, (train_set, test_set), train_cfg, log, log_dir)
    if out is not None:
        save_checkpoint(out, model, history[-1] if history else {})
    columns = ["epoch", "train_loss", "train_accuracy", "test_loss", "test_accuracy", "epoch_time"]
    click.echo(pd.DataFrame(history, columns=columns).to_string(index=False, float_format="%.4f"))
    if out:
        click.echo(f"saved checkpoint to {out}")


def _fit_logged(model, data, train_cfg, log, log_dir):
    """``fit`` with each epoch record also sent to the ``--log`` backends (if any)."""
    from sparsernn.tracking import open_loggers
    from sparsernn.train import fit

    if not log:
        return fit(model, *data, train_cfg, progress=model.config.cell)
    params = {**model.config.to_dict(), **train_cfg.to_dict(), "task": data[0].name}
    run = f"train-{model.config.cell}-seed{train_cfg.seed}"
    with open_loggers(log, log_dir, run, params) as loggers:
        return fit(model, *data, train_cfg, progress=model.config.cell, on_epoch=loggers)


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
@friendly
def evaluate(checkpoint, test_csv, cell, graph_file, allow_pickle, batch_size, by_kind, threads):
    """Evaluate a checkpoint (ours, or the study's with --study-format CELL) on a CSV."""
    from sparsernn.compat import load_study_checkpoint, load_study_structure_checkpoint
    from sparsernn.data import read_csv
    from sparsernn.tasks import strings_task
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
    res = _evaluate(model, strings_task(test), batch_size, threads=threads)
    click.echo(f"accuracy {res['accuracy']:.4f}  loss {res['loss']:.4f}")
    if by_kind:
        from sparsernn.train import accuracy_by_kind

        table = accuracy_by_kind(model, test, batch_size, threads=threads)
        click.echo(table.to_string(index=False, float_format=lambda x: f"{x:.4f}"))
