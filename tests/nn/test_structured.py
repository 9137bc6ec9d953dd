"""StructuredRNN (fused per source layer) against the slow per-sub-layer reference."""

import networkx as nx
import pytest
import torch

from sparsernn.errors import ConfigError
from sparsernn.graphs import make_graph, to_layered_dag
from sparsernn.nn import MODES
from sparsernn.nn.reference import reference_structured
from sparsernn.nn.structured import StructuredRNN, graph_parameters

#: How a StructuredRNN can run: (schedule, kernel). "native" is the compiled layer schedule
#: (skipped where it cannot be built), "torch" the same schedule in PyTorch ops.
RUNS = [
    pytest.param(("layers", "native"), marks=pytest.mark.needs_native, id="native"),
    pytest.param(("layers", "torch"), id="torch"),
]
NATIVE = ("layers", "native")

STUDY_EXAMPLE = [(0, 2), (1, 2), (1, 3), (2, 3), (2, 4), (3, 4)]


def _graphs():
    out = []
    for i in range(12):
        out.append(("ws", make_graph("ws", 10 + 3 * i, seed=i)))
        out.append(("ba", make_graph("ba", 10 + 3 * i, seed=100 + i)))
    return out


def _check_equal(
    mode, graph, seed=0, T=7, B=3, run=NATIVE, gate_layout="blocked", dtype=torch.double
):
    torch.manual_seed(seed)
    atol = 1e-10 if dtype == torch.double else 1e-6
    schedule, kernel = run
    net = StructuredRNN(graph, mode, schedule=schedule, gate_layout=gate_layout, kernel=kernel)
    net = net.to(dtype)
    assert net.uses_native(dtype=dtype) == (kernel == "native")
    x = torch.randn(T, B, net.input_size, dtype=dtype, requires_grad=True)
    weights = {
        k: tuple(t.clone().requires_grad_(True) for t in v)
        for k, v in net.sublayer_weights().items()
    }
    ref = reference_structured(mode, x, net.dag, weights, gate_layout=gate_layout)
    out, _ = net(x)
    assert out.shape == ref.shape == (T, B, net.output_size)
    assert torch.allclose(out, ref, atol=atol)
    # gradients: same loss, compare input gradients and per-sub-layer weight gradients
    probe = torch.randn_like(out)
    (g_out,) = torch.autograd.grad((out * probe).sum(), x, retain_graph=True)
    (g_ref,) = torch.autograd.grad((ref * probe).sum(), x, retain_graph=True)
    assert torch.allclose(g_out, g_ref, atol=atol)
    (out * probe).sum().backward()
    (ref * probe).sum().backward()
    fused_grads = _sublayer_grads(net)
    for key, tensors in weights.items():
        for mine, theirs in zip(fused_grads[key], tensors, strict=True):
            assert torch.allclose(mine, theirs.grad, atol=atol), key


def _sublayer_grads(net):
    """Gradients of the wide layers, cut into sub-layer blocks like sublayer_weights()."""
    saved = [(p, p.data.clone()) for p in net.parameters()]
    for p, _ in saved:
        p.data.copy_(p.grad)
    grads = net.sublayer_weights()
    for p, data in saved:
        p.data.copy_(data)
    return grads


@pytest.mark.parametrize("run", RUNS)
@pytest.mark.parametrize("mode", MODES)
def test_study_example_equals_reference(mode, run):
    _check_equal(mode, nx.Graph(STUDY_EXAMPLE), run=run)


@pytest.mark.parametrize("run", RUNS)
@pytest.mark.parametrize("mode", MODES)
def test_random_graphs_equal_reference(mode, run):
    for i, (_, graph) in enumerate(_graphs()):  # 24 WS/BA graphs, 10..43 nodes
        _check_equal(mode, graph, seed=i, T=4, B=2, run=run)


@pytest.mark.parametrize("run", RUNS)
@pytest.mark.parametrize("mode", MODES)
def test_float32_at_the_benchmarks_size_equals_reference(mode, run):
    """A 50-node graph, wide layers up to 41 units and a batch of 64: the sizes the benchmark
    times (CPU kernels pick other code paths for wide tensors), in float32.

    Outputs and input gradients equal the float32 reference to 1e-6. A weight gradient is a
    sum over T x B = 320 products, up to ~30 in size: float32 sums of it in different orders
    differ by more than 1e-6 (a few ulps), so weight gradients are held to the float64
    reference within rtol 1e-5 (~80 float32 ulps) + atol 1e-6, a bound the float32 reference
    itself is checked to meet.
    """
    torch.manual_seed(0)
    net = StructuredRNN(make_graph("ws", 50, seed=0), mode, schedule=run[0], kernel=run[1])
    x = torch.randn(5, 64, net.input_size)
    probe = torch.randn(5, 64, net.output_size)

    def reference(dtype):
        inputs = x.to(dtype).detach().requires_grad_(True)
        weights = {
            k: tuple(t.to(dtype).detach().requires_grad_(True) for t in v)
            for k, v in net.sublayer_weights().items()
        }
        out = reference_structured(mode, inputs, net.dag, weights)
        (out * probe.to(dtype)).sum().backward()
        return out, inputs.grad, {k: [t.grad for t in v] for k, v in weights.items()}

    ref32, ref64 = reference(torch.float), reference(torch.double)
    inputs = x.clone().requires_grad_(True)
    out, _ = net(inputs)
    (out * probe).sum().backward()
    assert torch.allclose(out, ref32[0], atol=1e-6)
    assert torch.allclose(inputs.grad, ref32[1], atol=1e-6)
    for key, grads in _sublayer_grads(net).items():
        for mine, theirs, truth in zip(grads, ref32[2][key], ref64[2][key], strict=True):
            assert torch.allclose(theirs.double(), truth, rtol=1e-5, atol=1e-6), key
            assert torch.allclose(mine.double(), truth, rtol=1e-5, atol=1e-6), key


@pytest.mark.needs_native
@pytest.mark.parametrize("mode", MODES)
def test_compiled_loop_equals_reference_at_every_batch_shape(mode):
    """The compiled loop walks the batch in register chunks of 32 (double) values, vectors of
    8: 37 and 70 have full chunks and a shorter last one (70's with a scalar tail), 1 and 16
    only the short one; float64 to 1e-10 on BA and WS graphs."""
    for i, batch in enumerate((37, 1, 16, 70)):
        graph = make_graph("ba" if i % 2 else "ws", 25, seed=i)
        _check_equal(mode, graph, seed=i, T=6, B=batch, run=NATIVE)


@pytest.mark.needs_native
@pytest.mark.parametrize("mode", MODES)
def test_compiled_equals_pytorch_schedule_on_a_long_sequence(mode):
    """A sequence longer than the DAG is deep, every layer's final state in the loss: the
    compiled schedule against the same schedule in PyTorch ops, float64."""
    graph = make_graph("ba", 30, seed=5)
    torch.manual_seed(0)
    a = StructuredRNN(graph, mode, kernel="native").double()
    b = StructuredRNN(graph, mode, kernel="torch").double()
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
    with pytest.raises(ConfigError, match="^unknown schedule 'diagonal'; choose one of 'layers'$"):
        StructuredRNN(nx.Graph(STUDY_EXAMPLE), "gru", schedule="diagonal")
    with pytest.raises(ConfigError) as info:  # removed: one line naming what is left
        StructuredRNN(nx.Graph(STUDY_EXAMPLE), "gru", schedule="wavefront")
    assert str(info.value) == (
        "unknown schedule 'wavefront' (the wavefront schedule was removed); choose one of 'layers'"
    )


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
    graph = make_graph("ws", 25, seed=4)
    for mode in MODES:
        net = StructuredRNN(graph, mode)
        # graph_parameters counts embedding (128 x |layer 0|) and the 2-class classifier too
        extra = 128 * net.input_size + 2 * net.output_size + 2
        assert net.n_parameters() == graph_parameters(graph, mode) - extra


@pytest.mark.parametrize("run", RUNS)
@pytest.mark.parametrize("mode", MODES)
def test_interleaved_gate_layout_equals_reference(mode, run):
    _check_equal(mode, nx.Graph(STUDY_EXAMPLE), run=run, gate_layout="interleaved")
    for i, (_, graph) in enumerate(_graphs()[:6]):
        _check_equal(mode, graph, seed=i, T=4, B=2, run=run, gate_layout="interleaved")


@pytest.mark.parametrize("mode", MODES)
def test_interleaved_masks_are_the_study_masks(mode):
    """The masks equal the ones the study saved (tests/nn/study_format.py, written from SPEC 7)."""
    from study_format import skip_pairs, structure_state, study_layers

    graph = make_graph("ws", 16, seed=2)
    state = structure_state(graph, mode)
    masks = StructuredRNN(graph, mode, gate_layout="interleaved").sublayer_masks()
    n_layers = len(study_layers(graph))
    for l in range(1, n_layers):
        saved = state[f"recurrent.recurrent_layers.{l}.mask_i2h"].bool()
        assert torch.equal(masks[(l - 1, l)][0], saved)
    for k, pair in enumerate(skip_pairs(graph, study_layers(graph))):
        assert torch.equal(masks[pair][0], state[f"recurrent.skip_layers.{k}.mask_i2h"].bool())
    blocked = StructuredRNN(graph, mode).sublayer_masks()
    differs = any(not torch.equal(blocked[k][0], masks[k][0]) for k in masks)
    assert differs == (mode in ("gru", "lstm"))


def test_unknown_gate_layout_is_refused():
    with pytest.raises(ConfigError, match="gate_layout"):
        StructuredRNN(nx.Graph(STUDY_EXAMPLE), "gru", gate_layout="diagonal")


@pytest.mark.parametrize("run", RUNS)
def test_set_sublayer_masks_installs_own_masks(run):
    graph = make_graph("ba", 20, seed=1)
    torch.manual_seed(0)
    net = StructuredRNN(graph, "lstm", schedule=run[0], kernel=run[1]).double()
    gen = torch.Generator().manual_seed(1)
    new = {
        key: (torch.rand(ih.shape, generator=gen) < 0.5, torch.rand(hh.shape, generator=gen) < 0.7)
        for key, (ih, hh) in net.sublayer_masks().items()
    }
    full = {k: tuple(torch.randn_like(t) for t in v) for k, v in net.sublayer_weights().items()}
    net.load_sublayer_weights(full, new)
    got = net.sublayer_masks()
    for key, (ih, hh) in new.items():
        assert torch.equal(got[key][0], ih) and torch.equal(got[key][1], hh)
    weights = net.sublayer_weights()
    for key, (w_ih, w_hh, *_) in weights.items():
        assert torch.equal(w_ih, full[key][0] * new[key][0])
        assert torch.equal(w_hh, full[key][1] * new[key][1])
    # h2h entries between different sub-layers of one wide layer stay masked
    for layer, (_, dests) in zip(net.wide, net.plan, strict=True):
        if len(dests) > 1:
            h = net.layer_sizes[dests[0]]
            assert not layer.weight_hh_l0_mask[:h, h:].any()
    # the forward pass is the per-sub-layer function with those weights and masks
    x = torch.randn(5, 2, net.input_size, dtype=torch.double)
    ref = _reference_with_masks(net, x, full, new)
    assert torch.allclose(net(x)[0], ref, atol=1e-10)
    with pytest.raises(ConfigError, match="shape"):
        key = next(iter(new))
        net.set_sublayer_masks({key: (new[key][0][:1], None)})
    with pytest.raises(ConfigError, match="no sub-layer"):
        net.set_sublayer_masks({(7, 9): (None, None)})


def _reference_with_masks(net, x, weights, masks):
    from sparsernn.nn.reference import reference_layer

    outputs = []
    for l in range(net.n_layers):
        total = None
        for (s, dest), (w_ih, w_hh, b_ih, b_hh) in weights.items():
            if dest != l:
                continue
            ih, hh = (m.double() for m in masks[(s, dest)])
            src = x if s < 0 else outputs[s]
            part = reference_layer(net.mode, src, w_ih, w_hh * hh, b_ih, b_hh, ih_mask=ih)
            total = part if total is None else total + part
        outputs.append(total)
    return outputs[-1]


def test_flatten_parameters_is_a_no_op_and_packed_input_is_refused_naming_the_fix():
    net = StructuredRNN(nx.Graph(STUDY_EXAMPLE), "gru")
    x = torch.randn(4, 2, net.input_size)
    before = net(x)[0]
    assert net.flatten_parameters() is None
    assert torch.equal(net(x)[0], before)
    packed = torch.nn.utils.rnn.pack_padded_sequence(x, torch.tensor([4, 2]))
    with pytest.raises(TypeError, match="not a PackedSequence.*pad_packed_sequence"):
        net(packed)
    # the named fix works: the padded batch runs, and the full-length sequence is unchanged
    out = net(torch.nn.utils.rnn.pad_packed_sequence(packed)[0])[0]
    assert out.shape == before.shape and torch.equal(out[:, 0], before[:, 0])


# ------------------------------------------------ the closed-form parameter count of a graph
_STUDY_EDGES = [(0, 2), (1, 2), (1, 3), (2, 3), (2, 4), (3, 4)]


def test_graph_parameters_gru_study_example():
    d = to_layered_dag(nx.Graph(_STUDY_EDGES))  # sizes [2, 1, 1, 1]
    # layer 0 : 3 * (2*2 + 2*2 + 2*2)  = 36   (input = embedding dim = |layer 0| = 2)
    # (0, 1)  : 3 * (2 edges + 1 + 2)  = 15
    # (0, 2), (1, 2), (1, 3), (2, 3): 3 * (1 edge + 1 + 2) = 12 each -> 48
    # embedding 128 * 2 = 256; classifier 1 * 2 + 2 = 4
    assert graph_parameters(d, "gru") == 36 + 15 + 48 + 256 + 4
    # counting masked entries adds the one missing entry of the (0, 2) mask, for 3 gates
    assert graph_parameters(d, "gru", count_masked=True) == 359 + 3
    # from the graph directly, other cells and another embedding size
    assert graph_parameters(nx.Graph(_STUDY_EDGES), "GRU") == 359
    assert graph_parameters(d, "rnn_tanh") == 12 + 5 + 16 + 256 + 4
    assert graph_parameters(d, "lstm", input_size=3) == 4 * (6 + 4 + 4) + 4 * (5 + 16) + 128 * 3 + 4


def test_graph_parameters_bad_mode():
    with pytest.raises(ConfigError, match="unknown cell.*gru"):
        graph_parameters(nx.path_graph(3), "transformer")
    with pytest.raises(ConfigError, match="input_size"):
        graph_parameters(nx.path_graph(3), "gru", input_size=0)
