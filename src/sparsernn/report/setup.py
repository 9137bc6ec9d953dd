"""The report's setup and failures sections, and the caveats shown above all sections.

Settings are read per kind: a study directory that several commands wrote (``sparsernn prune``
then ``sparsernn structure``) holds one config per planned kind, and each kind is described and
judged by its own (:meth:`Context.config`).
"""

from __future__ import annotations

import datetime
import json
import platform
from typing import Any

import pandas as pd

import sparsernn
from sparsernn.experiments.results import StudyResults
from sparsernn.experiments.status import duration
from sparsernn.report.content import Block, Context, Details, Paragraph, missing

__all__ = [
    "HOW_ALL", "setup", "failures", "kind_configs", "caveat", "unpublished", "task_line",
]

#: How to produce a study's units; {dir} is the study directory.
HOW_ALL = (
    "run `sparsernn reproduce --profile quick --out {dir}` "
    "(or `sparsernn prune` / `sparsernn structure`)"
)
#: The unit kinds, in the order the study plans them.
KINDS = ("base", "prune", "structure")
#: Below these, numbers are a pipeline check, not a result.
_MIN_BASE_EPOCHS = 10
_MIN_STRUCTURE_EPOCHS = 5
_MIN_GRAPHS_PER_CELL = 20


def kind_configs(results: StudyResults) -> dict[str, dict[str, Any]]:
    """The config of each planned kind (``results.studies``), or {} for a store with one."""
    studies = getattr(results, "studies", None)
    if not isinstance(studies, dict):
        return {}
    return {str(k): v for k, v in studies.items() if isinstance(v, dict) and v}


def _config_text(study: dict[str, Any]) -> str:
    """The study config as TOML (as in ``study.toml``), or JSON if it no longer parses."""
    try:
        from sparsernn.experiments.config import StudyConfig

        return StudyConfig.from_dict(study).to_toml()
    except Exception:  # noqa: BLE001 - a config from another version is still worth showing
        return json.dumps(study, indent=2, default=str)


def _joined(configs: list[dict[str, Any]], *path: str) -> str:
    """The distinct values of ``config[path...]`` over ``configs`` (list entries flattened), in
    order of appearance, joined by commas; an en dash when there are none."""
    values: dict[str, None] = {}
    for config in configs:
        value: Any = config
        for part in path:
            value = value.get(part) if isinstance(value, dict) else None
        for v in value if isinstance(value, list | tuple) else [] if value is None else [value]:
            values[str(v)] = None
    return ", ".join(values) or "–"


def _task(data: dict[str, Any]) -> tuple[str, str]:
    """The task a stored ``[data]`` table names, and its chance level as text ("–" when it
    cannot be computed, e.g. CSV files stored by their hashes)."""
    from sparsernn.data import DataSpec
    from sparsernn.tasks import chance_level, model_fields

    name = "own CSV files" if data.get("train_csv") else (
        data.get("task") or data.get("grammar") or "reber"
    )
    if data.get("difficulty") is not None:
        name += f" (difficulty {data['difficulty']})"
    try:
        spec = DataSpec.from_dict(data)
        chance = chance_level(spec)
    except Exception:  # noqa: BLE001 - a config from another version, or files moved away
        return name, "–"
    if model_fields(spec).get("regression"):
        return name, f"MSE {chance:.4f} (always answering the mean target)"
    return name, f"{chance:.3f} (always answering the most frequent class)"


def _tasks(ctx: Context) -> list[tuple[str, str]]:
    """(task, chance level) of each distinct ``[data]`` table of the stored configs."""
    configs = list(ctx.configs.values()) or [ctx.results.study or {}]
    tables = {json.dumps(c.get("data") or {}, sort_keys=True, default=str) for c in configs}
    return [_task(json.loads(t)) for t in sorted(tables)]


def task_line(ctx: Context) -> str:
    """One sentence for the report's header: the task (or tasks) and the chance level."""
    parts = [f"{name}, chance level {chance}" for name, chance in _tasks(ctx)]
    return "Task: " + "; ".join(parts) + "."


def _units(ctx: Context) -> pd.DataFrame:
    """Units done and failed and their summed wall time, per kind."""
    res = ctx.results
    fails = res.failures
    failed = fails["kind"].value_counts().to_dict() if "kind" in fails.columns else {}
    rows = []
    for kind, frame in zip(KINDS, (res.base, res.pruning_points, ctx.structure), strict=True):
        wall = pd.to_numeric(frame["wall_s"], errors="coerce").sum() if "wall_s" in frame else 0.0
        rows.append((kind, len(frame), int(failed.get(kind, 0)), float(wall)))
    return pd.DataFrame(rows, columns=["kind", "done", "failed", "wall_s"])


def _info(ctx: Context, units: pd.DataFrame) -> pd.DataFrame:
    """The setup table: versions, platform, study directory, what ran and the report options."""
    import torch

    configs = list(ctx.configs.values()) or [ctx.results.study or {}]
    wall = float(units["wall_s"].sum())
    info = [
        ("sparsernn", sparsernn.__version__),
        ("torch", torch.__version__),
        ("python", platform.python_version()),
        ("platform", platform.platform(terse=True)),
        ("report date", datetime.datetime.now().astimezone().isoformat(timespec="seconds")),
        ("study directory", str(ctx.results.study_dir)),
        ("task", ", ".join(name for name, _ in _tasks(ctx))),
        ("chance level", ", ".join(chance for _, chance in _tasks(ctx))),
        ("cells", _joined(configs, "cells")),
        ("seeds", _joined(configs, "seeds")),
        ("device (config)", _joined(configs, "train", "device")),
        ("units done", str(int(units["done"].sum()))),
        ("units failed", str(len(ctx.results.failures))),
        ("total unit wall time", f"{wall:.1f} s ({duration(wall)})"),
        ("pruning tolerance", f"{ctx.tolerance:g}"),
        ("bootstrap resamples", str(ctx.n_boot)),
    ]
    return pd.DataFrame(info, columns=["item", "value"])


def _config_blocks(ctx: Context) -> list[Block]:
    """The stored configuration, collapsed: one block per distinct config of the planned kinds
    (one command plans several kinds with one config: shown once), else the study's one."""
    if ctx.configs:
        groups: dict[str, list[str]] = {}
        for kind, config in sorted(ctx.configs.items(), key=lambda kv: _kind_rank(kv[0])):
            groups.setdefault(json.dumps(config, sort_keys=True, default=str), []).append(kind)
        return [
            Details(f"Study configuration of the {_listed(kinds)} units",
                    _config_text(ctx.configs[kinds[0]]))
            for kinds in groups.values()
        ]  # fmt: skip
    if not ctx.results.study:
        return [missing("No study configuration is stored in this study directory.")]
    return [Details("Study configuration (study.toml)", _config_text(ctx.results.study))]


def _listed(names: list[str]) -> str:
    """``a``, ``a and b``, ``a, b and c``."""
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]


def _kind_rank(kind: str) -> tuple[int, str]:
    return (KINDS.index(kind) if kind in KINDS else len(KINDS), kind)


def setup(ctx: Context) -> list[Block]:
    """Versions, options, units per kind and the configuration of each kind."""
    units = _units(ctx)
    out: list[Block] = [
        ctx.table("setup", _info(ctx, units)),
        ctx.table("setup_units", units, "Units per kind (wall time summed over units)"),
        *_config_blocks(ctx),
    ]
    if units["done"].sum() == 0:
        text = "This study has no finished units yet: " + HOW_ALL.format(dir=ctx.shell_where) + "."
        out.append(missing(text))
    return out


def failures(ctx: Context) -> list[Block]:
    """The failed units: the last line of each error in a table, each traceback collapsed."""
    fails = ctx.results.failures
    if fails.empty:
        return [Paragraph("No failed units.")]
    table = fails.copy()
    table["error"] = table["error"].astype(str).map(lambda e: (e.strip().splitlines() or [""])[-1])
    text = f"{len(fails)} unit(s) failed; rerun them with the same command and `--retry-failed`."
    out: list[Block] = [
        Paragraph(text),
        ctx.table("failures", table, "Failed units (last line of each error)"),
    ]
    for row in fails.itertuples(index=False):
        out.append(Details(f"{row.key} ({row.kind})", str(row.error)))
    return out


# ----------------------------------------------------------------------------- caveats


def _smoke_like(ctx: Context) -> bool:
    """Whether each part of the study has the ``smoke`` profile's settings (training of the base
    models, pruning, structure; data and model sizes may differ: tests and demos shrink them)."""
    from sparsernn.experiments.config import profile

    smoke = profile("smoke").to_dict()
    parts = {"train": "base", "pruning": "prune", "structure": "structure"}
    return all(ctx.config(kind).get(part) == smoke[part] for part, kind in parts.items())


def _epochs(config: dict[str, Any], part: str) -> Any:
    return (config.get(part) or {}).get("epochs")


def caveat(ctx: Context) -> str | None:
    """One sentence saying why this study's numbers are not meaningful, or None."""
    results, structure = ctx.results, ctx.structure
    reasons = []
    if (ctx.configs or results.study) and _smoke_like(ctx):
        reasons.append("it ran the `smoke` profile, a pipeline check")
    epochs = _epochs(ctx.config("base"), "train")
    if not results.base.empty and isinstance(epochs, int) and epochs < _MIN_BASE_EPOCHS:
        reasons.append(f"base models trained {epochs} epoch(s) (fewer than {_MIN_BASE_EPOCHS})")
    s_epochs = _epochs(ctx.config("structure"), "structure")
    if not structure.empty and isinstance(s_epochs, int) and s_epochs < _MIN_STRUCTURE_EPOCHS:
        reasons.append(
            f"structure networks trained {s_epochs} epoch(s) (fewer than {_MIN_STRUCTURE_EPOCHS})"
        )
    if not structure.empty and "cell" in structure.columns:
        n_graphs = int(structure.groupby("cell").size().min())
        if n_graphs < _MIN_GRAPHS_PER_CELL:
            reasons.append(
                f"{n_graphs} graph(s) per cell are too few for an R² "
                f"(at least {_MIN_GRAPHS_PER_CELL})"
            )
    if not reasons:
        return None
    return "These numbers are not meaningful results: " + "; ".join(reasons) + "."


def _differences(study: dict[str, Any]) -> list[str]:
    """How ``study``'s task and model differ from the paper's (empty: they do not)."""
    from sparsernn.data import DataSpec
    from sparsernn.experiments.config import StudyConfig

    paper_data = DataSpec().to_dict()
    paper = StudyConfig()
    data = study.get("data") or {}
    out = []
    for name in ("grammar", "negative_mix", "alternative_grammars", "valid_fraction"):
        if name in data and _plain(data[name]) != _plain(paper_data[name]):
            out.append(f"data.{name} = {_short(data[name])}")
    for name in ("min_length", "max_length"):
        if name in data and data[name] != paper_data[name]:
            out.append(f"data.{name} = {data[name]}")
    if data.get("train_csv"):
        out.append("its own CSV files (data.train_csv)")
    if data.get("task") not in (None, "reber", "embedded_reber"):  # the grammar: above
        out.append(f"data.task = {_short(data['task'])}")
    if data.get("difficulty") is not None:
        out.append(f"data.difficulty = {data['difficulty']}")
    for name in ("embedding_dim", "hidden_size", "num_layers"):
        if name in study and study[name] != getattr(paper, name):
            out.append(f"{name} = {study[name]} (the study's: {getattr(paper, name)})")
    return out


def unpublished(ctx: Context) -> str | None:
    """One sentence saying why published figures are left out (a kind's task or model differs
    from the paper's), or None when they belong beside these results."""
    configs = list(ctx.configs.values()) or [ctx.results.study or {}]
    differences = list(dict.fromkeys(d for c in configs if c for d in _differences(c)))
    if not differences:
        return None
    return (
        "Published figures are not shown: this study's task or model differs from the paper's ("
        + "; ".join(differences)
        + "), so its numbers are not comparable with them."
    )


def _plain(value: Any) -> Any:
    """JSON/TOML data with tuples as lists, for comparing a stored config with a default."""
    return json.loads(json.dumps(value, default=str))


def _short(value: Any) -> str:
    text = json.dumps(value, default=str) if not isinstance(value, str) else f'"{value}"'
    return text if len(text) <= 60 else text[:57] + "..."
