"""StructuredRNN (fused per source layer) against the slow per-sub-layer reference."""

import networkx as nx
import pytest
import torch
from reference import reference_structured  # noqa: I001  (tests/nn on sys.path via conftest)

from sparsernn.errors import ConfigError
from sparsernn.graphs import make_graph, to_layered_dag
from sparsernn.nn import MODES
from sparsernn.nn.structured import SCHEDULES, StructuredRNN

STUDY_EXAMPLE = [(0, 2), (1, 2), (1, 3), (2, 3), (2, 4), (3, 4)]


def _graphs():
    out = []
    for i in range(12):
        out.append(("ws", make_graph("ws", 10 + 3 * i, seed=i)))
        out.append(("ba", make_graph("ba", 10 + 3 * i, seed=100 + i)))
    return out


def _check_equal(mode, graph, seed=0, T=7, B=3, schedule="layers"):
    torch.manual_seed(seed)
    net = StructuredRNN(graph, mode, schedule=schedule).double()
    x = torch.randn(T, B, net.input_size, dtype=torch.double, requires_grad=True)
    weights = {
        k: tuple(t.clone().requires_grad_(True) for t in v)
        for k, v in net.sublayer_weights().items()
    }
    ref = reference_structured(mode, x, net.dag, weights)
    out, _ = net(x)
    assert out.shape == ref.shape == (T, B, net.output_size)
    assert torch.allclose(out, ref, atol=1e-10)
    # gradients: same loss, compare input gradients and per-sub-layer weight gradients
    probe = torch.randn_like(out)
    (g_out,) = torch.autograd.grad((out * probe).sum(), x, retain_graph=True)
    (g_ref,) = torch.autograd.grad((ref * probe).sum(), x, retain_graph=True)
    assert torch.allclose(g_out, g_ref, atol=1e-10)
    (out * probe).sum().backward()
    (ref * probe).sum().backward()
    fused_grads = _sublayer_grads(net)
    for key, tensors in weights.items():
        for mine, theirs in zip(fused_grads[key], tensors, strict=True):
            assert torch.allclose(mine, theirs.grad, atol=1e-10), key


def _sublayer_grads(net):
    """Gradients of the wide layers, cut into sub-layer blocks like sublayer_weights()."""
    saved = [(p, p.data.clone()) for p in net.parameters()]
    for p, _ in saved:
        p.data.copy_(p.grad)
    grads = net.sublayer_weights()
    for p, data in saved:
        p.data.copy_(data)
    return grads


@pytest.mark.parametrize("schedule", SCHEDULES)
@pytest.mark.parametrize("mode", MODES)
def test_study_example_equals_reference(mode, schedule):
    _check_equal(mode, nx.Graph(STUDY_EXAMPLE), schedule=schedule)


@pytest.mark.parametrize("schedule", SCHEDULES)
@pytest.mark.parametrize("mode", MODES)
def test_random_graphs_equal_reference(mode, schedule):
    for i, (_, graph) in enumerate(_graphs()):  # 24 WS/BA graphs, 10..43 nodes
        # T >= 2 so the wavefront has steps where some sub-layers are idle
        _check_equal(mode, graph, seed=i, T=4, B=2, schedule=schedule)


@pytest.mark.parametrize("mode", MODES)
def test_wavefront_equals_layers_on_a_long_sequence(mode):
    """Longer than the DAG is deep: blocks start and stop at different wavefront steps."""
    graph = make_graph("ba", 30, seed=5)
    torch.manual_seed(0)
    a = StructuredRNN(graph, mode, schedule="layers").double()
    b = StructuredRNN(graph, mode, schedule="wavefront").double()
    b.load_state_dict(a.state_dict())
    x = torch.randn(23, 4, a.input_size, dtype=torch.double)
    out_a, h_a = a(x)
    out_b, h_b = b(x)
    assert torch.allclose(out_a, out_b, atol=1e-10)
    for u, v in zip(h_a, h_b, strict=True):
        assert torch.allclose(u, v, atol=1e-10)
    (out_a.square().sum() + sum(h.sum() for h in h_a)).backward()
    (out_b.square().sum() + sum(h.sum() for h in h_b)).backward()
    for (name, p), q in zip(a.named_parameters(), b.parameters(), strict=True):
        assert torch.allclose(p.grad, q.grad, atol=1e-10), name


def test_unknown_schedule_is_refused():
    with pytest.raises(ConfigError, match="schedule"):
        StructuredRNN(nx.Graph(STUDY_EXAMPLE), "gru", schedule="diagonal")


def test_layout_of_study_example():
    net = StructuredRNN(nx.Graph(STUDY_EXAMPLE), "gru")
    assert list(net.layer_sizes) == [2, 1, 1, 1]
    # sources: input -> layer 0; layer 0 -> 1 and skip 0 -> 2? (edge 1-3: node 1 in layer 0, 3 in 2)
    assert [dests for _, dests in net.plan] == [(0,), (1, 2), (2, 3), (3,)]
    assert len(net.wide) == net.n_layers  # one fused call per source layer (+ the input)


def test_masked_entries_have_zero_gradient_and_block_diagonal_h2h():
    net = StructuredRNN(make_graph("ba", 30, seed=3), "lstm")
    x = torch.randn(5, 4, net.input_size)
    net(x)[0].sum().backward()
    for layer in net.wide:
        for name, mask in layer.masks():
            grad = getattr(layer, name).grad
            assert torch.count_nonzero(grad[~mask]) == 0
            assert torch.count_nonzero(getattr(layer, name)[~mask]) == 0


def test_init_bounds_follow_destination_size():
    net = StructuredRNN(make_graph("ws", 40, seed=1), "rnn_tanh")
    for (_, l), weights in net.sublayer_weights().items():
        bound = net.layer_sizes[l] ** -0.5
        assert all(w.abs().max() <= bound for w in weights)


def test_batch_first_and_dag_input():
    dag = to_layered_dag(make_graph("ba", 20, seed=0))
    a = StructuredRNN(dag, "gru")
    b = StructuredRNN(dag, "gru", batch_first=True)
    b.load_state_dict(a.state_dict())
    x = torch.randn(6, 3, a.input_size)
    assert torch.allclose(a(x)[0], b(x.transpose(0, 1))[0].transpose(0, 1))


def test_parameter_count_matches_graph_formula():
    from sparsernn.graphs import n_parameters

    graph = make_graph("ws", 25, seed=4)
    for mode in MODES:
        net = StructuredRNN(graph, mode)
        # graphs.n_parameters counts embedding (128 x |layer 0|) and the 2-class classifier too
        extra = 128 * net.input_size + 2 * net.output_size + 2
        assert net.n_parameters() == n_parameters(graph, mode) - extra


def test_wavefront_plan_refuses_inconsistent_wiring():
    from sparsernn.nn.wavefront import WavefrontPlan

    with pytest.raises(ValueError, match="sorted"):
        WavefrontPlan.from_blocks([(1, 2, 1), (0, 1, 0)])
    with pytest.raises(ValueError, match="different offsets"):
        WavefrontPlan.from_blocks([(0, 1, 0), (1, 2, 1), (1, 3, 2)])
    with pytest.raises(ValueError, match="too late"):  # writes layer 1 at the readers' offset
        WavefrontPlan.from_blocks([(0, 2, 0), (1, 3, 1), (2, 1, 1)])
    plan = WavefrontPlan.from_blocks([(0, 1, 0), (0, 2, 0), (1, 2, 1)])
    assert plan.extra_steps == 1
    # 3 input steps: block 2 (offset 1) runs at steps 1..3, the others at 0..2
    assert plan.ranges(3) == [(0, 2), (0, 3), (0, 3), (2, 3)]
    assert plan.activity(3, torch.device("cpu")).tolist() == [
        [True, True, False],
        [True, True, True],
        [True, True, True],
        [False, False, True],
    ]
