"""Frame helpers the report sections share: means with intervals per group, the study's order."""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd

from sparsernn import analysis
from sparsernn.report import plots

__all__ = ["group_mean_ci", "cell_sorted", "target_rank"]


def group_mean_ci(df: pd.DataFrame, by: Sequence[str], value: str) -> pd.DataFrame:
    """Mean, 95% t-interval (clipped to [0, 1]: accuracies) and n of ``value`` per group."""
    rows = []
    for key, sub in df.groupby(list(by), sort=False):
        mean, lo, hi = analysis.mean_ci(pd.to_numeric(sub[value], errors="coerce"), bounds=(0, 1))
        rows.append((*key, mean, lo, hi, len(sub)))
    return pd.DataFrame(rows, columns=[*by, value, "ci_low", "ci_high", "n"])


def cell_sorted(df: pd.DataFrame, extra: Sequence[str] = ()) -> pd.DataFrame:
    """Rows ordered by the usual cell order, then ``extra`` columns."""
    if df.empty or "cell" not in df.columns:
        return df
    rank = {c: i for i, c in enumerate(plots.CELL_ORDER)}
    keys = df["cell"].map(lambda c: rank.get(c, len(rank))).rename("_rank")
    out = df.assign(_rank=keys).sort_values(["_rank", "cell", *extra], kind="stable")
    return out.drop(columns="_rank").reset_index(drop=True)


def target_rank(df: pd.DataFrame) -> pd.Series:
    """Sort key putting pruning targets in the study's order: both, i2h, h2h."""
    rank = {t: i for i, t in enumerate(("both", "i2h", "h2h"))}
    return df["target"].map(lambda t: rank.get(t, len(rank)))
