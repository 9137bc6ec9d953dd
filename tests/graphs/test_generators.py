"""Graph generators: exact counts for fixed seeds, determinism, sampling frequencies, files."""

import networkx as nx
import numpy as np
import pytest

from sparsernn._seed import derive_seed
from sparsernn.errors import ConfigError, GraphError
from sparsernn.graphs import (
    GENERATORS,
    barabasi_albert,
    erdos_renyi,
    graph_from_edges,
    graph_to_edges,
    make_graph,
    read_graph,
    sample_graph,
    sample_graphs,
    watts_strogatz,
    write_edgelist,
)


def _int_seed(seed):
    """The int our generators hand to networkx for ``seed``."""
    return int(np.random.default_rng(seed).integers(2**31))


def _same(a, b):
    return sorted(a.nodes()) == sorted(b.nodes()) and graph_to_edges(a) == graph_to_edges(b)


def test_exact_counts_fixed_seed():
    ws, ba, er = (f(30, seed=42) for f in (watts_strogatz, barabasi_albert, erdos_renyi))
    # WS: n * (k // 2) = 30 * 3; BA: m * (n - m) = 3 * 27; ER: observed for seed 42
    assert (ws.number_of_nodes(), ws.number_of_edges()) == (30, 90)
    assert (ba.number_of_nodes(), ba.number_of_edges()) == (30, 81)
    assert (er.number_of_nodes(), er.number_of_edges()) == (30, 90)
    assert max(d for _, d in ws.degree()) == 9
    assert max(d for _, d in ba.degree()) == 15
    for g in (ws, ba, er):
        assert sorted(g.nodes()) == list(range(30))
        assert nx.is_connected(g)
        assert type(g) is nx.Graph


def test_same_as_networkx_with_the_drawn_int_seed():
    s = _int_seed(42)
    assert _same(
        watts_strogatz(30, seed=42), nx.connected_watts_strogatz_graph(30, 6, p=1, tries=10, seed=s)
    )
    assert _same(barabasi_albert(30, seed=42), nx.barabasi_albert_graph(30, 3, seed=s))
    expected = nx.gnp_random_graph(30, 6 / 29, seed=s)
    assert nx.is_connected(expected)  # so the first attempt is kept
    assert _same(erdos_renyi(30, seed=42), expected)


def test_deterministic_and_generator_seed_equivalent():
    for name in GENERATORS:
        a = make_graph(name, 25, seed=7)
        b = make_graph(name, 25, seed=7)
        c = make_graph(name, 25, seed=np.random.default_rng(7))
        assert _same(a, b) and _same(a, c)
    assert not _same(watts_strogatz(25, seed=1), watts_strogatz(25, seed=2))


def test_erdos_renyi_retries_until_connected():
    # n=12: p = 2/11, connected with probability about 1/4 per attempt
    for seed in range(10):
        g = erdos_renyi(12, seed=seed)
        assert nx.is_connected(g) and g.number_of_nodes() == 12
    with pytest.raises(GraphError, match="no connected graph"):
        erdos_renyi(30, seed=0, p=0.01, tries=3)


def test_explicit_parameters():
    assert watts_strogatz(12, seed=0, k=4).number_of_edges() == 24
    assert barabasi_albert(8, seed=0, m=2).number_of_edges() == 2 * 6
    assert erdos_renyi(5, seed=0, p=1.0).number_of_edges() == 10
    assert watts_strogatz(12, seed=0, k=4, p=0.0).number_of_edges() == 24  # ring lattice
    assert nx.is_isomorphic(watts_strogatz(12, seed=0, k=4, p=0.0), nx.circulant_graph(12, [1, 2]))


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda: watts_strogatz(9), "n >= 10"),
        (lambda: barabasi_albert(9), "n >= 10"),
        (lambda: erdos_renyi(9), "n >= 10"),
        (lambda: watts_strogatz(20, p=1.5), r"\[0, 1\]"),
        (lambda: watts_strogatz(20, p=-0.1), r"\[0, 1\]"),
        (lambda: erdos_renyi(20, p=0.0), r"\(0, 1\]"),
        (lambda: watts_strogatz(20, k=1), "k"),
        (lambda: watts_strogatz(20, k=21), "k <= n"),
        (lambda: barabasi_albert(20, m=20), "m < n"),
        (lambda: watts_strogatz(20.5), "integer"),
        (lambda: watts_strogatz(20, tries=0), "tries"),
        (lambda: make_graph("xx", 20), "ba, er, ws"),
        (lambda: make_graph("ws", 20, q=3), "bad option"),
        (lambda: sample_graphs("xx", 2), "ba, er, ws"),
        (lambda: sample_graphs("ws", 2, nodes=(30, 20)), "lo <= hi"),
        (lambda: sample_graphs("ws", -1), "n_graphs"),
        (lambda: sample_graph("xx", 0), "ba, er, ws"),
        (lambda: sample_graph("ws", 0, nodes=(30, 20)), "lo <= hi"),
        (lambda: sample_graph("ws", -1), "index must be >= 0"),
    ],
)
def test_bad_options(call, match):
    with pytest.raises(ConfigError, match=match):
        call()


def test_ws_failure_is_graph_error():
    # k=2 with p=1 on 60 nodes is disconnected in ~40% of single tries; seed 1 is one of them
    with pytest.raises(GraphError, match="no connected graph in 1 tries"):
        watts_strogatz(60, seed=1, k=2, tries=1)


def test_sample_graphs_prefix_stable_and_seeded():
    few = sample_graphs("ba", 3, seed=5)
    many = sample_graphs("ba", 6, seed=5)
    assert all(_same(a, b) for a, b in zip(few, many, strict=False))
    # graph i depends only on (seed, generator, i)
    stream = np.random.default_rng(derive_seed(5, "ba", 2))
    n = int(stream.integers(10, 51))
    assert _same(many[2], barabasi_albert(n, seed=stream))
    assert sample_graphs("ws", 0, seed=1) == []


@pytest.mark.parametrize("generator", sorted(GENERATORS))
def test_sample_graph_is_graph_i_of_the_stream_made_alone(generator, monkeypatch):
    stream = sample_graphs(generator, 6, nodes=(10, 20), seed=11)
    made = []
    real = GENERATORS[generator]
    monkeypatch.setitem(GENERATORS, generator, lambda n, **kw: made.append(n) or real(n, **kw))
    for i in (5, 0, 3):
        assert _same(sample_graph(generator, i, nodes=(10, 20), seed=11), stream[i])
    assert made == [stream[i].number_of_nodes() for i in (5, 0, 3)]  # one graph per call


def test_sample_graphs_node_range_roughly_uniform():
    # 200 draws of n in [10, 14]: each value expected 40 times;
    # binomial sd ~5.7, so allow +-20 (3.5 sd)
    graphs = sample_graphs("ba", 200, nodes=(10, 14), seed=3)
    sizes = np.array([g.number_of_nodes() for g in graphs])
    assert sizes.min() >= 10 and sizes.max() <= 14
    counts = np.bincount(sizes - 10, minlength=5)
    assert all(abs(c - 40) <= 20 for c in counts), counts


def test_sample_graphs_default_range():
    # the study's range [10, 50]: 200 draws; uniform mean 30, sd 11.8 -> sd of the mean 0.84,
    # allow +-3 (3.5 sd); quartile counts expected ~50 each (sd ~6), allow +-22
    sizes = np.array([g.number_of_nodes() for g in sample_graphs("ws", 200, seed=0)])
    assert sizes.min() >= 10 and sizes.max() <= 50
    assert abs(sizes.mean() - 30) <= 3
    quarters = np.histogram(sizes, bins=[10, 20, 30, 40, 51])[0]
    assert all(abs(c - 50) <= 22 for c in quarters), quarters


def test_edges_roundtrip():
    g = nx.Graph([(3, 1), (0, 1)])
    g.add_node(5)
    g = graph_from_edges(graph_to_edges(g), 6)
    assert graph_to_edges(g) == [(0, 1), (1, 3)]
    assert sorted(g.nodes()) == list(range(6))
    with pytest.raises(GraphError, match="outside"):
        graph_from_edges([(0, 6)], 6)
    with pytest.raises(GraphError, match="integer"):
        graph_to_edges(nx.Graph([("a", "b")]))


def test_write_and_read_edgelist(tmp_path):
    g = watts_strogatz(15, seed=0)
    g.add_node(15)  # isolated node survives via the n_nodes header
    path = tmp_path / "g.edgelist"
    write_edgelist(g, path)
    back = read_graph(path)
    assert _same(g, back)


def test_read_relabels_sorted(tmp_path):
    csv = tmp_path / "g.csv"
    csv.write_text("source,target\n10,30\n30,20\n\n# comment\n")
    g = read_graph(csv)
    assert graph_to_edges(g) == [(0, 2), (1, 2)]  # 10->0, 20->1, 30->2 (numeric order)
    txt = tmp_path / "g.txt"
    txt.write_text("b c\na b\n")
    assert graph_to_edges(read_graph(txt)) == [(0, 1), (1, 2)]


def test_read_graphml(tmp_path):
    path = tmp_path / "g.graphml"
    nx.write_graphml(nx.relabel_nodes(nx.path_graph(11), {i: i + 5 for i in range(11)}), path)
    g = read_graph(path)
    assert type(g) is nx.Graph
    assert graph_to_edges(g) == [(i, i + 1) for i in range(10)]  # "10" sorts after "9"
    dpath = tmp_path / "d.graphml"
    nx.write_graphml(nx.DiGraph([(2, 0)]), dpath)
    assert graph_to_edges(read_graph(dpath)) == [(1, 0)]


def test_read_errors(tmp_path):
    with pytest.raises(GraphError, match="does not exist"):
        read_graph(tmp_path / "missing.edgelist")
    with pytest.raises(GraphError, match="unknown suffix"):
        read_graph(tmp_path / "g.gml")
    bad = tmp_path / "bad.txt"
    bad.write_text("0 1\n2\n")
    with pytest.raises(GraphError, match="bad.txt:2"):
        read_graph(bad)
    broken = tmp_path / "broken.graphml"
    broken.write_text("<graphml><graph")
    with pytest.raises(GraphError, match="GraphML"):
        read_graph(broken)
