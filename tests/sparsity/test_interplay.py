"""A sparsified model among PyTorch's own tools: torch.nn.utils.prune, autocast, torch.compile,
state dicts, optimizers with momentum; resuming a Sparsifier; refusals in one line."""

import copy
import io

import pytest
import torch
import torch.nn.utils.prune as torch_prune
from torch import nn

from sparsernn import sparsify
from sparsernn.errors import ConfigError
from sparsernn.nn import MaskedRNN
from sparsernn.sparsity import dense_gradients, loss_gradients
from tests.sparsity.user_model import loss_of, user_batch, user_model


def _step(model, optimizer, sp, seed):
    loss = loss_of(model, user_batch(seed=seed))
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    sp.step()


# ---------------------------------------------------------------------- torch.nn.utils.prune
def test_torch_prune_on_a_sparsified_model_combines_both_masks_and_training_keeps_them():
    model = user_model()
    sp = sparsify(model, "magnitude", 0.5)
    ours = model.encoder.weight_hh_l0_reverse_mask.clone()
    plain = nn.Linear(8, 32, bias=False).double()  # torch's own mask, computed by torch alone
    with torch.no_grad():
        plain.weight.copy_(model.encoder.weight_hh_l0_reverse)
    theirs = torch_prune.l1_unstructured(plain, "weight", amount=0.8).weight_mask.bool()
    torch_prune.l1_unstructured(model.encoder, "weight_hh_l0_reverse", amount=0.8)
    assert torch.equal(model.encoder.weight_hh_l0_reverse_mask, ours & theirs)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    for seed in range(4):
        _step(model, optimizer, sp, seed)
    orig = model.encoder.weight_hh_l0_reverse_orig.detach()
    assert torch.count_nonzero(orig[~(ours & theirs)]) == 0
    with pytest.raises(ConfigError, match=r"^encoder.weight_hh_l0_reverse is under torch.nn"):
        sp.squash()
    torch_prune.remove(model.encoder, "weight_hh_l0_reverse")
    assert torch.equal(model.encoder.weight_hh_l0_reverse_mask, ours & theirs)
    tokens, _ = user_batch()
    out = model(tokens)
    sp.squash()
    assert (model(tokens) - out).abs().max() <= 1e-10


# ---------------------------------------------------------------------- autocast, compile
@pytest.mark.parametrize("cell", [nn.LSTM, nn.GRU, nn.RNN])
def test_autocast_bfloat16_on_cpu_runs_as_torch_forward_and_backward(cell):
    torch.manual_seed(0)
    ref = cell(4, 8, num_layers=2, bidirectional=True)
    holder = nn.Module()
    holder.rnn = copy.deepcopy(ref)
    sp = sparsify(holder, "random", 0.5, seed=1)
    baked = holder.rnn.to_torch()  # the masked weights in a plain torch module
    x = torch.randn(5, 3, 4)
    results = []
    for module in (baked, holder.rnn):
        with torch.autocast("cpu", dtype=torch.bfloat16):
            out, _ = module(x)
            loss = out.float().pow(2).mean()
        (grad,) = torch.autograd.grad(loss, [module.weight_hh_l1_reverse])
        results.append((out, grad))
    (out_t, grad_t), (out_o, grad_o) = results
    assert out_o.dtype == out_t.dtype  # autocast's own choice for this cell
    assert torch.equal(out_o, out_t)  # the same kernels, so the same bits
    mask = holder.rnn.weight_hh_l1_reverse_mask
    assert torch.count_nonzero(grad_o[~mask]) == 0
    # kept entries: the same gradient to bfloat16's precision (the casts of a masked weight
    # and of a leaf weight accumulate over the time steps in different places)
    assert torch.allclose(grad_o[mask], grad_t[mask], rtol=2e-2, atol=1e-5)
    assert sp.report()["sparsity"].eq(0.5).all()


def test_torch_compile_runs_the_recurrence_eagerly_and_agrees():
    torch.manual_seed(0)
    model = nn.Module()
    model.rnn = nn.GRU(3, 4, num_layers=2, bidirectional=True)
    sparsify(model, "magnitude", 0.5)
    model.forward = lambda x: model.rnn(x)[0].sum(-1)  # one op around the recurrence
    x = torch.randn(5, 2, 3)
    expected = model(x)
    torch._dynamo.reset()
    compiled = torch.compile(model, backend="aot_eager")
    out = compiled(x)
    assert torch.allclose(out, expected, atol=1e-6)
    out.sum().backward()
    mask = model.rnn.weight_ih_l1_mask
    grad = model.rnn.weight_ih_l1.grad
    assert torch.count_nonzero(grad[~mask]) == 0 and torch.count_nonzero(grad[mask]) > 0


# ---------------------------------------------------------------------- state dicts
def test_state_dicts_load_into_fresh_models_before_and_after_sparsify():
    tokens, _ = user_batch()
    dense = user_model(seed=0)
    out_dense = dense(tokens)
    # a dense state dict loads into a fresh model that is then sparsified (masks all ones)
    fresh = user_model(seed=1)
    sparsify(fresh, "magnitude", 0.6, at_step=5)
    fresh.load_state_dict(dense.state_dict())
    assert (fresh(tokens) - out_dense).abs().max() <= 1e-12
    # a sparse state dict (masks included) loads into a fresh sparsified model, bit for bit
    sparse = user_model(seed=0)
    sparsify(sparse, "random", 0.6, seed=4)
    buffer = io.BytesIO()
    torch.save(sparse.state_dict(), buffer)
    other = user_model(seed=2)
    sparsify(other, "magnitude", 0.3)
    other.load_state_dict(torch.load(io.BytesIO(buffer.getvalue())))
    for name, mask in other.encoder.masks():
        assert torch.equal(mask, getattr(sparse.encoder, f"{name}_mask"))
    assert torch.equal(other(tokens), sparse(tokens))
    # squashed, the state dict has torch's keys only and loads into the user's plain model
    sp_state = copy.deepcopy(sparse)
    sparsify(sp_state, "magnitude", 0.0).squash()
    plain = user_model(seed=3)
    plain.load_state_dict(sp_state.state_dict())  # strict
    assert (plain(tokens) - sparse(tokens)).abs().max() <= 1e-12


#: Schedules that change the masks several times within a dozen steps.
CHANGING = {
    "set": {"update_every": 2, "end_step": 12},
    "rigl": {"update_every": 2, "end_step": 12},
    "lottery": {"rounds": 3, "round_steps": 3},
    "agp": {"n_steps": 8, "update_every": 2},
}


@pytest.mark.parametrize("method", list(CHANGING))
def test_a_sparsifier_resumes_mid_training_exactly(method):
    options = CHANGING[method]

    def make():
        model = user_model()
        optimizer = torch.optim.Adam(model.parameters(), lr=0.05)
        return model, optimizer, sparsify(model, method, 0.7, optimizer=optimizer, **options)

    model, optimizer, sp = make()
    for seed in range(5):
        _step(model, optimizer, sp, seed)
    saved = copy.deepcopy((model.state_dict(), optimizer.state_dict(), sp.state_dict()))
    for seed in range(5, 10):
        _step(model, optimizer, sp, seed)
    model2, optimizer2, sp2 = make()
    model2.load_state_dict(saved[0])
    optimizer2.load_state_dict(saved[1])
    sp2.load_state_dict(saved[2])
    for seed in range(5, 10):
        _step(model2, optimizer2, sp2, seed)
    for (name, a), b in zip(model.state_dict().items(), model2.state_dict().values(), strict=True):
        assert torch.equal(a, b), name
    with pytest.raises(ConfigError, match=r"^the state is of a Sparsifier with sparsity=0.7"):
        sparsify(user_model(), method, 0.5, **options).load_state_dict(saved[2])


# ---------------------------------------------------------------------- optimizers
@pytest.mark.parametrize("opt", ["adam", "sgd"])
@pytest.mark.parametrize("method", list(CHANGING))
def test_changing_masks_keep_masked_weights_and_their_optimizer_state_at_zero(opt, method):
    options = CHANGING[method]
    model = user_model()
    if opt == "adam":
        optimizer = torch.optim.Adam(model.parameters(), lr=0.05)
    else:
        optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    sp = sparsify(model, method, 0.75, optimizer=optimizer, **options)
    changes = 0
    masks = {id(m): [k.clone() for _, k in m.masks()] for m in sp.modules}
    for seed in range(12):
        _step(model, optimizer, sp, seed)
        for mod in sp.modules:
            for (name, mask), old in zip(mod.masks(), masks[id(mod)], strict=True):
                changes += int((mask != old).sum())
                param = mod.trainable(name)
                assert torch.count_nonzero(param.detach()[~mask]) == 0, name
                state = optimizer.state[param]
                for key in ("exp_avg", "exp_avg_sq", "momentum_buffer"):
                    if key in state:
                        assert torch.count_nonzero(state[key][~mask]) == 0, (name, key)
            masks[id(mod)] = [k.clone() for _, k in mod.masks()]
    assert changes > 0  # the masks did change while training


def test_without_the_sparsifier_momentum_would_move_pruned_weights():
    """Why the optimizer's state is zeroed: masking alone leaves SGD's momentum, which moves a
    pruned weight on the next step (the check above is not vacuous)."""
    model = user_model()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    for seed in range(3):  # dense steps build momentum
        loss = loss_of(model, user_batch(seed=seed))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    sparsify(model, "magnitude", 0.75)  # no optimizer given: its momentum is left as it was
    loss_of(model, user_batch(seed=9)).backward()
    optimizer.step()
    mask = model.encoder.weight_hh_l0_mask
    assert torch.count_nonzero(model.encoder.weight_hh_l0.detach()[~mask]) > 0


# ---------------------------------------------------------------------- gradients for RigL/SNIP
def test_kept_gradient_is_the_dense_gradient_with_the_masks_opened():
    model = user_model()
    sp = sparsify(model, "rigl", 0.75, update_every=1000)
    batch = user_batch(seed=5)
    loss_of(model, batch).backward()
    kept = sp.kept_gradients()
    opened = loss_gradients(model, [lambda: loss_of(model, batch)])
    assert set(kept) == set(opened)
    for name, grad in opened.items():
        assert torch.allclose(kept[name], grad, atol=1e-12), name
        mask = dict(model.named_buffers())[f"{name}_mask"]
        assert torch.count_nonzero(grad[~mask]) > 0  # pruned entries have a gradient here


def test_dense_gradients_is_loss_gradients_of_the_cross_entropy():
    model = user_model()
    sparsify(model, "magnitude", 0.5)
    batches = [user_batch(seed=s) for s in range(2)]
    a = dense_gradients(model, batches)
    b = loss_gradients(model, [lambda b=b: loss_of(model, b) for b in batches])
    assert all(torch.equal(a[k], b[k]) for k in a)


# ---------------------------------------------------------------------- refusals, one line each
def _one_line(call, match):
    with pytest.raises(ConfigError, match=match) as info:
        call()
    assert "\n" not in str(info.value)


def test_bad_input_is_refused_in_one_line_and_leaves_the_model_as_it_was():
    model = user_model()
    tokens, _ = user_batch()
    out = model(tokens)
    _one_line(lambda: sparsify(nn.Linear(3, 3), "magnitude", 0.5), "contains no torch.nn.RNN")
    _one_line(lambda: sparsify(model, "obd", 0.5), r"^unknown sparsity method 'obd'; choose")
    _one_line(lambda: sparsify(model, "magnitude", 50), r"pass 0.5 to remove 50%")
    _one_line(lambda: sparsify(model, "magnitude", -0.1), r"outside \[0, 1\]")
    _one_line(lambda: sparsify(model, "magnitude", 0.5, target="x"), "unknown pruning target")
    _one_line(lambda: sparsify(model, "rigl", 0.5, every=3), r"has no option 'every'; its")
    _one_line(lambda: sparsify(model, "nm", 0.6), r"sparsity=0.6 is not 1 - n/m")
    _one_line(lambda: sparsify(model, "snip", 0.5), r"needs the gradient of a backward pass")
    _one_line(lambda: sparsify(nn.LSTM(3, 4), "magnitude", 0.5), r"is itself a torch.nn.LSTM")
    # nothing of a refused call stays behind
    assert type(model.encoder) is nn.LSTM and type(model.decoder) is nn.GRU
    assert torch.equal(model(tokens), out)
    projected = nn.Module()
    projected.rnn = nn.LSTM(3, 4, proj_size=2)
    _one_line(lambda: sparsify(projected, "magnitude", 0.5), r"^rnn: proj_size=2 is not")

    class MyLSTM(nn.LSTM):
        pass

    custom = nn.Module()
    custom.rnn = MyLSTM(3, 4)
    _one_line(lambda: sparsify(custom, "magnitude", 0.5), r"^rnn is a MyLSTM, a subclass")
    sp = sparsify(model, "magnitude", 0.5)
    _one_line(lambda: sparsify(model, "rigl", 0.5), r"already sparsified \(method 'magnitude'\)")
    sp.squash()
    _one_line(sp.step, "squashed")
    sparsify(model, "rigl", 0.5)  # a squashed model may be sparsified again


def test_rigl_without_a_backward_pass_says_what_to_do():
    model = user_model()
    sp = sparsify(model, "rigl", 0.5, update_every=1)
    _one_line(sp.step, r"call sp.step\(\) after loss.backward\(\), or pass loss_fn=")


def test_snip_with_a_loss_function_prunes_at_once_by_weight_times_gradient():
    model = user_model()
    batch = user_batch(seed=1)
    reference = copy.deepcopy(model)
    holder_sp = sparsify(reference, "magnitude", 0.0)  # the same MaskedRNNs, all masks open
    grads = loss_gradients(reference, [lambda: loss_of(reference, batch)])
    sp = sparsify(model, "snip", 0.5, scope="layer", loss_fn=lambda: loss_of(model, batch))
    for name, grad in grads.items():
        mod_name, _, weight = name.rpartition(".")
        w = getattr(holder_sp.model.get_submodule(mod_name), weight).detach()
        score = (w * grad).abs().flatten()
        keep = score >= torch.quantile(score, 0.5)  # the same rule, computed here by torch
        got = dict(model.named_buffers())[f"{name}_mask"].flatten()
        assert torch.equal(got, keep), name
    assert isinstance(model.encoder, MaskedRNN) and sp.n_steps == 0
