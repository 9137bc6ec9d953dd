"""The sparsity methods of a study's pruning units (``pruning.method``, ``sparsernn prune
--method M``): what each unit prunes, and what it trains for how long.

- ``magnitude`` (the study), ``random``, ``snip``: one shot on the trained base model (SNIP
  scores ``|w * dL/dw|`` summed over :data:`SNIP_BATCHES` training batches), then
  ``retrain_epochs`` of retraining with the mask fixed. These may be bundled.
- ``agp``: the trained base model is retrained ``retrain_epochs`` while the sparsity rises from
  0 to the amount along Zhu & Gupta's cubic, pruning by magnitude every ``update_every`` steps
  and reaching the amount at 75% of the retraining steps.
- ``lottery``: from the trained base model, ``rounds`` rounds of magnitude pruning, each
  followed by rewinding to the base model's initialisation (``rewind_epoch = 0``) or to its
  weights after ``rewind_epoch`` epochs (recomputed: the same seed, init and batch order),
  and training for the base model's ``epochs``; the last round's ticket is that training.
  So ``rounds`` trainings of the base's epochs (plus ``rewind_epoch`` epochs).
- ``set``, ``rigl``: from the base model's initialisation with a random mask at the amount,
  one training of the base model's ``epochs`` during which the mask is updated every
  ``update_every`` steps (drop fraction ``drop_fraction``, cosine-decayed to 0 at 75% of the
  steps); RigL regrows by the dense gradient of one random training batch.

Every unit's curve starts at epoch 0 with the model as pruned before (re)training: the pruned
trained model (one-shot), the dense trained model (agp), the rewound ticket (lottery) or the
sparse initialisation (set, rigl).
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
from torch import nn

from sparsernn._seed import derive_seed
from sparsernn.sparsity import METHODS, STUDY_METHODS

__all__ = ["ONE_SHOT", "SNIP_BATCHES", "METHOD_OPTIONS", "method_config", "prune_once", "run"]

#: Methods that prune the trained base model once and retrain it (bundled like the study's).
ONE_SHOT = ("magnitude", "random", "snip")
#: Training batches whose summed gradient SNIP scores.
SNIP_BATCHES = 4
#: The :class:`~sparsernn.experiments.config.PruningConfig` fields each method's units carry.
METHOD_OPTIONS: dict[str, tuple[str, ...]] = {
    "magnitude": (),
    "random": (),
    "snip": (),
    "agp": ("update_every",),
    "lottery": ("rounds", "rewind_epoch"),
    "set": ("update_every", "drop_fraction", "redistribute"),
    "rigl": ("update_every", "drop_fraction", "redistribute"),
}
assert set(METHOD_OPTIONS) == set(STUDY_METHODS)


def method_config(pruning: Any, method: str, train: Any, seed: int) -> dict[str, Any]:
    """The entries a pruning unit's config gains for ``method`` (none for ``magnitude``, so
    the study's keys are unchanged; the options of ``pruning`` the method uses); from-scratch
    methods retrain with the base model's training config ``train``."""
    if method == "magnitude":
        return {}
    extra: dict[str, Any] = {
        "method": method,
        "method_options": {k: getattr(pruning, k) for k in METHOD_OPTIONS[method]},
    }
    if METHODS[method].from_scratch:
        extra["retrain"] = dataclasses.replace(train, seed=seed).to_dict()
    return extra


def _batches(data, seed: int, n_batches: int, batch_size: int, *parts: object):
    """``n_batches`` random training batches (seeded by ``seed`` and ``parts``)."""
    rng = np.random.default_rng(derive_seed(seed, *parts))
    order = rng.permutation(len(data))[: n_batches * batch_size]
    return list(data.batches(order, batch_size))


def prune_once(model: nn.Module, cfg: dict[str, Any], train) -> None:
    """Prune ``model`` in place by a one-shot method (:data:`ONE_SHOT`) at ``cfg["amount"]``."""
    from sparsernn.sparsity import (
        install_masks,
        magnitude_scores,
        masks_from_scores,
        random_scores,
        snip_scores,
    )

    method, target = cfg.get("method", "magnitude"), cfg["target"]
    if method == "random":
        scores = random_scores(model, target, derive_seed(cfg["seed"], "random-mask"))
    elif method == "snip":
        bs = cfg["retrain"]["batch_size"]
        scores = snip_scores(model, _batches(train, cfg["seed"], SNIP_BATCHES, bs, "snip"), target)
    else:
        scores = magnitude_scores(model, target)
    sparsity = cfg["amount"] / 100
    install_masks(model, masks_from_scores(model, scores, sparsity, target, cfg["scope"]))


def _steps(n_train: int, epochs: int, batch_size: int) -> int:
    return epochs * -(-n_train // batch_size)


def _agp(cfg, model, train, retrain, options):
    from sparsernn.sparsity import AGPSchedule, GradualPruner

    total = _steps(len(train), retrain.epochs, retrain.batch_size)
    every = max(1, min(options["update_every"], int(0.75 * total)))
    span = max(every, int(0.75 * total) // every * every)  # a multiple: it ends at the amount
    schedule = AGPSchedule(final=cfg["amount"] / 100, n_steps=span, frequency=every)
    return model, GradualPruner(model, schedule, cfg["target"], cfg["scope"])


def _init_model(cfg, base_model):
    from sparsernn.models import build_model

    seed = derive_seed(cfg["seed"], "init", cfg["cell"])  # the base model's initialisation
    return build_model(base_model.config, seed=seed).to(next(base_model.parameters()).device)


def _lottery(cfg, model, train, retrain, options):
    from sparsernn.sparsity import lottery_ticket, rewind_point
    from sparsernn.train import fit

    start = _init_model(cfg, model)
    if options["rewind_epoch"]:
        fit(start, train, None, dataclasses.replace(retrain, epochs=options["rewind_epoch"]))
    point = rewind_point(start)

    def again(m: nn.Module) -> None:
        fit(m, train, None, retrain, reapply_masks=True)

    lottery_ticket(
        model,
        cfg["amount"] / 100,
        point,
        again,
        rounds=options["rounds"],
        target=cfg["target"],
        scope=cfg["scope"],
    )
    return model, None


def _dynamic(cfg, model, train, retrain, options):
    from sparsernn.sparsity import DynamicSparsity

    model = _init_model(cfg, model)
    total = _steps(len(train), retrain.epochs, retrain.batch_size)
    rigl = cfg["method"] == "rigl"

    def batches():
        return _batches(train, hook.seed + hook.n_updates, 1, retrain.batch_size, "rigl")

    hook = DynamicSparsity(
        model,
        cfg["amount"] / 100,
        target=cfg["target"],
        scope=cfg["scope"],
        regrow="gradient" if rigl else "random",
        update_every=options["update_every"],
        drop_fraction=options["drop_fraction"],
        end_step=int(0.75 * total),
        redistribute=options["redistribute"],
        batches=batches if rigl else None,
        seed=derive_seed(cfg["seed"], cfg["method"]),
    )
    hook.initial_masks()
    return model, hook


_RUNNERS = {"agp": _agp, "lottery": _lottery, "set": _dynamic, "rigl": _dynamic}


def run(cfg: dict[str, Any], base_bytes: bytes) -> dict[str, Any]:
    """Run one pruning unit of a method that is not one-shot; see the module docstring."""
    from sparsernn.experiments.units import _prune_result, _prune_setup
    from sparsernn.train import evaluate, fit

    retrain, train, test, model, base, eval_bs = _prune_setup(cfg, base_bytes)
    options = cfg.get("method_options", {})
    model, hook = _RUNNERS[cfg["method"]](cfg, model, train, retrain, options)
    post = base if cfg["method"] == "agp" else evaluate(model, test, eval_bs)
    history = fit(model, train, test, retrain, on_step=hook, reapply_masks=True)
    return _prune_result(cfg, model, base, post, history)
