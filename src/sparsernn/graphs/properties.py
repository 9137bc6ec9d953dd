"""Graph properties recorded per random-structure network (SPEC 5) and its parameter count.

How :func:`properties` defines the features: all metrics use the undirected graph (a DiGraph is
converted with ``to_undirected()``); ``layers``, ``source_nodes`` and ``sink_nodes`` come from
:func:`~sparsernn.graphs.dag.to_layered_dag` of the graph as given (so a DiGraph's own edge
directions). ``density`` is ``edges / (nodes * (nodes - 1))`` exactly as in the study, i.e. half
of :func:`networkx.density` for an undirected graph. ``*_var`` / ``*_std`` are sample statistics
(ddof=1); centralities use networkx's default normalisations: ``degree`` = degree centrality,
``closeness`` = closeness centrality, ``nodes_betweenness`` = betweenness centrality,
``edge_betweenness`` = edge betweenness centrality. A statistic over fewer than two values has
nan var/std.
"""

from __future__ import annotations

import warnings

import networkx as nx
import numpy as np

from sparsernn.errors import GraphError
from sparsernn.graphs.dag import LayeredDAG, to_layered_dag

__all__ = ["EXTRA_FEATURES", "STUDY_FEATURES", "properties"]

_STATS = ("eccentricity", "degree", "closeness", "nodes_betweenness", "edge_betweenness")

#: The study's 23 features, in the order of its tables.
STUDY_FEATURES: tuple[str, ...] = (
    "layers",
    "nodes",
    "edges",
    "source_nodes",
    "sink_nodes",
    "diameter",
    "density",
    "average_shortest_path_length",
) + tuple(f"{name}_{stat}" for name in _STATS for stat in ("mean", "var", "std"))

#: Features beyond the study, appended after :data:`STUDY_FEATURES` unless ``extras=False``.
EXTRA_FEATURES: tuple[str, ...] = (
    "average_clustering",
    "transitivity",
    "degree_assortativity",
    "spectral_radius",
    "dag_depth",
    "dag_width",
    "n_skip_layers",
)


def _mean_var_std(values: object) -> tuple[float, float, float]:
    """Mean and SAMPLE variance / standard deviation (ddof=1); nan spread for < 2 values."""
    x = np.fromiter(values, dtype=float)  # type: ignore[call-overload]
    if x.size < 2:
        return float(x.mean()) if x.size else float("nan"), float("nan"), float("nan")
    var = float(x.var(ddof=1))
    return float(x.mean()), var, float(np.sqrt(var))


def _degree_assortativity(graph: nx.Graph) -> float:
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore", RuntimeWarning)
        try:
            value = float(nx.degree_assortativity_coefficient(graph))
        except (ValueError, ZeroDivisionError, nx.NetworkXError):
            return float("nan")
    return value if np.isfinite(value) else float("nan")


def properties(
    graph: nx.Graph, *, extras: bool = True, dag: LayeredDAG | None = None
) -> dict[str, float]:
    """The study's 23 graph features, plus a few more, as one flat dict of floats.

    The definitions (undirected metrics, the study's ``density``, sample statistics) are in
    this module's docstring.

    Parameters
    ----------
    graph : networkx.Graph or networkx.DiGraph
        A connected graph with at least one edge.
    extras : bool
        Also return :data:`EXTRA_FEATURES`: ``average_clustering``, ``transitivity``,
        ``degree_assortativity`` (nan when undefined, e.g. regular graphs),
        ``spectral_radius`` (largest absolute adjacency eigenvalue), ``dag_depth``
        (= layers), ``dag_width`` (largest layer) and ``n_skip_layers``.
    dag : LayeredDAG, optional
        ``to_layered_dag(graph)`` when the caller has it already (it is not built again).

    Returns
    -------
    dict[str, float]
        :data:`STUDY_FEATURES` in order, then (if ``extras``) :data:`EXTRA_FEATURES`.

    Raises
    ------
    GraphError
        Empty or disconnected graph (diameter, path lengths and eccentricity are undefined),
        or a graph without edges (single layer).

    Examples
    --------
    >>> import networkx as nx
    >>> p = properties(nx.path_graph(4))
    >>> p["layers"], p["edges"], p["diameter"], p["density"]
    (4.0, 3.0, 3.0, 0.25)
    >>> round(p["closeness_mean"], 4), round(p["closeness_var"], 4)
    (0.625, 0.0208)
    >>> len(properties(nx.path_graph(4), extras=False))
    23
    """
    und = _connected_undirected(graph)
    layered = dag if dag is not None else to_layered_dag(graph)  # raises for bad graphs
    n_nodes, n_edges = und.number_of_nodes(), und.number_of_edges()
    ecc = nx.eccentricity(und)
    out: dict[str, float] = {
        "layers": float(layered.n_layers),
        "nodes": float(n_nodes),
        "edges": float(n_edges),
        "source_nodes": float(len(layered.sources)),
        "sink_nodes": float(len(layered.sinks)),
        "diameter": float(max(ecc.values())),
        "density": n_edges / (n_nodes * (n_nodes - 1)),
        "average_shortest_path_length": float(nx.average_shortest_path_length(und)),
    }
    out.update(_node_statistics(und, ecc))
    if extras:
        out.update(_extra_features(und, layered))
    return out


def _node_statistics(und: nx.Graph, ecc: dict) -> dict[str, float]:
    """Mean, variance and std of eccentricity, the centralities and edge betweenness."""
    per_item = {
        "eccentricity": ecc.values(),
        "degree": nx.degree_centrality(und).values(),
        "closeness": nx.closeness_centrality(und).values(),
        "nodes_betweenness": nx.betweenness_centrality(und).values(),
        "edge_betweenness": nx.edge_betweenness_centrality(und).values(),
    }
    out: dict[str, float] = {}
    for name in _STATS:
        mean, var, std = _mean_var_std(per_item[name])
        out[f"{name}_mean"], out[f"{name}_var"], out[f"{name}_std"] = mean, var, std
    return out


def _connected_undirected(graph: nx.Graph) -> nx.Graph:
    """``graph`` as a plain undirected copy; errors for non-graphs, empty or disconnected ones."""
    if not isinstance(graph, nx.Graph):
        raise TypeError(f"properties needs a networkx graph, not {type(graph).__name__}")
    if graph.number_of_nodes() == 0:
        raise GraphError("graph is empty (no nodes); properties need a connected graph with edges")
    und = nx.Graph(graph.to_undirected()) if graph.is_directed() else nx.Graph(graph)
    if not nx.is_connected(und):
        n_comp = nx.number_connected_components(und)
        raise GraphError(
            f"graph is disconnected ({n_comp} components): diameter, "
            "average_shortest_path_length and eccentricity are undefined; use a connected graph "
            "(e.g. connected_watts_strogatz / graphs.watts_strogatz)"
        )
    return und


def _extra_features(und: nx.Graph, layered: LayeredDAG) -> dict[str, float]:
    """:data:`EXTRA_FEATURES` of a connected undirected graph and its layering."""
    adjacency = nx.to_numpy_array(und, dtype=float)
    return {
        "average_clustering": float(nx.average_clustering(und)),
        "transitivity": float(nx.transitivity(und)),
        "degree_assortativity": _degree_assortativity(und),
        "spectral_radius": float(np.abs(np.linalg.eigvalsh(adjacency)).max()),
        "dag_depth": float(layered.n_layers),
        "dag_width": float(max(layered.layer_sizes)),
        "n_skip_layers": float(layered.n_skip_layers),
    }
