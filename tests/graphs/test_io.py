"""read_graph: every format to integer nodes 0..n-1, one-line errors, pickles only on request."""

import json
import pickle

import networkx as nx
import pytest

from sparsernn.errors import GraphError
from sparsernn.graphs import graph_to_edges, read_graph, write_edgelist

STUDY_EXAMPLE = [(0, 2), (1, 2), (1, 3), (2, 3), (2, 4), (3, 4)]


def _one_line(exc):
    assert "\n" not in str(exc.value)
    return str(exc.value)


def test_every_format_reads_the_same_graph(tmp_path):
    g = nx.Graph(STUDY_EXAMPLE)
    nx.write_graphml(g, tmp_path / "g.graphml")
    write_edgelist(g, tmp_path / "g.edgelist")
    (tmp_path / "g.json").write_text(json.dumps(nx.node_link_data(g)))
    data = nx.node_link_data(g)
    data["links"] = data.pop("edges")  # files written by networkx < 3.4
    (tmp_path / "old.json").write_text(json.dumps(data))
    with (tmp_path / "g.gpickle").open("wb") as fh:
        pickle.dump(g, fh)
    for name in ("g.graphml", "g.edgelist", "g.json", "old.json"):
        back = read_graph(tmp_path / name)
        assert type(back) is nx.Graph and graph_to_edges(back) == STUDY_EXAMPLE, name
    back = read_graph(tmp_path / "g.gpickle", allow_pickle=True)
    assert graph_to_edges(back) == STUDY_EXAMPLE


def test_gpickle_needs_allow_pickle(tmp_path):
    path = tmp_path / "g.gpickle"
    with path.open("wb") as fh:
        pickle.dump(nx.Graph(STUDY_EXAMPLE), fh)
    with pytest.raises(GraphError, match="allow_pickle=True") as exc:
        read_graph(path)
    message = _one_line(exc)
    assert "nx.write_graphml(pickle.load(open(" in message and "g.graphml" in message
    with path.open("wb") as fh:
        pickle.dump({"not": "a graph"}, fh)
    with pytest.raises(GraphError, match="holds a dict, not a networkx graph"):
        read_graph(path, allow_pickle=True)
    path.write_bytes(b"garbage")
    with pytest.raises(GraphError, match="cannot unpickle"):
        read_graph(path, allow_pickle=True)


def test_labels_are_relabelled_in_sorted_order(tmp_path):
    data = nx.node_link_data(nx.Graph([("b", "c"), ("a", "b")]))
    (tmp_path / "s.json").write_text(json.dumps(data))
    assert graph_to_edges(read_graph(tmp_path / "s.json")) == [(0, 1), (1, 2)]
    g = nx.relabel_nodes(nx.path_graph(12), {i: 100 + i for i in range(12)})
    nx.write_graphml(g, tmp_path / "n.graphml")  # GraphML stores labels as strings
    assert graph_to_edges(read_graph(tmp_path / "n.graphml")) == [(i, i + 1) for i in range(11)]


def test_directed_node_link_gives_a_digraph(tmp_path):
    (tmp_path / "d.json").write_text(json.dumps(nx.node_link_data(nx.DiGraph([(5, 3)]))))
    g = read_graph(tmp_path / "d.json")
    assert g.is_directed() and list(g.edges()) == [(1, 0)]


@pytest.mark.parametrize(
    ("name", "text", "words"),
    [
        ("bad.json", "{not json", ["cannot read JSON graph file", "bad.json"]),
        ("list.json", "[1, 2]", ["not networkx node-link data", "list.json"]),
        ("entry.json", '{"nodes": [{"id": 0}], "edges": [{"target": 0}]}', ["entry.json", "bad"]),
        ("bad.graphml", "<graphml><graph", ["cannot read GraphML file", "bad.graphml"]),
        ("bad.edgelist", "0 1\n2\n", ["bad.edgelist:2"]),
        ("g.gml", "graph [ ]", ["unknown suffix", ".gpickle"]),
    ],
)
def test_malformed_files_give_one_line_errors(tmp_path, name, text, words):
    path = tmp_path / name
    path.write_text(text)
    with pytest.raises(GraphError) as exc:
        read_graph(path)
    message = _one_line(exc)
    for word in words:
        assert word in message


def test_missing_file_and_directory(tmp_path):
    with pytest.raises(GraphError, match="does not exist"):
        read_graph(tmp_path / "nope.graphml")
    (tmp_path / "dir.json").mkdir()
    with pytest.raises(GraphError, match="is a directory"):
        read_graph(tmp_path / "dir.json")


def test_csv_header_is_skipped_but_not_the_first_named_edge(tmp_path):
    """A ``source,target`` header is dropped; the next row is an edge even with named nodes."""
    path = tmp_path / "named.csv"
    path.write_text("source,target\nb,a\na,c\n# a comment\n")
    g = read_graph(path)
    # sorted labels a, b, c -> 0, 1, 2; edges b-a and a-c
    assert sorted(map(sorted, g.edges())) == [[0, 1], [0, 2]]
    assert list(g.nodes()) == [0, 1, 2]


def test_node_count_header_keeps_isolated_nodes(tmp_path):
    path = tmp_path / "iso.edgelist"
    path.write_text("# n_nodes: 4\n0 1\n1 2\n")
    assert read_graph(path).number_of_nodes() == 4
