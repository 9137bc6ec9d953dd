"""Random graph structure for RNNs: generators, the layered DAG, and graph properties (SPEC 5).

Typical use::

    from sparsernn.graphs import sample_graphs, to_layered_dag, properties

    for g in sample_graphs("ws", 100, nodes=(10, 50), seed=0):
        dag = to_layered_dag(g)      # layers, i2h masks, skip connections
        features = properties(g)     # the study's 23 features (+ extras)
"""

from sparsernn.graphs.dag import LayeredDAG, to_layered_dag
from sparsernn.graphs.generators import (
    GENERATORS,
    barabasi_albert,
    erdos_renyi,
    graph_from_edges,
    graph_to_edges,
    make_graph,
    sample_graph,
    sample_graphs,
    watts_strogatz,
    write_edgelist,
)
from sparsernn.graphs.io import read_graph
from sparsernn.graphs.properties import EXTRA_FEATURES, STUDY_FEATURES, properties

__all__ = [
    "EXTRA_FEATURES",
    "GENERATORS",
    "LayeredDAG",
    "STUDY_FEATURES",
    "barabasi_albert",
    "erdos_renyi",
    "graph_from_edges",
    "graph_to_edges",
    "make_graph",
    "properties",
    "read_graph",
    "sample_graph",
    "sample_graphs",
    "to_layered_dag",
    "watts_strogatz",
    "write_edgelist",
]
