"""SequenceClassifier: the study's architecture, readout at the last padded step."""

import networkx as nx
import pytest
import torch

from sparsernn.errors import ConfigError
from sparsernn.models import ModelConfig, build_model
from sparsernn.nn import MaskedRNN


def test_study_base_model_shapes():
    model = build_model(ModelConfig(cell="lstm"), seed=0)
    assert model.embedding.weight.shape == (128, 50)
    assert isinstance(model.recurrent, MaskedRNN) and model.recurrent.num_layers == 3
    assert model.out.weight.shape == (2, 50)
    assert model(torch.randint(1, 128, (4, 9))).shape == (4, 2)


def test_readout_is_last_padded_step():
    model = build_model(ModelConfig(cell="gru", hidden_size=6, embedding_dim=4), seed=1)
    toks = torch.tensor([[66, 84, 69, 0, 0]])
    emb = model.embedding(toks.t())
    seq, _ = model.recurrent(emb)
    assert torch.allclose(model(toks), model.out(seq[-1]))
    # trailing padding changes the output: padding is part of the model's input
    assert not torch.allclose(model(toks), model(toks[:, :3]))


def test_seeded_build_is_reproducible_and_does_not_touch_global_rng():
    state = torch.random.get_rng_state()
    a = build_model(ModelConfig(cell="rnn_relu"), seed=7)
    assert torch.equal(torch.random.get_rng_state(), state)
    b = build_model(ModelConfig(cell="rnn_relu"), seed=7)
    for p, q in zip(a.parameters(), b.parameters(), strict=True):
        assert torch.equal(p, q)


def test_structured_model_from_config_round_trips():
    graph = nx.Graph([(0, 2), (1, 2), (1, 3), (2, 3), (2, 4), (3, 4)])
    cfg = ModelConfig(cell="gru", embedding_dim=None, graph_edges=tuple(graph.edges()), n_nodes=5)
    model = build_model(cfg, seed=0)
    assert model.embedding.weight.shape == (128, 2)  # embedding dim = |layer 0|
    again = ModelConfig.from_json(cfg.to_json())
    assert again == cfg and again.key == cfg.key
    clone = build_model(again)
    clone.load_state_dict(model.state_dict())
    toks = torch.randint(1, 128, (3, 6))
    assert torch.equal(model(toks), clone(toks))


def test_gate_layout_round_trips_and_builds_the_layout():
    graph = nx.Graph([(0, 2), (1, 2), (1, 3), (2, 3), (2, 4), (3, 4)])
    edges = tuple(graph.edges())
    blocked = ModelConfig(cell="lstm", embedding_dim=None, graph_edges=edges, n_nodes=5)
    assert "gate_layout" not in blocked.to_dict()  # default: older configs' JSON and keys
    inter = blocked.replace(gate_layout="interleaved")
    again = ModelConfig.from_json(inter.to_json())
    assert again == inter and again.key == inter.key != blocked.key
    assert build_model(again).recurrent.gate_layout == "interleaved"
    assert build_model(blocked).recurrent.gate_layout == "blocked"
    with pytest.raises(ConfigError, match="gate_layout"):
        ModelConfig(gate_layout="gatewise")
