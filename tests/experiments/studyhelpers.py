"""Shared helpers of the experiments tests: a tiny study and a timing-free store snapshot."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sparsernn.data import DataSpec
from sparsernn.experiments.config import PruningConfig, StructureConfig, StudyConfig
from sparsernn.store import ResultsStore
from sparsernn.train import TrainConfig


def tiny_study(n_graphs: int = 2) -> StudyConfig:
    """1 base, 2 pruning points and ``n_graphs`` structure units, each well under a second."""
    return StudyConfig(
        cells=("rnn_tanh",),
        data=DataSpec(n_strings=120),
        embedding_dim=4,
        hidden_size=6,
        num_layers=1,
        train=TrainConfig(epochs=1, device="cpu"),
        pruning=PruningConfig(targets=("both",), amounts=(50, 100), retrain_epochs=1),
        structure=StructureConfig(generators=("ws",), n_graphs=n_graphs, nodes=(10, 12), epochs=1),
    )


def snapshot(study_dir: Path) -> dict[str, dict[str, Any]]:
    """Every stored unit, with timings left out of its metrics and curve."""
    with ResultsStore.open(study_dir, readonly=True) as store:
        rows = [store.get(key) for key in sorted(store.keys())]
    return {
        row["key"]: {
            "kind": row["kind"],
            "status": row["status"],
            "attempts": row["attempts"],
            "metrics": {k: v for k, v in (row["metrics"] or {}).items() if "time" not in k},
            "curve": [{k: v for k, v in p.items() if "time" not in k} for p in row["curve"] or []],
        }
        for row in rows
    }
