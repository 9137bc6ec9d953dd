"""Hours of the full study projected from the benchmark's measured step and eval-batch times."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from sparsernn.bench.config import FULL_PROFILE

__all__ = ["project_full_profile"]

_P = FULL_PROFILE
#: Training steps and evaluation batches per epoch: base models (batch 32), structure nets (128).
_TRAIN, _TEST = (
    math.ceil(_P["n_train"] / _P["base_batch"]),
    math.ceil(_P["n_test"] / _P["base_batch"]),
)
_GRAPH_TRAIN = math.ceil(_P["n_train"] / _P["graph_batch"])
_GRAPH_TEST = math.ceil(_P["n_test"] / _P["graph_batch"])


def _secs(step_ms: float | None, eval_ms: float | None, steps: int, evals: int) -> float | None:
    """Seconds of ``steps`` training steps and ``evals`` eval batches; None if one is unknown."""
    if step_ms is None or eval_ms is None:
        return None
    return (steps * step_ms + evals * eval_ms) / 1e3


def _over_cells(per_cell: dict[str, float | None]) -> float | None:
    """Hours of all the profile's cells: the mean over the measured ones, times the count."""
    known = [v for v in per_cell.values() if v is not None]
    return None if not known else float(np.mean(known)) * _P["cells"] / 3600


def _pruning_s(epoch_s: float, eval_ms: float, n_runs: int) -> float:
    """Seconds of ``n_runs`` retrainings: ``retrain_epochs`` epochs and the epoch-0 evaluation."""
    return n_runs * (_P["retrain_epochs"] * epoch_s + _TEST * eval_ms / 1e3)


def _single_model_hours(rows: dict[str, dict[str, Any]], variant: str) -> dict[str, Any]:
    """Base and pruning hours when every model trains alone with ``variant``'s step."""
    base, pruning = {}, {}
    for cell, r in rows.items():
        epoch = _secs(r.get(f"{variant}_ms"), r.get(f"{variant}_eval_ms"), _TRAIN, _TEST)
        base[cell] = None if epoch is None else _P["base_epochs"] * epoch
        pruning[cell] = (
            None
            if epoch is None
            else _pruning_s(epoch, r[f"{variant}_eval_ms"], _P["pruning_points"])
        )
    return {"base": _over_cells(base), "pruning": _over_cells(pruning)}


def _best_pruning_hours(many: list[dict[str, Any]]) -> float | None:
    """Pruning hours with each cell's copies trained K at once or one by one, the faster."""
    best: dict[str, float | None] = {}
    for r in many:
        if r["batch_size"] != _P["base_batch"]:
            continue
        chunks = math.ceil(_P["pruning_points"] / r["n_models"])
        together = (_TRAIN * r["batched_ms"] + _TEST * r["batched_eval_ms"]) / 1e3
        alone = (_TRAIN * r["one_by_one_ms"] + _TEST * r["single_eval_ms"]) / 1e3
        best[r["cell"]] = min(
            _pruning_s(together, r["batched_eval_ms"], chunks),
            _pruning_s(alone, r["single_eval_ms"], _P["pruning_points"]),
        )
    return _over_cells(best)


def _ref_eval(row: dict[str, Any]) -> float | None:
    """Reference eval-batch time of a structured net: ours scaled by the training-step ratio."""
    if row.get("reference_ms") is None:
        return None
    return row["ours_eval_ms"] * row["reference_ms"] / row["ours_ms"]


def _structure_hours(structured: list[dict[str, Any]], variant: str) -> float | None:
    """Hours of the structure study: per cell the mean over the measured graphs.

    ``variant``: ``ours`` (the layer schedule as it runs by default), ``torch`` (the same
    schedule in PyTorch ops, where the benchmark timed it) or ``reference``.
    """
    per_graph: dict[str, list[float]] = {}
    for r in structured:
        eval_ms = _ref_eval(r) if variant == "reference" else r.get(f"{variant}_eval_ms")
        epoch = _secs(r.get(f"{variant}_ms"), eval_ms, _GRAPH_TRAIN, _GRAPH_TEST)
        if epoch is not None:
            per_graph.setdefault(r["cell"], []).append(epoch)
    runs = _P["graphs"] * _P["graph_epochs"]
    return _over_cells({c: runs * float(np.mean(v)) for c, v in per_graph.items()})


def project_full_profile(results: dict[str, Any], cores: int = 1) -> dict[str, Any]:
    """Hours of the ``full`` profile from measured step and eval-batch times.

    ``total`` is the work of one single-threaded process; ``wall`` divides it by ``cores``,
    since the study's units are independent and run one per core (``--workers``): this
    assumes each worker keeps the measured per-thread speed while all cores are busy (the
    benchmark's own timings are taken on the same, possibly loaded, machine).

    Per cell: base = 50 epochs x (586 steps at batch 32 + 196 eval batches); pruning = 30
    points x (10 such epochs + the epoch-0 evaluation), one by one or the 30 copies at once;
    structure = 200 graphs x 15 epochs x (147 steps at batch 128 + 49 eval batches), with the
    mean over the measured graphs standing in for the study's 10..50-node graphs. The mean over
    the measured cells is multiplied by the number of cells; None where nothing was measured.
    """
    rows = {r["cell"]: r for r in results["cells"] if r["batch_size"] == _P["base_batch"]}
    hours = {variant: _single_model_hours(rows, variant) for variant in ("reference", "masked")}
    hours["best"] = {
        "base": hours["masked"]["base"],
        "pruning": _best_pruning_hours(results["many"]),
    }
    hours["reference"]["structure"] = _structure_hours(results["structured"], "reference")
    hours["masked"]["structure"] = _structure_hours(results["structured"], "ours")
    hours["best"]["structure"] = hours["masked"]["structure"]
    for h in hours.values():
        parts = [h.get(k) for k in ("base", "pruning", "structure")]
        h["total"] = sum(parts) if all(x is not None for x in parts) else None
        h["wall"] = None if h["total"] is None else h["total"] / cores
    return {
        "profile": dict(_P),
        "cores": cores,
        "hours": hours,
        # the structure part by kernel: the compiled loop (ours) against PyTorch ops
        "structure_by_kernel": {
            "ours": hours["masked"]["structure"],
            "torch": _structure_hours(results["structured"], "torch"),
        },
        "base_epoch_s": {
            c: _secs(r["masked_ms"], r["masked_eval_ms"], _TRAIN, _TEST) for c, r in rows.items()
        },
        "note": (
            "reference = slow per-step loops; masked = our single-model paths, one model at a "
            "time; best = the same with each cell's 30 pruning copies trained at once where "
            "that is faster (sparsernn.train.train_many)"
        ),
    }
