"""A study's own input files (CSV data, a folder of graphs), read once before any unit runs.

A study may name files: ``[data] train_csv``/``test_csv`` (the study's CSV format) and
``[structure] graphs_from`` (a folder of graph files). :func:`resolve_inputs` reads and checks
them all up front, so a missing or malformed file is one error before anything is stored.

What identifies a unit is the files' *content*, never their paths:

- data: a unit's ``config["data"]`` (hashed into its key, stored) is
  :func:`data_identity`, the :class:`~sparsernn.data.DataSpec` with each CSV path replaced by
  ``{"sha256": <hex>}`` of the file. A moved or renamed file is the same study; an edited one is a
  new study. The worker still needs the paths: they travel in :attr:`Unit.runtime
  <sparsernn.experiments.units.Unit.runtime>` (``{"data": <DataSpec dict with absolute paths>}``),
  which is neither hashed nor stored. The worker checks that the files still hash as planned,
  so a file edited mid-run (or a different file at that path on a Ray node) fails the unit
  instead of storing results under the wrong key. On a cluster the paths must be readable on
  every node (a shared file system).
- graphs: each file of ``graphs_from`` is one graph (:class:`FileGraph`), named by its file
  stem; a unit's config holds the name, the SHA-256 of the canonical edge list
  (:func:`graph_sha256`), the node count and the edge list itself (small), so the graph reaches
  the worker inside the config and a moved folder is the same study.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sparsernn.errors import ConfigError, GraphError

if TYPE_CHECKING:
    import networkx as nx

    from sparsernn.data import DataSpec
    from sparsernn.experiments.config import StudyConfig

__all__ = [
    "GRAPH_SUFFIXES",
    "MAX_N_STRINGS",
    "check_data",
    "FileGraph",
    "StudyInputs",
    "data_identity",
    "graph_sha256",
    "read_graph_dir",
    "resolve_inputs",
]

#: Graph files read from a ``graphs_from`` folder (``.json``: networkx node-link data).
GRAPH_SUFFIXES = (".graphml", ".edgelist", ".json")
_PICKLE_SUFFIX = ".gpickle"
_CSV_FIELDS = ("train_csv", "test_csv")
#: The most examples a study generates (the study's data set has 25,000): more would take
#: gigabytes in every worker; checked before anything runs.
MAX_N_STRINGS = 1_000_000


@dataclasses.dataclass(frozen=True)
class FileGraph:
    """One graph read from a file: its name (the file stem), nodes ``0..n_nodes-1``, edges."""

    name: str
    path: str
    n_nodes: int
    edges: tuple[tuple[int, int], ...]

    @property
    def sha256(self) -> str:
        """The graph's identity: :func:`graph_sha256` of its canonical edge list."""
        return graph_sha256(self.n_nodes, self.edges)


@dataclasses.dataclass(frozen=True)
class StudyInputs:
    """What :func:`resolve_inputs` read: the data's identity and runtime spec, file graphs.

    ``data`` goes into every unit's config (and key); ``data_runtime`` is the DataSpec dict
    with absolute CSV paths for the workers (None for generated data); ``graphs`` holds the
    ``graphs_from`` folder's graphs in name order (None when the study generates its graphs).
    """

    data: dict[str, Any]
    data_runtime: dict[str, Any] | None = None
    graphs: tuple[FileGraph, ...] | None = None


def _csv_paths(spec: DataSpec) -> dict[str, str | None]:
    return {name: getattr(spec, name, None) for name in _CSV_FIELDS}


def data_identity(spec: DataSpec) -> dict[str, Any]:
    """The part of a unit's key that says which data it trains on: ``spec.fingerprint()``.

    Generated data: ``spec.to_dict()``. CSV data: each file reduced to ``{"sha256": ...}`` of its
    content (a moved or renamed file is the same data).

    Raises
    ------
    DataError
        A CSV file is missing or malformed.
    """
    return spec.fingerprint()


def check_data(spec: DataSpec) -> None:
    """Raise a one-line error, before anything runs, for data no unit could use: more than
    :data:`MAX_N_STRINGS` examples, more distinct valid strings than the grammar has in the
    length range, or a CSV string with a character the model cannot read (a NUL, a code
    above the vocabulary)."""
    from sparsernn.data.dataset import encode, read_csv
    from sparsernn.errors import DataError
    from sparsernn.tasks import GRAMMAR_TASKS

    if spec.from_files:
        for name, path in _csv_paths(spec).items():
            try:
                encode(read_csv(path).strings)  # type: ignore[arg-type]
            except DataError as exc:
                raise DataError(f"{path} ({name}): {exc}") from None
        return
    if spec.n_strings > MAX_N_STRINGS:
        raise ConfigError(
            f"n_strings = {spec.n_strings} (--n-strings) is more than sparsernn generates "
            f"({MAX_N_STRINGS}; the study's data set has 25000): ask for fewer"
        )
    if spec.task_name in GRAMMAR_TASKS:
        from sparsernn.data import get_grammar

        grammar = get_grammar(spec.grammar)
        lengths = range(spec.min_length, spec.max_length + 1)
        available = sum(grammar.count_strings(k) for k in lengths)
        if available < spec.n_valid:
            raise ConfigError(
                f"n_strings = {spec.n_strings} needs {spec.n_valid} distinct valid strings, but "
                f"the {spec.grammar} grammar has {available} of lengths {spec.min_length}.."
                f"{spec.max_length}: ask for fewer or widen the length range"
            )


def graph_sha256(n_nodes: int, edges: Any) -> str:
    """SHA-256 (hex) of a graph's canonical form: node count and sorted ``(min, max)`` edges."""
    canon = sorted((min(int(u), int(v)), max(int(u), int(v))) for u, v in edges)
    text = json.dumps({"n_nodes": int(n_nodes), "edges": canon}, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


def _pickle_refused(path: Path) -> ConfigError:
    from sparsernn.graphs.io import pickle_conversion

    return ConfigError(
        f"{path}: .gpickle files are refused because unpickling runs code from the file; "
        f"convert it to GraphML ({pickle_conversion(path)}) or pass --allow-pickle "
        "([structure] allow_pickle = true) if you trust it"
    )


def _check_graph(graph: nx.Graph, path: Path) -> nx.Graph:
    """``graph`` relabelled ``0..n-1`` (sorted order), or a one-line error naming ``path``."""
    import networkx as nx

    from sparsernn.graphs import properties

    if graph.is_directed():
        backward = [(u, v) for u, v in graph.edges() if not u < v]
        if backward:
            raise GraphError(
                f"graph file {path}: directed edge {backward[0]} runs from a larger node to a "
                "smaller one; the study orients every edge from the smaller node to the larger "
                "(SPEC 5), so save the graph undirected"
            )
    try:
        graph = nx.convert_node_labels_to_integers(nx.Graph(graph), ordering="sorted")
        properties(graph, extras=False)  # empty, disconnected, self-loops, no edges
    except (GraphError, TypeError) as exc:
        raise GraphError(f"graph file {path}: {exc}") from None
    return graph


def read_graph_dir(folder: str | os.PathLike[str], allow_pickle: bool = False) -> list[FileGraph]:
    """Every graph file in ``folder`` (not recursive), in name order, checked for training.

    Files ending in :data:`GRAPH_SUFFIXES` (and ``.gpickle`` with ``allow_pickle``) are read
    with :func:`sparsernn.graphs.io.read_graph`; other files are ignored. Each graph is named
    by its file stem and relabelled ``0..n-1`` in sorted node order.

    Raises
    ------
    ConfigError
        ``folder`` is not a directory or holds no graph files; two files share a stem; a
        ``.gpickle`` file without ``allow_pickle`` (unpickling runs code).
    GraphError
        A file that cannot be read, or a graph no network can be built from (empty,
        disconnected, self-loops, no edges); the message names the file.
    """
    from sparsernn.graphs import graph_to_edges
    from sparsernn.graphs.io import read_graph

    path = Path(folder)
    if not path.is_dir():
        raise ConfigError(f"graphs_from {path}: no such directory; give a folder of graph files")
    suffixes = GRAPH_SUFFIXES + (_PICKLE_SUFFIX,)
    files = sorted(
        (p for p in path.iterdir() if p.is_file() and p.suffix.lower() in suffixes),
        key=lambda p: (p.stem, p.name),
    )
    pickles = [p for p in files if p.suffix.lower() == _PICKLE_SUFFIX]
    if pickles and not allow_pickle:
        raise _pickle_refused(pickles[0])
    if not files:
        raise ConfigError(
            f"graphs_from {path}: no graph files in it; add *.graphml, *.edgelist or "
            "node-link *.json files"
        )
    stems: dict[str, Path] = {}
    for p in files:
        if p.stem in stems:
            raise ConfigError(
                f"graphs_from {path}: {stems[p.stem].name} and {p.name} both name graph "
                f"{p.stem!r}; rename one (a graph is named by its file stem)"
            )
        stems[p.stem] = p
    graphs = []
    for p in files:
        try:
            raw = read_graph(p, allow_pickle=allow_pickle)
        except GraphError as exc:
            text = str(exc)
            raise GraphError(text if p.name in text else f"graph file {p}: {text}") from None
        graph = _check_graph(raw, p)
        edges = tuple(graph_to_edges(graph))
        graphs.append(FileGraph(p.stem, str(p.absolute()), graph.number_of_nodes(), edges))
    return graphs


def resolve_inputs(study: StudyConfig) -> StudyInputs:
    """Read and check every file ``study`` names, before any of its units runs.

    Raises
    ------
    DataError, GraphError, ConfigError
        A missing or malformed CSV or graph file, or an unusable graph folder (one line each).
    """
    spec = study.data
    check_data(spec)
    paths = _csv_paths(spec)
    runtime = None
    if any(p is not None for p in paths.values()):
        absolute: dict[str, Any] = {
            k: os.path.abspath(v) for k, v in paths.items() if v is not None
        }
        spec = dataclasses.replace(spec, **absolute)
        runtime = spec.to_dict()
    graphs = None
    s = study.structure
    if s.enabled and s.graphs_from is not None:
        graphs = tuple(read_graph_dir(s.graphs_from, allow_pickle=s.allow_pickle))
    return StudyInputs(data=data_identity(spec), data_runtime=runtime, graphs=graphs)
