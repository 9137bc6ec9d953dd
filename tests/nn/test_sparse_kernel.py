"""The compiled sparse layer (sparsernn.nn.sparse_kernel) against PyTorch's dense kernels over
the same (zero-holding) weights, float64 gradcheck, packed lanes, and its fallback rules."""

import stat

import pytest
import torch
from torch import _VF
from torch.nn.utils.rnn import pack_padded_sequence

from sparsernn.nn import MODES, sparse_kernel
from sparsernn.nn.cells import cell_spec
from sparsernn.nn.sparse_kernel import Pattern, SparseWeights, sparse_layer
from sparsernn.nn.sparse_stack import packed_positions, run_stack

F64 = {"rtol": 1e-10, "atol": 1e-10}


def _weights(mode, n_in, hidden, dtype, seed, density=0.4):
    """Random masked weights of one layer (w_ih, w_hh, b_ih, b_hh) and the two masks."""
    gen = torch.Generator().manual_seed(seed)
    g = cell_spec(mode).gates
    masks = [torch.rand(g * hidden, c, generator=gen) < density for c in (n_in, hidden)]
    masks[0][:, 0] = False  # an input nothing reads: its gradient must be exactly zero
    ws = [torch.randn(m.shape, generator=gen, dtype=dtype) * 0.5 * m for m in masks]
    bs = [torch.randn(g * hidden, generator=gen, dtype=dtype) * 0.5 for _ in range(2)]
    return [*ws, *bs], masks


def _torch_layer(spec, x, weights, h0, c0, reverse):
    """One layer by PyTorch's fused kernel (the reverse direction on the flipped sequence)."""
    kernel = getattr(_VF, spec.torch_mode.lower())
    hx = (h0[None], c0[None]) if spec.has_cell_state else h0[None]
    seq = x.flip(0) if reverse else x
    out, *state = kernel(seq, hx, list(weights), True, 1, 0.0, False, False, False)
    return (out.flip(0) if reverse else out), state


@pytest.mark.needs_native("sparse")
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("batch", [1, 3, 37])
@pytest.mark.parametrize("reverse", [False, True])
def test_layer_equals_pytorch_kernel(mode, dtype, batch, reverse):
    """Outputs, final states and every gradient (input, kept weights, biases, initial states):
    float64 to 1e-10; float32 to allclose(atol=1e-6) (rtol 1e-5) on O(1) values. Batch 1 runs
    the gathering dot products, 37 the vectors and a tail lane."""
    spec = cell_spec(mode)
    tol = F64 if dtype == torch.float64 else {"atol": 1e-6}
    weights, masks = _weights(mode, 5, 7, dtype, seed=batch)
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(6, batch, 5, generator=gen, dtype=dtype)
    h0, c0 = (torch.randn(batch, 7, generator=gen, dtype=dtype) * 0.5 for _ in range(2))
    ref_in = [t.clone().requires_grad_() for t in (x, *weights, h0, c0)]
    out, state = _torch_layer(spec, ref_in[0], ref_in[1:5], ref_in[5], ref_in[6], reverse)
    probe = torch.randn(out.shape, generator=gen, dtype=dtype) / out.numel()
    loss = (out * probe).sum() + state[0].mean() + (state[1].mean() if len(state) > 1 else 0)
    ref_grads = torch.autograd.grad(loss, ref_in, allow_unused=True)

    mine = [t.clone().requires_grad_() for t in (x, *weights, h0, c0)]
    ih, hh = Pattern.of(masks[0]), Pattern.of(masks[1])
    c_init = mine[6].t() if spec.has_cell_state else None
    w = SparseWeights(ih, hh, ih.gather(mine[1]), hh.gather(mine[2]), mine[3], mine[4])
    o, h_n, c_n = sparse_layer(spec, w, mine[0].permute(2, 0, 1), mine[5].t(), c_init,
                               reverse=reverse)  # fmt: skip
    o = o.permute(1, 2, 0)
    assert torch.allclose(o, out, **tol) and torch.allclose(h_n.t(), state[0][0], **tol)
    if spec.has_cell_state:
        assert torch.allclose(c_n.t(), state[1][0], **tol)
    loss = (o * probe).sum() + h_n.mean() + (c_n.mean() if c_n is not None else 0)
    grads = torch.autograd.grad(loss, mine, allow_unused=True)
    ref_grads = list(ref_grads)
    ref_grads[1], ref_grads[2] = ref_grads[1] * masks[0], ref_grads[2] * masks[1]  # kept only
    names = ("x", "w_ih", "w_hh", "b_ih", "b_hh", "h0", "c0")
    for name, a, b in zip(names, grads, ref_grads, strict=True):
        if b is None:
            assert a is None or not a.any(), name
            continue
        assert torch.allclose(a, b, **tol), name
    assert torch.all(grads[0][..., 0] == 0)  # input 0 is read by nothing


@pytest.mark.needs_native("sparse")
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("reverse", [False, True])
def test_gradcheck_with_packed_lanes(mode, reverse):
    """Finite differences in float64 through every input, with lanes that stop early."""
    spec = cell_spec(mode)
    weights, masks = _weights(mode, 3, 4, torch.float64, seed=3, density=0.6)
    ih, hh = Pattern.of(masks[0]), Pattern.of(masks[1])
    x = torch.randn(3, 5, 4, dtype=torch.float64)  # (I, T, B)
    h0, c0 = torch.randn(4, 4, dtype=torch.float64), torch.randn(4, 4, dtype=torch.float64)
    active = torch.tensor([4, 3, 3, 1, 1])
    leaves = [t.clone().requires_grad_() for t in (x, ih.gather(weights[0]),
              hh.gather(weights[1]), weights[2], weights[3], h0, c0)]  # fmt: skip

    def fn(x, vi, vh, bi, bh, h0, c0):
        w = SparseWeights(ih, hh, vi, vh, bi, bh)
        c0 = c0 if spec.has_cell_state else None
        out, h_n, c_n = sparse_layer(spec, w, x, h0, c0, reverse=reverse, active=active)
        return (out, h_n) if c_n is None else (out, h_n, c_n)

    inputs = leaves if spec.has_cell_state else [*leaves[:6], None]
    assert torch.autograd.gradcheck(fn, inputs)


@pytest.mark.needs_native("sparse")
@pytest.mark.parametrize("mode", ["gru", "lstm"])
def test_packed_stack_equals_pytorch_bidirectional(mode):
    """A two-layer bidirectional stack over a PackedSequence (unsorted lengths) against
    torch.nn: each sequence stops at its own length in both directions."""
    spec = cell_spec(mode)
    torch.manual_seed(0)
    ref = spec.torch_class(4, 6, 2, bidirectional=True).double()
    layers = []
    with torch.no_grad():
        for k in range(2):
            directions = []
            for sfx in ("", "_reverse"):
                w_ih, w_hh = (getattr(ref, f"weight_{kind}_l{k}{sfx}") for kind in ("ih", "hh"))
                w_ih.mul_(torch.rand_like(w_ih) < 0.5)
                w_hh.mul_(torch.rand_like(w_hh) < 0.5)
                ih, hh = Pattern.of(w_ih != 0), Pattern.of(w_hh != 0)
                b_ih, b_hh = (getattr(ref, f"bias_{kind}_l{k}{sfx}") for kind in ("ih", "hh"))
                directions.append(SparseWeights(ih, hh, ih.gather(w_ih), hh.gather(w_hh),
                                                b_ih, b_hh))  # fmt: skip
            layers.append(directions)
    x = torch.randn(7, 5, 4, dtype=torch.float64)
    packed = pack_padded_sequence(x, torch.tensor([3, 7, 1, 5, 7]), enforce_sorted=False)
    expected, h_ref = ref(packed)
    out, finals = run_stack(spec, layers, packed.data, batch_sizes=packed.batch_sizes)
    assert torch.allclose(out, expected.data, **F64)
    h_last = finals[-1][0] if spec.has_cell_state else finals[-1]
    h_ref = h_ref[0] if spec.has_cell_state else h_ref
    assert torch.allclose(h_last, h_ref[-1].index_select(0, packed.sorted_indices), **F64)


def test_packed_positions():
    assert packed_positions(torch.tensor([3, 2, 1])).tolist() == [0, 1, 2, 3, 4, 6]


def test_pattern_round_trip():
    mask = torch.rand(9, 4) < 0.5
    p = Pattern.of(mask)
    values = torch.randn(p.nnz)
    dense = p.dense(values)
    assert torch.equal(dense != 0, mask)
    assert torch.equal(p.gather(dense), values)
    q = Pattern.from_csr(p.shape, p.row_ptr.to(torch.int32), p.cols.to(torch.int16))
    assert torch.equal(q.flat, p.flat) and torch.equal(q.perm, p.perm)
    assert p.cols.dtype == torch.int32 and p.row_ptr.tolist()[-1] == p.nnz


# ------------------------------------------------------------------------------ build rules
@pytest.fixture
def no_compiler(monkeypatch, tmp_path):
    """A compiler that fails, an empty build cache and a forgotten library (restored after)."""
    cxx = tmp_path / "cxx"
    cxx.write_text("#!/bin/sh\necho 'sparse_layer.cpp:1:1: error: no compiler here' >&2\nexit 1\n")
    cxx.chmod(cxx.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("SPARSERNN_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("CXX", str(cxx))
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.delenv("SPARSERNN_NATIVE", raising=False)  # the compiler is what fails here
    monkeypatch.setattr(sparse_kernel, "_warned", False)
    sparse_kernel._library.cache_clear()
    yield
    sparse_kernel._library.cache_clear()


def test_without_a_compiler_one_line_says_why(no_compiler):
    assert "no compiler here" in (sparse_kernel.unavailable_reason() or "")
    with pytest.warns(RuntimeWarning, match="compiled sparse layer unavailable") as caught:
        assert not sparse_kernel.available()
    (message,) = [str(w.message) for w in caught]
    assert "\n" not in message and "dense path" in message
    assert not sparse_kernel.available()  # warned once only (pytest would fail on a second)


def test_disabled_by_the_environment(monkeypatch):
    monkeypatch.setenv("SPARSERNN_NATIVE", "0")
    sparse_kernel._library.cache_clear()
    try:
        assert sparse_kernel.unavailable_reason() == "disabled by SPARSERNN_NATIVE=0"
        assert not sparse_kernel.available()
    finally:
        sparse_kernel._library.cache_clear()
