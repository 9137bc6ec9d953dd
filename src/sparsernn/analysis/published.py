"""The study's published numbers (SPEC sections 4 and 5) as DataFrames, and :func:`compare`.

Every published figure is a single run. Cell names: ``rnn_tanh, rnn_relu, gru, lstm``; model
names: ``bayesian_ridge, random_forest, adaboost``; pruning targets: ``both, i2h, h2h``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import pandas as pd

from sparsernn.analysis.frames import require_columns
from sparsernn.errors import DataError

__all__ = [
    "published_base_accuracy",
    "published_safe_pruning",
    "published_mean_accuracy",
    "published_correlations",
    "published_r2",
    "published_post_prune",
    "compare",
]

_TARGETS = ("both", "i2h", "h2h")


def _per_cell(column: str, values: dict[str, float]) -> pd.DataFrame:
    """One published number per cell: columns ``cell, <column>`` in the order given."""
    return pd.DataFrame({"cell": list(values), column: list(values.values())})


def _per_cell_and(
    key: str, keys: Sequence[str], column: str, values: Mapping[str, Sequence[float]]
) -> pd.DataFrame:
    """Published numbers per cell and ``key``: ``values[cell][i]`` belongs to ``keys[i]``;
    columns ``cell, <key>, <column>``."""
    rows = [(c, k, v) for c, vs in values.items() for k, v in zip(keys, vs, strict=True)]
    return pd.DataFrame(rows, columns=["cell", key, column])


def published_base_accuracy() -> pd.DataFrame:
    """Base models' test accuracy after 50 epochs: columns ``cell, base_accuracy``."""
    values = {"rnn_tanh": 0.937, "rnn_relu": 1.000, "lstm": 1.000, "gru": 1.000}
    return _per_cell("base_accuracy", values)


def published_safe_pruning() -> pd.DataFrame:
    """Largest "safe" pruning percentage per cell and target: ``cell, target, safe_percent``."""
    safe = {  # both, i2h, h2h
        "rnn_tanh": (80, 70, 80),
        "rnn_relu": (70, 70, 70),
        "lstm": (60, 70, 90),
        "gru": (80, 80, 90),
    }
    return _per_cell_and("target", _TARGETS, "safe_percent", safe)


def published_post_prune() -> pd.DataFrame:
    """GRU test accuracy right after pruning (epoch 0, before retraining).

    Columns ``cell, target, amount, epoch, accuracy`` (only the amounts the study reported).
    """
    rows = [
        ("both", 80, 0.994),
        ("both", 90, 0.551),
        ("both", 100, 0.506),
        ("i2h", 90, 0.876),
        ("h2h", 80, 0.956),
        ("h2h", 100, 0.573),
    ]
    out = pd.DataFrame(rows, columns=["target", "amount", "accuracy"])
    out.insert(0, "cell", "gru")
    out.insert(3, "epoch", 0)
    return out


def published_mean_accuracy() -> pd.DataFrame:
    """Mean test accuracy over the 200 random-graph networks: ``cell, mean_accuracy``."""
    values = {"rnn_tanh": 0.868, "rnn_relu": 0.778, "gru": 0.956, "lstm": 0.946}
    return _per_cell("mean_accuracy", values)


def published_correlations() -> pd.DataFrame:
    """Pearson r of graph properties with test accuracy, pooled over both generators.

    Columns ``cell, feature, method, r`` (``method`` is always ``"pearson"``). Compare with the
    ``generator == "all"`` rows of :func:`sparsernn.analysis.correlations`.
    """
    cells = ("rnn_tanh", "rnn_relu", "lstm", "gru")  # the order in which the study lists them
    values = {
        "nodes": (0.40, 0.44, 0.44, 0.49),
        "edges": (0.38, 0.43, 0.42, 0.49),
        "source_nodes": (0.35, 0.47, 0.57, 0.74),
        "closeness_var": (-0.46, -0.39, -0.51, -0.67),
        "nodes_betweenness_var": (-0.49, -0.41, -0.56, -0.52),
        "degree_var": (-0.28, -0.26, -0.39, -0.58),
    }
    rows = [
        (c, f, "pearson", r) for f, rs in values.items() for c, r in zip(cells, rs, strict=True)
    ]
    out = pd.DataFrame(rows, columns=["cell", "feature", "method", "r"])
    return out.sort_values(["cell", "feature"], ignore_index=True)


def published_r2() -> pd.DataFrame:
    """R^2 on the study's single 10% test split: ``cell, model, r2``."""
    models = ("bayesian_ridge", "random_forest", "adaboost")
    r2 = {
        "rnn_tanh": (0.48, 0.43, 0.36),
        "rnn_relu": (0.36, 0.62, 0.53),
        "lstm": (0.37, 0.58, 0.60),
        "gru": (0.67, 0.88, 0.78),
    }
    return _per_cell_and("model", models, "r2", r2)


def compare(
    ours: pd.DataFrame,
    published: pd.DataFrame,
    on: str | Sequence[str],
    value_ours: str,
    value_published: str | None = None,
    how: str = "outer",
) -> pd.DataFrame:
    """Set our numbers beside the published ones.

    Parameters
    ----------
    ours, published : DataFrame
        Each must have at most one row per ``on`` key (filter first, e.g. to
        ``generator == "all"`` and ``method == "pearson"``).
    on : str or list of str
        Key columns present in both.
    value_ours, value_published : str
        Value columns; ``value_published`` defaults to ``value_ours``.
    how : {"outer", "inner", "left", "right"}, default "outer"
        With "outer", a key missing on one side shows NaN there (e.g. a cell we did not run).

    Returns
    -------
    DataFrame
        Columns ``*on, ours, published, difference`` (``difference = ours - published``),
        sorted by ``on``.
    """
    on = [on] if isinstance(on, str) else list(on)
    value_published = value_ours if value_published is None else value_published
    require_columns(ours, [*on, value_ours], "compare (ours)")
    require_columns(published, [*on, value_published], "compare (published)")
    for name, frame in (("ours", ours), ("published", published)):
        if frame.duplicated(on).any():
            raise DataError(
                f"compare: {name} has several rows per {', '.join(on)}; filter it to one per key"
            )
    left = ours[[*on, value_ours]].rename(columns={value_ours: "ours"})
    right = published[[*on, value_published]].rename(columns={value_published: "published"})
    out = left.merge(right, on=on, how=how)
    out["difference"] = out["ours"] - out["published"]
    return out.sort_values(on, ignore_index=True)
