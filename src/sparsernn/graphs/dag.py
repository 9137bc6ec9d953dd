"""Turn a graph into the layered DAG that fixes a random-structure RNN's wiring (SPEC 5).

Every undirected edge ``{u, v}`` is directed from the smaller node index to the larger; a node's
layer is the length of the longest directed path from any source to it (sources are layer 0),
and each layer lists its nodes in ascending order. Layer ``l`` becomes a recurrent layer with
``len(layers[l])`` units; each pair of layers ``(s, l)`` joined by edges gets an i2h mask.
"""

from __future__ import annotations

from collections.abc import Hashable
from typing import Any

import networkx as nx
import numpy as np

from sparsernn.errors import GraphError

__all__ = ["LayeredDAG", "to_layered_dag"]


class LayeredDAG:
    """The layering of a DAG: layers, per-layer-pair connection masks and skip connections.

    Build it with :func:`to_layered_dag`; all attributes are read-only. Nodes are ``0..n-1``
    (the input graph's labels in sorted order, see :attr:`labels`).

    Attributes
    ----------
    dag : networkx.DiGraph
        The directed acyclic graph (frozen).
    layer_of : dict[int, int]
        Layer index of each node.
    layers : list[list[int]]
        Nodes of each layer, ascending; layer 0 (the sources) first.
    layer_sizes : list[int]
        ``len(layers[l])`` for each layer.
    n_layers, n_nodes, n_edges : int
        Counts.
    connections : dict[tuple[int, int], numpy.ndarray]
        For each layer pair ``(s, l)``, ``s < l``, with at least one edge from layer ``s`` to
        layer ``l``: a read-only boolean mask of shape ``(layer_sizes[l], layer_sizes[s])``
        with ``mask[j, i]`` true iff the edge ``layers[s][i] -> layers[l][j]`` exists
        (PyTorch's ``(out, in)`` weight layout). Keys are ``(s, l)``; the dict iterates in
        forward-pass order, sorted by ``(l, s)`` (destination layer first, then source).
        ``(l - 1, l)`` exists for every ``l >= 1``.
    skip_connections : list[tuple[int, int]]
        The keys ``(s, l)`` of :attr:`connections` with ``s < l - 1`` (the study's extra
        recurrent "skip" layers), in the same ``(l, s)`` order.
    n_skip_layers : int
        ``len(skip_connections)``.
    sources, sinks : list[int]
        Nodes of the first and of the last layer.
    labels : tuple
        ``labels[i]`` is the input graph's label of node ``i``.
    """

    __slots__ = ("_dag", "_layer_of", "_layers", "_connections", "_labels")

    def __init__(
        self,
        dag: nx.DiGraph,
        layer_of: dict[int, int],
        labels: tuple[Hashable, ...],
    ) -> None:
        n_layers = max(layer_of.values()) + 1
        layers: list[list[int]] = [[] for _ in range(n_layers)]
        for node in sorted(layer_of):
            layers[layer_of[node]].append(node)
        position = {node: i for layer in layers for i, node in enumerate(layer)}
        masks: dict[tuple[int, int], np.ndarray] = {}
        for u, v in dag.edges():
            s, t = layer_of[u], layer_of[v]
            mask = masks.get((s, t))
            if mask is None:
                mask = masks[(s, t)] = np.zeros((len(layers[t]), len(layers[s])), dtype=bool)
            mask[position[v], position[u]] = True
        for mask in masks.values():
            mask.flags.writeable = False
        self._dag = nx.freeze(dag)
        self._layer_of = dict(layer_of)
        self._layers = tuple(tuple(layer) for layer in layers)
        self._connections = {key: masks[key] for key in sorted(masks, key=lambda k: (k[1], k[0]))}
        self._labels = labels

    @property
    def dag(self) -> nx.DiGraph:
        return self._dag

    @property
    def layer_of(self) -> dict[int, int]:
        return dict(self._layer_of)

    @property
    def layers(self) -> list[list[int]]:
        return [list(layer) for layer in self._layers]

    @property
    def layer_sizes(self) -> list[int]:
        return [len(layer) for layer in self._layers]

    @property
    def n_layers(self) -> int:
        return len(self._layers)

    @property
    def n_nodes(self) -> int:
        return self._dag.number_of_nodes()

    @property
    def n_edges(self) -> int:
        return self._dag.number_of_edges()

    @property
    def connections(self) -> dict[tuple[int, int], np.ndarray]:
        return dict(self._connections)

    @property
    def skip_connections(self) -> list[tuple[int, int]]:
        return [(s, t) for s, t in self._connections if s < t - 1]

    @property
    def n_skip_layers(self) -> int:
        return len(self.skip_connections)

    @property
    def sources(self) -> list[int]:
        return list(self._layers[0])

    @property
    def sinks(self) -> list[int]:
        return list(self._layers[-1])

    @property
    def labels(self) -> tuple[Hashable, ...]:
        return self._labels

    def summary(self) -> dict[str, Any]:
        """JSON-ready description of the layering.

        Keys: ``n_nodes``, ``n_edges``, ``n_layers``, ``layer_sizes``, ``n_skip_layers``,
        ``skip_connections`` (a list of ``[s, l]``) and ``connections`` (a list of
        ``[s, l, n_edges]`` in forward-pass order).
        """
        return {
            "n_nodes": self.n_nodes,
            "n_edges": self.n_edges,
            "n_layers": self.n_layers,
            "layer_sizes": self.layer_sizes,
            "n_skip_layers": self.n_skip_layers,
            "skip_connections": [[s, t] for s, t in self.skip_connections],
            "connections": [[s, t, int(m.sum())] for (s, t), m in self._connections.items()],
        }

    def __repr__(self) -> str:
        return (
            f"LayeredDAG(n_nodes={self.n_nodes}, n_edges={self.n_edges}, "
            f"layer_sizes={self.layer_sizes}, n_skip_layers={self.n_skip_layers})"
        )


def _sorted_labels(graph: nx.Graph) -> tuple[Hashable, ...]:
    labels = list(graph.nodes())
    try:
        return tuple(sorted(labels))
    except TypeError:
        raise GraphError(
            "graph nodes cannot be sorted (mixed label types); relabel them to integers "
            "with nx.convert_node_labels_to_integers"
        ) from None


def to_layered_dag(graph: nx.Graph) -> LayeredDAG:
    """Orient and layer a graph into the wiring of a random-structure RNN (SPEC 5).

    Parameters
    ----------
    graph : networkx.Graph or networkx.DiGraph
        An undirected graph (each edge ``{u, v}`` is directed from the smaller node to the
        larger), or a directed acyclic graph whose edges are used as given. Nodes are
        relabelled ``0..n-1`` in sorted order (a no-op for nodes already ``0..n-1``).

    Returns
    -------
    LayeredDAG
        Layers by longest path from the sources, connection masks and skip connections.

    Raises
    ------
    GraphError
        Empty graph, unsortable node labels, self-loops, a directed cycle, or a single layer
        (no edges).

    Examples
    --------
    The study's five-node example:

    >>> import networkx as nx
    >>> g = nx.Graph([(0, 2), (1, 2), (1, 3), (2, 3), (2, 4), (3, 4)])
    >>> d = to_layered_dag(g)
    >>> d.layers
    [[0, 1], [2], [3], [4]]
    >>> d.layer_sizes, d.skip_connections
    ([2, 1, 1, 1], [(0, 2), (1, 3)])
    >>> d.connections[(0, 2)]  # only node 1 of layer 0 feeds node 3
    array([[False,  True]])
    """
    if not isinstance(graph, nx.Graph):
        raise TypeError(f"to_layered_dag needs a networkx graph, not {type(graph).__name__}")
    if graph.number_of_nodes() == 0:
        raise GraphError("graph is empty (no nodes); a network needs a graph with nodes and edges")
    loops = list(nx.selfloop_edges(graph))
    if loops:
        node = loops[0][0]
        raise GraphError(
            f"graph has {len(loops)} self-loop(s), e.g. at node {node!r}; remove them with "
            "g.remove_edges_from(nx.selfloop_edges(g))"
        )
    labels = _sorted_labels(graph)
    dag = _oriented(graph, labels)
    layer_of: dict[int, int] = {}
    for node in nx.topological_sort(dag):
        preds = [layer_of[p] for p in dag.predecessors(node)]
        layer_of[node] = max(preds) + 1 if preds else 0
    if max(layer_of.values()) == 0:
        raise GraphError(
            f"graph with {dag.number_of_nodes()} node(s) and no edges has a single layer: "
            "a network needs at least 2 layers; use a connected graph with edges"
        )
    return LayeredDAG(dag, layer_of, labels)


def _oriented(graph: nx.Graph, labels: tuple[Hashable, ...]) -> nx.DiGraph:
    """The DAG on nodes ``0..n-1`` (``labels`` order): a DiGraph's own edges (checked to be
    acyclic), or each undirected edge directed from the smaller node to the larger."""
    index = {label: i for i, label in enumerate(labels)}
    dag = nx.DiGraph()
    dag.add_nodes_from(range(len(labels)))
    if not graph.is_directed():
        dag.add_edges_from(sorted((index[u], index[v])) for u, v in graph.edges())
        return dag
    dag.add_edges_from((index[u], index[v]) for u, v in graph.edges())
    if not nx.is_directed_acyclic_graph(dag):
        cycle = [labels[u] for u, _ in nx.find_cycle(dag)]
        raise GraphError(
            f"directed graph has a cycle through nodes {cycle}; pass an acyclic DiGraph "
            "or an undirected graph"
        )
    return dag
