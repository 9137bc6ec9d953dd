"""Read graph files: GraphML, edge lists, networkx node-link JSON, and (opt-in) gpickles.

:func:`read_graph` is the one entry point. Every file gives a networkx graph with integer
nodes ``0..n-1``, and every problem (missing, unreadable or malformed file, unknown format)
is a :class:`~sparsernn.errors.GraphError` with a one-line message naming the file.

A graph file may not ask for more than :data:`MAX_NODES` nodes, :data:`MAX_EDGES` edges or
:data:`MAX_FILE_BYTES` bytes: one network has a hidden unit per node, and the study's graph
properties (eccentricity, closeness) take quadratic time, so a larger graph would allocate
gigabytes or run for hours before anything was said. The study's graphs have 10-50 nodes.
"""

from __future__ import annotations

import json
import os
import pickle
import shlex
from collections.abc import Hashable
from numbers import Integral
from pathlib import Path

import networkx as nx

from sparsernn.errors import GraphError

__all__ = [
    "GRAPH_SUFFIXES",
    "MAX_EDGES",
    "MAX_FILE_BYTES",
    "MAX_NODES",
    "pickle_conversion",
    "read_graph",
]

_EDGELIST_SUFFIXES = (".edgelist", ".txt", ".csv")
_GRAPHML_SUFFIXES = (".graphml",)
_JSON_SUFFIXES = (".json",)
_PICKLE_SUFFIXES = (".gpickle",)
#: File suffixes :func:`read_graph` knows (``.gpickle`` only with ``allow_pickle=True``).
GRAPH_SUFFIXES = _GRAPHML_SUFFIXES + _EDGELIST_SUFFIXES + _JSON_SUFFIXES + _PICKLE_SUFFIXES
N_NODES_HEADER = "# n_nodes:"
#: The most nodes, edges and bytes a graph file may hold (see the module docstring).
MAX_NODES = 1000
MAX_EDGES = 20_000
MAX_FILE_BYTES = 16 * 2**20


def pickle_conversion(path: str | os.PathLike[str]) -> str:
    """The shell command that converts the pickled graph ``path`` to GraphML beside it.

    The paths are arguments of the command, quoted for the shell: a file name is never
    pasted into code (a name such as ``x$(touch PWNED).gpickle`` stays a name).
    """
    source = Path(path)
    code = "import pickle, sys, networkx as nx; "
    code += 'nx.write_graphml(pickle.load(open(sys.argv[1], "rb")), sys.argv[2])'
    target = source.with_suffix(".graphml")
    return f"python -c {shlex.quote(code)} {shlex.quote(str(source))} {shlex.quote(str(target))}"


def _too_big(path: Path, what: str, count: int, limit: int) -> GraphError:
    return GraphError(
        f"graph file {path} asks for {count} {what}; sparsernn reads graphs of at most "
        f"{limit} {what} (each node is a hidden unit, and the graph properties take quadratic "
        "time): use a smaller graph"
    )


def _check_counts(path: Path, n_nodes: int, n_edges: int) -> None:
    if n_nodes > MAX_NODES:
        raise _too_big(path, "nodes", n_nodes, MAX_NODES)
    if n_edges > MAX_EDGES:
        raise _too_big(path, "edges", n_edges, MAX_EDGES)


def read_graph(path: str | os.PathLike[str], allow_pickle: bool = False) -> nx.Graph:
    """Read a graph file and relabel its nodes ``0..n-1``.

    Formats, by suffix:

    - ``.graphml``: GraphML (``networkx.write_graphml``).
    - ``.edgelist``, ``.txt``, ``.csv``: one ``u v`` (or ``u,v``) pair per line; blank lines,
      ``#`` comments and a non-numeric CSV header line (``source,target``) are skipped, and a
      ``# n_nodes: N`` header (written by :func:`~sparsernn.graphs.write_edgelist`) adds nodes
      ``0..N-1``, so isolated nodes survive.
    - ``.json``: networkx node-link data (``json.dump(nx.node_link_data(g), f)``), with its
      edges under ``"edges"`` (networkx >= 3.4) or ``"links"`` (older files).
    - ``.gpickle``: a pickled networkx graph, the study's own format; only with
      ``allow_pickle=True``, since unpickling runs whatever code the file names. Use it only
      for files you trust, or convert them once to GraphML.

    Node labels: nodes are relabelled ``0..n-1`` in sorted order, integers (and all-digit
    strings, as GraphML stores them) numerically, so a file whose nodes are already ``0..n-1``
    keeps its numbering; other labels are sorted as strings. Undirected files give a
    :class:`networkx.Graph`; a file declared directed (GraphML ``edgedefault="directed"``,
    node-link ``"directed": true``) gives a :class:`networkx.DiGraph`, used as given by
    :func:`~sparsernn.graphs.to_layered_dag`. Multi-edges are merged.

    Raises
    ------
    GraphError
        Missing, unreadable or malformed file, an unknown suffix, or a ``.gpickle`` file
        without ``allow_pickle=True``.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "g.edgelist"
    >>> _ = path.write_text("10 20\\n20 30\\n")
    >>> sorted(read_graph(path).edges())
    [(0, 1), (1, 2)]
    """
    path = Path(path)
    suffix = _readable_suffix(path)
    if suffix in _PICKLE_SUFFIXES:
        graph = _read_gpickle(path, allow_pickle)
    elif suffix in _GRAPHML_SUFFIXES:
        graph = _read_graphml(path)
    elif suffix in _JSON_SUFFIXES:
        graph = _read_node_link(path)
    else:
        graph = _read_edgelist(path)
    _check_counts(path, graph.number_of_nodes(), graph.number_of_edges())
    return _relabel_sorted(graph)


def _readable_suffix(path: Path) -> str:
    """The lower-case suffix of a graph file that exists and is not too big, or a GraphError."""
    suffix = path.suffix.lower()
    if suffix not in GRAPH_SUFFIXES:
        raise GraphError(
            f"cannot read graph file {path}: unknown suffix {suffix!r}; use one of "
            f"{', '.join(GRAPH_SUFFIXES)}"
        )
    if path.is_dir():
        raise GraphError(f"graph file {path} is a directory; pass a file")
    if not path.is_file():
        raise GraphError(f"graph file {path} does not exist; check the path")
    size = path.stat().st_size
    if size > MAX_FILE_BYTES:
        raise _too_big(path, "bytes", size, MAX_FILE_BYTES)
    return suffix


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _plain(graph: nx.Graph) -> nx.Graph:
    """A simple Graph/DiGraph (multi-edges merged), keeping direction."""
    return nx.DiGraph(graph) if graph.is_directed() else nx.Graph(graph)


def _read_graphml(path: Path) -> nx.Graph:
    try:
        raw = nx.read_graphml(path)
    except Exception as exc:  # noqa: BLE001 - networkx/ElementTree raise many kinds
        raise GraphError(
            f"cannot read GraphML file {path}: {_first_line(exc)}; fix the file"
        ) from None
    return _plain(raw)


def _read_node_link(path: Path) -> nx.Graph:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise GraphError(f"cannot read JSON graph file {path}: {_first_line(exc)}") from None
    edges_key = "edges" if isinstance(data, dict) and "edges" in data else "links"
    if not isinstance(data, dict) or "nodes" not in data or edges_key not in data:
        raise GraphError(
            f"JSON graph file {path} is not networkx node-link data (needs 'nodes' and "
            "'edges' or 'links'); write it with json.dump(nx.node_link_data(g), f)"
        )
    if isinstance(data["nodes"], list) and isinstance(data[edges_key], list):
        _check_counts(path, len(data["nodes"]), len(data[edges_key]))
    try:
        try:
            raw = nx.node_link_graph(data, edges=edges_key)
        except TypeError:  # networkx < 3.4 names the keyword "link"
            raw = nx.node_link_graph(data, link=edges_key)
    except Exception as exc:  # noqa: BLE001 - malformed entries raise KeyError, TypeError...
        raise GraphError(
            f"cannot read node-link JSON file {path}: bad entry ({_first_line(exc)}); fix the file"
        ) from None
    return _plain(raw)


def _read_gpickle(path: Path, allow_pickle: bool) -> nx.Graph:
    if not allow_pickle:
        raise GraphError(
            f"{path} is a pickle, and unpickling runs code: pass allow_pickle=True "
            "(CLI: --allow-pickle) only for a file you trust, or convert it to GraphML once: "
            + pickle_conversion(path)
        )
    try:
        with path.open("rb") as fh:
            raw = pickle.load(fh)  # noqa: S301 - opted in with allow_pickle=True
    except Exception as exc:  # noqa: BLE001 - unpickling can raise anything
        raise GraphError(f"cannot unpickle graph file {path}: {_first_line(exc)}") from None
    if not isinstance(raw, nx.Graph):
        raise GraphError(
            f"{path} holds a {type(raw).__name__}, not a networkx graph; pickle a networkx graph"
        )
    return _plain(raw)


def _read_edgelist(path: Path) -> nx.Graph:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise GraphError(
            f"cannot read edge list {path}: {_first_line(exc)}; fix the file"
        ) from None
    n_nodes, seen_data = 0, False
    edges: list[str] = []
    for lineno, line in enumerate(text.splitlines(), start=1):
        stripped = line.strip()
        if stripped.startswith(N_NODES_HEADER):
            count = stripped[len(N_NODES_HEADER) :].strip()
            if not count.isdigit():
                raise GraphError(f"{path}:{lineno}: bad node-count header {stripped!r}")
            n_nodes = int(count)
            _check_counts(path, n_nodes, 0)  # before anything is allocated for them
            continue
        tokens = stripped.split("#", 1)[0].replace(",", " ").split()
        if not tokens:
            continue
        if len(tokens) < 2:
            raise GraphError(f"{path}:{lineno}: expected 'u v', got {line.strip()!r}; fix the line")
        first, seen_data = not seen_data, True
        numeric = any(_is_int(_parse_label(t)) for t in tokens[:2])
        if first and path.suffix.lower() == ".csv" and not numeric:
            continue  # a header such as "source,target"
        edges.append(" ".join(tokens[:2]))
        if len(edges) > MAX_EDGES:
            raise _too_big(path, "edges", len(edges), MAX_EDGES)
    graph = nx.parse_edgelist(edges, nodetype=_parse_label, data=False)
    graph.add_nodes_from(range(n_nodes))  # isolated nodes named by the header
    return graph


def _parse_label(token: str) -> Hashable:
    try:
        return int(token)
    except ValueError:
        return token


def _is_int(x: object) -> bool:
    return isinstance(x, Integral) and not isinstance(x, bool)


def _sort_key(label: object) -> tuple[int, object]:
    """Integers (and all-digit strings) first, numerically; everything else as a string."""
    if _is_int(label):
        return (0, int(label))  # type: ignore[call-overload]
    if isinstance(label, str) and label.lstrip("-").isdigit():
        return (0, int(label))
    return (1, str(label))


def _relabel_sorted(graph: nx.Graph) -> nx.Graph:
    """Relabel nodes to ``0..n-1`` in sorted order (see :func:`read_graph`)."""
    ordered = nx.DiGraph() if graph.is_directed() else nx.Graph()
    ordered.add_nodes_from(sorted(graph.nodes(), key=_sort_key))
    ordered.add_edges_from(graph.edges())
    return nx.convert_node_labels_to_integers(ordered)  # 0..n-1 in the sorted order
