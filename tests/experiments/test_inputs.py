"""Tests for a study's own input files: graph folders and the data identity in unit keys."""

from __future__ import annotations

import json

import networkx as nx
import pytest

from sparsernn.data import DataSpec, make_dataset, write_csv
from sparsernn.errors import ConfigError, GraphError
from sparsernn.experiments.config import StructureConfig, StudyConfig, load_study_config
from sparsernn.experiments.inputs import data_identity, graph_sha256, read_graph_dir
from sparsernn.experiments.units import plan_units
from sparsernn.graphs import write_edgelist


def test_every_format_is_one_graph_named_by_its_stem_in_name_order(tmp_path):
    nx.write_graphml(nx.cycle_graph(5), tmp_path / "b.graphml")
    write_edgelist(nx.path_graph(4), tmp_path / "a.edgelist")
    (tmp_path / "c.json").write_text(json.dumps(nx.node_link_data(nx.complete_graph(4))))
    (tmp_path / "readme.md").write_text("ignored")
    (tmp_path / "sub").mkdir()  # not recursive
    nx.write_graphml(nx.cycle_graph(7), tmp_path / "sub" / "d.graphml")
    graphs = read_graph_dir(tmp_path)
    assert [(g.name, g.n_nodes, len(g.edges)) for g in graphs] == [
        ("a", 4, 3),
        ("b", 5, 5),
        ("c", 4, 6),
    ]
    assert graphs[0].sha256 == graph_sha256(4, [(2, 3), (1, 0), (1, 2)])


def test_graph_identity_ignores_edge_order_and_direction_only():
    assert graph_sha256(3, [(0, 1), (2, 1)]) == graph_sha256(3, [(1, 2), (1, 0)])
    assert graph_sha256(3, [(0, 1), (1, 2)]) != graph_sha256(4, [(0, 1), (1, 2)])


def test_duplicate_stems_and_backward_directed_edges_are_refused(tmp_path):
    nx.write_graphml(nx.cycle_graph(5), tmp_path / "a.graphml")
    write_edgelist(nx.path_graph(4), tmp_path / "a.edgelist")
    with pytest.raises(ConfigError, match="both name graph 'a'"):
        read_graph_dir(tmp_path)
    (tmp_path / "a.edgelist").unlink()
    nx.write_graphml(nx.DiGraph([(0, 1), (2, 1)]), tmp_path / "a.graphml")
    with pytest.raises(GraphError, match="a.graphml.*larger node to a smaller"):
        read_graph_dir(tmp_path)
    nx.write_graphml(nx.DiGraph([(0, 1), (1, 2)]), tmp_path / "a.graphml")  # small -> large
    assert read_graph_dir(tmp_path)[0].edges == ((0, 1), (1, 2))


def test_file_graph_units_carry_the_graph_but_no_path_or_position(tmp_path):
    folder = tmp_path / "graphs"
    folder.mkdir()
    nx.write_graphml(nx.cycle_graph(5), folder / "ring.graphml")
    toml = tmp_path / "study.toml"
    toml.write_text('cells = ["gru"]\nseeds = [0, 1]\n[structure]\ngraphs_from = "graphs"\n')
    study = load_study_config(toml)
    units = [u for u in plan_units(study) if u.kind == "structure"]
    assert len(units) == 2
    cfg = units[0].config
    assert cfg["generator"] == "file" and cfg["graph"] == "ring" and cfg["n_nodes"] == 5
    assert cfg["graph_edges"] == [[0, 1], [0, 4], [1, 2], [2, 3], [3, 4]]
    assert "graph_id" not in cfg and str(tmp_path) not in json.dumps(cfg)
    nx.write_graphml(nx.path_graph(3), folder / "a.graphml")  # sorts first: ring keeps its key
    again = [u for u in plan_units(study) if u.kind == "structure" and u.config["graph"] == "ring"]
    assert [u.key for u in again] == [u.key for u in units]


def test_data_identity_hashes_csv_content_and_is_the_spec_for_generated_data(tmp_path):
    spec = DataSpec(n_strings=40)
    assert data_identity(spec) == spec.to_dict() == spec.fingerprint()
    train, test = make_dataset(spec)
    write_csv(train, tmp_path / "train.csv")
    write_csv(test, tmp_path / "test.csv")
    csv = DataSpec(train_csv=str(tmp_path / "train.csv"), test_csv=str(tmp_path / "test.csv"))
    ident = data_identity(csv)
    assert set(ident["train_csv"]) == {"sha256"} and "name" not in ident["test_csv"]
    study = StudyConfig(cells=("gru",), data=csv, structure=StructureConfig(enabled=False))
    units = plan_units(study)
    assert units[0].runtime == {"data": csv.to_dict()}
    assert units[0].config["data"] == ident
