"""How much pruning a trained RNN tolerates, and how fast retraining recovers it (SPEC section 4).

Both functions take the pruning runner's long results (one row per cell, seed, target, amount,
epoch) and the base table (one row per cell and seed with ``base_accuracy``). "Within tolerance"
means ``accuracy >= base_accuracy - tolerance``; an accuracy exactly at the boundary counts as
within (a 1e-9 slack absorbs float rounding of the subtraction).
"""

from __future__ import annotations

import pandas as pd

from sparsernn.analysis.frames import check_confidence, empty_frame, format_ci, require_columns
from sparsernn.analysis.stats import mean_ci
from sparsernn.errors import ConfigError, DataError

__all__ = ["tolerated_sparsity", "epochs_to_recover"]

_SLACK = 1e-9
_RESULT_COLUMNS = ("cell", "seed", "target", "amount", "epoch", "accuracy")
_BASE_COLUMNS = ("cell", "seed", "base_accuracy")
# Result columns: per seed and aggregated over seeds.
_TOLERATED_SEED = "cell seed target base_accuracy tolerated below_grid first_failure".split()
_TOLERATED_SEED += ["largest_within"]
_TOLERATED_AGG = "cell target tolerated_mean tolerated_ci_low tolerated_ci_high n_seeds".split()
_TOLERATED_AGG += ["n_below_grid", "per_seed"]
_RECOVER_SEED = "cell seed target amount base_accuracy epochs recovered".split()
_RECOVER_AGG = "cell target amount epochs_mean ci_low ci_high n_recovered n_seeds epochs".split()


def _merged(results: pd.DataFrame, base: pd.DataFrame, tolerance: float, what: str) -> pd.DataFrame:
    """Results with ``base_accuracy`` and a boolean ``ok`` (within tolerance) column."""
    if not float(tolerance) >= 0.0:
        raise ConfigError(f"tolerance must be >= 0 (e.g. 0.01), not {tolerance!r}")
    require_columns(results, _RESULT_COLUMNS, f"{what} (results)")
    require_columns(base, _BASE_COLUMNS, f"{what} (base)")
    key = _keys(results, ["cell", "seed", "target", "amount", "epoch"])
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


def _keys(results: pd.DataFrame, keys: list[str]) -> list[str]:
    """``keys`` with ``method`` after ``target`` when the results carry a method column (the
    same grid run with several sparsity methods, :mod:`sparsernn.sparsity`)."""
    if "method" not in results.columns:
        return keys
    at = keys.index("target") + 1
    return [*keys[:at], "method", *keys[at:]]


def tolerated_sparsity(
    results: pd.DataFrame,
    base: pd.DataFrame,
    tolerance: float = 0.01,
    epoch: int = 0,
    per_seed: bool = False,
    confidence: float = 0.95,
) -> pd.DataFrame:
    """The largest pruning amount up to which every amount stays within ``tolerance``.

    This is the study's "safe" amount: accuracy (at ``epoch``; 0 = right after pruning) is
    within tolerance of the base model at this amount AND at every smaller amount of the grid.
    ``first_failure`` is the smallest amount that fails; ``tolerated`` is the grid amount just
    below it (all amounts when none fails). When even the smallest amount of the grid fails,
    ``tolerated`` is 0 (the unpruned model, which is not a grid amount) and ``below_grid`` is
    True: a display should say "below the grid", not "0". The other reading, the largest amount
    that is within tolerance even if a smaller one fails, is ``largest_within`` (NaN if none).

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
        Aggregate over seeds (each seed an independent base model, the replicate unit):
        ``cell, target, tolerated_mean, tolerated_ci_low, tolerated_ci_high, n_seeds,
        n_below_grid, per_seed`` (t-interval over the seeds' ``tolerated``, NaN bounds with one
        seed; ``per_seed`` lists each seed's value in seed order, ``<a`` for below the grid
        whose smallest amount is ``a``). Per seed: ``cell, seed, target, base_accuracy,
        tolerated, below_grid, first_failure, largest_within`` (NaN where none).
    """
    confidence = check_confidence(confidence)
    merged = _merged(results, base, tolerance, "tolerated_sparsity")
    at = merged.loc[merged["epoch"] == epoch]
    if at.empty:
        note = f"tolerated_sparsity: no results at epoch {epoch}"
        return empty_frame(_TOLERATED_SEED if per_seed else _TOLERATED_AGG, note)
    seeds = _tolerated_per_seed(at)
    if per_seed:
        return seeds[_keys(seeds, _TOLERATED_SEED)]
    return _tolerated_over_seeds(seeds, confidence)


def _tolerated_per_seed(at: pd.DataFrame) -> pd.DataFrame:
    """:func:`tolerated_sparsity` per (cell, seed, target) of the merged rows at one epoch, with
    each group's ``smallest`` grid amount."""
    at = at.assign(within=at["amount"].where(at["ok"]), failed=at["amount"].where(~at["ok"]))
    groups = at.groupby(_keys(at, ["cell", "seed", "target"]), sort=True)
    seeds = groups.agg(
        base_accuracy=("base_accuracy", "first"),
        smallest=("amount", "min"),
        first_failure=("failed", "min"),
        largest_within=("within", "max"),
    ).reset_index()
    seeds["tolerated"] = [
        _below(g["amount"], failure)
        for (_, g), failure in zip(groups, seeds["first_failure"], strict=True)
    ]
    seeds["below_grid"] = seeds["first_failure"] == seeds["smallest"]
    floats = ("base_accuracy", "tolerated", "first_failure", "largest_within")
    return seeds.astype(dict.fromkeys(floats, float))


def _tolerated_over_seeds(seeds: pd.DataFrame, confidence: float) -> pd.DataFrame:
    """:func:`tolerated_sparsity`'s aggregate of the per-seed frame over seeds."""
    group = _keys(seeds, ["cell", "target"])
    agg = _over_seeds(seeds, group, "tolerated", confidence)
    names = {"mean": "tolerated_mean", "ci_low": "tolerated_ci_low", "ci_high": "tolerated_ci_high"}
    agg = agg.rename(columns=names)
    by = seeds.groupby(group, sort=True)
    agg["n_below_grid"] = by["below_grid"].sum().to_numpy().astype(int)
    agg["per_seed"] = [_per_seed_text(rows) for _, rows in by]
    return agg[_keys(seeds, _TOLERATED_AGG)]


def _below(amounts: pd.Series, failure: float) -> float:
    """The largest grid amount below ``failure`` (every amount when none failed; 0 if none)."""
    ok = amounts[amounts < failure] if failure == failure else amounts
    return float(ok.max()) if len(ok) else 0.0


def _per_seed_text(seeds: pd.DataFrame) -> str:
    """Each seed's tolerated amount in seed order: ``80, 80, <10``."""
    rows = seeds.sort_values("seed")
    return ", ".join(
        f"<{small:g}" if below else f"{value:g}"
        for value, below, small in zip(
            rows["tolerated"], rows["below_grid"], rows["smallest"], strict=True
        )
    )


def _over_seeds(
    seeds: pd.DataFrame, keys: list[str], value: str, confidence: float
) -> pd.DataFrame:
    """Per group of ``keys``: ``mean, ci_low, ci_high`` of ``value`` (t-interval, NaNs dropped,
    clipped at 0: an amount or a count of epochs is never negative) and ``n_seeds`` (all rows
    of the group)."""
    groups = seeds.groupby(keys, sort=True)[value]
    bounds = (0.0, float("inf"))
    stats = groups.apply(
        lambda v: pd.Series(mean_ci(v, confidence, bounds), ["mean", "ci_low", "ci_high"])
    )
    out = stats.unstack().join(groups.size().rename("n_seeds"))
    return out.reset_index()


def _display(mean: float, lo: float, hi: float, n_recovered: int, n_seeds: int) -> str:
    """``'1.0 [0.5, 1.5]'``, ``'never'``, or ``'1.0; never (1/3 seeds)'``."""
    if n_recovered == 0:
        return "never"
    text = format_ci(mean, lo, hi)
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
    confidence = check_confidence(confidence)
    merged = _merged(results, base, tolerance, "epochs_to_recover")
    if merged.empty:
        columns = _RECOVER_SEED if per_seed else _RECOVER_AGG
        return empty_frame(columns, "epochs_to_recover: no results")
    keys = _keys(merged, ["cell", "seed", "target", "amount"])
    seeds = (
        merged.assign(epochs=merged["epoch"].where(merged["ok"]))
        .groupby(keys, sort=True)
        .agg(base_accuracy=("base_accuracy", "first"), epochs=("epochs", "min"))
        .reset_index()
        .astype({"base_accuracy": float, "epochs": float})
    )
    seeds["recovered"] = seeds["epochs"].notna()
    if per_seed:
        return seeds[_keys(seeds, _RECOVER_SEED)]
    group = _keys(seeds, ["cell", "target", "amount"])
    agg = _over_seeds(seeds, group, "epochs", confidence)
    agg = agg.rename(columns={"mean": "epochs_mean"})
    recovered = seeds.groupby(group, sort=True)["recovered"].sum()
    agg["n_recovered"] = recovered.to_numpy().astype(int)
    agg["epochs"] = [
        _display(*row)
        for row in agg[["epochs_mean", "ci_low", "ci_high", "n_recovered", "n_seeds"]].itertuples(
            index=False
        )
    ]
    return agg[_keys(seeds, _RECOVER_AGG)]
