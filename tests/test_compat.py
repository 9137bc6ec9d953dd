"""Study-format checkpoints load one to one and prune exactly as a numpy computation."""

import networkx as nx
import numpy as np
import pytest
import torch
from study_format import (  # noqa: I001  (tests/nn on sys.path via conftest)
    base_state,
    reference_logits,
    skip_pairs,
    structure_state,
    study_layers,
)

from sparsernn.compat import load_study_checkpoint, load_study_structure_checkpoint
from sparsernn.data import Dataset
from sparsernn.errors import DataError
from sparsernn.prune import magnitude_prune
from sparsernn.tasks import strings_task
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
    data = strings_task(Dataset(["BTXSE", "BPVVE", "BQQE"], np.array([1, 1, 0])))
    assert set(evaluate(model, data)) >= {"accuracy", "loss"}


def test_study_rule_on_imported_checkpoint_matches_numpy():
    state = _study_state("lstm", hidden=7, emb=4)
    model = load_study_checkpoint(state, "lstm")
    for target, kinds in (("both", ("ih", "hh")), ("i2h", ("ih",)), ("h2h", ("hh",))):
        for amount in (10, 50, 90, 100):
            m = load_study_checkpoint(state, "lstm")
            masks = magnitude_prune(m, amount / 100, target=target)
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
    with pytest.raises(DataError, match="not a PyTorch checkpoint"):
        load_study_checkpoint(bad, "gru")
    with pytest.raises(DataError, match="no such checkpoint"):
        load_study_checkpoint(tmp_path / "missing.pt", "gru")
    with pytest.raises(DataError, match="does not fit cell"):
        load_study_checkpoint(_study_state("gru"), "lstm")
    with pytest.raises(DataError, match="missing study keys"):
        load_study_checkpoint({"foo": torch.zeros(1)}, "gru")


# ------------------------------------------------------------------ masks of base / pruning models
CELLS = ["rnn_tanh", "rnn_relu", "gru", "lstm"]
TOKENS = torch.tensor(
    [[66, 84, 88, 83, 69, 0, 0], [66, 80, 86, 86, 69, 69, 69], [66, 69, 0, 0, 0, 0, 0]]
)


def _logits(model, tokens=TOKENS):
    with torch.no_grad():
        return model.double()(tokens)


@pytest.mark.parametrize("mask_dtype", [torch.bool, torch.float32])
@pytest.mark.parametrize("cell", CELLS)
def test_study_masks_load_bool_or_float(cell, mask_dtype, tmp_path):
    state = base_state(cell, mask_dtype=mask_dtype, seed=3)  # unpruned: all-True masks
    path = tmp_path / "base.pt"
    torch.save(state, path)
    model = load_study_checkpoint(path, cell)
    assert all(bool(m.all()) for _, m in model.recurrent.masks())
    ref = reference_logits(state, cell, TOKENS)
    assert torch.allclose(_logits(model), ref, atol=1e-6)


@pytest.mark.parametrize("mask_dtype", [torch.bool, torch.float32])
@pytest.mark.parametrize("cell", CELLS)
def test_pruned_study_model_keeps_its_masks_and_zeros(cell, mask_dtype):
    state = base_state(cell, mask_dtype=mask_dtype, keep=0.5, seed=4)
    model = load_study_checkpoint(state, cell)
    for k in range(3):
        for kind, study in (("ih", "i2h"), ("hh", "h2h")):
            saved = state[f"recurrent.recurrent_layers.{k}.mask_{study}"].bool()
            mask = getattr(model.recurrent, f"weight_{kind}_l{k}_mask")
            assert mask.dtype == torch.bool and torch.equal(mask, saved)
            weight = getattr(model.recurrent, f"weight_{kind}_l{k}")
            assert torch.count_nonzero(weight[~saved]) == 0  # saved weights there were not 0
    # the forward pass is weight * mask, as in the study
    assert torch.allclose(_logits(model), reference_logits(state, cell, TOKENS), atol=1e-6)
    # masked entries stay exactly zero after Adam steps of fitting
    model = load_study_checkpoint(state, cell)
    data = strings_task(Dataset(["BTXSE", "BPVVE", "BQQE", "BTSSXXTVVE"], np.array([1, 1, 0, 1])))
    from sparsernn.train import TrainConfig, fit

    fit(model, data, None, TrainConfig(epochs=2, batch_size=2, seed=0))
    for name, mask in model.recurrent.masks():
        assert torch.count_nonzero(getattr(model.recurrent, name)[~mask]) == 0, name


def test_bad_study_masks_are_refused_in_one_line():
    state = base_state("gru", mask_dtype=torch.float32)
    state["recurrent.recurrent_layers.1.mask_h2h"][0, 0] = 0.5
    with pytest.raises(DataError, match=r"recurrent_layers\.1\.mask_h2h holds 0\.5.*0/1") as e:
        load_study_checkpoint(state, "gru")
    assert "\n" not in str(e.value)
    state = base_state("gru")
    state["recurrent.recurrent_layers.2.mask_i2h"] = torch.ones(3, 3, dtype=torch.bool)
    with pytest.raises(DataError, match=r"recurrent_layers\.2\.mask_i2h has shape \(3, 3\)"):
        load_study_checkpoint(state, "gru")


def test_a_csv_is_not_a_checkpoint(tmp_path):
    csv = tmp_path / "test.csv"
    csv.write_text("string,label\nBTXSE,1\n")
    for load in (
        lambda: load_study_checkpoint(csv, "gru"),
        lambda: load_study_structure_checkpoint(csv, nx.path_graph(3), "gru"),
    ):
        with pytest.raises(DataError, match="not a PyTorch checkpoint \\(state dict\\) file"):
            load()
    ours = tmp_path / "ours.pt"
    torch.save({"format": "sparsernn-checkpoint-1", "state_dict": {}}, ours)
    with pytest.raises(DataError, match="a sparsernn checkpoint, not a study one"):
        load_study_checkpoint(ours, "gru")
    weird = tmp_path / "list.pt"
    torch.save([torch.zeros(1)], weird)
    with pytest.raises(DataError, match="not a PyTorch checkpoint"):
        load_study_checkpoint(weird, "gru")


# ------------------------------------------------------------------ random-structure networks
STUDY_EXAMPLE = nx.Graph([(0, 2), (1, 2), (1, 3), (2, 3), (2, 4), (3, 4)])


def _structure_graphs():
    """Hand-built graphs and small WS/BA graphs, each with at least one skip layer."""
    chain_with_skips = nx.Graph([(0, 1), (1, 2), (2, 3), (3, 4), (0, 3), (1, 4), (0, 4)])
    wide = nx.Graph([(0, 3), (1, 3), (2, 4), (3, 5), (4, 5), (0, 5), (5, 6), (2, 6), (1, 6)])
    graphs = [STUDY_EXAMPLE, chain_with_skips, wide]
    graphs += [
        nx.connected_watts_strogatz_graph(n, n // 5, p=1, tries=10, seed=n) for n in (10, 13, 16)
    ]
    graphs += [nx.barabasi_albert_graph(n, m, seed=n) for n, m in ((12, 2), (16, 3))]
    for g in graphs:
        assert skip_pairs(g, study_layers(g)), "test graphs must have skip layers"
    return graphs


@pytest.mark.parametrize("cell", CELLS)
def test_study_structure_network_equals_the_reference(cell, tmp_path):
    for i, graph in enumerate(_structure_graphs()):
        state = structure_state(graph, cell, seed=i)
        path = tmp_path / f"g{i}.pt"
        torch.save(state, path)
        model = load_study_structure_checkpoint(path, graph, cell)
        assert model.recurrent.input_size == len(study_layers(graph)[0])
        ref = reference_logits(state, cell, TOKENS, graph)
        assert torch.allclose(_logits(model), ref, atol=1e-6), (cell, i)


def test_study_structure_masks_are_used_as_saved():
    graph = _structure_graphs()[3]
    state = structure_state(graph, "gru", seed=1)
    model = load_study_structure_checkpoint(state, graph, "gru")
    layers = study_layers(graph)
    masks = model.recurrent.sublayer_masks()
    for k, pair in enumerate(skip_pairs(graph, layers)):
        saved = state[f"recurrent.skip_layers.{k}.mask_i2h"].bool()
        assert torch.equal(masks[pair][0], saved)
    # a file whose masks differ from the graph's keeps its own (here: one more edge removed)
    state["recurrent.recurrent_layers.1.mask_i2h"][:] = 0
    state["recurrent.recurrent_layers.1.mask_i2h"][0, 0] = 1
    model = load_study_structure_checkpoint(state, graph, "gru")
    assert int(model.recurrent.sublayer_masks()[(0, 1)][0].sum()) == 1
    assert torch.allclose(_logits(model), reference_logits(state, "gru", TOKENS, graph), atol=1e-6)
    assert model.config.gate_layout == "interleaved"


def test_study_structure_network_evaluates():
    graph = STUDY_EXAMPLE
    model = load_study_structure_checkpoint(structure_state(graph, "lstm"), graph, "lstm")
    data = strings_task(Dataset(["BTXSE", "BPVVE", "BQQE"], np.array([1, 1, 0])))
    res = evaluate(model, data, batch_size=128)
    assert 0.0 <= res["accuracy"] <= 1.0 and np.isfinite(res["loss"])


def test_study_structure_shape_errors_name_the_layer():
    graph = _structure_graphs()[1]  # layers [[0], [1], [2], [3], [4]]
    state = structure_state(graph, "gru")
    with pytest.raises(DataError, match="layer 0 has 2 nodes; is this the right graph"):
        load_study_structure_checkpoint(state, STUDY_EXAMPLE, "gru")
    fewer_skips = nx.Graph([(0, 1), (1, 2), (2, 3), (3, 4), (0, 3)])  # same layers, 1 skip
    with pytest.raises(DataError, match="has 3 skip layers but the graph's layering needs 1"):
        load_study_structure_checkpoint(state, fewer_skips, "gru")
    bigger = nx.Graph(graph)
    bigger.add_edge(5, 0)  # node 5 joins layer 1: sizes no longer fit
    with pytest.raises(
        DataError, match=r"graph's layer \d+ has \d+ nodes; is this the right graph"
    ):
        load_study_structure_checkpoint(state, bigger, "gru")
    state = structure_state(STUDY_EXAMPLE, "gru")
    state["recurrent.skip_layers.0.weight_ih"] = torch.zeros(3, 5)
    state["recurrent.skip_layers.0.mask_i2h"] = torch.zeros(3, 5)
    with pytest.raises(
        DataError, match="skip layer 0 has input size 5 but the graph's layer 0 has 2 nodes"
    ) as e:
        load_study_structure_checkpoint(state, STUDY_EXAMPLE, "gru")
    assert "\n" not in str(e.value)
    with pytest.raises(DataError, match="check the cell"):
        load_study_structure_checkpoint(
            structure_state(STUDY_EXAMPLE, "gru"), STUDY_EXAMPLE, "lstm"
        )
    state = structure_state(STUDY_EXAMPLE, "gru")
    state["recurrent.skip_layers.1.mask_i2h"] *= 2
    with pytest.raises(DataError, match=r"skip_layers\.1\.mask_i2h holds 2\.0"):
        load_study_structure_checkpoint(state, STUDY_EXAMPLE, "gru")
