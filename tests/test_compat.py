"""Study-format checkpoints load one to one and prune exactly as a numpy computation."""

import numpy as np
import pytest
import torch

from sparsernn.compat import load_study_checkpoint
from sparsernn.data import Dataset
from sparsernn.errors import DataError
from sparsernn.prune import magnitude_prune
from sparsernn.train import evaluate


def _study_state(cell="gru", hidden=6, emb=5, layers=3, seed=0):
    """A synthetic checkpoint in the study's key layout, built from torch.nn modules."""
    g = torch.Generator().manual_seed(seed)
    gates = {"gru": 3, "lstm": 4}.get(cell, 1)
    state = {"embedding.weight": torch.randn(128, emb, generator=g)}
    for k in range(layers):
        i = emb if k == 0 else hidden
        p = f"recurrent.recurrent_layers.{k}."
        state[p + "weight_ih"] = torch.randn(gates * hidden, i, generator=g) * 0.3
        state[p + "weight_hh"] = torch.randn(gates * hidden, hidden, generator=g) * 0.3
        state[p + "bias_ih"] = torch.randn(gates * hidden, generator=g) * 0.1
        state[p + "bias_hh"] = torch.randn(gates * hidden, generator=g) * 0.1
    state["out.weight"] = torch.randn(2, hidden, generator=g)
    state["out.bias"] = torch.randn(2, generator=g)
    return state


def _torch_forward(state, cell, tokens):
    """The study's model written with torch.nn modules, from the same state dict."""
    emb = torch.nn.Embedding(128, state["embedding.weight"].shape[1])
    emb.weight.data = state["embedding.weight"]
    hidden = state["out.weight"].shape[1]
    cls = {"gru": torch.nn.GRU, "lstm": torch.nn.LSTM}.get(cell)
    kw = {} if cls else {"nonlinearity": cell[4:]}
    rnn = (cls or torch.nn.RNN)(emb.weight.shape[1], hidden, 3, **kw)
    rnn.load_state_dict(
        {
            f"{name}_l{k}": state[f"recurrent.recurrent_layers.{k}.{name}"]
            for k in range(3)
            for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")
        }
    )
    out, _ = rnn(emb(tokens.t()))
    return out[-1] @ state["out.weight"].t() + state["out.bias"]


@pytest.mark.parametrize("cell", ["rnn_tanh", "rnn_relu", "gru", "lstm"])
def test_study_checkpoint_loads_one_to_one(cell, tmp_path):
    state = _study_state(cell)
    path = tmp_path / "study.pt"
    torch.save(state, path)
    model = load_study_checkpoint(path, cell)
    tokens = torch.tensor([[66, 84, 88, 83, 69, 0], [66, 80, 86, 86, 69, 69]])
    with torch.no_grad():
        assert torch.allclose(model(tokens), _torch_forward(state, cell, tokens), atol=1e-5)
    data = Dataset(["BTXSE", "BPVVE", "BQQE"], np.array([1, 1, 0]))
    assert set(evaluate(model, data)) >= {"accuracy", "loss"}


def test_study_rule_on_imported_checkpoint_matches_numpy():
    state = _study_state("lstm", hidden=7, emb=4)
    model = load_study_checkpoint(state, "lstm")
    for target, kinds in (("both", ("ih", "hh")), ("i2h", ("ih",)), ("h2h", ("hh",))):
        for amount in (10, 50, 90, 100):
            m = load_study_checkpoint(state, "lstm")
            masks = magnitude_prune(m, amount, target=target)
            keys = [
                f"recurrent.recurrent_layers.{k}.weight_{kind}" for k in range(3) for kind in kinds
            ]
            thr = np.percentile(
                np.concatenate([state[k].abs().numpy().ravel() for k in keys]), amount
            )
            for k in keys:
                layer, kind = k.split(".")[2], k.split("_")[-1]
                expected = ~(state[k].abs().numpy() < thr)
                np.testing.assert_array_equal(
                    masks[f"recurrent.weight_{kind}_l{layer}"].numpy(), expected
                )
    assert model.recurrent.num_layers == 3


def test_bad_checkpoints_raise_one_line_errors(tmp_path):
    bad = tmp_path / "bad.pt"
    bad.write_text("not a checkpoint")
    with pytest.raises(DataError, match="not a readable PyTorch state dict"):
        load_study_checkpoint(bad, "gru")
    with pytest.raises(DataError, match="no such checkpoint"):
        load_study_checkpoint(tmp_path / "missing.pt", "gru")
    with pytest.raises(DataError, match="does not fit cell"):
        load_study_checkpoint(_study_state("gru"), "lstm")
    with pytest.raises(DataError, match="missing study keys"):
        load_study_checkpoint({"foo": torch.zeros(1)}, "gru")
