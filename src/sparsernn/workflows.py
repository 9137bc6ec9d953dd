"""Library functions behind the CLI commands, callable from Python with the same arguments.

The study summaries and ``study_status`` live in :mod:`sparsernn.experiments` now.
"""

from __future__ import annotations

import os

from sparsernn.errors import ConfigError

__all__ = ["train_base_model"]


def train_base_model(
    *,
    cell: str = "gru",
    epochs: int = 50,
    batch_size: int = 32,
    lr: float = 1e-3,
    clip: float | None = 5.0,
    hidden_size: int = 50,
    num_layers: int = 3,
    embedding_dim: int = 50,
    train_csv: str | os.PathLike[str] | None = None,
    test_csv: str | os.PathLike[str] | None = None,
    n_strings: int = 25000,
    grammar: str = "reber",
    seed: int = 0,
    device: str = "auto",
    bucket: bool = False,
    out: str | os.PathLike[str] | None = None,
    progress: bool = False,
    threads: int | None = None,
):
    """Train the study's base model on CSV files or a generated data set.

    Returns ``(history, model)``; with ``out`` the checkpoint is saved there atomically.
    """
    from sparsernn._seed import derive_seed
    from sparsernn.data import DataSpec, make_dataset, read_csv
    from sparsernn.models import ModelConfig, build_model
    from sparsernn.train import TrainConfig, fit, resolve_device, save_checkpoint

    if (train_csv is None) != (test_csv is None):
        raise ConfigError("give both --train-csv and --test-csv, or neither (generated data)")
    if train_csv is not None:
        train, test = read_csv(train_csv), read_csv(test_csv)
    else:
        train, test = make_dataset(DataSpec(grammar=grammar, n_strings=n_strings, seed=seed))
    cfg = TrainConfig(
        epochs=epochs,
        batch_size=batch_size,
        lr=lr,
        clip=clip,
        seed=seed,
        device=device,
        bucket=bucket,
        threads=threads,
    )
    model_cfg = ModelConfig(
        cell=cell, embedding_dim=embedding_dim, hidden_size=hidden_size, num_layers=num_layers
    )
    model = build_model(model_cfg, seed=derive_seed(seed, "init", cell))
    model = model.to(resolve_device(device))
    history = fit(model, train, test, cfg, progress=f"{cell}" if progress else False)
    if out is not None:
        save_checkpoint(out, model, history[-1] if history else {})
    return history, model
