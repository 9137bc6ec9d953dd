"""Layering of hand-made graphs: expected layers and masks written out by hand."""

import networkx as nx
import numpy as np
import pytest

from sparsernn.errors import GraphError
from sparsernn.graphs import LayeredDAG, to_layered_dag

STUDY_EDGES = [(0, 2), (1, 2), (1, 3), (2, 3), (2, 4), (3, 4)]


def test_study_example_layers():
    d = to_layered_dag(nx.Graph(STUDY_EDGES))
    assert d.layer_of == {0: 0, 1: 0, 2: 1, 3: 2, 4: 3}
    assert d.layers == [[0, 1], [2], [3], [4]]
    assert d.layer_sizes == [2, 1, 1, 1]
    assert (d.n_layers, d.n_nodes, d.n_edges) == (4, 5, 6)
    assert d.sources == [0, 1]
    assert d.sinks == [4]
    assert sorted(d.dag.edges()) == STUDY_EDGES  # small -> large


def test_study_example_connections():
    d = to_layered_dag(nx.Graph(STUDY_EDGES))
    conns = d.connections
    # forward-pass order: sorted by (destination, source)
    assert list(conns) == [(0, 1), (0, 2), (1, 2), (1, 3), (2, 3)]
    expected = {
        (0, 1): [[True, True]],  # 0->2, 1->2
        (0, 2): [[False, True]],  # 1->3 only
        (1, 2): [[True]],  # 2->3
        (1, 3): [[True]],  # 2->4
        (2, 3): [[True]],  # 3->4
    }
    for key, mask in expected.items():
        assert conns[key].dtype == bool
        np.testing.assert_array_equal(conns[key], np.array(mask))
    assert d.skip_connections == [(0, 2), (1, 3)]
    assert d.n_skip_layers == 2
    assert d.summary() == {
        "n_nodes": 5,
        "n_edges": 6,
        "n_layers": 4,
        "layer_sizes": [2, 1, 1, 1],
        "n_skip_layers": 2,
        "skip_connections": [[0, 2], [1, 3]],
        "connections": [[0, 1, 2], [0, 2, 1], [1, 2, 1], [1, 3, 1], [2, 3, 1]],
    }


def test_mask_layout_rows_are_destinations():
    # layer 0 = {0, 1, 2}; layer 1 = {3, 4}; edges 0->4, 2->3, 2->4
    g = nx.Graph()
    g.add_nodes_from(range(5))  # node 1 is isolated: a source in layer 0
    g.add_edges_from([(0, 4), (2, 3), (2, 4)])
    d = to_layered_dag(g)
    assert d.layers == [[0, 1, 2], [3, 4]]
    mask = d.connections[(0, 1)]
    assert mask.shape == (2, 3)
    np.testing.assert_array_equal(mask, [[False, False, True], [True, False, True]])


def test_path_graph():
    d = to_layered_dag(nx.path_graph(5))
    assert d.layers == [[0], [1], [2], [3], [4]]
    assert d.skip_connections == []
    assert list(d.connections) == [(0, 1), (1, 2), (2, 3), (3, 4)]


def test_path_with_shuffled_labels_is_not_a_chain():
    # path 0-3-1-2: orientation 0->3, 1->3, 1->2; longest paths give layers {0,1}, {2,3}
    d = to_layered_dag(nx.Graph([(0, 3), (3, 1), (1, 2)]))
    assert d.layers == [[0, 1], [2, 3]]
    np.testing.assert_array_equal(d.connections[(0, 1)], [[False, True], [True, True]])


def test_star_center_first_and_last():
    d = to_layered_dag(nx.star_graph(4))  # center 0
    assert d.layers == [[0], [1, 2, 3, 4]]
    np.testing.assert_array_equal(d.connections[(0, 1)], np.ones((4, 1), dtype=bool))
    star = nx.Graph([(4, i) for i in range(4)])  # center 4: all leaves are sources
    d = to_layered_dag(star)
    assert d.layers == [[0, 1, 2, 3], [4]]
    assert d.sinks == [4]


def test_longest_path_layering_puts_skips():
    # 0->1->2 and 0->2: node 2 is layer 2 (longest path), so (0, 2) is a skip
    d = to_layered_dag(nx.complete_graph(3))
    assert d.layer_of == {0: 0, 1: 1, 2: 2}
    assert d.skip_connections == [(0, 2)]


def test_digraph_edges_used_as_given():
    g = nx.DiGraph([(3, 0), (0, 1), (2, 1)])  # against index order on purpose
    d = to_layered_dag(g)
    assert d.layer_of == {0: 1, 1: 2, 2: 0, 3: 0}
    assert d.layers == [[2, 3], [0], [1]]
    assert d.skip_connections == [(0, 2)]
    np.testing.assert_array_equal(d.connections[(0, 2)], [[True, False]])


def test_relabels_sorted_labels():
    g = nx.Graph([("b", "a"), ("b", "c")])
    d = to_layered_dag(g)
    assert d.labels == ("a", "b", "c")
    assert sorted(d.dag.edges()) == [(0, 1), (1, 2)]
    d = to_layered_dag(nx.Graph([(10, 30), (30, 20)]))
    assert d.labels == (10, 20, 30)
    assert sorted(d.dag.edges()) == [(0, 2), (1, 2)]


def test_read_only():
    d = to_layered_dag(nx.Graph(STUDY_EDGES))
    with pytest.raises(ValueError):
        d.connections[(0, 1)][0, 0] = False
    with pytest.raises(AttributeError):
        d.layer_sizes = [1]  # type: ignore[misc]
    with pytest.raises(nx.NetworkXError):
        d.dag.add_edge(0, 4)
    d.layers[0].append(99)
    assert d.layers[0] == [0, 1]
    assert isinstance(d, LayeredDAG)
    assert "layer_sizes=[2, 1, 1, 1]" in repr(d)


@pytest.mark.parametrize(
    ("graph", "match"),
    [
        (nx.Graph(), "empty"),
        (nx.empty_graph(3), "single layer"),
        (nx.empty_graph(1), "single layer"),
        (nx.Graph([(0, 1), (1, 1)]), "self-loop"),
        (nx.DiGraph([(0, 1), (1, 2), (2, 0)]), "cycle"),
        (nx.Graph([(0, 1), ("a", 0)]), "sorted"),
    ],
)
def test_errors(graph, match):
    with pytest.raises(GraphError, match=match):
        to_layered_dag(graph)


def test_not_a_graph():
    with pytest.raises(TypeError):
        to_layered_dag([(0, 1)])  # type: ignore[arg-type]


def test_every_layer_reads_previous_layer_on_random_graphs():
    for seed in range(20):
        g = nx.gnp_random_graph(15, 0.3, seed=seed)
        if g.number_of_edges() == 0:
            continue
        d = to_layered_dag(g)
        conns = d.connections
        total = 0
        for (s, t), mask in conns.items():
            assert s < t
            assert mask.shape == (d.layer_sizes[t], d.layer_sizes[s])
            assert mask.any()
            total += int(mask.sum())
        assert total == g.number_of_edges()
        for t in range(1, d.n_layers):
            # every node of layer t has an in-edge from layer t-1
            assert conns[(t - 1, t)].any(axis=1).all()
