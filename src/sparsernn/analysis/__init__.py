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

# Each module's public names, re-exported here; ``__all__`` is the union of theirs.
from sparsernn.analysis import correlation, prediction, pruning, published, stats
from sparsernn.analysis.correlation import *  # noqa: F403
from sparsernn.analysis.prediction import *  # noqa: F403
from sparsernn.analysis.pruning import *  # noqa: F403
from sparsernn.analysis.published import *  # noqa: F403
from sparsernn.analysis.stats import *  # noqa: F403

__all__ = [
    *stats.__all__,
    *correlation.__all__,
    *prediction.__all__,
    *pruning.__all__,
    *published.__all__,
]
