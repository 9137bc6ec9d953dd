"""K models at once equal K models one by one; the hand-fused recurrence equals PyTorch's."""

import copy

import pytest
import torch
from torch import _VF, nn

import sparsernn.nn.functional as fnl
from sparsernn.data import DataSpec
from sparsernn.errors import ConfigError
from sparsernn.models import BatchedClassifier, ModelConfig, build_model
from sparsernn.nn import GATES, MODES, MaskedRNN
from sparsernn.nn.batched import BatchedMaskedRNN, clip_grad_norm_per_model_
from sparsernn.nn.functional import fused_recurrence, run_layers
from sparsernn.prune import magnitude_prune
from sparsernn.tasks import task_data
from sparsernn.train import TrainConfig, evaluate, evaluate_many, fit, train_many

TINY = {"embedding_dim": 6, "hidden_size": 7, "num_layers": 2}
PRUNINGS = [(30, "both"), (60, "i2h"), (90, "h2h")]


@pytest.fixture(scope="module")
def data():
    return task_data(DataSpec(n_strings=160, seed=1))


def _pruned_copies(mode, seed=0, **sizes):
    base = build_model(ModelConfig(cell=mode, **{**TINY, **sizes}), seed=seed)
    copies = []
    for amount, target in PRUNINGS:
        m = copy.deepcopy(base)
        magnitude_prune(m, amount / 100, target)
        copies.append(m)
    return copies


def _max_param_diff(models_a, models_b):
    return max(
        (pa - pb).abs().max().item()
        for a, b in zip(models_a, models_b, strict=True)
        for pa, pb in zip(a.parameters(), b.parameters(), strict=True)
    )


@pytest.mark.parametrize("mode", MODES)
def test_train_many_equals_fit_one_by_one(mode, data):
    train, test = data
    cfg = TrainConfig(epochs=1, batch_size=16, seed=3)
    copies = _pruned_copies(mode)
    alone = [copy.deepcopy(m) for m in copies]
    together = [copy.deepcopy(m) for m in copies]
    expected = [fit(m, train, test, cfg) for m in alone]
    got = train_many(together, train, test, cfg)
    assert len(got) == len(copies)
    for hist_e, hist_g in zip(expected, got, strict=True):
        assert [r["epoch"] for r in hist_g] == [1]
        assert set(hist_g[0]) == set(hist_e[0])
        for key in ("train_loss", "train_accuracy", "test_loss", "test_accuracy"):
            assert hist_g[0][key] == pytest.approx(hist_e[0][key], abs=1e-4), key
    assert _max_param_diff(alone, together) <= 1e-4
    # the masks are untouched and masked weights stay exactly zero
    for before, after in zip(copies, together, strict=True):
        for name, mask in after.recurrent.masks():
            assert torch.equal(mask, getattr(before.recurrent, f"{name}_mask"))
            assert (getattr(after.recurrent, name)[~mask] == 0).all()


def test_train_many_chunks_and_callback_match(data):
    train, _ = data
    cfg = TrainConfig(epochs=2, batch_size=32, seed=5)
    copies = _pruned_copies("gru")
    a = [copy.deepcopy(m) for m in copies]
    b = [copy.deepcopy(m) for m in copies]
    calls = []
    hist_a = train_many(a, train, None, cfg)
    hist_b = train_many(b, train, None, cfg, chunk_size=2, on_epoch=lambda i, r: calls.append(i))
    assert sorted(calls) == [0, 0, 1, 1, 2, 2]
    assert _max_param_diff(a, b) <= 1e-5
    for ha, hb in zip(hist_a, hist_b, strict=True):
        assert [r["train_loss"] for r in ha] == pytest.approx([r["train_loss"] for r in hb])
        assert "test_loss" not in ha[0]


def test_train_many_rejects_mixed_architectures(data):
    train, _ = data
    models = [build_model(ModelConfig(cell="gru", **TINY)), build_model(ModelConfig(cell="lstm"))]
    with pytest.raises(ConfigError):
        train_many(models, train, None, TrainConfig(epochs=1))
    assert train_many([], train) == []


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("shape", [(5, 2), (9, 20)])  # T * B below / above the vocabulary
def test_batched_classifier_equals_each_model(mode, shape):
    copies = _pruned_copies(mode)
    batched = BatchedClassifier.from_models(copies)
    tokens = torch.randint(0, 128, shape[::-1])  # (B, T)
    logits = batched(tokens)
    for k, m in enumerate(copies):
        assert torch.allclose(logits[k], m(tokens), atol=1e-5)
    ev = evaluate_many(batched, task_data(DataSpec(n_strings=40, seed=2))[1], batch_size=4)
    single = evaluate(copies[1], task_data(DataSpec(n_strings=40, seed=2))[1], batch_size=4)
    assert ev[1]["accuracy"] == pytest.approx(single["accuracy"])
    assert ev[1]["loss"] == pytest.approx(single["loss"], abs=1e-5)


def test_batched_masked_rnn_roundtrip_and_forward():
    torch.manual_seed(0)
    mods = [MaskedRNN("lstm", 4, 5, 2) for _ in range(3)]
    for m in mods:
        magnitude_prune(m, 0.5)
    batched = BatchedMaskedRNN.from_modules(mods)
    x = torch.randn(3, 6, 2, 4)  # (K, T, B, I)
    out, h_n = batched(x)
    for k, m in enumerate(mods):
        ref, (h, c) = m(x[k])
        assert torch.allclose(out[k], ref, atol=1e-6)
        assert torch.allclose(h_n[-1][0][k], h[-1], atol=1e-6)
        assert torch.allclose(h_n[-1][1][k], c[-1], atol=1e-6)
    fresh = [MaskedRNN("lstm", 4, 5, 2) for _ in range(3)]
    batched.copy_to(fresh)
    for a, b in zip(mods, fresh, strict=True):
        for (na, ta), (nb, tb) in zip(a.state_dict().items(), b.state_dict().items(), strict=True):
            assert na == nb and torch.equal(ta, tb)
    with pytest.raises(ConfigError):
        BatchedMaskedRNN.from_modules([MaskedRNN("gru", 4, 5), MaskedRNN("gru", 4, 6)])
    with pytest.raises(ValueError):
        batched(torch.zeros(2, 6, 2, 4))


def test_clip_per_model_equals_clip_grad_norm_on_each_model():
    torch.manual_seed(0)
    k = 4
    shapes = [(k, 6, 3), (k, 5), (k, 2, 2, 2)]
    stacked = [torch.zeros(s, requires_grad=True) for s in shapes]
    scale = torch.tensor([0.01, 1.0, 10.0, 100.0])  # models below and above the threshold
    for p in stacked:
        p.grad = torch.randn(p.shape) * scale.view(k, *([1] * (p.dim() - 1)))
    singles = []
    for i in range(k):
        params = [torch.zeros(p.shape[1:], requires_grad=True) for p in stacked]
        for q, p in zip(params, stacked, strict=True):
            q.grad = p.grad[i].clone()
        norm = nn.utils.clip_grad_norm_(params, 5.0)
        singles.append((norm, params))
    norms = clip_grad_norm_per_model_(stacked, 5.0)
    for i, (norm, params) in enumerate(singles):
        assert norms[i].item() == pytest.approx(norm.item(), rel=1e-6)
        for q, p in zip(params, stacked, strict=True):
            assert torch.allclose(p.grad[i], q.grad, rtol=1e-6, atol=1e-7)


def test_one_adam_over_stacked_params_equals_separate_adams():
    torch.manual_seed(0)
    k = 3
    stacked = torch.randn(k, 4, 5, requires_grad=True)
    singles = [stacked[i].detach().clone().requires_grad_(True) for i in range(k)]
    opt = torch.optim.Adam([stacked], lr=1e-2)
    opts = [torch.optim.Adam([p], lr=1e-2) for p in singles]
    for _ in range(5):
        grad = torch.randn(k, 4, 5)
        grad[0, :2] = 0  # "masked" entries: zero gradient
        stacked.grad = grad.clone()
        opt.step()
        for i in range(k):
            singles[i].grad = grad[i].clone()
            opts[i].step()
    for i in range(k):
        assert torch.allclose(stacked[i], singles[i], atol=1e-7)
    assert torch.equal(stacked[0, :2], singles[0][:2])


# ---------------------------------------------------------------------- fused recurrence
def _vf(mode, x, hx, weights):
    fn = {"rnn_tanh": _VF.rnn_tanh, "rnn_relu": _VF.rnn_relu, "gru": _VF.gru, "lstm": _VF.lstm}
    return fn[mode](x, hx, weights, True, 1, 0.0, False, False, False)


@pytest.mark.parametrize("mode", MODES)
def test_fused_recurrence_gradcheck(mode):
    torch.manual_seed(0)
    k, t, b, h = 2, 4, 3, 4
    g = GATES[mode] * h
    opts = {"dtype": torch.double, "requires_grad": True}
    gi = torch.randn(k, t, b, g, **opts)
    w_hh, b_hh = torch.randn(k, g, h, **opts), torch.randn(k, g, **opts)
    h0 = torch.randn(k, b, h, **opts)
    c0 = torch.randn(k, b, h, **opts) if mode == "lstm" else None

    def run(gi, w_hh, b_hh, h0, c0):
        out, h_n, c_n = fused_recurrence(mode, gi, w_hh, b_hh, h0, c0)
        return (out, h_n, c_n) if mode == "lstm" else (out, h_n)

    assert torch.autograd.gradcheck(run, (gi, w_hh, b_hh, h0, c0))


@pytest.mark.parametrize("mode", MODES)
def test_fused_recurrence_equals_torch_kernels_large(mode):
    # K * B * H >= 4096: the wide case (it once took a separate tanh-via-sigmoid path)
    torch.manual_seed(1)
    k, t, b, i, h = 3, 6, 32, 5, 48
    g = GATES[mode] * h
    x = torch.randn(k, t, b, i, dtype=torch.double)
    w_ih, w_hh = torch.randn(k, g, i, dtype=torch.double), torch.randn(k, g, h, dtype=torch.double)
    b_ih, b_hh = torch.randn(k, g, dtype=torch.double), torch.randn(k, g, dtype=torch.double)
    h0 = torch.randn(k, b, h, dtype=torch.double)
    c0 = torch.randn(k, b, h, dtype=torch.double) if mode == "lstm" else None
    gi = torch.einsum("ktbi,kgi->ktbg", x, w_ih) + b_ih[:, None, None]
    out, h_n, c_n = fused_recurrence(mode, gi, w_hh, b_hh, h0, c0)
    for m in range(k):
        hx = (h0[m : m + 1], c0[m : m + 1]) if mode == "lstm" else h0[m : m + 1]
        res = _vf(mode, x[m], hx, [w_ih[m], w_hh[m], b_ih[m], b_hh[m]])
        assert torch.allclose(out[m], res[0], atol=1e-10)
        assert torch.allclose(h_n[m], res[1][0], atol=1e-10)
        if mode == "lstm":
            assert torch.allclose(c_n[m], res[2][0], atol=1e-10)


@pytest.mark.parametrize("mode", ["rnn_tanh", "rnn_relu", "gru"])
@pytest.mark.parametrize("batch_first", [False, True])
def test_run_layers_fast_path_equals_torch_kernels(mode, batch_first, monkeypatch):
    torch.manual_seed(2)
    rnn = MaskedRNN(mode, 5, [6, 6, 4], batch_first=batch_first)
    magnitude_prune(rnn, 0.6)
    x = torch.randn((3, 7, 5) if batch_first else (7, 3, 5), requires_grad=True)
    hx = [torch.randn(3, s) for s in rnn.hidden_sizes]

    def run():
        out, final = run_layers(mode, x, rnn.layer_weights(), hx, batch_first=batch_first)
        loss = (out * torch.linspace(-1, 1, out.shape[-1])).sum() + sum(f.sum() for f in final)
        grads = torch.autograd.grad(loss, [x, *rnn.parameters()])
        return out, final, grads

    fast = run()
    monkeypatch.setattr(fnl, "_FUSED_CPU_MODES", frozenset())
    slow = run()
    assert torch.allclose(fast[0], slow[0], atol=1e-5)
    for a, b in zip(fast[1], slow[1], strict=True):
        assert torch.allclose(a, b, atol=1e-5)
    for a, b in zip(fast[2], slow[2], strict=True):
        assert torch.allclose(a, b, atol=1e-5)
