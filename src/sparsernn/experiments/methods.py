"""The sparsity methods of a study's pruning units (``pruning.method``, ``sparsernn prune
--method M``): every unit runs the method :data:`~sparsernn.sparsity.METHODS` names.

The method's :meth:`~sparsernn.sparsity.SparsityMethod.for_study` says what the unit prunes
and from which model (see each class: one-shot methods prune the trained base model and
retrain it ``retrain_epochs`` with the mask fixed, and may be bundled; ``agp`` prunes while
retraining; ``lottery`` trains its rounds from the base model's initialisation; ``set`` and
``rigl`` train from it with the mask changing). This module gives it a
:class:`~sparsernn.sparsity.StudyUnit` (seeds, batches, training), trains the model it gets
and stores the result.

Every unit's curve starts at epoch 0 with the model as pruned before (re)training: the pruned
trained model (one-shot), the dense trained model (agp), the rewound ticket (lottery) or the
sparse initialisation (set, rigl).
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any

import numpy as np
from torch import Tensor, nn

from sparsernn._seed import derive_seed
from sparsernn.batching import EncodedData
from sparsernn.models import build_model
from sparsernn.sparsity import METHODS, SparsityMethod, sparsity_report
from sparsernn.tasks import TaskData
from sparsernn.train import TrainConfig, evaluate, evaluate_many, fit, train_many

__all__ = ["DEFAULT_METHOD", "PruneInputs", "method_config", "run", "run_many"]

#: The study's own method: its units carry no ``method`` entry (their keys predate methods).
DEFAULT_METHOD = "magnitude"


def method_config(pruning: Any, method: str, train: TrainConfig, seed: int) -> dict[str, Any]:
    """The :class:`~sparsernn.experiments.units.PruneUnitConfig` fields ``method`` sets: its
    name and the options of ``pruning`` it uses (None for the study's method, whose units
    predate methods); from-scratch methods retrain with the base's training config ``train``."""
    cls = METHODS[method]
    options = {k: getattr(pruning, k) for k in cls.study_options or ()}
    extra: dict[str, Any] = {
        "method": method,
        "method_options": None if method == DEFAULT_METHOD else options,
    }
    if cls.from_scratch:
        extra["retrain"] = dataclasses.replace(train, seed=seed).to_dict()
    return extra


@dataclasses.dataclass(frozen=True)
class PruneInputs:
    """What every pruning unit of one base model starts from."""

    retrain: TrainConfig
    train: TaskData
    test: TaskData
    model: nn.Module  # the trained base model
    base: dict[str, float]  # its test metrics
    eval_batch_size: int


@dataclasses.dataclass(frozen=True)
class _Unit:
    """A pruning unit as a method sees it (:class:`~sparsernn.sparsity.StudyUnit`)."""

    cfg: dict[str, Any]
    inputs: PruneInputs
    model: nn.Module

    @property
    def sparsity(self) -> float:
        return self.cfg["amount"] / 100

    @property
    def target(self) -> str:
        return self.cfg["target"]

    @property
    def scope(self) -> str:
        return self.cfg["scope"]

    @property
    def options(self) -> dict[str, Any]:
        return self.cfg.get("method_options", {})

    @property
    def seed(self) -> int:
        return self.cfg["seed"]

    @property
    def total_steps(self) -> int:
        retrain = self.inputs.retrain
        return retrain.epochs * -(-len(self.inputs.train) // retrain.batch_size)

    def seed_for(self, *parts: object) -> int:
        return derive_seed(self.seed, *parts)

    @functools.cached_property
    def _train_tensors(self) -> EncodedData:
        """The training data on the model's device, made once per unit (RigL draws a batch
        from it at every mask update)."""
        return EncodedData(self.inputs.train, next(self.model.parameters()).device)

    def batches(self, seed: int, n_batches: int, *parts: object) -> list[tuple[Tensor, Tensor]]:
        data, size = self._train_tensors, self.inputs.retrain.batch_size
        rng = np.random.default_rng(derive_seed(seed, *parts))
        order = rng.permutation(len(data))[: n_batches * size]
        return list(data.batches(order, size))

    def init_model(self) -> nn.Module:
        seed = derive_seed(self.seed, "init", self.cfg["cell"])  # the base model's init
        device = next(self.model.parameters()).device
        return build_model(self.model.config, seed=seed).to(device)  # type: ignore[arg-type]

    def train(self, model: nn.Module, epochs: int | None = None) -> None:
        retrain = self.inputs.retrain
        if epochs is not None:
            retrain = dataclasses.replace(retrain, epochs=epochs)
        fit(model, self.inputs.train, None, retrain, reapply_masks=True)


def _start(cfg: dict[str, Any], inputs: PruneInputs, model: nn.Module):
    """The method's class, the model to train and the per-step method (or None)."""
    cls: type[SparsityMethod] = METHODS[cfg.get("method", DEFAULT_METHOD)]
    return (cls, *cls.for_study(_Unit(cfg, inputs, model)))


def run(cfg: dict[str, Any], inputs: PruneInputs) -> dict[str, Any]:
    """Run one pruning unit; see the module docstring."""
    cls, model, method = _start(cfg, inputs, inputs.model)
    post = evaluate(model, inputs.test, inputs.eval_batch_size)
    history = fit(
        model,
        inputs.train,
        inputs.test,
        inputs.retrain,
        on_step=method,
        reapply_masks=not cls.one_shot,
    )
    return _result(cfg, model, inputs.base, post, history)


def run_many(cfgs: list[dict[str, Any]], inputs: PruneInputs) -> list[dict[str, Any]]:
    """Pruning units of one-shot methods on one base model, retrained together
    (:func:`sparsernn.train.train_many`).

    Equal to running each with :func:`run` up to float rounding: the copies share the batch
    order that ``fit`` would draw for each of them alone.
    """
    import copy

    models = []
    for cfg in cfgs:
        cls, model, method = _start(cfg, inputs, copy.deepcopy(inputs.model))
        if method is not None or not cls.one_shot:
            raise ValueError(f"method {cls.name!r} changes its masks while training: not bundled")
        models.append(model)
    posts = evaluate_many(models, inputs.test, inputs.eval_batch_size)
    histories = train_many(models, inputs.train, inputs.test, inputs.retrain)
    return [
        _result(cfg, model, inputs.base, post, history)
        for cfg, model, post, history in zip(cfgs, models, posts, histories, strict=True)
    ]


def _result(cfg, model, base, post, history) -> dict[str, Any]:
    """A pruning unit's stored result: accuracies before/after pruning, sparsity, the curve."""
    report = sparsity_report(model, per_gate=True)
    kinds = ["i2h", "h2h"] if cfg["target"] == "both" else [cfg["target"]]
    selected = report[report["kind"].isin(kinds)]
    achieved = float(1 - selected["kept"].sum() / selected["size"].sum())
    curve = [{"epoch": 0, "test_accuracy": post["accuracy"], "test_loss": post["loss"]}]
    curve += [
        {k: r[k] for k in ("epoch", "test_accuracy", "test_loss", "train_loss", "epoch_time")}
        for r in history
    ]
    metrics = {
        "base_accuracy": base["accuracy"],
        "post_prune_accuracy": post["accuracy"],
        "final_accuracy": curve[-1]["test_accuracy"],
        "achieved_sparsity": achieved,  # over the targeted matrices
        "overall_sparsity": achieved,  # the same; the name the methods' results use
        "model_sparsity": float(1 - report["kept"].sum() / report["size"].sum()),
    }
    for r in report.itertuples(index=False):  # flat, as the store's frame would name them
        metrics[f"gate_sparsity.{r.weight}.{r.gate}"] = float(r.sparsity)
    return {"metrics": metrics, "curve": curve, "files": {}}
