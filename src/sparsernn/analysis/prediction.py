"""Predict a network's test accuracy from its graph's properties (SPEC section 5).

:func:`study_protocol` repeats the study's single 90/10 split; :func:`cross_validated` is the
toolkit's repeated k-fold estimate with baselines and confidence intervals. All functions work per
``cell`` and return long DataFrames; an analysis that cannot run returns an empty frame with the
reason in ``attrs["note"]``.
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Iterator, Sequence

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, RegressorMixin
from sklearn.dummy import DummyRegressor
from sklearn.ensemble import AdaBoostRegressor, RandomForestRegressor
from sklearn.exceptions import ConvergenceWarning
from sklearn.inspection import permutation_importance
from sklearn.linear_model import BayesianRidge
from sklearn.metrics import r2_score
from sklearn.model_selection import (
    KFold,
    RepeatedKFold,
    cross_val_predict,
    cross_val_score,
    train_test_split,
)
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import MinMaxScaler
from sklearn.utils.validation import check_array, check_is_fitted, check_X_y

from sparsernn.analysis.frames import check_confidence, empty_frame, require_columns, with_notes
from sparsernn.analysis.stats import STUDY_FEATURES, corrected_cv_ci
from sparsernn.errors import ConfigError, DataError

__all__ = [
    "MODELS",
    "BASELINES",
    "feature_subsets",
    "study_protocol",
    "cross_validated",
    "beyond_size",
    "feature_importances",
    "leave_one_generator_out",
    "predicted_vs_actual",
    "GraphAccuracyRegressor",
]

#: The study's three regressors, by the names used in every result frame.
MODELS: tuple[str, ...] = ("bayesian_ridge", "random_forest", "adaboost")
#: Baselines added by :func:`cross_validated`: predict the training mean; BayesianRidge on size.
BASELINES: tuple[str, ...] = ("dummy_mean", "size_only")

_SIZE = ("nodes", "edges")
_ID_COLUMNS = ("generator", "graph_id", "seed")


def _r2(y_true, y_pred) -> float:
    """R^2, or NaN where it is undefined (a constant target: scikit-learn would report 1.0)."""
    y_true = np.asarray(y_true, dtype=float)
    if np.ptp(y_true) == 0:
        return float("nan")
    return float(r2_score(y_true, y_pred))


def feature_subsets() -> dict[str, list[str]]:
    """The study's three feature subsets.

    Returns
    -------
    dict
        ``no_size``: the 23 study features without ``nodes`` and ``edges``; ``size_only``:
        ``nodes`` and ``edges``; ``variances_only``: the five ``*_var`` features. Anywhere a
        ``features=`` argument takes a name, ``"all"`` (the 23 features) is accepted too.
    """
    return {
        "no_size": [f for f in STUDY_FEATURES if f not in _SIZE],
        "size_only": list(_SIZE),
        "variances_only": [f for f in STUDY_FEATURES if f.endswith("_var")],
    }


def _resolve_features(features: str | Sequence[str] | None) -> tuple[str, list[str]]:
    """(label, column list) for a subset name, ``"all"``/None, or an explicit list."""
    if features is None or (isinstance(features, str) and features == "all"):
        return "all", list(STUDY_FEATURES)
    if isinstance(features, str):
        subsets = feature_subsets()
        if features not in subsets:
            raise ConfigError(
                f"unknown feature subset {features!r}; use all, {', '.join(subsets)} or a list"
            )
        return features, subsets[features]
    cols = list(features)
    if not cols:
        raise ConfigError("features is empty; give a subset name or at least one column")
    if cols == list(STUDY_FEATURES):
        return "all", cols
    for name, subset in feature_subsets().items():
        if cols == subset:
            return name, cols
    return ",".join(cols), cols


def _make_model(name: str, random_state: object = None) -> BaseEstimator:
    """A fresh, unfitted regressor by name (sklearn defaults, as in the study)."""
    if name == "bayesian_ridge" or name == "size_only":
        return BayesianRidge()
    if name == "random_forest":
        return RandomForestRegressor(random_state=random_state)
    if name == "adaboost":
        return AdaBoostRegressor(random_state=random_state)
    if name == "dummy_mean":
        return DummyRegressor(strategy="mean")
    raise ConfigError(f"unknown model {name!r}; use one of {', '.join(MODELS + BASELINES)}")


def _pipeline(name: str, random_state: object) -> Pipeline:
    """MinMaxScaler + model, so the scaler only ever sees training rows."""
    return make_pipeline(MinMaxScaler(), _make_model(name, random_state))


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """Silence convergence warnings that small synthetic or tiny real data sets trigger."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        yield


def _cells(
    df: pd.DataFrame, columns: Sequence[str], target: str, what: str
) -> tuple[list[tuple[object, pd.DataFrame]], list[str]]:
    """Per-cell frames with rows missing any needed value dropped, plus notes about the drops."""
    require_columns(df, ["cell", *columns, target], what)
    notes = []
    needed = list(dict.fromkeys([*columns, target]))
    clean = df.copy()
    for c in needed:
        clean[c] = pd.to_numeric(clean[c], errors="coerce")
    bad = clean[needed].isna().any(axis=1)
    if bad.any():
        notes.append(f"{what}: dropped {int(bad.sum())} row(s) with missing values")
    clean = clean.loc[~bad]
    return list(clean.groupby("cell", sort=True)), notes


def _check_models(models: Sequence[str]) -> list[str]:
    models = [models] if isinstance(models, str) else list(models)
    for m in models:
        _make_model(m)  # raises ConfigError for unknown names
    return models


def _held_out(estimator: BaseEstimator, name: str, train: tuple, test: tuple) -> dict[str, object]:
    """Fit ``estimator`` on ``train`` = (X, y); its R^2 on ``test``, as part of a result row."""
    with _quiet():
        estimator.fit(*train)
    r2 = _r2(test[1], estimator.predict(test[0]))
    return {"model": name, "r2": r2, "n_train": len(train[1]), "n_test": len(test[1])}


def _result(parts: list, columns: list[str], notes: list[str], what: str) -> pd.DataFrame:
    """The frame of result rows (dicts) or parts (frames) with ``notes``; when nothing could
    run, an empty frame saying why."""
    if not parts:
        return empty_frame(columns, "; ".join(notes) or f"{what}: no rows")
    if isinstance(parts[0], pd.DataFrame):
        return with_notes(pd.concat(parts, ignore_index=True)[columns], notes)
    return with_notes(pd.DataFrame(parts, columns=columns), notes)


def study_protocol(
    df: pd.DataFrame,
    features: str | Sequence[str] | None = STUDY_FEATURES,
    target: str = "test_accuracy",
    random_state: int = 7,
    test_size: float = 0.1,
    models: Sequence[str] = MODELS,
) -> pd.DataFrame:
    """The study's protocol: one split, R^2 on the held-out part, per cell.

    The MinMaxScaler is fit on ALL rows of the cell before splitting, exactly as the study did
    (this leaks the test rows' min/max into training; :func:`cross_validated` does not). Then
    ``train_test_split(test_size=test_size, random_state=random_state)`` in the frame's row
    order, and BayesianRidge, RandomForestRegressor and AdaBoostRegressor (the latter two with
    ``random_state``) are fit and scored.

    Returns
    -------
    DataFrame
        Columns ``cell, model, r2, n_train, n_test``. A cell whose test part would have fewer
        than 2 rows is skipped and named in ``attrs["note"]``.
    """
    _, cols = _resolve_features(features)
    models = _check_models(models)
    columns = ["cell", "model", "r2", "n_train", "n_test"]
    groups, notes = _cells(df, cols, target, "study_protocol")
    rows = []
    for cell, sub in groups:
        X = MinMaxScaler().fit_transform(sub[cols].to_numpy(float))
        y = sub[target].to_numpy(float)
        n_test = int(np.ceil(test_size * len(y))) if isinstance(test_size, float) else test_size
        if n_test < 2 or len(y) - n_test < 2:
            notes.append(f"study_protocol: cell {cell} has too few rows ({len(y)}) to split")
            continue
        X_tr, X_te, y_tr, y_te = train_test_split(
            X, y, test_size=test_size, random_state=random_state
        )
        for name in models:
            model = _make_model(name, random_state)
            rows.append({"cell": cell, **_held_out(model, name, (X_tr, y_tr), (X_te, y_te))})
    return _result(rows, columns, notes, "study_protocol")


def cross_validated(
    df: pd.DataFrame,
    features: str | Sequence[str] | None = "all",
    target: str = "test_accuracy",
    n_splits: int = 5,
    n_repeats: int = 10,
    random_state: int = 0,
    models: Sequence[str] = MODELS + BASELINES,
    confidence: float = 0.95,
    n_jobs: int | None = None,
) -> pd.DataFrame:
    """Repeated k-fold R^2 per cell and model, with a corrected t-interval over fold scores.

    Each model is a ``Pipeline(MinMaxScaler, model)`` refit inside every fold (no leakage), and
    all models see the same folds (``RepeatedKFold(n_splits, n_repeats, random_state)``).
    Baselines: ``dummy_mean`` predicts the training mean (R^2 <= 0 by construction on average);
    ``size_only`` is BayesianRidge on ``nodes`` and ``edges`` only.

    The CI is :func:`corrected_cv_ci` over the ``n_splits * n_repeats`` fold scores (Nadeau &
    Bengio: folds share training rows, so the plain t-interval would be too narrow).

    Parameters
    ----------
    features : str or list of str, default "all"
        A subset name from :func:`feature_subsets`, ``"all"``, or a list of columns.

    Returns
    -------
    DataFrame
        Columns ``cell, model, features, r2_mean, r2_ci_low, r2_ci_high, n_folds, n``. A cell
        with fewer than ``2 * n_splits`` rows (each test fold needs 2 rows for R^2) is skipped
        and named in ``attrs["note"]``.
    """
    label, cols = _resolve_features(features)
    models = _check_models(models)
    confidence = check_confidence(confidence)
    if int(n_splits) < 2 or int(n_repeats) < 1:
        raise ConfigError(f"need n_splits >= 2 and n_repeats >= 1, got {n_splits}, {n_repeats}")
    needed = list(dict.fromkeys(cols + (list(_SIZE) if "size_only" in models else [])))
    columns = ["cell", "model", "features", "r2_mean", "r2_ci_low", "r2_ci_high", "n_folds", "n"]
    groups, notes = _cells(df, needed, target, "cross_validated")
    cv = RepeatedKFold(n_splits=n_splits, n_repeats=n_repeats, random_state=random_state)
    rows = []
    for cell, sub in groups:
        why = _cv_unusable(cell, sub, target, n_splits)
        if why:
            notes.append(why)
            continue
        y = sub[target].to_numpy(float)
        for name in models:
            X = sub[list(_SIZE) if name == "size_only" else cols].to_numpy(float)
            with _quiet():
                scores = cross_val_score(
                    _pipeline(name, random_state), X, y, cv=cv, scoring="r2", n_jobs=n_jobs
                )
            mean, lo, hi = corrected_cv_ci(scores, 1 / (n_splits - 1), confidence)
            subset = "size_only" if name == "size_only" else label
            row = (cell, name, subset, mean, lo, hi, len(scores), len(sub))
            rows.append(dict(zip(columns, row, strict=True)))
    return _result(rows, columns, notes, "cross_validated")


def beyond_size(
    df: pd.DataFrame,
    models: Sequence[str] = ("bayesian_ridge", "random_forest"),
    target: str = "test_accuracy",
    n_splits: int = 5,
    n_repeats: int = 5,
    random_state: int = 0,
    confidence: float = 0.95,
) -> pd.DataFrame:
    """Does a graph's topology predict accuracy beyond its size? Per cell and regressor.

    Each regressor is cross-validated twice on the same repeated folds: on the 23 study
    features, and on size alone (``nodes``, ``edges``). The per-fold difference of R^2 (all
    minus size) is the paired effect of the 21 topology features; its interval is the corrected
    resampled t (:func:`corrected_cv_ci`), like each R^2's.

    Returns
    -------
    DataFrame
        ``cell, model, r2_all, r2_all_ci_low, r2_all_ci_high, r2_size, r2_size_ci_low,
        r2_size_ci_high, gain, gain_ci_low, gain_ci_high, n_folds, n``.
    """
    models = _check_models(models)
    confidence = check_confidence(confidence)
    cols = list(STUDY_FEATURES)
    names = ["r2_all", "r2_size", "gain"]
    columns = ["cell", "model"]
    columns += [f"{n}{s}" for n in names for s in ("", "_ci_low", "_ci_high")] + ["n_folds", "n"]
    groups, notes = _cells(df, cols, target, "beyond_size")
    cv = RepeatedKFold(n_splits=n_splits, n_repeats=n_repeats, random_state=random_state)
    rows = []
    for cell, sub in groups:
        why = _cv_unusable(cell, sub, target, n_splits)
        if why:
            notes.append(why)
            continue
        y = sub[target].to_numpy(float)
        for name in models:
            scores = {}
            for label, features in (("all", cols), ("size", list(_SIZE))):
                with _quiet():
                    scores[label] = cross_val_score(
                        _pipeline(name, random_state), sub[features].to_numpy(float), y, cv=cv
                    )
            row: list[object] = [cell, name]
            for values in (scores["all"], scores["size"], scores["all"] - scores["size"]):
                row += corrected_cv_ci(values, 1 / (n_splits - 1), confidence)
            rows.append(dict(zip(columns, [*row, len(scores["all"]), len(sub)], strict=True)))
    return _result(rows, columns, notes, "beyond_size")


def _cv_unusable(cell: object, sub: pd.DataFrame, target: str, n_splits: int) -> str | None:
    """Why ``cell``'s rows cannot be cross-validated (too few rows, constant target), or None."""
    n = len(sub)
    if n < 2 * n_splits:
        return (
            f"cross_validated: cell {cell} has {n} rows, need at least {2 * n_splits} "
            f"for {n_splits} folds; lower n_splits or add graphs"
        )
    if np.ptp(sub[target].to_numpy(float)) == 0:
        return f"cross_validated: cell {cell} has a constant {target}; R^2 is undefined"
    return None


def feature_importances(
    df: pd.DataFrame,
    features: str | Sequence[str] | None = "all",
    target: str = "test_accuracy",
    test_size: float = 0.25,
    n_repeats: int = 10,
    random_state: int = 0,
) -> pd.DataFrame:
    """Random-forest impurity importances and permutation importances per cell.

    The forest (in a MinMax pipeline fit on the training part) is trained on a
    ``train_test_split(test_size, random_state)`` training part; permutation importance (drop
    in R^2, ``n_repeats`` shuffles) is measured on the held-out part.

    Returns
    -------
    DataFrame
        Columns ``cell, feature, impurity, permutation_mean, permutation_std``, sorted per cell
        by decreasing ``permutation_mean``.
    """
    _, cols = _resolve_features(features)
    columns = ["cell", "feature", "impurity", "permutation_mean", "permutation_std"]
    groups, notes = _cells(df, cols, target, "feature_importances")
    parts = []
    for cell, sub in groups:
        X = sub[cols].to_numpy(float)
        y = sub[target].to_numpy(float)
        n_test = int(np.ceil(test_size * len(y)))
        if n_test < 2 or len(y) - n_test < 2:
            notes.append(f"feature_importances: cell {cell} has too few rows ({len(y)})")
            continue
        X_tr, X_te, y_tr, y_te = train_test_split(
            X, y, test_size=test_size, random_state=random_state
        )
        pipe = _pipeline("random_forest", random_state).fit(X_tr, y_tr)
        perm = permutation_importance(
            pipe, X_te, y_te, n_repeats=n_repeats, random_state=random_state, scoring="r2"
        )
        part = pd.DataFrame(
            {
                "cell": cell,
                "feature": cols,
                "impurity": pipe[-1].feature_importances_,
                "permutation_mean": perm.importances_mean,
                "permutation_std": perm.importances_std,
            }
        )
        parts.append(part.sort_values("permutation_mean", ascending=False, kind="stable"))
    return _result(parts, columns, notes, "feature_importances")


def leave_one_generator_out(
    df: pd.DataFrame,
    features: str | Sequence[str] | None = "all",
    target: str = "test_accuracy",
    models: Sequence[str] = MODELS,
    random_state: int = 0,
) -> pd.DataFrame:
    """Train on all generators but one, test on the one left out; per cell and generator.

    Asks whether what is learnt on, e.g., Watts-Strogatz graphs transfers to Barabasi-Albert
    graphs. The scaler is fit on the training generators only, so the test generator's values
    may fall outside [0, 1].

    Returns
    -------
    DataFrame
        Columns ``cell, train_generators, test_generator, model, r2, n_train, n_test``
        (``train_generators`` joined by ``+``). Cells with a single generator and generators
        with fewer than 2 rows are skipped and named in ``attrs["note"]``.
    """
    _, cols = _resolve_features(features)
    models = _check_models(models)
    require_columns(df, ["generator"], "leave_one_generator_out")
    columns = ["cell", "train_generators", "test_generator", "model", "r2", "n_train", "n_test"]
    groups, notes = _cells(df, cols, target, "leave_one_generator_out")
    rows = []
    for cell, sub in groups:
        gens = sorted(sub["generator"].astype(str).unique())
        if len(gens) < 2:
            notes.append(
                f"leave_one_generator_out: cell {cell} has only generator(s) "
                f"{', '.join(gens)}; needs at least two"
            )
            continue
        g_col = sub["generator"].astype(str)
        for g in gens:
            train, test = sub.loc[g_col != g], sub.loc[g_col == g]
            if len(test) < 2 or len(train) < 2:
                notes.append(f"leave_one_generator_out: cell {cell}, generator {g}: too few rows")
                continue
            xy_train = (train[cols].to_numpy(float), train[target].to_numpy(float))
            xy_test = (test[cols].to_numpy(float), test[target].to_numpy(float))
            trained_on = "+".join(x for x in gens if x != g)
            for name in models:
                score = _held_out(_pipeline(name, random_state), name, xy_train, xy_test)
                rows.append({"cell": cell, "train_generators": trained_on, "test_generator": g})
                rows[-1].update(score)
    return _result(rows, columns, notes, "leave_one_generator_out")


def predicted_vs_actual(
    df: pd.DataFrame,
    features: str | Sequence[str] | None = "all",
    target: str = "test_accuracy",
    models: Sequence[str] = MODELS,
    n_splits: int = 5,
    random_state: int = 0,
) -> pd.DataFrame:
    """Out-of-fold predictions for a predicted-vs-actual plot, per cell and model.

    Uses ``cross_val_predict`` with ``KFold(n_splits, shuffle=True, random_state)`` and a
    MinMax pipeline, so every prediction comes from a model that did not see that row.

    Returns
    -------
    DataFrame
        Columns ``cell, model``, then whichever of ``generator, graph_id, seed`` the input has
        (for colouring points), then ``actual, predicted``. Cells with fewer than ``n_splits``
        rows are skipped and named in ``attrs["note"]``.
    """
    _, cols = _resolve_features(features)
    models = _check_models(models)
    if int(n_splits) < 2:
        raise ConfigError(f"n_splits must be >= 2, not {n_splits}")
    ids = [c for c in _ID_COLUMNS if c in df.columns]
    columns = ["cell", "model", *ids, "actual", "predicted"]
    groups, notes = _cells(df, cols, target, "predicted_vs_actual")
    cv = KFold(n_splits=n_splits, shuffle=True, random_state=random_state)
    parts = []
    for cell, sub in groups:
        if len(sub) < n_splits:
            notes.append(
                f"predicted_vs_actual: cell {cell} has {len(sub)} rows, fewer than {n_splits} folds"
            )
            continue
        X, y = sub[cols].to_numpy(float), sub[target].to_numpy(float)
        for name in models:
            with _quiet():
                pred = cross_val_predict(_pipeline(name, random_state), X, y, cv=cv)
            part = sub[ids].reset_index(drop=True)
            part.insert(0, "model", name)
            part.insert(0, "cell", cell)
            part["actual"] = y
            part["predicted"] = pred
            parts.append(part)
    return _result(parts, columns, notes, "predicted_vs_actual")


class GraphAccuracyRegressor(RegressorMixin, BaseEstimator):
    """Predict a graph-structured network's test accuracy from its graph's properties.

    A scikit-learn regressor: MinMax scaling followed by one of the study's models.

    Parameters
    ----------
    model : {"random_forest", "bayesian_ridge", "adaboost", "dummy_mean"}, default "random_forest"
    features : str, list of str or None
        Columns to use when ``X`` is a DataFrame: a subset name (see :func:`feature_subsets`),
        ``"all"``, or a list. None uses the 23 study features if ``X`` has them all, otherwise
        every column of ``X`` (by name if the names are strings, else by position, as for
        plain arrays).
    random_state : int, RandomState or None
        Passed to the forest / boosting model.

    Attributes
    ----------
    scaler_ : MinMaxScaler
    model_ : fitted regressor
    n_features_in_ : int
    feature_names_in_ : ndarray of str
        Only when fit on a DataFrame; ``predict`` then selects these columns by name, so extra
        columns (``cell``, ``seed`` ...) are ignored.

    Examples
    --------
    >>> import numpy as np
    >>> X = np.arange(40.0).reshape(20, 2)
    >>> reg = GraphAccuracyRegressor(model="bayesian_ridge").fit(X, 0.5 + 0.01 * X[:, 0])
    >>> round(float(reg.predict(X[:1])[0]), 2)
    0.5
    """

    def __init__(self, model="random_forest", features=None, random_state=None):
        self.model = model
        self.features = features
        self.random_state = random_state

    def _columns(self, X) -> list[str] | None:
        """Column names to select from ``X`` (None: use ``X`` as it is)."""
        if self.features is None:
            if isinstance(X, pd.DataFrame) and all(f in X.columns for f in STUDY_FEATURES):
                return list(STUDY_FEATURES)
            if isinstance(X, pd.DataFrame) and all(isinstance(c, str) for c in X.columns):
                return list(X.columns)
            return None  # arrays, or frames without string column names: use X positionally
        _, cols = _resolve_features(self.features)
        if not isinstance(X, pd.DataFrame):
            raise DataError(
                "features= names columns, so X must be a DataFrame; pass features=None for arrays"
            )
        return cols

    def fit(self, X, y):
        """Select the features, fit the scaler and the model; return self."""
        estimator = _make_model(self.model, self.random_state)
        cols = self._columns(X)
        if cols is not None:
            require_columns(X, cols, "GraphAccuracyRegressor.fit")
            X = X[cols]
        Xa, ya = check_X_y(X, y, y_numeric=True)
        self.scaler_ = MinMaxScaler().fit(Xa)
        with _quiet():
            self.model_ = estimator.fit(self.scaler_.transform(Xa), ya)
        self.n_features_in_ = Xa.shape[1]
        if cols is not None:
            self.feature_names_in_ = np.asarray(cols, dtype=object)
        elif hasattr(self, "feature_names_in_"):
            del self.feature_names_in_
        return self

    def predict(self, X):
        """Predicted test accuracy for each row of ``X``."""
        check_is_fitted(self, ["scaler_", "model_"])
        names = getattr(self, "feature_names_in_", None)
        if isinstance(X, pd.DataFrame) and names is not None:
            require_columns(X, list(names), "GraphAccuracyRegressor.predict")
            X = X[list(names)]
        Xa = check_array(X)
        if Xa.shape[1] != self.n_features_in_:
            raise ValueError(
                f"X has {Xa.shape[1]} features, but GraphAccuracyRegressor is expecting "
                f"{self.n_features_in_} features as input"
            )
        return self.model_.predict(self.scaler_.transform(Xa))
