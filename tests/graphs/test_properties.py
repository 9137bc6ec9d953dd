"""Graph properties against values worked out by hand, and against direct networkx calls."""

import math

import networkx as nx
import numpy as np
import pytest

from sparsernn.errors import GraphError
from sparsernn.graphs import (
    EXTRA_FEATURES,
    STUDY_FEATURES,
    properties,
    to_layered_dag,
    watts_strogatz,
)

STUDY_EDGES = [(0, 2), (1, 2), (1, 3), (2, 3), (2, 4), (3, 4)]


def test_feature_names():
    assert len(STUDY_FEATURES) == 23
    assert STUDY_FEATURES[:8] == (
        "layers",
        "nodes",
        "edges",
        "source_nodes",
        "sink_nodes",
        "diameter",
        "density",
        "average_shortest_path_length",
    )
    assert STUDY_FEATURES[8:11] == ("eccentricity_mean", "eccentricity_var", "eccentricity_std")
    assert STUDY_FEATURES[-1] == "edge_betweenness_std"
    p = properties(nx.path_graph(4))
    assert tuple(p) == STUDY_FEATURES + EXTRA_FEATURES
    assert tuple(properties(nx.path_graph(4), extras=False)) == STUDY_FEATURES
    assert all(isinstance(v, float) for v in p.values())


def _check(p, expected):
    for key, value in expected.items():
        assert p[key] == pytest.approx(value, abs=1e-12), key


def test_path_p4_by_hand():
    # 0-1-2-3. Distance sums: 6, 4, 4, 6 (total 20 over 12 ordered pairs).
    # closeness (n-1)/sum: 1/2, 3/4, 3/4, 1/2 -> mean 5/8, var (4 * (1/8)^2) / 3 = 1/48
    # eccentricity 3, 2, 2, 3 -> mean 5/2, var (4 * 1/4) / 3 = 1/3
    # degree centrality 1/3, 2/3, 2/3, 1/3 -> mean 1/2, var (4 * (1/6)^2) / 3 = 1/27
    # betweenness: nodes 1, 2 lie on 2 pairs each; normalised by 2/((n-1)(n-2)) = 1/3
    #   -> 0, 2/3, 2/3, 0: mean 1/3, var (4 * (1/3)^2) / 3 = 4/27
    # edge betweenness: pairs crossing edges 3, 4, 3; normalised by 1/(n(n-1)/2) = 1/6
    #   -> 1/2, 2/3, 1/2: mean 5/9, var ((1/18)^2 + (2/18)^2 + (1/18)^2) / 2 = 1/108
    p = properties(nx.path_graph(4))
    _check(
        p,
        {
            "layers": 4,
            "nodes": 4,
            "edges": 3,
            "source_nodes": 1,
            "sink_nodes": 1,
            "diameter": 3,
            "density": 3 / 12,
            "average_shortest_path_length": 20 / 12,
            "closeness_mean": 5 / 8,
            "closeness_var": 1 / 48,
            "closeness_std": math.sqrt(1 / 48),
            "eccentricity_mean": 5 / 2,
            "eccentricity_var": 1 / 3,
            "eccentricity_std": math.sqrt(1 / 3),
            "degree_mean": 1 / 2,
            "degree_var": 1 / 27,
            "degree_std": math.sqrt(1 / 27),
            "nodes_betweenness_mean": 1 / 3,
            "nodes_betweenness_var": 4 / 27,
            "nodes_betweenness_std": math.sqrt(4 / 27),
            "edge_betweenness_mean": 5 / 9,
            "edge_betweenness_var": 1 / 108,
            "edge_betweenness_std": math.sqrt(1 / 108),
            # extras: no triangles; degree pairs (1,2),(2,2),(2,1) -> r = -1/2;
            # spectral radius of P4 = 2 cos(pi/5) (the golden ratio)
            "average_clustering": 0,
            "transitivity": 0,
            "degree_assortativity": -0.5,
            "spectral_radius": 2 * math.cos(math.pi / 5),
            "dag_depth": 4,
            "dag_width": 1,
            "n_skip_layers": 0,
        },
    )


def test_cycle_c5_by_hand():
    # C5 is vertex-transitive: every spread is 0. Distances 1,1,2,2 -> closeness 4/6.
    # Each node is the unique midpoint of 1 pair: 1 * 2/(4*3) = 1/6.
    # Each edge carries its own pair + 2 distance-2 pairs = 3, normalised by 1/10 -> 3/10.
    # Orientation 0->1->2->3->4 and 0->4: 5 layers, one skip (0, 4).
    p = properties(nx.cycle_graph(5))
    _check(
        p,
        {
            "layers": 5,
            "nodes": 5,
            "edges": 5,
            "source_nodes": 1,
            "sink_nodes": 1,
            "diameter": 2,
            "density": 5 / 20,
            "average_shortest_path_length": 6 / 4,
            "eccentricity_mean": 2,
            "eccentricity_var": 0,
            "degree_mean": 1 / 2,
            "degree_var": 0,
            "closeness_mean": 2 / 3,
            "closeness_std": 0,
            "nodes_betweenness_mean": 1 / 6,
            "nodes_betweenness_var": 0,
            "edge_betweenness_mean": 3 / 10,
            "edge_betweenness_var": 0,
            "spectral_radius": 2,
            "n_skip_layers": 1,
            "dag_width": 1,
        },
    )
    assert math.isnan(p["degree_assortativity"])  # regular graph: undefined, stored as nan


def test_star_by_hand():
    # nx.star_graph(3): center 0, leaves 1, 2, 3. Layers [[0], [1, 2, 3]].
    # eccentricity 1, 2, 2, 2 -> mean 7/4, var (9/16 + 3/16) / 3 = 1/4
    # degree centrality 1, 1/3, 1/3, 1/3 -> mean 1/2, var (1/4 + 3/36) / 3 = 1/9
    # closeness 1, 3/5, 3/5, 3/5 -> mean 7/10, var (0.09 + 3 * 0.01) / 3 = 1/25
    # betweenness: center on all 3 leaf pairs, 3 * 2/(3*2) = 1 -> mean 1/4, var 1/4
    # each edge carries 3 pairs / 6 = 1/2 -> var 0; path lengths sum 3+5+5+5 = 18 over 12
    p = properties(nx.star_graph(3))
    _check(
        p,
        {
            "layers": 2,
            "source_nodes": 1,
            "sink_nodes": 3,
            "diameter": 2,
            "density": 3 / 12,
            "average_shortest_path_length": 18 / 12,
            "eccentricity_mean": 7 / 4,
            "eccentricity_var": 1 / 4,
            "degree_mean": 1 / 2,
            "degree_var": 1 / 9,
            "closeness_mean": 7 / 10,
            "closeness_var": 1 / 25,
            "nodes_betweenness_mean": 1 / 4,
            "nodes_betweenness_var": 1 / 4,
            "edge_betweenness_mean": 1 / 2,
            "edge_betweenness_var": 0,
            "degree_assortativity": -1,
            "spectral_radius": math.sqrt(3),
            "dag_width": 3,
        },
    )


def test_matches_direct_networkx_on_random_ws():
    g = watts_strogatz(30, seed=11)
    p = properties(g)
    n, m = g.number_of_nodes(), g.number_of_edges()
    d = to_layered_dag(g)
    assert p["nodes"] == n and p["edges"] == m
    assert p["density"] == pytest.approx(nx.density(g) / 2)  # the study's convention
    assert p["diameter"] == nx.diameter(g)
    assert p["average_shortest_path_length"] == pytest.approx(nx.average_shortest_path_length(g))
    assert p["layers"] == d.n_layers
    assert p["source_nodes"] == len(d.layers[0]) and p["sink_nodes"] == len(d.layers[-1])
    direct = {
        "eccentricity": nx.eccentricity(g),
        "degree": nx.degree_centrality(g),
        "closeness": nx.closeness_centrality(g),
        "nodes_betweenness": nx.betweenness_centrality(g),
        "edge_betweenness": nx.edge_betweenness_centrality(g),
    }
    for name, values in direct.items():
        x = np.array(list(values.values()), dtype=float)
        assert p[f"{name}_mean"] == pytest.approx(x.mean())
        assert p[f"{name}_var"] == pytest.approx(x.var(ddof=1))
        assert p[f"{name}_std"] == pytest.approx(x.std(ddof=1))
    assert p["average_clustering"] == pytest.approx(nx.average_clustering(g))
    assert p["transitivity"] == pytest.approx(nx.transitivity(g))
    assert p["degree_assortativity"] == pytest.approx(nx.degree_assortativity_coefficient(g))
    eig = np.linalg.eigvals(nx.to_numpy_array(g))
    assert p["spectral_radius"] == pytest.approx(np.abs(eig).max())
    assert p["n_skip_layers"] == d.n_skip_layers
    assert p["dag_width"] == max(d.layer_sizes)


def test_digraph_uses_undirected_metrics_and_given_directions():
    g = nx.DiGraph([(2, 0), (1, 0)])
    p = properties(g)
    und = properties(g.to_undirected())
    for key in ("diameter", "density", "closeness_var", "edge_betweenness_mean"):
        assert p[key] == und[key]
    # the DiGraph's own directions: layers [[1, 2], [0]]
    assert (p["source_nodes"], p["sink_nodes"]) == (2, 1)
    # undirected orientation 0->1, 0->2: layers [[0], [1, 2]]
    assert (und["source_nodes"], und["sink_nodes"]) == (1, 2)


def test_two_nodes_sample_spread_is_nan():
    p = properties(nx.path_graph(2))
    assert p["edge_betweenness_mean"] == 1.0
    assert math.isnan(p["edge_betweenness_var"])
    assert p["closeness_var"] == 0.0


@pytest.mark.parametrize(
    ("graph", "match"),
    [
        (nx.Graph(), "empty"),
        (nx.Graph([(0, 1), (2, 3)]), "disconnected.*diameter.*connected graph"),
        (nx.empty_graph(1), "single layer"),
    ],
)
def test_errors(graph, match):
    with pytest.raises(GraphError, match=match):
        properties(graph)
