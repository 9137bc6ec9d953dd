"""The public names that outside code and checks rely on stay importable with their signatures."""

import inspect

import networkx as nx
import numpy as np
import torch


def test_stable_names_and_signatures(tmp_path):
    import sparsernn.compat
    import sparsernn.data
    import sparsernn.data.reber
    import sparsernn.graphs
    import sparsernn.models
    import sparsernn.nn
    import sparsernn.prune
    import sparsernn.train

    assert sparsernn.data.reber.accepts("BTXSE") is True
    ds = sparsernn.data.Dataset(["BTXSE", "BTXE"], np.array([1, 0]))
    sparsernn.data.write_csv(ds, tmp_path / "d.csv")
    back = sparsernn.data.read_csv(tmp_path / "d.csv")
    assert list(back.strings) == ["BTXSE", "BTXE"] and list(back.labels) == [1, 0]
    assert issubclass(sparsernn.nn.MaskedRNN, torch.nn.Module)
    assert issubclass(sparsernn.nn.StructuredRNN, torch.nn.Module)
    assert issubclass(sparsernn.models.SequenceClassifier, torch.nn.Module)
    params = inspect.signature(sparsernn.compat.load_study_checkpoint).parameters
    assert list(params) == ["path_or_state_dict", "cell"]
    params = inspect.signature(sparsernn.train.evaluate).parameters
    assert list(params)[:2] == ["model", "dataset"] and params["batch_size"].default == 32
    params = inspect.signature(sparsernn.prune.magnitude_prune).parameters
    assert list(params) == ["model_or_module", "sparsity", "target", "scope"]
    assert params["target"].default == "both" and params["scope"].default == "global"
    dag = sparsernn.graphs.to_layered_dag(nx.path_graph(3))
    assert dag.layer_sizes == [1, 1, 1] and dag.layer_of == {0: 0, 1: 1, 2: 2}
    props = sparsernn.graphs.properties(nx.cycle_graph(5))
    assert list(props)[:8] == [
        "layers",
        "nodes",
        "edges",
        "source_nodes",
        "sink_nodes",
        "diameter",
        "density",
        "average_shortest_path_length",
    ]


def test_the_names_people_type_are_at_the_top_and_the_same_objects():
    """``from sparsernn import X`` gives the object of its home module (loaded on first use)."""
    import importlib

    import sparsernn

    homes = {"sparsify": "sparsity", "magnitude_prune": "sparsity", "MaskedRNN": "nn",
             "StructuredRNN": "nn", "SparseRNN": "nn", "build_model": "models",
             "fit": "train", "evaluate": "train"}  # fmt: skip
    assert set(sparsernn.__all__) == set(homes)
    for name, home in homes.items():
        module = importlib.import_module(f"sparsernn.{home}")
        assert getattr(sparsernn, name) is getattr(module, name), name
