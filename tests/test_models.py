"""SequenceClassifier: the study's architecture, readout at the last padded step."""

import io
import json

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


def _old_checkpoint(model, names: dict[str, str]) -> bytes:
    """A checkpoint as ``checkpoint_bytes`` wrote it before the input layer's rename: the same
    payload, with the state dict's keys renamed by ``names`` (new prefix -> old prefix)."""
    state = {}
    for key, value in model.state_dict().items():
        for new, old in names.items():
            if key.startswith(new):
                key = old + key[len(new) :]
        state[key] = value.detach().cpu()
    buf = io.BytesIO()
    torch.save(
        {
            "format": "sparsernn-checkpoint-1",
            "model_config": model.config.to_json(),
            "state_dict": state,
            "metrics": json.dumps({"test_accuracy": 0.5}),
        },
        buf,
    )
    return buf.getvalue()


def test_real_input_layer_is_named_for_what_it_is_and_old_checkpoints_load():
    """Real values pass ``input_linear`` (a Linear, once called ``embedding``); a checkpoint
    written with the old name loads into it, and gives the same outputs."""
    from sparsernn.models import BatchedClassifier
    from sparsernn.train import checkpoint_bytes, load_checkpoint

    cfg = ModelConfig(cell="gru", hidden_size=5, embedding_dim=3, num_layers=2, input_size=2)
    model = build_model(cfg, seed=3)
    assert isinstance(model.input_linear, torch.nn.Linear)
    assert model.input_layer is model.input_linear
    assert not hasattr(model, "embedding")
    assert {"input_linear.weight", "input_linear.bias"} <= set(model.state_dict())
    old = _old_checkpoint(model, {"input_linear.": "embedding."})
    assert "embedding.weight" in torch.load(io.BytesIO(old), weights_only=True)["state_dict"]
    loaded, metrics = load_checkpoint(old)
    x = torch.rand(4, 6, 2)
    assert metrics == {"test_accuracy": 0.5}
    assert torch.equal(loaded(x), model(x))
    again, _ = load_checkpoint(checkpoint_bytes(loaded))  # and new checkpoints as they are
    assert torch.equal(again(x), model(x))
    batched = BatchedClassifier.from_models([loaded, again])
    assert torch.allclose(batched(x)[1], model(x), atol=1e-6)
    with pytest.raises(RuntimeError, match="Unexpected key"):  # token models keep strict names
        tokens = build_model(ModelConfig(hidden_size=4, embedding_dim=3, num_layers=1), seed=0)
        tokens.load_state_dict({**tokens.state_dict(), "input_linear.weight": torch.zeros(1)})
