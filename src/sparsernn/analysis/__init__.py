"""Analysis of experiment results: pure functions from pandas DataFrames to DataFrames.

- :mod:`.stats`: mean with t-interval, bootstrap interval, the 23 study features.
- :mod:`.correlation`: correlation of graph properties with accuracy, bootstrap CIs.
- :mod:`.prediction`: the study's regression protocol, cross-validated R^2 with baselines,
  importances, leave-one-generator-out, and :class:`GraphAccuracyRegressor`.
- :mod:`.pruning`: tolerated sparsity and epochs to recover, aggregated over seeds.
- :mod:`.published`: the study's published numbers and :func:`compare`.

Convention: when a requested analysis cannot run on the given rows (no rows, one generator,
fewer rows than folds), the function returns an empty frame with the right columns and the reason
in ``frame.attrs["note"]``; partial skips are noted there too. Missing columns raise
:class:`~sparsernn.errors.DataError`, bad options :class:`~sparsernn.errors.ConfigError`.
"""

from sparsernn.analysis.correlation import POOLED, correlations
from sparsernn.analysis.prediction import (
    BASELINES,
    MODELS,
    GraphAccuracyRegressor,
    cross_validated,
    feature_importances,
    feature_subsets,
    leave_one_generator_out,
    predicted_vs_actual,
    study_protocol,
)
from sparsernn.analysis.pruning import epochs_to_recover, tolerated_sparsity
from sparsernn.analysis.published import (
    compare,
    published_base_accuracy,
    published_correlations,
    published_mean_accuracy,
    published_post_prune,
    published_r2,
    published_safe_pruning,
)
from sparsernn.analysis.stats import STUDY_FEATURES, bootstrap_ci, corrected_cv_ci, mean_ci

__all__ = [
    "STUDY_FEATURES",
    "mean_ci",
    "corrected_cv_ci",
    "bootstrap_ci",
    "POOLED",
    "correlations",
    "MODELS",
    "BASELINES",
    "feature_subsets",
    "study_protocol",
    "cross_validated",
    "feature_importances",
    "leave_one_generator_out",
    "predicted_vs_actual",
    "GraphAccuracyRegressor",
    "tolerated_sparsity",
    "epochs_to_recover",
    "published_base_accuracy",
    "published_safe_pruning",
    "published_mean_accuracy",
    "published_correlations",
    "published_r2",
    "published_post_prune",
    "compare",
]
