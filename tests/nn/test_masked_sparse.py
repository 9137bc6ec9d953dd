"""MaskedRNN(kernel="sparse") against kernel="dense": outputs and gradients of every cell,
batch tails, PackedSequence, masks that change between steps (RigL), and the kernel choice."""

import copy

import numpy as np
import pytest
import torch
from torch.nn.utils.rnn import pack_padded_sequence

from sparsernn.batching import EncodedData
from sparsernn.data import DataSpec
from sparsernn.errors import ConfigError
from sparsernn.models import ModelConfig, build_model
from sparsernn.nn import MODES, MaskedRNN, sparse_kernel, sparse_path
from sparsernn.sparsity import DynamicSparsity
from sparsernn.tasks import task_data
from sparsernn.train import TrainStep


def _pair(mode, dtype, density=0.3, seed=0, bidirectional=False):
    """A dense-kernel MaskedRNN with random masks and its sparse-kernel copy."""
    torch.manual_seed(seed)
    dense = MaskedRNN(mode, 6, 9, 3, bidirectional=bidirectional, kernel="dense").to(dtype)
    for name in dense.weight_names():
        dense.set_mask(name, torch.rand(dense.trainable(name).shape) < density)
    sparse = copy.deepcopy(dense)
    sparse.kernel = "sparse"
    return dense, sparse


def _run(rnn, x, hx, lengths):
    """Outputs, final states and parameter gradients of a mean loss (O(1) values)."""
    rnn.zero_grad()
    inp = x if lengths is None else pack_padded_sequence(x, lengths, enforce_sorted=False)
    out, h_n = rnn(inp, hx)
    out = out if lengths is None else out.data
    states = list(h_n) if isinstance(h_n, tuple) else [h_n]
    loss = out.square().mean() + sum(s.mean() for s in states)
    loss.backward()
    return [out.detach(), *(s.detach() for s in states), *(p.grad for p in rnn.parameters())]


@pytest.mark.needs_native("sparse")
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("packed", [False, True])
def test_sparse_kernel_equals_dense_kernel(mode, dtype, packed):
    """Batch 33 (a tail past two vectors), given initial states, unsorted lengths when packed:
    float64 to 1e-10, float32 to allclose(atol=1e-6)."""
    dense, sparse = _pair(mode, dtype)
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(7, 33, 6, generator=gen, dtype=dtype)
    h0 = torch.randn(3, 33, 9, generator=gen, dtype=dtype) * 0.5
    hx = (h0, h0.flip(1)) if mode == "lstm" else h0
    lengths = torch.randint(1, 8, (33,), generator=gen) if packed else None
    tol = {"rtol": 1e-10, "atol": 1e-10} if dtype == torch.float64 else {"atol": 1e-6}
    expected, got = _run(dense, x, hx, lengths), _run(sparse, x, hx, lengths)
    assert sparse_path.uses_sparse(sparse, x) and not sparse_path.uses_sparse(dense, x)
    for a, b in zip(got, expected, strict=True):
        assert torch.allclose(a, b, **tol)
    for name, mask in sparse.masks():  # masked entries get no gradient on either path
        assert not getattr(sparse, name).grad[~mask].any()


@pytest.mark.needs_native("sparse")
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("packed", [False, True])
def test_bidirectional_sparse_kernel_equals_dense_kernel(mode, packed):
    """Both directions of each layer (the reverse one with its own masks) by the sparse path,
    the layers above reading both outputs: float64 to 1e-10, gradients too."""
    dense, sparse = _pair(mode, torch.float64, bidirectional=True)
    assert "weight_hh_l2_reverse" in dict(sparse.masks())
    gen = torch.Generator().manual_seed(2)
    x = torch.randn(6, 5, 6, generator=gen, dtype=torch.float64)
    h0 = torch.randn(6, 5, 9, generator=gen, dtype=torch.float64) * 0.5  # 3 layers x 2
    hx = (h0, h0.flip(1)) if mode == "lstm" else h0
    lengths = torch.tensor([6, 2, 5, 1, 4]) if packed else None
    expected, got = _run(dense, x, hx, lengths), _run(sparse, x, hx, lengths)
    assert sparse_path.uses_sparse(sparse, x)
    assert got[0].shape[-1] == 18  # both directions' outputs
    for a, b in zip(got, expected, strict=True):
        assert torch.allclose(a, b, rtol=1e-10, atol=1e-10)


@pytest.mark.needs_native("sparse")
def test_dense_gradients_and_autocast_take_the_dense_path():
    """RigL's tap needs the pruned weights' gradients, which the sparse path never computes;
    autocast's dtype rules are torch's kernels': both run the dense path, with the same
    results as a dense-kernel module."""
    dense, sparse = _pair("gru", torch.float32)
    x = torch.randn(5, 3, 6)
    for rnn in (dense, sparse):
        rnn.track_dense_grads()
        rnn(x)[0].sum().backward()
    assert not sparse_path.uses_sparse(sparse, x)
    with torch.no_grad():  # no gradients asked for: the sparse path again
        assert sparse_path.uses_sparse(sparse, x)
    for name, grad in dense.dense_grads.items():
        pruned = ~dict(dense.masks())[name]
        assert grad[pruned].abs().sum() > 0  # the pruned weights' gradients are there
        assert torch.allclose(sparse.dense_grads[name], grad, atol=1e-6)
    sparse.track_dense_grads(False)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert not sparse_path.uses_sparse(sparse, x)
        out = sparse(x)[0]
        assert torch.equal(out, dense(x)[0])


def test_batch_first_and_unbatched():
    dense, sparse = _pair("gru", torch.float64)
    dense.batch_first = sparse.batch_first = True
    x = torch.randn(4, 5, 6, dtype=torch.float64)
    assert torch.allclose(sparse(x)[0], dense(x)[0], atol=1e-12)
    assert torch.allclose(sparse(x[0])[1], dense(x[0])[1], atol=1e-12)


def test_masks_changed_in_place_are_seen():
    """The compressed form follows a mask edited in place, even behind autograd's back."""
    dense, sparse = _pair("lstm", torch.float64)
    x = torch.randn(5, 3, 6, dtype=torch.float64)
    sparse(x)  # builds and caches the compressed masks
    for rnn in (dense, sparse):
        rnn.set_mask("weight_hh_l1", torch.zeros(36, 9, dtype=torch.bool))
        rnn.weight_ih_l0_mask.data[:, :3] = False
        rnn.apply_masks_()
    assert torch.allclose(sparse(x)[0], dense(x)[0], atol=1e-12)


def test_rigl_mask_updates_keep_both_paths_equal():
    """RigL (gradient regrowth) changing masks every 2 steps: after 8 Adam steps the masks
    and weights of a sparse-kernel model equal the dense-kernel model's."""
    train, _ = task_data(DataSpec(n_strings=64, seed=2))
    data = EncodedData(train)
    batches = list(data.batches(np.arange(len(data)), 16))
    models = []
    for kernel in ("dense", "sparse"):
        model = build_model(ModelConfig(cell="lstm", embedding_dim=6, hidden_size=8), seed=1)
        model.recurrent.kernel = kernel
        model.double()
        hook = DynamicSparsity(model, 0.8, regrow="gradient", update_every=2,
                               drop_fraction=0.5, end_step=8, batches=lambda: batches[:1],
                               seed=3)  # fmt: skip
        hook.initial_masks()
        step = TrainStep(model, reapply_masks=True, on_step=hook)
        for tokens, labels in batches * 2:
            step(tokens, labels)
        models.append(model)
    masks = [dict(m.recurrent.masks()) for m in models]
    assert all(torch.equal(masks[0][n], masks[1][n]) for n in masks[0])
    assert not torch.equal(masks[0]["weight_hh_l0"], dict(
        build_model(ModelConfig(cell="lstm", embedding_dim=6, hidden_size=8), seed=1)
        .recurrent.masks())["weight_hh_l0"])  # fmt: skip
    states = [m.state_dict() for m in models]
    for (name, a), b in zip(states[0].items(), states[1].values(), strict=True):
        assert torch.allclose(a.double(), b.double(), atol=1e-9), name


def test_unknown_kernel_is_one_line():
    with pytest.raises(ConfigError, match="^unknown kernel 'fast'; choose one of auto, dense"):
        MaskedRNN("gru", 3, 4, kernel="fast")


def test_crossover_lookup_takes_the_nearest_measured_size():
    table = {"gru": {"train": {50: {1: 0.2, 32: 0.3}, 1024: {1: 0.6, 32: 0.5}}}}
    assert sparse_path.crossover_density("gru", 64, 40, True, table) == 0.3
    assert sparse_path.crossover_density("gru", 700, 2, True, table) == 0.6
    assert sparse_path.crossover_density("gru", 64, 40, False, table) == 0.0  # not measured
    assert sparse_path.crossover_density("lstm", 64, 40, True, table) == 0.0


@pytest.mark.needs_native("sparse")
def test_auto_follows_the_crossover(monkeypatch):
    """auto: sparse at or below the crossover density, dense above it, and dense for dropout
    in training (the paths draw different dropout masks)."""
    table = {"lstm": {"train": {9: {33: 0.3}}, "infer": {9: {33: 0.1}}}}
    monkeypatch.setattr(sparse_path, "CROSSOVER", table)
    _, rnn = _pair("lstm", torch.float32, density=0.25)
    rnn.kernel = "auto"
    x = torch.randn(4, 33, 6)
    density = sum(int(m.sum()) for _, m in rnn.masks()) / sum(m.numel() for _, m in rnn.masks())
    assert 0.1 < density <= 0.3
    assert sparse_path.uses_sparse(rnn, x)
    with torch.no_grad():
        assert not sparse_path.uses_sparse(rnn, x)  # inference crossover: 0.1
    rnn.dropout = 0.2
    assert not sparse_path.uses_sparse(rnn, x)
    rnn.eval()
    assert sparse_path.uses_sparse(rnn, x)


@pytest.mark.needs_native("sparse")
def test_auto_keeps_unpruned_weights_dense(monkeypatch):
    """However the crossover reads, a MaskedRNN with nothing masked stays on the dense path
    under auto (a dense model is trained as today), and the measured table is densities."""
    for phases in sparse_path.CROSSOVER.values():
        for by_hidden in phases.values():
            for by_batch in by_hidden.values():
                assert all(0 <= d <= 1 for d in by_batch.values())
    table = {"gru": {"train": {9: {33: 1.0}}, "infer": {9: {33: 1.0}}}}
    monkeypatch.setattr(sparse_path, "CROSSOVER", table)
    rnn = MaskedRNN("gru", 6, 9, 3)
    x = torch.randn(4, 33, 6)
    assert not sparse_path.uses_sparse(rnn, x)
    rnn.set_mask("weight_hh_l2", torch.rand(27, 9) < 0.9)
    assert sparse_path.uses_sparse(rnn, x)


def test_without_the_library_sparse_runs_dense(monkeypatch):
    dense, sparse = _pair("gru", torch.float64)
    monkeypatch.setattr(sparse_kernel, "_library", lambda: "no compiler")
    monkeypatch.setattr(sparse_kernel, "_warned", True)  # the warning is tested elsewhere
    x = torch.randn(5, 3, 6, dtype=torch.float64)
    assert not sparse_path.uses_sparse(sparse, x)
    assert torch.allclose(sparse(x)[0], dense(x)[0], atol=1e-12)


def test_float16_and_other_devices_take_the_dense_path():
    _, rnn = _pair("rnn_tanh", torch.float32)
    assert not sparse_path.uses_sparse(rnn, torch.zeros(3, 2, 6, dtype=torch.float16))
    assert not sparse_path.uses_sparse(rnn, torch.zeros(3, 2, 6, device="meta"))


@pytest.mark.needs_native("sparse")
def test_train_many_trains_sparse_enough_models_alone(monkeypatch):
    """Below the measured limits a model is trained alone by the sparse path (fit), the others
    together; every model ends as fit would leave it."""
    from sparsernn import train as engine
    from sparsernn.prune import magnitude_prune

    table = {"gru": {"train": {8: {16: 0.5}}, "bundle": {8: {16: 0.5}}}}
    monkeypatch.setattr(sparse_path, "CROSSOVER", table)
    data = task_data(DataSpec(n_strings=60, seed=2))[0]
    cfg = engine.TrainConfig(epochs=1, batch_size=16, seed=1)
    base = build_model(ModelConfig(cell="gru", embedding_dim=5, hidden_size=8), seed=1)
    models = []
    for amount in (0.9, 0.2, 0.8):
        m = copy.deepcopy(base)
        magnitude_prune(m, amount, "both")
        models.append(m)
    expected = [copy.deepcopy(m) for m in models]
    for m in expected:
        m.recurrent.kernel = "dense"
        engine.fit(m, data, None, cfg)
    alone = []
    real_fit = engine.fit
    monkeypatch.setattr(engine, "fit", lambda m, *a, **k: alone.append(m) or real_fit(m, *a, **k))
    histories = engine.train_many(models, data, None, cfg)
    assert [id(m) for m in alone] == [id(models[0]), id(models[2])] and len(histories) == 3
    for m, e in zip(models, expected, strict=True):
        for a, b in zip(m.state_dict().values(), e.state_dict().values(), strict=True):
            assert torch.allclose(a.float(), b.float(), atol=1e-5)


def test_torch_prune_reparametrisation_on_the_sparse_path():
    """torch.nn.utils.prune on a MaskedRNN: its mask joins ours, and both paths see it."""
    from torch.nn.utils import prune

    dense, sparse = _pair("gru", torch.float64)
    for rnn in (dense, sparse):
        torch.manual_seed(3)
        prune.random_unstructured(rnn, "weight_hh_l1", amount=0.5)
    x = torch.randn(5, 4, 6, dtype=torch.float64)
    got, expected = _run(sparse, x, None, None), _run(dense, x, None, None)
    for a, b in zip(got, expected, strict=True):
        assert torch.allclose(a, b, rtol=1e-10, atol=1e-10)
