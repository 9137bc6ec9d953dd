"""Units of work: their configs (whose hash is the run key) and the pure function that runs one.

A unit's payload is plain data (JSON-able dicts plus, for pruning, the base model's state dict
bytes), so it runs the same inline, in a local worker process or as a Ray task on another
machine; the worker never touches the results store (the driver is its only writer).
"""

from __future__ import annotations

import dataclasses
import functools
import itertools
import json
import time
import traceback
from typing import Any

from sparsernn._seed import derive_seed
from sparsernn.config import Config, config_key, key_field
from sparsernn.data import DataSpec
from sparsernn.errors import DataError
from sparsernn.experiments import methods
from sparsernn.experiments.config import StudyConfig
from sparsernn.experiments.inputs import StudyInputs, data_identity, resolve_inputs
from sparsernn.experiments.methods import PruneInputs, method_config
from sparsernn.models import ModelConfig, build_model
from sparsernn.nn.cells import CELLS
from sparsernn.nn.structured import StructuredRNN
from sparsernn.sparsity import METHODS
from sparsernn.tasks import TaskData, model_fields, task_data
from sparsernn.train import (
    TrainConfig,
    checkpoint_bytes,
    evaluate,
    fit,
    load_checkpoint,
    resolve_device,
)

__all__ = [
    "Unit",
    "PruneUnitConfig",
    "StructureUnitConfig",
    "plan_units",
    "execute",
    "execute_job",
    "bundle_size",
    "CODE_VERSION",
]

#: Bump when a change alters results of an unchanged config, so old store rows are not reused.
CODE_VERSION = "1"


@dataclasses.dataclass(frozen=True)
class Unit:
    """One unit of work: ``kind`` in {base, prune, structure}, its config and dependencies.

    ``config`` is the unit's identity (its key is the hash of it) and is stored with its
    result. ``runtime`` is what a worker needs besides, that must not change the key: today
    ``{"data": <DataSpec dict with absolute CSV paths>}`` for a study on CSV files (see
    :mod:`sparsernn.experiments.inputs`); it travels with the unit, is not stored, and is None
    for generated data.
    """

    kind: str
    config: dict[str, Any]
    depends_on: str | None = None
    runtime: dict[str, Any] | None = dataclasses.field(default=None, compare=False)

    @property
    def key(self) -> str:
        return config_key({"kind": self.kind, "version": CODE_VERSION, **self.config})

    @property
    def label(self) -> str:
        c = self.config
        if self.kind == "base":
            return f"base {c['cell']} seed={c['seed']}"
        if self.kind == "prune":
            method = f"{c['method']} " if "method" in c else ""
            return f"prune {method}{c['cell']} {c['target']} {c['amount']:g}% seed={c['seed']}"
        graph = f"file {c['graph']}" if c["generator"] == "file" else f"{c['generator']}#"
        return f"structure {c['cell']} {graph}{c.get('graph_id', '')} seed={c['seed']}"


@dataclasses.dataclass(frozen=True)
class PruneUnitConfig(Config):
    """What identifies a pruning unit (:attr:`Unit.config` is its :meth:`to_dict`).

    ``method``, ``method_options`` and ``bundle`` came after pruning units existed: each is a
    :func:`~sparsernn.config.key_field`, so the study's own units (magnitude pruning, each
    point retrained alone) keep their keys. The study's method has no options in its
    identity (``method_options`` None); every other method's are recorded, even when empty.
    """

    cell: str = "gru"
    seed: int = 0
    base: str = ""  # the base unit's key
    target: str = "both"
    amount: float = 0.0
    scope: str = "global"
    retrain: dict[str, Any] = dataclasses.field(default_factory=dict)  # TrainConfig.to_dict()
    data: dict[str, Any] = dataclasses.field(default_factory=dict)
    method: str = key_field(methods.DEFAULT_METHOD)
    method_options: dict[str, Any] | None = key_field(None)
    bundle: int = key_field(1)  # pruning points retrained together (1: alone)


@dataclasses.dataclass(frozen=True)
class StructureUnitConfig(Config):
    """What identifies a random-structure unit (:attr:`Unit.config` is its :meth:`to_dict`).

    A generated graph is named by ``generator``, ``graph_id`` and ``node_range``; a file's
    graph (``generator="file"``) by ``graph``, ``graph_sha256``, ``n_nodes`` and
    ``graph_edges``, without a position, so that adding a file retrains nothing else. Those
    and ``gate_layout`` (added later) are :func:`~sparsernn.config.key_field` s, absent from
    the key while unused.
    """

    cell: str = "gru"
    seed: int = 0
    data: dict[str, Any] = dataclasses.field(default_factory=dict)
    train: dict[str, Any] = dataclasses.field(default_factory=dict)  # TrainConfig.to_dict()
    generator: str = "ws"
    graph_id: int | None = key_field(None)
    node_range: tuple[int, int] | None = key_field(None)
    graph: str | None = key_field(None)
    graph_sha256: str | None = key_field(None)
    n_nodes: int | None = key_field(None)
    graph_edges: tuple[tuple[int, int], ...] | None = key_field(None)
    gate_layout: str = key_field("blocked")


def _base_config(study: StudyConfig, cell: str, seed: int, data: dict[str, Any]) -> dict[str, Any]:
    model = ModelConfig(
        cell=cell,
        embedding_dim=study.embedding_dim,
        hidden_size=study.hidden_size,
        num_layers=study.num_layers,
        **model_fields(study.data),  # the task's input layer and head; {} for the study's
    )
    train = dataclasses.replace(study.train, seed=seed)
    return {
        "cell": cell,
        "seed": seed,
        "data": data,
        "model": model.to_dict(),
        "train": train.to_dict(),
    }


#: Cells whose pruning points are retrained together under ``bundle = 0`` (auto): measured
#: faster with :func:`sparsernn.train.train_many`; LSTM is not (``benchmarks/README.md``).
BUNDLED_CELLS = frozenset(name for name, spec in CELLS.items() if spec.fused_cpu)


def bundle_size(bundle: int, cell: str, n_points: int) -> int:
    """Resolve :attr:`PruningConfig.bundle` for one cell with ``n_points`` pruning points."""
    if bundle:
        return bundle
    return max(1, n_points) if cell in BUNDLED_CELLS else 1


def plan_units(study: StudyConfig, inputs: StudyInputs | None = None) -> list[Unit]:
    """Every unit of a study, bases first (pruning units depend on them).

    ``inputs`` are the study's files as :func:`~sparsernn.experiments.inputs.resolve_inputs`
    read them; without it they are read here (a missing or malformed file raises).
    """
    if inputs is None:
        inputs = resolve_inputs(study)
    data = inputs.data
    runtime = {"data": inputs.data_runtime} if inputs.data_runtime is not None else None
    units: list[Unit] = []
    for cell in study.cells:
        for seed in study.seeds:
            base = Unit("base", _base_config(study, cell, seed, data), runtime=runtime)
            units.append(base)
            if not study.pruning.enabled:
                continue
            p = study.pruning
            retrain = dataclasses.replace(study.train, epochs=p.retrain_epochs, seed=seed)
            n_points = len([m for m in p.methods if METHODS[m].one_shot]) * len(p.targets)
            bundled = bundle_size(p.bundle, cell, n_points * len(p.amounts))
            for method, target, amount in itertools.product(p.methods, p.targets, p.amounts):
                fields = {
                    "cell": cell,
                    "seed": seed,
                    "base": base.key,
                    "target": target,
                    "amount": float(amount),
                    "scope": p.scope,
                    "retrain": retrain.to_dict(),
                    "data": data,
                    "bundle": bundled if METHODS[method].one_shot else 1,  # hooks: a MaskedRNN
                    **method_config(p, method, study.train, seed),  # may replace retrain
                }
                cfg = PruneUnitConfig(**fields)
                units.append(Unit("prune", cfg.to_dict(), depends_on=base.key, runtime=runtime))
    s = study.structure
    if s.enabled:
        for cell in study.cells:
            for seed in study.seeds:
                train = dataclasses.replace(
                    study.train, epochs=s.epochs, batch_size=s.batch_size, seed=seed
                )
                common: dict[str, Any] = {
                    "cell": cell,
                    "seed": seed,
                    "data": data,
                    "train": train.to_dict(),
                }
                for graph in _structure_graphs(s, inputs):
                    shape = StructureUnitConfig(**common, **graph, gate_layout=s.gate_layout)
                    units.append(Unit("structure", shape.to_dict(), runtime=runtime))
    return units


def _structure_graphs(s, inputs: StudyInputs) -> list[dict[str, Any]]:
    """The graph fields of each structure unit's config: a generator's graph, or a file's."""
    if inputs.graphs is None:
        return [
            {"generator": gen, "graph_id": graph_id, "node_range": tuple(s.nodes)}
            for gen in s.generators
            for graph_id in range(s.n_graphs)
        ]
    # File graphs: no position (graph_id) in the key, so adding a file retrains nothing else.
    return [
        {
            "generator": "file",
            "graph": g.name,
            "graph_sha256": g.sha256,
            "n_nodes": g.n_nodes,
            "graph_edges": tuple(tuple(e) for e in g.edges),
        }
        for g in inputs.graphs
    ]


# ---------------------------------------------------------------------------------- execution
@functools.lru_cache(maxsize=4)
def _data(spec_json: str, identity_json: str | None) -> tuple[TaskData, TaskData]:
    spec = DataSpec.from_json(spec_json)
    if identity_json is not None and data_identity(spec) != json.loads(identity_json):
        raise DataError(
            f"data files changed since the study was planned ({spec.train_csv}, "
            f"{spec.test_csv}); rerun the command to plan units for their new content"
        )
    return task_data(spec)


def _datasets(cfg: dict[str, Any]) -> tuple[TaskData, TaskData]:
    """The (train, test) data of a unit config (as :func:`_with_runtime` made it), made once
    per process for each data spec (the engine views it on the model's device per call)."""
    identity = cfg.get("data_identity")
    identity_json = None if identity is None else json.dumps(identity, sort_keys=True)
    return _data(DataSpec.from_dict(cfg["data"]).to_json(), identity_json)


def _with_runtime(unit: dict[str, Any]) -> dict[str, Any]:
    """A unit payload's config as its worker uses it: with the CSV paths from ``runtime``
    in ``data`` and the planned identity of the data in ``data_identity``."""
    cfg = unit["config"]
    runtime = unit.get("runtime") or {}
    if runtime.get("data") is None:
        return cfg
    return {**cfg, "data": runtime["data"], "data_identity": cfg["data"]}


def _run_base(cfg: dict[str, Any]) -> dict[str, Any]:
    train_cfg = TrainConfig.from_dict(cfg["train"])
    device = resolve_device(train_cfg.device)
    train, test = _datasets(cfg)
    model_cfg = ModelConfig.from_dict(cfg["model"])
    model = build_model(model_cfg, seed=derive_seed(cfg["seed"], "init", cfg["cell"])).to(device)
    curve = fit(model, train, test, train_cfg)
    last = curve[-1] if curve else evaluate(model, test, train_cfg.batch_size)
    metrics = {
        "test_accuracy": last.get("test_accuracy", last.get("accuracy")),
        "test_loss": last.get("test_loss", last.get("loss")),
        "train_accuracy": last.get("train_accuracy"),
        "epochs": len(curve),
        "mean_epoch_time": sum(r["epoch_time"] for r in curve) / max(len(curve), 1),
        "device": str(device),
    }
    return {
        "metrics": metrics,
        "curve": curve,
        "files": {"model.pt": checkpoint_bytes(model, metrics)},
    }


def _prune_inputs(cfg: dict[str, Any], base_bytes: bytes) -> PruneInputs:
    """What every pruning unit of one base starts from: retraining config, data, the base
    model and its test metrics, and the evaluation batch size."""
    retrain = TrainConfig.from_dict(cfg["retrain"])
    device = resolve_device(retrain.device)
    train, test = _datasets(cfg)
    model, _ = load_checkpoint(base_bytes, device)
    eval_bs = retrain.eval_batch_size or retrain.batch_size
    base = evaluate(model, test, eval_bs)
    return PruneInputs(retrain, train, test, model, base, eval_bs)


def _run_prune_many(cfgs: list[dict[str, Any]], base_bytes: bytes) -> list[dict[str, Any]]:
    """Pruning units of one base model retrained together (:func:`methods.run_many`)."""
    own = ("target", "amount", "method", "method_options")  # one-shot methods may share
    shared = {k: v for k, v in cfgs[0].items() if k not in own}
    for cfg in cfgs[1:]:
        if {k: v for k, v in cfg.items() if k not in own} != shared:
            raise ValueError("a bundle holds pruning units of one base and retraining config")
    return methods.run_many(cfgs, _prune_inputs(shared, base_bytes))


def structure_graph(cfg: dict[str, Any]):
    """The graph of a structure unit: graph ``graph_id`` of its generator's seeded stream (made
    directly, see :func:`~sparsernn.graphs.sample_graph`), or, for ``generator == "file"``,
    the graph its config carries (``graph_edges``, ``n_nodes``)."""
    from sparsernn.graphs import graph_from_edges, sample_graph

    if cfg["generator"] == "file":
        return graph_from_edges(cfg["graph_edges"], cfg["n_nodes"])
    lo, hi = cfg["node_range"]
    return sample_graph(cfg["generator"], cfg["graph_id"], (lo, hi), seed=cfg["seed"])


def _run_structure(cfg: dict[str, Any]) -> dict[str, Any]:
    from sparsernn.graphs import graph_to_edges, properties

    graph = structure_graph(cfg)
    train_cfg = TrainConfig.from_dict(cfg["train"])
    device = resolve_device(train_cfg.device)
    train, test = _datasets(cfg)
    edges = graph_to_edges(graph)
    model_cfg = ModelConfig(
        cell=cfg["cell"],
        embedding_dim=None,
        graph_edges=tuple((int(u), int(v)) for u, v in edges),
        n_nodes=graph.number_of_nodes(),
        gate_layout=cfg.get("gate_layout", "blocked"),
        **model_fields(DataSpec.from_dict(cfg["data"])),
    )
    graph_id = cfg["graph_sha256"] if cfg["generator"] == "file" else cfg["graph_id"]
    seed = derive_seed(cfg["seed"], "init", cfg["cell"], cfg["generator"], graph_id)
    model = build_model(model_cfg, seed=seed).to(device)
    recurrent = model.recurrent
    assert isinstance(recurrent, StructuredRNN)  # a graph-wired config builds one
    dag = recurrent.dag  # the layering the model was built from: not built again
    curve = fit(model, train, test, train_cfg)
    metrics = {
        "test_accuracy": curve[-1]["test_accuracy"],
        "test_loss": curve[-1]["test_loss"],
        **{k: float(v) for k, v in properties(graph, dag=dag).items()},
        "n_parameters": recurrent.n_parameters(),
        "layer_sizes": list(dag.layer_sizes),
        "edge_list": [list(e) for e in edges],
    }
    return {"metrics": metrics, "curve": curve, "files": {}}


def execute(unit: dict[str, Any], base_bytes: bytes | None = None) -> dict[str, Any]:
    """Run one unit (``{"kind", "config"}``); never raises: failures come back as data."""
    started = time.time()
    t0 = time.perf_counter()
    try:
        cfg = _with_runtime(unit)
        if unit["kind"] == "base":
            out = _run_base(cfg)
        elif unit["kind"] == "prune":
            if base_bytes is None:
                raise RuntimeError("pruning unit needs its base model's checkpoint")
            if cfg.get("bundle", 1) > 1:  # a bundle of one: still train_many
                out = _run_prune_many([cfg], base_bytes)[0]
            else:
                out = methods.run(cfg, _prune_inputs(cfg, base_bytes))
        elif unit["kind"] == "structure":
            out = _run_structure(cfg)
        else:
            raise ValueError(f"unknown unit kind {unit['kind']!r}")
        out["status"] = "done"
    except Exception:  # noqa: BLE001 - a failing unit is recorded, the study goes on
        out = {"status": "failed", "error": traceback.format_exc()}
    out["wall_s"] = time.perf_counter() - t0
    out["started"] = started
    return out


def execute_job(units: list[dict[str, Any]], base_bytes: bytes | None = None) -> list[dict]:
    """Run a job: one unit, or pruning units of one base retrained together; never raises.

    Each unit of a bundle gets its own result; its ``wall_s`` is its share of the bundle's
    wall time (the bundle's time divided by its size).
    """
    if len(units) == 1:
        return [execute(units[0], base_bytes)]
    started = time.time()
    t0 = time.perf_counter()
    try:
        if any(u["kind"] != "prune" or u["config"].get("bundle", 1) < len(units) for u in units):
            raise ValueError("a job of several units must be pruning units of one bundle")
        if base_bytes is None:
            raise RuntimeError("pruning units need their base model's checkpoint")
        outs = _run_prune_many([_with_runtime(u) for u in units], base_bytes)
        for out in outs:
            out["status"] = "done"
    except Exception:  # noqa: BLE001 - a failing bundle fails each of its units
        error = traceback.format_exc()
        outs = [{"status": "failed", "error": error} for _ in units]
    share = (time.perf_counter() - t0) / len(units)
    for out in outs:
        out["wall_s"] = share
        out["started"] = started
    return outs
