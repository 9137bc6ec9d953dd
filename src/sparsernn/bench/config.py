"""What the benchmark measures (:class:`BenchConfig`), the study it projects (``FULL_PROFILE``)
and the training step it times (:func:`study_train_step`)."""

from __future__ import annotations

import dataclasses
from typing import Any

from torch import nn

from sparsernn.config import Config
from sparsernn.errors import ConfigError
from sparsernn.nn.cells import MODES
from sparsernn.train import TrainStep

__all__ = ["BenchConfig", "FULL_PROFILE", "study_train_step"]

#: Step counts of the ``full`` profile used for the projection (SPEC sections 3-5).
FULL_PROFILE: dict[str, int] = {
    "cells": 4,
    "n_train": 18_750,
    "n_test": 6_250,
    "base_epochs": 50,
    "base_batch": 32,
    "pruning_points": 30,
    "retrain_epochs": 10,
    "graphs": 200,
    "graph_epochs": 15,
    "graph_batch": 128,
}


def study_train_step(model: nn.Module) -> TrainStep:
    """The engine's step as ``fit`` takes it with the study's settings (lr 1e-3, clip 5)."""
    return TrainStep(model, lr=1e-3, clip=5.0)


#: Fields that count something and must be at least 1.
_POSITIVE = ("repeats", "structured_repeats", "many_repeats", "n_models", "many_batch")


@dataclasses.dataclass(frozen=True)
class BenchConfig(Config):
    """What to benchmark (defaults: the full benchmark; :meth:`quick` for a < 2 minute run).

    ``cores``: cores the projected study would run on (one single-threaded worker each);
    None = this machine's core count. ``reference``: also time the slow loop reference
    (:mod:`sparsernn.nn.reference`).
    """

    cells: tuple[str, ...] = MODES
    batch_sizes: tuple[int, ...] = (32, 128)
    embedding_dim: int = 50
    hidden_size: int = 50
    num_layers: int = 3
    sparsity: float = 0.8
    warmup: int = 3
    repeats: int = 15
    graph_kinds: tuple[str, ...] = ("ws", "ba")
    graph_nodes: tuple[int, ...] = (50, 25)
    structured_cells: tuple[str, ...] = MODES
    structured_batch: int = 128
    structured_repeats: int = 5
    n_models: int = 30
    many_batch: int = 32
    many_repeats: int = 5
    n_strings: int = 25_000
    reference: bool = True
    device: str = "cpu"
    threads: int | None = 1
    cores: int | None = None
    seed: int = 0

    def __post_init__(self) -> None:
        for cell in (*self.cells, *self.structured_cells):
            if cell not in MODES:
                raise ConfigError(f"unknown cell {cell!r}; choose from {', '.join(MODES)}")
        if self.warmup < 0:
            raise ConfigError(f"warmup={self.warmup} must be >= 0")
        small = [f"{name}={getattr(self, name)}" for name in _POSITIVE if getattr(self, name) < 1]
        if small:
            raise ConfigError(f"{', '.join(small)}: must be >= 1")
        if not 0 <= self.sparsity <= 1:
            raise ConfigError(f"sparsity={self.sparsity} must be a fraction in [0, 1] (0.8 = 80%)")
        if self.threads is not None and self.threads < 1:
            raise ConfigError(f"threads={self.threads} must be >= 1")
        if self.cores is not None and self.cores < 1:
            raise ConfigError(f"cores={self.cores} must be >= 1")
        if any(b < 1 for b in (*self.batch_sizes, self.structured_batch)):
            raise ConfigError("batch sizes must be >= 1")

    @classmethod
    def quick(cls, **changes: Any) -> BenchConfig:
        """A run of under two minutes on 2 CPU cores: fewer repeats, GRU-only structure nets."""
        base = {
            "warmup": 1,
            "repeats": 4,
            "structured_cells": ("gru",),
            "structured_repeats": 2,
            "many_repeats": 2,
        }
        return cls(**{**base, **changes})
