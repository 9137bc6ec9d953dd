"""The package's import graph: no import circles, and no import from a lower layer to a higher one.

The graph is read from the source with :mod:`ast`, without importing anything: every ``import``
and ``from ... import`` statement of every module counts, at module level or inside a
function, under ``if TYPE_CHECKING:`` too (a type named there is still a dependency), relative
forms (``from . import x``, ``from ..nn import masked``) resolved against the importing module.
``from a import b`` is an edge to the module ``a.b`` when that is a module, else to ``a``; an
edge to a name that is not a module goes to the deepest module above it. A package
``__init__`` counts by the import statements it holds: the names it re-exports lazily through
:mod:`sparsernn._lazy` (strings in a table) are no edges. Importing ``a.b.c`` also runs
``a/__init__`` and ``a/b/__init__``; those implicit edges are left out, since with them every
package that imports its own submodules would be a circle.

The layer order is declared here, in the test, and not in the package: it is a statement
about the package that only this test reads (an entry point for tests alone belongs with the
tests, STYLE.md 7). It follows the floors of ``farm-studio look`` as of issue 26 (the top
floor first there, the bottom layer first here). A module belongs to the layer of its
top-level module or package (``sparsernn.nn.masked``: ``nn``). It may import modules of its
own layer and of the layers below; only circles are forbidden within a layer.
"""

from __future__ import annotations

import ast
import itertools
import textwrap
from collections.abc import Mapping
from pathlib import Path

import pytest

PACKAGE_DIR = Path(__file__).resolve().parents[1] / "src" / "sparsernn"

#: The layers, bottom first: each entry names the top-level modules and packages of
#: ``sparsernn`` in it (``""``: the package's own ``__init__``).
LAYERS: list[tuple[str, tuple[str, ...]]] = [
    ("foundations", ("_lazy", "errors", "_seed", "_files", "_provenance", "_csvcells")),
    ("settings, graphs, the store's file", ("_threads", "graphs", "config", "_storefile")),
    (
        "data, networks, analysis, store",
        ("data", "nn", "analysis", "store", "_storerows", "_storecheck"),
    ),
    ("models, tasks, sparsity, tracking", ("models", "tasks", "sparsity", "tracking")),
    ("pruning, batching, checkpoints, compat", ("prune", "batching", "checkpoints", "compat")),
    ("training", ("train",)),
    ("experiments, benchmark, package API", ("experiments", "bench", "")),
    ("report", ("report",)),
    ("command line", ("cli",)),
]

#: A module -> {imported module: line of the first import of it}.
Graph = dict[str, dict[str, int]]


# --------------------------------------------------------------------------------------------
# Reading the graph


def module_names(package_dir: Path) -> dict[str, Path]:
    """Every module of the package in ``package_dir``, by dotted name (a package by its own)."""
    names = {}
    for path in sorted(package_dir.rglob("*.py")):
        parts = [package_dir.name, *path.relative_to(package_dir).with_suffix("").parts]
        if parts[-1] == "__init__":
            parts.pop()
        names[".".join(parts)] = path
    return names


def _deepest_module(name: str, modules: Mapping[str, Path]) -> str | None:
    """``name`` itself when it is a module, else the deepest module above it (None: outside)."""
    while name and name not in modules:
        name = name.rpartition(".")[0]
    return name or None


def _targets(
    node: ast.Import | ast.ImportFrom, module: str, is_package: bool, modules: Mapping[str, Path]
) -> list[str | None]:
    """The modules one import statement of ``module`` names."""
    if isinstance(node, ast.Import):
        return [_deepest_module(alias.name, modules) for alias in node.names]
    source = node.module or ""
    if node.level:
        base = module.split(".") if is_package else module.split(".")[:-1]
        base = base[: len(base) - (node.level - 1)]
        source = ".".join([*base, *([node.module] if node.module else [])])
    out = []
    for alias in node.names:
        full = f"{source}.{alias.name}"
        out.append(full if full in modules else _deepest_module(source, modules))
    return out


def import_graph(package_dir: Path) -> Graph:
    """The import graph of the package in ``package_dir``, within the package only."""
    modules = module_names(package_dir)
    graph: Graph = {}
    for module, path in modules.items():
        edges = graph[module] = {}
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                is_package = path.name == "__init__.py"
                for target in _targets(node, module, is_package, modules):
                    if target is not None and target != module:
                        edges.setdefault(target, node.lineno)
    return graph


# --------------------------------------------------------------------------------------------
# Circles and layers


def circles(graph: Mapping[str, Mapping[str, int]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, {})):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return sorted(found)


def circle_path(graph: Mapping[str, Mapping[str, int]], component: list[str]) -> list[str]:
    """One circle through the component's first module, as ``[a, b, ..., a]``."""
    start, members = component[0], set(component)
    paths = {start: [start]}
    todo = [start]
    while todo:  # breadth first: the shortest way back to the start
        v = todo.pop(0)
        for w in sorted(graph.get(v, {})):
            if w == start:
                return [*paths[v], start]
            if w in members and w not in paths:
                paths[w] = [*paths[v], w]
                todo.append(w)
    raise AssertionError(f"{component} is no circle")


def describe_circle(graph: Mapping[str, Mapping[str, int]], component: list[str]) -> str:
    """``a (line 3) -> b (line 9) -> a``: each import with the line that makes it."""
    path = circle_path(graph, component)
    steps = [f"{a} (line {graph[a][b]})" for a, b in itertools.pairwise(path)]
    return " -> ".join([*steps, path[-1]])


def layer_of(module: str, layers: list[tuple[str, tuple[str, ...]]]) -> int | None:
    """The index of the layer holding ``module`` (by its top-level name), or None."""
    top = module.split(".")[1] if "." in module else ""
    for i, (_, members) in enumerate(layers):
        if top in members:
            return i
    return None


def upward_imports(graph: Graph, layers: list[tuple[str, tuple[str, ...]]]) -> list[str]:
    """One line per import of a module in a higher layer than the importer's."""
    found = []
    for module, edges in sorted(graph.items()):
        here = layer_of(module, layers)
        for target, line in sorted(edges.items()):
            there = layer_of(target, layers)
            if here is not None and there is not None and there > here:
                found.append(
                    f"{module} (line {line}, layer {layers[here][0]!r}) imports {target} "
                    f"(layer {layers[there][0]!r}, above it)"
                )
    return found


# --------------------------------------------------------------------------------------------
# The package


@pytest.fixture(scope="module")
def graph() -> Graph:
    return import_graph(PACKAGE_DIR)


def test_the_graph_is_read(graph):
    assert len(graph) > 50
    assert "sparsernn.nn.cells" in graph["sparsernn.nn.masked"]
    assert graph["sparsernn"].keys() >= {"sparsernn._lazy", "sparsernn.train"}


def test_no_import_circles(graph):
    found = circles(graph)
    assert not found, "import circles (each: the imports that close it):\n" + "\n".join(
        describe_circle(graph, component) for component in found
    )


def test_every_module_has_a_layer(graph):
    missing = sorted({m for m in graph if layer_of(m, LAYERS) is None})
    assert not missing, f"modules in no layer (add them to LAYERS in {__file__}): {missing}"


def test_no_upward_imports(graph):
    found = upward_imports(graph, LAYERS)
    assert not found, "imports from a lower layer to a higher one:\n" + "\n".join(found)


# --------------------------------------------------------------------------------------------
# The reading and the checks, on made-up packages


def _package(tmp_path: Path, files: dict[str, str]) -> Path:
    """A package ``pkg`` under ``tmp_path`` with these files (path -> source)."""
    root = tmp_path / "pkg"
    for name, source in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(source))
    return root


def test_every_import_form_is_an_edge(tmp_path):
    root = _package(
        tmp_path,
        {
            "__init__.py": "from pkg import a\n",
            "a.py": "import pkg.sub.b as bee\nimport os\n",
            "sub/__init__.py": "from . import b\nfrom .b import NAME\n",
            "sub/b.py": "from .. import c\nfrom ..c import thing\nNAME = 1\n",
            "c.py": "def f():\n    from pkg.sub import b\n    return b\n",
            "d.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from pkg import c\n",
        },
    )
    graph = import_graph(root)
    assert {m: set(e) for m, e in graph.items()} == {
        "pkg": {"pkg.a"},
        "pkg.a": {"pkg.sub.b"},
        "pkg.sub": {"pkg.sub.b"},
        "pkg.sub.b": {"pkg.c"},
        "pkg.c": {"pkg.sub.b"},
        "pkg.d": {"pkg.c"},
    }
    assert graph["pkg.c"]["pkg.sub.b"] == 2  # the line of the function-local import


def test_a_function_local_import_closes_a_circle(tmp_path):
    files = {
        "__init__.py": "",
        "low.py": "X = 1\n",
        "high.py": "from pkg.low import X\n",
    }
    assert circles(import_graph(_package(tmp_path / "before", files))) == []
    files["low.py"] = "X = 1\n\n\ndef late():\n    from pkg import high\n    return high\n"
    graph = import_graph(_package(tmp_path / "after", files))
    assert circles(graph) == [["pkg.high", "pkg.low"]]
    assert describe_circle(graph, ["pkg.high", "pkg.low"]) == (
        "pkg.high (line 1) -> pkg.low (line 5) -> pkg.high"
    )


def test_circles_of_a_made_up_graph():
    graph = {
        "a": {"b": 1},
        "b": {"c": 1},
        "c": {"a": 1, "d": 1},
        "d": {"e": 1},
        "e": {"d": 1},
        "f": {"a": 1},
        "g": {},
    }
    assert circles(graph) == [["a", "b", "c"], ["d", "e"]]
    assert circle_path(graph, ["a", "b", "c"]) == ["a", "b", "c", "a"]
    assert circles({"a": {"b": 1}, "b": {}}) == []


def test_upward_imports_of_made_up_layers():
    layers = [("low", ("x",)), ("high", ("y", ""))]
    graph: Graph = {
        "pkg.x.one": {"pkg.y": 4, "pkg.x.two": 5},
        "pkg.x.two": {},
        "pkg.y": {"pkg.x.one": 2},
        "pkg": {"pkg.y": 1},
    }
    assert upward_imports(graph, layers) == [
        "pkg.x.one (line 4, layer 'low') imports pkg.y (layer 'high', above it)"
    ]
    assert layer_of("pkg", layers) == 1 and layer_of("pkg.z", layers) is None


# --------------------------------------------------------------------------------------------
# Room sizes (issue 26: no module over 600 lines, no function over 60)

MAX_MODULE_LINES = 600
MAX_FUNCTION_LINES = 60


def oversized(package_dir: Path) -> list[str]:
    """Modules over :data:`MAX_MODULE_LINES` lines and functions (docstring included) over
    :data:`MAX_FUNCTION_LINES`, as ``path[:function]: lines``."""
    found = []
    for path in sorted(package_dir.rglob("*.py")):
        text = path.read_text()
        rel = path.relative_to(package_dir).as_posix()
        if text.count("\n") > MAX_MODULE_LINES:
            found.append(f"{rel}: {text.count(chr(10))} lines")
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                n = node.end_lineno - node.lineno + 1
                if n > MAX_FUNCTION_LINES:
                    found.append(f"{rel}:{node.name}: {n} lines")
    return found


def test_no_oversized_module_or_function():
    assert oversized(PACKAGE_DIR) == []


def test_oversized_finds_a_long_module_and_a_long_function(tmp_path):
    long_body = "\n".join(f"    x{i} = {i}" for i in range(MAX_FUNCTION_LINES))
    (tmp_path / "f.py").write_text(f"def f():\n{long_body}\n")
    (tmp_path / "m.py").write_text("x = 1\n" * (MAX_MODULE_LINES + 1))
    assert oversized(tmp_path) == [f"f.py:f: {MAX_FUNCTION_LINES + 1} lines", "m.py: 601 lines"]
