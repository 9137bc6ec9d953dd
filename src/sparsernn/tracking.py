"""Training curves where researchers look: TensorBoard event files and MLflow runs (optional).

Install the extra (``pip install 'sparsernn[tracking]'``) and pass ``--log tensorboard`` or
``--log mlflow``. Logging is off by default and only copies numbers: a checkpoint's metrics and
a study's results store stay the source of truth. A logger is an ``on_epoch`` hook of
:func:`sparsernn.train.fit` (one scalar per record entry, at step = epoch); a study's curves
are copied from its store after it ran (:func:`log_study`), one run per unit.

TensorBoard: ``<log_dir>/<run>/events.out.tfevents.*`` (``tensorboard --logdir <log_dir>``).
MLflow: the SQLite store ``<log_dir>/mlflow.db``, experiment ``sparsernn`` (``mlflow ui
--backend-store-uri sqlite:///<log_dir>/mlflow.db``).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Collection, Mapping, Sequence
from pathlib import Path
from typing import Any

from sparsernn.errors import ConfigError

__all__ = ["BACKENDS", "EXPERIMENT", "Loggers", "log_study", "mlflow_uri", "open_loggers"]

#: The ``--log`` choices.
BACKENDS = ("tensorboard", "mlflow")
#: The MLflow experiment every run is logged to.
EXPERIMENT = "sparsernn"

_INSTALL = "pip install 'sparsernn[tracking]'"


def mlflow_uri(log_dir: str | Path) -> str:
    """The MLflow tracking URI of ``log_dir``: its SQLite store ``mlflow.db``."""
    return f"sqlite:///{Path(log_dir).absolute() / 'mlflow.db'}"


def _scalars(record: Mapping[str, Any]) -> dict[str, float]:
    """The finite numbers of an epoch record, except the epoch itself."""
    out = {}
    for key, value in record.items():
        if key != "epoch" and isinstance(value, (int, float)) and not isinstance(value, bool):
            if math.isfinite(value):
                out[key] = float(value)
    return out


class _TensorBoard:
    """One TensorBoard run: a SummaryWriter in ``<log_dir>/<run>``."""

    def __init__(self, log_dir: Path, run: str, params: Mapping[str, Any]) -> None:
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:
            raise ConfigError(f"--log tensorboard needs tensorboard: {_INSTALL}") from None
        self.writer = SummaryWriter(log_dir=str(log_dir / run))
        self.writer.add_text("config", "\n".join(f"{k} = {v}" for k, v in params.items()))

    def log(self, epoch: int, values: Mapping[str, float]) -> None:
        for key, value in values.items():
            self.writer.add_scalar(key, value, epoch)

    def close(self) -> None:
        self.writer.close()


class _MLflow:
    """One MLflow run in the SQLite store of ``log_dir`` (a client: no global state)."""

    def __init__(self, log_dir: Path, run: str, params: Mapping[str, Any]) -> None:
        try:
            from mlflow.tracking import MlflowClient
        except ImportError:
            raise ConfigError(f"--log mlflow needs the mlflow package: {_INSTALL}") from None
        log_dir.mkdir(parents=True, exist_ok=True)
        self.client = MlflowClient(mlflow_uri(log_dir))
        found = self.client.get_experiment_by_name(EXPERIMENT)
        experiment = found.experiment_id if found else self.client.create_experiment(EXPERIMENT)
        self.run_id = self.client.create_run(experiment, run_name=run).info.run_id
        for key, value in params.items():
            self.client.log_param(self.run_id, key, str(value)[:500])

    def log(self, epoch: int, values: Mapping[str, float]) -> None:
        for key, value in values.items():
            self.client.log_metric(self.run_id, key, value, step=epoch)

    def close(self) -> None:
        self.client.set_terminated(self.run_id)


_MAKERS: dict[str, Callable[[Path, str, Mapping[str, Any]], Any]] = {
    "tensorboard": _TensorBoard,
    "mlflow": _MLflow,
}


class Loggers:
    """The ``on_epoch`` hook that sends each epoch record to every open backend."""

    def __init__(self, backends: Sequence[Any]) -> None:
        self.backends = list(backends)

    def __call__(self, record: Mapping[str, Any]) -> None:
        values = _scalars(record)
        for backend in self.backends:
            backend.log(int(record.get("epoch", 0)), values)

    def close(self) -> None:
        for backend in self.backends:
            backend.close()

    def __enter__(self) -> Loggers:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def open_loggers(
    names: Sequence[str], log_dir: str | Path, run: str, params: Mapping[str, Any] | None = None
) -> Loggers:
    """Open one run named ``run`` in each backend of ``names`` (see :data:`BACKENDS`).

    ``params`` (e.g. the flattened configs) are recorded with the run. Raises ConfigError
    naming the extra to install when a backend's package is missing.
    """
    unknown = [n for n in names if n not in _MAKERS]
    if unknown:
        raise ConfigError(f"unknown --log {unknown[0]!r}; choose from {', '.join(BACKENDS)}")
    return Loggers([_MAKERS[n](Path(log_dir), run, params or {}) for n in dict.fromkeys(names)])


def log_study(
    study_dir: str | Path,
    names: Sequence[str],
    log_dir: str | Path,
    keys: Collection[str] | None = None,
) -> int:
    """Copy stored training curves of a study into the backends; return the runs logged.

    Each done unit with a curve is one run named ``<kind>-<key>`` with its flattened config as
    parameters. ``keys``: only these units (a study command passes the units it just ran, so a
    resumed study does not log its earlier units again); None: every stored curve.
    """
    from sparsernn.store import ResultsStore

    with ResultsStore.open(study_dir, readonly=True) as store:
        curves = store.curves()
    if keys is not None and not curves.empty:
        curves = curves[curves["key"].isin(set(keys))]
    if curves.empty:
        return 0
    config_cols = [c for c in curves.columns if c.startswith("config.")]
    n_runs = 0
    for (kind, key), frame in curves.groupby(["kind", "key"], sort=True):
        params = {c[len("config."):]: v for c, v in frame.iloc[0][config_cols].items()}
        with open_loggers(names, log_dir, f"{kind}-{key}", params) as loggers:
            for record in frame.drop(columns=["key", "kind", *config_cols]).to_dict("records"):
                loggers(record)
        n_runs += 1
    return n_runs
