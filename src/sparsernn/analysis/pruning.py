"""How much pruning a trained RNN tolerates, and how fast retraining recovers it (SPEC section 4).

Both functions take the pruning runner's long results (one row per cell, seed, target, amount,
epoch) and the base table (one row per cell and seed with ``base_accuracy``). "Within tolerance"
means ``accuracy >= base_accuracy - tolerance``; an accuracy exactly at the boundary counts as
within (a 1e-9 slack absorbs float rounding of the subtraction).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from sparsernn.analysis.stats import (
    _check_confidence,
    _empty,
    _format_ci,
    _require_columns,
    mean_ci,
)
from sparsernn.errors import ConfigError, DataError

__all__ = ["tolerated_sparsity", "epochs_to_recover"]

_SLACK = 1e-9
_RESULT_COLUMNS = ("cell", "seed", "target", "amount", "epoch", "accuracy")
_BASE_COLUMNS = ("cell", "seed", "base_accuracy")


def _merged(results: pd.DataFrame, base: pd.DataFrame, tolerance: float, what: str) -> pd.DataFrame:
    """Results with ``base_accuracy`` and a boolean ``ok`` (within tolerance) column."""
    if not float(tolerance) >= 0.0:
        raise ConfigError(f"tolerance must be >= 0 (e.g. 0.01), not {tolerance!r}")
    _require_columns(results, _RESULT_COLUMNS, f"{what} (results)")
    _require_columns(base, _BASE_COLUMNS, f"{what} (base)")
    key = ["cell", "seed", "target", "amount", "epoch"]
    if results.duplicated(key).any():
        dup = results.loc[results.duplicated(key), key].iloc[0].to_dict()
        raise DataError(f"{what}: results have duplicate rows for {dup}; keep one row per key")
    if base.duplicated(["cell", "seed"]).any():
        raise DataError(f"{what}: base has several rows for one (cell, seed); keep one")
    merged = results.merge(base[list(_BASE_COLUMNS)], on=["cell", "seed"], how="left")
    missing = merged["base_accuracy"].isna()
    if missing.any():
        cell, seed = merged.loc[missing, ["cell", "seed"]].iloc[0]
        raise DataError(f"{what}: no base_accuracy for cell {cell}, seed {seed}; add it to base")
    merged["ok"] = merged["accuracy"] >= merged["base_accuracy"] - float(tolerance) - _SLACK
    return merged


def tolerated_sparsity(
    results: pd.DataFrame,
    base: pd.DataFrame,
    tolerance: float = 0.01,
    epoch: int = 0,
    per_seed: bool = False,
    confidence: float = 0.95,
) -> pd.DataFrame:
    """The largest pruning amount whose accuracy stays within ``tolerance`` of the base model.

    This is the study's "safe" amount. It is the LARGEST amount at which accuracy (at
    ``epoch``; 0 = right after pruning) is within tolerance, even if some smaller amount fails
    (accuracy need not fall monotonically); ``first_failure``, the SMALLEST amount that fails,
    shows where that happens. When no amount is within tolerance, ``tolerated`` is 0.

    Parameters
    ----------
    results, base : DataFrame
        Pruning results (long) and base accuracies, see the module docstring.
    tolerance : float, default 0.01
        Allowed accuracy drop (absolute).
    epoch : int, default 0
        Which evaluation to judge: 0 after pruning, ``e`` after ``e`` retraining epochs.
    per_seed : bool, default False
        Return the per-seed frame instead of the aggregate.
    confidence : float, default 0.95

    Returns
    -------
    DataFrame
        Aggregate: ``cell, target, tolerated_mean, tolerated_ci_low, tolerated_ci_high,
        n_seeds`` (t-interval over seeds; NaN bounds with one seed). Per seed: ``cell, seed,
        target, base_accuracy, tolerated, first_failure`` (``first_failure`` NaN if none fails).
    """
    confidence = _check_confidence(confidence)
    seed_cols = ["cell", "seed", "target", "base_accuracy", "tolerated", "first_failure"]
    agg_cols = [
        "cell",
        "target",
        "tolerated_mean",
        "tolerated_ci_low",
        "tolerated_ci_high",
        "n_seeds",
    ]
    merged = _merged(results, base, tolerance, "tolerated_sparsity")
    at = merged.loc[merged["epoch"] == epoch]
    if at.empty:
        return _empty(
            seed_cols if per_seed else agg_cols, f"tolerated_sparsity: no results at epoch {epoch}"
        )
    rows = []
    for (cell, seed, target), sub in at.groupby(["cell", "seed", "target"], sort=True):
        ok = sub.loc[sub["ok"], "amount"]
        bad = sub.loc[~sub["ok"], "amount"]
        rows.append(
            {
                "cell": cell,
                "seed": seed,
                "target": target,
                "base_accuracy": float(sub["base_accuracy"].iloc[0]),
                "tolerated": float(ok.max()) if len(ok) else 0.0,
                "first_failure": float(bad.min()) if len(bad) else np.nan,
            }
        )
    seeds = pd.DataFrame(rows, columns=seed_cols)
    if per_seed:
        return seeds
    agg = []
    for (cell, target), sub in seeds.groupby(["cell", "target"], sort=True):
        mean, lo, hi = mean_ci(sub["tolerated"], confidence)
        agg.append(
            {
                "cell": cell,
                "target": target,
                "tolerated_mean": mean,
                "tolerated_ci_low": lo,
                "tolerated_ci_high": hi,
                "n_seeds": len(sub),
            }
        )
    return pd.DataFrame(agg, columns=agg_cols)


def _display(mean: float, lo: float, hi: float, n_recovered: int, n_seeds: int) -> str:
    """``'1.0 [0.5, 1.5]'``, ``'never'``, or ``'1.0; never (1/3 seeds)'``."""
    if n_recovered == 0:
        return "never"
    text = _format_ci(mean, lo, hi)
    if n_recovered < n_seeds:
        text += f"; never ({n_seeds - n_recovered}/{n_seeds} seeds)"
    return text


def epochs_to_recover(
    results: pd.DataFrame,
    base: pd.DataFrame,
    tolerance: float = 0.01,
    per_seed: bool = False,
    confidence: float = 0.95,
) -> pd.DataFrame:
    """Retraining epochs until accuracy is back within ``tolerance`` of the base model.

    Per (cell, seed, target, amount): the smallest epoch ``e >= 0`` with
    ``accuracy >= base_accuracy - tolerance`` (0 = no retraining was needed), or NaN when no
    recorded epoch gets there ("never").

    Returns
    -------
    DataFrame
        Aggregate: ``cell, target, amount, epochs_mean, ci_low, ci_high, n_recovered, n_seeds,
        epochs``. Mean and t-interval are over the seeds that recovered; ``epochs`` is a display
        string: ``"1.0 [0.5, 1.5]"`` (just ``"1.0"`` with one recovered seed), ``"never"`` when
        no seed recovers, and ``"1.0 [..]; never (k/n seeds)"`` when k of n seeds never recover.
        Per seed (``per_seed=True``): ``cell, seed, target, amount, base_accuracy, epochs,
        recovered``.
    """
    confidence = _check_confidence(confidence)
    seed_cols = ["cell", "seed", "target", "amount", "base_accuracy", "epochs", "recovered"]
    agg_cols = [
        "cell",
        "target",
        "amount",
        "epochs_mean",
        "ci_low",
        "ci_high",
        "n_recovered",
        "n_seeds",
        "epochs",
    ]
    merged = _merged(results, base, tolerance, "epochs_to_recover")
    if merged.empty:
        return _empty(seed_cols if per_seed else agg_cols, "epochs_to_recover: no results")
    rows = []
    keys = ["cell", "seed", "target", "amount"]
    for (cell, seed, target, amount), sub in merged.groupby(keys, sort=True):
        ok = sub.loc[sub["ok"], "epoch"]
        rows.append(
            {
                "cell": cell,
                "seed": seed,
                "target": target,
                "amount": amount,
                "base_accuracy": float(sub["base_accuracy"].iloc[0]),
                "epochs": float(ok.min()) if len(ok) else np.nan,
                "recovered": bool(len(ok)),
            }
        )
    seeds = pd.DataFrame(rows, columns=seed_cols)
    if per_seed:
        return seeds
    agg = []
    for (cell, target, amount), sub in seeds.groupby(["cell", "target", "amount"], sort=True):
        mean, lo, hi = mean_ci(sub["epochs"], confidence)  # NaN ("never") seeds are dropped
        n_rec, n = int(sub["recovered"].sum()), len(sub)
        agg.append(
            {
                "cell": cell,
                "target": target,
                "amount": amount,
                "epochs_mean": mean,
                "ci_low": lo,
                "ci_high": hi,
                "n_recovered": n_rec,
                "n_seeds": n,
                "epochs": _display(mean, lo, hi, n_rec, n),
            }
        )
    return pd.DataFrame(agg, columns=agg_cols)
