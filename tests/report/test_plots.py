"""Every plot function returns a Figure for synthetic frames and for empty/unusable ones."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from matplotlib.figure import Figure

from sparsernn.report import plots

CELLS = ("rnn_tanh", "gru")
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _pruning(n_seeds: int = 2, epochs: int = 3) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Long pruning results and the base table: accuracy falls with amount, recovers with epochs."""
    g = np.random.default_rng(0)
    rows, base = [], []
    for cell in CELLS:
        for seed in range(n_seeds):
            b = 0.95 + 0.01 * seed
            base.append({"cell": cell, "seed": seed, "base_accuracy": b})
            for target in ("both", "i2h", "h2h"):
                for amount in (50.0, 80.0, 100.0):
                    drop = max(0.0, (amount - 60) / 80)
                    for epoch in range(epochs + 1):
                        acc = b - drop * 0.5**epoch + g.normal(0, 0.005)
                        rows.append(
                            {
                                "cell": cell,
                                "seed": seed,
                                "target": target,
                                "amount": amount,
                                "epoch": epoch,
                                "accuracy": acc,
                                "loss": 1 - acc,
                            }
                        )
    return pd.DataFrame(rows), pd.DataFrame(base)


def _curves() -> pd.DataFrame:
    rows = [
        {"cell": c, "seed": s, "epoch": e, "train_loss": 1 / e, "test_accuracy": 1 - 0.3 / e}
        for c in CELLS
        for s in (0, 1)
        for e in range(1, 5)
    ]
    return pd.DataFrame(rows)


def _structure(n: int = 12) -> pd.DataFrame:
    g = np.random.default_rng(1)
    rows = []
    for cell in CELLS:
        for gen in ("ws", "ba"):
            for i in range(n):
                nodes = int(g.integers(10, 50))
                rows.append(
                    {
                        "cell": cell,
                        "generator": gen,
                        "graph_id": i,
                        "seed": 0,
                        "nodes": nodes,
                        "edges": 2 * nodes,
                        "source_nodes": int(g.integers(1, 8)),
                        "closeness_var": g.random() * 0.01,
                        "nodes_betweenness_var": g.random() * 0.05,
                        "degree_var": g.random() * 0.02,
                        "test_accuracy": 0.6 + 0.007 * nodes + g.normal(0, 0.02),
                    }
                )
    return pd.DataFrame(rows)


def _corr() -> pd.DataFrame:
    rows = [
        {"cell": c, "generator": gen, "feature": f, "method": m, "r": r}
        for c in CELLS
        for gen in ("ws", "all")
        for m in ("pearson", "spearman")
        for f, r in zip(plots.KEY_FEATURES, np.linspace(-0.8, 0.8, 6), strict=True)
    ]
    out = pd.DataFrame(rows)
    pooled = out.index[(out["generator"] == "all") & (out["method"] == "pearson")]
    out.loc[pooled[0], "r"] = np.nan  # an undefined correlation is drawn as n/a
    return out


def _pva() -> pd.DataFrame:
    g = np.random.default_rng(2)
    actual = g.random(40)
    return pd.DataFrame(
        {
            "cell": np.repeat(CELLS, 20),
            "model": np.tile(["bayesian_ridge", "random_forest"], 20),
            "actual": actual,
            "predicted": actual + g.normal(0, 0.05, 40),
        }
    )


def _importance() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "cell": np.repeat(CELLS, 4),
            "feature": ["nodes", "edges", "degree_var", "layers"] * 2,
            "impurity": [0.4, 0.3, 0.2, 0.1] * 2,
            "permutation_mean": [0.3, -0.01, 0.1, 0.05] * 2,
            "permutation_std": [0.02] * 8,
        }
    )


PRUNING, BASE = _pruning()
CALLS = {
    "pruning_accuracy": lambda: plots.pruning_accuracy(PRUNING, BASE),
    "pruning_accuracy_one_seed_no_retrain": lambda: plots.pruning_accuracy(
        *_pruning(n_seeds=1, epochs=0)
    ),
    "recovery_curves": lambda: plots.recovery_curves(PRUNING, BASE, tolerance=0.01),
    "training_curves": lambda: plots.training_curves(_curves()),
    "structure_accuracy": lambda: plots.structure_accuracy(_structure()),
    "property_scatter": lambda: plots.property_scatter(_structure()),
    "correlation_heatmap": lambda: plots.correlation_heatmap(_corr()),
    "predicted_vs_actual": lambda: plots.predicted_vs_actual(_pva()),
    "feature_importance": lambda: plots.feature_importance(_importance()),
}
EMPTY = pd.DataFrame()
EMPTY_CALLS = {
    "pruning_accuracy": lambda: plots.pruning_accuracy(PRUNING.iloc[:0], BASE.iloc[:0]),
    "recovery_curves": lambda: plots.recovery_curves(EMPTY, EMPTY),
    "training_curves": lambda: plots.training_curves(_curves().iloc[:0]),
    "structure_accuracy": lambda: plots.structure_accuracy(EMPTY),
    "property_scatter": lambda: plots.property_scatter(_structure().iloc[:0]),
    "correlation_heatmap": lambda: plots.correlation_heatmap(_corr().iloc[:0]),
    "predicted_vs_actual": lambda: plots.predicted_vs_actual(EMPTY),
    "feature_importance": lambda: plots.feature_importance(_importance().iloc[:0]),
}


def _texts(fig: Figure) -> str:
    return " ".join(t.get_text() for ax in fig.axes for t in ax.texts)


@pytest.mark.parametrize("name", sorted(CALLS))
def test_plot_returns_figure_that_renders(name):
    fig = CALLS[name]()
    assert isinstance(fig, Figure)
    assert "no data" not in _texts(fig)
    assert plots.to_png(fig, dpi=50).startswith(PNG_MAGIC)


@pytest.mark.parametrize("name", sorted(EMPTY_CALLS))
def test_plot_of_empty_frame_says_no_data(name):
    fig = EMPTY_CALLS[name]()
    assert isinstance(fig, Figure)
    assert "no data" in _texts(fig)
    assert plots.to_png(fig, dpi=50).startswith(PNG_MAGIC)


def test_missing_columns_and_non_frames_say_no_data():
    fig = plots.structure_accuracy(pd.DataFrame({"cell": ["gru"]}))
    assert "missing column(s) generator, test_accuracy" in _texts(fig)
    assert "no data" in _texts(plots.pruning_accuracy(None, None))  # type: ignore[arg-type]
    assert "none of the properties" in _texts(plots.property_scatter(_structure(), ("nope",)))


def test_recovery_without_harmful_amounts_says_so():
    ok = PRUNING[PRUNING["amount"] == 50.0]
    assert "no pruning amount lowered accuracy" in _texts(plots.recovery_curves(ok, BASE))


def test_cell_colours_are_fixed_and_shared():
    fig = plots.pruning_accuracy(PRUNING, BASE)
    colours = {line.get_color() for ax in fig.axes for line in ax.get_lines()}
    assert plots.CELL_COLORS["gru"] in colours and plots.CELL_COLORS["rnn_tanh"] in colours
    assert plots.cell_color("new_cell") == plots.cell_color("new_cell")
    assert plots.cell_color("new_cell") not in plots.CELL_COLORS.values()


def test_pruning_accuracy_draws_three_styles_and_ci_band():
    fig = plots.pruning_accuracy(PRUNING, BASE)
    assert len(fig.axes) == 3
    ax = fig.axes[0]
    styles = {line.get_linestyle() for line in ax.get_lines()}
    assert {":", "-.", "-", "--"} <= styles  # after pruning, 1 epoch, last epoch, base
    assert ax.collections  # shaded CI with two seeds


def test_heatmap_uses_pooled_pearson_rows():
    fig = plots.correlation_heatmap(_corr())
    assert "Pearson" in fig.axes[0].get_title() and "all" in fig.axes[0].get_title()
    assert "n/a" in _texts(fig)
    labels = [t.get_text() for t in fig.axes[0].get_yticklabels()]
    assert labels == list(plots.KEY_FEATURES)


def _legend_texts(fig: Figure) -> list[str]:
    legends = [*fig.legends, *(ax.get_legend() for ax in fig.axes)]
    return [t.get_text() for leg in legends if leg is not None for t in leg.get_texts()]


@pytest.mark.parametrize(
    "make",
    [
        lambda: plots.pruning_accuracy(PRUNING, BASE, tolerance=0.02),
        lambda: plots.recovery_curves(PRUNING, BASE, tolerance=0.02),
    ],
    ids=["pruning_accuracy", "recovery_curves"],
)
def test_tolerance_band_is_visible_and_in_the_legend(make):
    """The band was a pale grey alpha-0.2 strip with no legend entry; now it is amber, >= 0.2."""
    fig = make()
    bands = [
        p
        for ax in fig.axes
        for p in ax.patches
        if p.get_facecolor()[3] >= 0.2 and p.get_facecolor()[:3] != (1.0, 1.0, 1.0)
    ]
    assert bands, "no tolerance band drawn"
    assert all(abs(b.get_facecolor()[3] - plots.TOLERANCE_BAND["alpha"]) < 1e-9 for b in bands)
    assert any("tolerance band (base - 0.02)" in t for t in _legend_texts(fig))


def test_empty_figures_are_marked_as_such():
    assert getattr(plots.no_data("no rows"), plots.NO_DATA_ATTR) == "no data: no rows"
    assert getattr(plots.pruning_accuracy(PRUNING, BASE), plots.NO_DATA_ATTR, None) is None
