"""Random graph models of the study, a registry, batch sampling and edge-list files.

One function per model returns a plain undirected :class:`networkx.Graph` with nodes ``0..n-1``
(the networkx habit). Every function takes ``seed`` (an int, a numpy Generator or None); it is
normalised by :func:`sparsernn._seed.rng` and one int is drawn from it for networkx, so
``seed=5`` and ``seed=numpy.random.default_rng(5)`` give the same graph.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from numbers import Integral
from pathlib import Path
from typing import Any

import networkx as nx

from sparsernn._seed import SeedLike, derive_seed, rng
from sparsernn.errors import ConfigError, GraphError
from sparsernn.graphs.io import N_NODES_HEADER as _N_NODES_HEADER
from sparsernn.graphs.io import read_graph  # noqa: F401 - re-exported (it used to live here)

__all__ = [
    "GENERATORS",
    "barabasi_albert",
    "erdos_renyi",
    "graph_from_edges",
    "graph_to_edges",
    "make_graph",
    "read_graph",
    "sample_graph",
    "sample_graphs",
    "watts_strogatz",
    "write_edgelist",
]


def _nx_seed(seed: SeedLike) -> int:
    """One int seed for a networkx generator, drawn from the normalised ``seed``."""
    return int(rng(seed).integers(2**31))


def _check_int(name: str, value: object, minimum: int, hint: str = "") -> int:
    if isinstance(value, bool) or not isinstance(value, Integral):
        raise ConfigError(f"{name} must be an integer, not {type(value).__name__}{hint}")
    if value < minimum:
        raise ConfigError(f"{name} must be >= {minimum}, got {value}{hint}")
    return int(value)


def _study_param(
    model: str, name: str, value: Any, n: int, *, divisor: int, least: int, bound: str
) -> int:
    """``value`` (default: the study's ``n // divisor``) checked to be an integer with
    ``least <= value`` and ``value <= n`` (``bound="<="``) or ``value < n`` (``"<"``)."""
    if value is None:
        if n // divisor < least:
            raise ConfigError(
                f"{model} needs n >= {least * divisor} for the default {name} = n // {divisor} "
                f">= {least}, got n={n}; use a larger n or pass {name}"
            )
        value = n // divisor
    value = _check_int(name, value, least, hint=f" ({model} needs {least} <= {name} {bound} n)")
    if value > n or (bound == "<" and value == n):
        raise ConfigError(
            f"{model} needs {name} {bound} n, got {name}={value}, n={n}; use a smaller {name}"
        )
    return value


def _check_probability(name: str, value: object, *, allow_zero: bool = True) -> float:
    try:
        p = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise ConfigError(f"{name} must be a number in [0, 1], not {value!r}") from None
    low_ok = p >= 0.0 if allow_zero else p > 0.0
    if not (low_ok and p <= 1.0):
        valid = "[0, 1]" if allow_zero else "(0, 1]"
        raise ConfigError(f"{name} must be in {valid}, got {value}")
    return p


def watts_strogatz(
    n: int, seed: SeedLike = None, k: int | None = None, p: float = 1.0, tries: int = 10
) -> nx.Graph:
    """Connected Watts-Strogatz small-world graph, the study's first model.

    Parameters
    ----------
    n : int
        Number of nodes (>= 10 with the default ``k``).
    seed : int, numpy.random.Generator or None
        Randomness; one int is drawn from it for networkx.
    k : int, optional
        Each node joins its ``k`` nearest ring neighbours (``k - 1`` if odd) before rewiring;
        defaults to the study's ``n // 5``. Must satisfy ``2 <= k <= n``.
    p : float
        Rewiring probability in [0, 1]; the study uses 1.
    tries : int
        Attempts to get a connected graph before giving up.

    Returns
    -------
    networkx.Graph
        Nodes ``0..n-1``; the same as
        ``nx.connected_watts_strogatz_graph(n, k, p, tries, seed=<int drawn from seed>)``.

    Raises
    ------
    ConfigError
        ``n``, ``k``, ``p`` or ``tries`` out of range.
    GraphError
        No connected graph after ``tries`` attempts.

    Examples
    --------
    >>> g = watts_strogatz(20, seed=0)
    >>> g.number_of_nodes(), g.number_of_edges()
    (20, 40)
    """
    n = _check_int("n", n, 2)
    k = _study_param("watts_strogatz", "k", k, n, divisor=5, least=2, bound="<=")
    p = _check_probability("p", p)
    tries = _check_int("tries", tries, 1)
    try:
        graph = nx.connected_watts_strogatz_graph(n, k, p=p, tries=tries, seed=_nx_seed(seed))
    except nx.NetworkXError as exc:
        raise GraphError(
            f"watts_strogatz(n={n}, k={k}, p={p}) found no connected graph in {tries} tries "
            f"({exc}); raise tries or k, or use another seed"
        ) from None
    return nx.Graph(graph)


def barabasi_albert(n: int, seed: SeedLike = None, m: int | None = None) -> nx.Graph:
    """Barabasi-Albert preferential-attachment graph, the study's second model.

    Parameters
    ----------
    n : int
        Number of nodes (>= 10 with the default ``m``).
    seed : int, numpy.random.Generator or None
        Randomness; one int is drawn from it for networkx.
    m : int, optional
        Edges attached from each new node; defaults to the study's ``n // 10``.
        Must satisfy ``1 <= m < n``.

    Returns
    -------
    networkx.Graph
        Nodes ``0..n-1``, connected, ``m * (n - m)`` edges; the same as
        ``nx.barabasi_albert_graph(n, m, seed=<int drawn from seed>)``.

    Raises
    ------
    ConfigError
        ``n`` or ``m`` out of range.

    Examples
    --------
    >>> g = barabasi_albert(30, seed=1)  # m = 3
    >>> g.number_of_edges() == 3 * (30 - 3)
    True
    """
    n = _check_int("n", n, 2)
    m = _study_param("barabasi_albert", "m", m, n, divisor=10, least=1, bound="<")
    graph = nx.Graph(nx.barabasi_albert_graph(n, m, seed=_nx_seed(seed)))
    if not nx.is_connected(graph):  # pragma: no cover - BA graphs are connected by construction
        raise GraphError(f"barabasi_albert(n={n}, m={m}) is disconnected; use another seed")
    return graph


def erdos_renyi(
    n: int, seed: SeedLike = None, p: float | None = None, tries: int = 1000
) -> nx.Graph:
    """Connected Erdos-Renyi G(n, p) graph (beyond the study: a structure-free baseline).

    Draws ``nx.gnp_random_graph(n, p)`` until the graph is connected: the first attempt uses
    the int drawn from ``seed``, attempt ``t`` uses ``derive_seed(<that int>, "erdos_renyi", t)``.
    The result is therefore G(n, p) *conditioned on being connected*, which has somewhat more
    edges than ``p * n * (n - 1) / 2`` when ``p`` is near the connectivity threshold.

    Parameters
    ----------
    n : int
        Number of nodes (>= 10 with the default ``p``, >= 2 otherwise).
    seed : int, numpy.random.Generator or None
        Randomness.
    p : float, optional
        Edge probability in (0, 1]. Defaults to ``2 * (k // 2) / (n - 1)`` with ``k = n // 5``,
        so the expected edge count equals the Watts-Strogatz graph's exact ``n * (k // 2)``.
    tries : int
        Attempts to get a connected graph before giving up.

    Returns
    -------
    networkx.Graph
        Nodes ``0..n-1``, connected.

    Raises
    ------
    ConfigError
        ``n``, ``p`` or ``tries`` out of range.
    GraphError
        No connected graph after ``tries`` attempts.

    Examples
    --------
    >>> g = erdos_renyi(30, seed=0)
    >>> g.number_of_nodes(), nx.is_connected(g)
    (30, True)
    """
    n = _check_int("n", n, 2)
    if p is None:
        k = n // 5
        if k < 2:
            raise ConfigError(
                f"erdos_renyi needs n >= 10 for the default p (Watts-Strogatz-like degree), "
                f"got n={n}; use a larger n or pass p"
            )
        p = 2 * (k // 2) / (n - 1)
    p = _check_probability("p", p, allow_zero=False)
    tries = _check_int("tries", tries, 1)
    base = _nx_seed(seed)
    for attempt in range(tries):
        attempt_seed = base if attempt == 0 else derive_seed(base, "erdos_renyi", attempt)
        graph = nx.gnp_random_graph(n, p, seed=attempt_seed)
        if nx.is_connected(graph):
            return nx.Graph(graph)
    raise GraphError(
        f"erdos_renyi(n={n}, p={p:.4g}) found no connected graph in {tries} tries; raise p or tries"
    )


GENERATORS: dict[str, Callable[..., nx.Graph]] = {
    "ws": watts_strogatz,
    "ba": barabasi_albert,
    "er": erdos_renyi,
}


def make_graph(generator: str, n: int, seed: SeedLike = None, **kwargs: Any) -> nx.Graph:
    """Build one graph by registry name: ``"ws"``, ``"ba"`` or ``"er"`` (see :data:`GENERATORS`).

    Extra keyword arguments go to the generator (``k``, ``p``, ``m``, ``tries``).

    Examples
    --------
    >>> make_graph("ba", 30, seed=1).number_of_edges()
    81
    """
    try:
        func = GENERATORS[generator]
    except (KeyError, TypeError):
        names = ", ".join(sorted(GENERATORS))
        raise ConfigError(f"unknown graph generator {generator!r}; use one of: {names}") from None
    try:
        return func(n, seed=seed, **kwargs)
    except TypeError as exc:
        raise ConfigError(f"bad option for graph generator {generator!r}: {exc}") from None


def sample_graphs(
    generator: str,
    n_graphs: int,
    nodes: tuple[int, int] = (10, 50),
    seed: SeedLike = None,
    **kwargs: Any,
) -> list[nx.Graph]:
    """Sample graphs as the study does: each with ``n ~ uniform integer in [lo, hi]``.

    Graph ``i`` uses its own stream ``rng(derive_seed(base, generator, i))`` (``base`` is the
    int ``seed``, or one int drawn from a Generator / entropy), which draws first ``n`` and
    then the graph. So with an int seed, graph ``i`` is the same whatever ``n_graphs`` is,
    and :func:`sample_graph` makes it alone.

    Parameters
    ----------
    generator : str
        Registry name, see :data:`GENERATORS`.
    n_graphs : int
        How many graphs (>= 0).
    nodes : (int, int)
        Inclusive node-count range ``(lo, hi)``; the study uses ``(10, 50)``.
    seed : int, numpy.random.Generator or None
        Randomness.
    **kwargs
        Passed to the generator.

    Examples
    --------
    >>> graphs = sample_graphs("ws", 3, seed=0)
    >>> all(10 <= g.number_of_nodes() <= 50 for g in graphs)
    True
    """
    lo, hi = _check_sampling(generator, nodes)
    n_graphs = _check_int("n_graphs", n_graphs, 0)
    base = _base_seed(seed)
    return [_graph_at(generator, i, lo, hi, base, kwargs) for i in range(n_graphs)]


def sample_graph(
    generator: str,
    index: int,
    nodes: tuple[int, int] = (10, 50),
    seed: SeedLike = None,
    **kwargs: Any,
) -> nx.Graph:
    """Graph ``index`` of :func:`sample_graphs`' stream, made directly from its own seed.

    For an int ``seed`` it equals ``sample_graphs(generator, index + 1, nodes, seed)[-1]``
    without making graphs ``0..index-1`` first (a study's structure unit needs one graph).

    Examples
    --------
    >>> a = sample_graph("ba", 4, seed=7)
    >>> b = sample_graphs("ba", 5, seed=7)[4]
    >>> sorted(a.edges()) == sorted(b.edges())
    True
    """
    lo, hi = _check_sampling(generator, nodes)
    index = _check_int("index", index, 0)
    return _graph_at(generator, index, lo, hi, _base_seed(seed), kwargs)


def _check_sampling(generator: str, nodes: tuple[int, int]) -> tuple[int, int]:
    """Check a registry name and a node-count range; return the range as ``(lo, hi)``."""
    if generator not in GENERATORS:
        names = ", ".join(sorted(GENERATORS))
        raise ConfigError(f"unknown graph generator {generator!r}; use one of: {names}")
    try:
        lo, hi = nodes
    except (TypeError, ValueError):
        raise ConfigError(f"nodes must be a pair (lo, hi), got {nodes!r}") from None
    lo = _check_int("nodes[0]", lo, 1)
    hi = _check_int("nodes[1]", hi, 1)
    if lo > hi:
        raise ConfigError(f"nodes range must have lo <= hi, got ({lo}, {hi}); swap them")
    return lo, hi


def _base_seed(seed: SeedLike) -> int:
    """The int that seeds a stream of graphs: ``seed`` itself, or one int drawn from it."""
    return int(seed) if isinstance(seed, Integral) else int(rng(seed).integers(2**63))


def _graph_at(
    generator: str, index: int, lo: int, hi: int, base: int, kwargs: dict[str, Any]
) -> nx.Graph:
    """Graph ``index`` of the stream ``base``: its own generator draws ``n``, then the graph."""
    stream = rng(derive_seed(base, generator, index))
    n = int(stream.integers(lo, hi + 1))
    return make_graph(generator, n, seed=stream, **kwargs)


def graph_to_edges(graph: nx.Graph) -> list[tuple[int, int]]:
    """Sorted edge list of a graph with integer nodes; undirected edges as ``(min, max)``."""
    edges = []
    for u, v in graph.edges():
        if not (_is_int(u) and _is_int(v)):
            raise GraphError(
                f"graph_to_edges needs integer nodes, got edge ({u!r}, {v!r}); "
                "relabel with nx.convert_node_labels_to_integers"
            )
        u, v = int(u), int(v)
        edges.append((u, v) if graph.is_directed() else (min(u, v), max(u, v)))
    return sorted(edges)


def graph_from_edges(edges: Iterable[tuple[int, int]], n_nodes: int) -> nx.Graph:
    """Undirected graph with nodes ``0..n_nodes-1`` (isolated ones kept) and the given edges."""
    n_nodes = _check_int("n_nodes", n_nodes, 0)
    graph = nx.Graph()
    graph.add_nodes_from(range(n_nodes))
    for edge in edges:
        try:
            u, v = (int(x) for x in edge)
        except (TypeError, ValueError):
            raise GraphError(f"edge {edge!r} is not a pair of integers; use (u, v)") from None
        if not (0 <= u < n_nodes and 0 <= v < n_nodes):
            raise GraphError(
                f"edge ({u}, {v}) has a node outside 0..{n_nodes - 1}; raise n_nodes or fix it"
            )
        graph.add_edge(u, v)
    return graph


def write_edgelist(graph: nx.Graph, path: str | os.PathLike[str]) -> None:
    """Write ``u v`` lines after a ``# n_nodes: N`` header (so isolated nodes survive).

    :func:`~sparsernn.graphs.read_graph` reads the file back to an equal graph when nodes
    are ``0..N-1``.
    """
    edges = graph_to_edges(graph)
    lines = [f"{_N_NODES_HEADER} {graph.number_of_nodes()}"]
    lines += [f"{u} {v}" for u, v in edges]
    Path(path).write_text("\n".join(lines) + "\n", encoding="utf-8")


def _is_int(x: object) -> bool:
    return isinstance(x, Integral) and not isinstance(x, bool)
