"""A structure unit makes only its own graph and lays it out as a DAG once."""

from __future__ import annotations

from studyhelpers import tiny_study  # noqa: I001  (tests/experiments on sys.path)

from sparsernn.experiments import units
from sparsernn.graphs import GENERATORS, graph_to_edges, sample_graphs
from sparsernn.graphs.dag import LayeredDAG


def _structure_units(n_graphs: int) -> list[units.Unit]:
    return [u for u in units.plan_units(tiny_study(n_graphs)) if u.kind == "structure"]


def test_structure_graph_makes_graph_i_alone(monkeypatch):
    last = _structure_units(4)[-1].config
    lo, hi = last["node_range"]
    expected = sample_graphs("ws", 4, (lo, hi), seed=last["seed"])[3]
    made = []
    real = GENERATORS["ws"]
    monkeypatch.setitem(GENERATORS, "ws", lambda n, **kw: made.append(n) or real(n, **kw))
    graph = units.structure_graph(last)
    assert graph_to_edges(graph) == graph_to_edges(expected)
    assert made == [expected.number_of_nodes()]  # not graphs 0..2 before it


def test_a_structure_unit_builds_its_layered_dag_once(monkeypatch):
    built = []
    real_init = LayeredDAG.__init__

    def counting_init(self, *args, **kwargs):
        built.append(1)
        real_init(self, *args, **kwargs)

    monkeypatch.setattr(LayeredDAG, "__init__", counting_init)
    unit = _structure_units(1)[0]
    result = units.execute({"kind": unit.kind, "config": unit.config})
    assert result["status"] == "done", result.get("error")
    assert len(built) == 1
    assert result["metrics"]["layers"] == len(result["metrics"]["layer_sizes"])
