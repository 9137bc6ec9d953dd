"""``sparsify`` on a user's model in a plain loop, with every method of the registry.

Expectations are independent of the code under test: the torch.nn model itself (outputs before
pruning, after ``squash``), the asked sparsity (per gate block, with the documented quantile
rule), exact zeros, and counts that SET/RigL must keep.
"""

import math

import pytest
import torch
from torch import nn

from sparsernn import sparsify
from sparsernn.nn import MaskedRNN
from sparsernn.sparsity import GATE_NAMES, METHODS
from tests.sparsity.user_model import loss_of, user_batch, user_model

#: Small schedules so that every method changes its masks within a few steps.
OPTIONS = {
    "magnitude": {},
    "random": {},
    "snip": {"at_step": 2},  # the gradient of the backward passes before step 2
    "agp": {"n_steps": 4, "update_every": 2},
    "lottery": {"rounds": 2, "round_steps": 2},
    "set": {"update_every": 2, "end_step": 6},
    "rigl": {"update_every": 2, "end_step": 6},
    "nm": {},
    "units": {},
}
#: The asked sparsity: a fraction of the weights (units: of the hidden units; nm: 1 - n/m).
SPARSITY = {"units": 0.25, "nm": 0.5}
N_STEPS = 8


def test_every_registered_method_is_exercised_here():
    assert set(OPTIONS) == set(METHODS)


def _train(model, sp, optimizer, steps, watch=None):
    for step in range(steps):
        loss = loss_of(model, user_batch(seed=step))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        sp.step()
        if watch is not None:
            watch(step)


def _masked_modules(model):
    return {p: m for p, m in model.named_modules() if isinstance(m, MaskedRNN)}


def _leaks(model) -> int:
    """Masked entries that are not exactly zero."""
    return sum(
        int((getattr(mod, name).detach()[~mask] != 0).sum())
        for mod in _masked_modules(model).values()
        for name, mask in mod.masks()
    )


@pytest.mark.parametrize("method", list(OPTIONS))
def test_outputs_are_unchanged_until_a_mask_is_set(method):
    model = user_model()
    tokens, _ = user_batch()
    before = model(tokens)
    sp = sparsify(model, method, 0.0, **OPTIONS[method])  # nothing to remove
    assert isinstance(model.encoder, MaskedRNN) and isinstance(model.decoder, MaskedRNN)
    assert model.encoder.bidirectional and model.encoder.batch_first
    assert (model(tokens) - before).abs().max() <= 1e-12
    assert (sp.report()["kept"] == sp.report()["size"]).all()


def test_state_dict_keeps_torch_names_plus_masks_and_the_same_parameters():
    model = user_model()
    keys = list(model.state_dict())
    params = {n: p for n, p in model.named_parameters()}
    sparsify(model, "magnitude", 0.5)
    weights = [k for k in keys if ".weight_" in k and not k.startswith("head")]
    assert len(weights) == 2 * 2 * 2 + 2  # LSTM: 2 layers x 2 directions x (ih, hh); GRU
    assert set(model.state_dict()) == set(keys) | {f"{k}_mask" for k in weights}
    assert all(p is params[n] for n, p in model.named_parameters())  # shared, not copied


@pytest.mark.parametrize("method", list(OPTIONS))
def test_every_method_in_a_plain_loop(method):
    """The issue's acceptance test: sparsify, train, check sparsity, zeros, counts, squash."""
    model = user_model()
    tokens, _ = user_batch()
    asked = SPARSITY.get(method, 0.75)
    optimizer = torch.optim.Adam(model.parameters(), lr=0.05)
    sp = sparsify(model, method, asked, optimizer=optimizer, seed=3, **OPTIONS[method])
    counts = []

    def watch(step):
        assert _leaks(model) == 0, f"a masked weight moved at step {step}"
        counts.append({w: int(m.sum()) for w, m in _all_masks(model).items()})

    _train(model, sp, optimizer, N_STEPS, watch)
    report = sp.report()
    assert set(report["gate"]) <= {g for gates in GATE_NAMES.values() for g in gates}
    if method == "units":
        _check_units(model, asked)
    else:
        # every gate block of every matrix (scope "gate"): removed = ceil(s * (n - 1)) entries,
        # the quantile rule's count for distinct scores, and so the asked fraction here
        for row in report.itertuples():
            removed = row.size - row.kept
            assert removed == math.ceil(asked * (row.size - 1) - 1e-9), row.weight
            assert abs(row.sparsity - asked) <= 1 / row.size
    if method in ("set", "rigl"):
        assert all(c == counts[0] for c in counts)  # constant nonzero count, every matrix
        assert sp.method.engine.n_updates == 3  # after steps 1, 3 and 5 (end_step 6)
    dense_out = model(tokens)
    modules = sp.squash()
    assert modules is model
    assert type(model.encoder) is nn.LSTM and type(model.decoder) is nn.GRU
    assert (model(tokens) - dense_out).abs().max() <= 1e-10
    assert not any(k.endswith("_mask") for k in model.state_dict())


def _all_masks(model):
    return {
        f"{p}.{n}": m.clone() for p, mod in _masked_modules(model).items() for n, m in mod.masks()
    }


def _check_units(model, fraction):
    """A removed unit has no incoming row in any gate and no outgoing column."""
    for mod in _masked_modules(model).values():
        hidden = mod.hidden_size
        for name, mask in mod.masks():
            rows = mask.view(mod.spec.gates, hidden, -1)
            dead = ~rows.any(dim=(0, 2))  # (H,) units without an incoming weight
            assert int(dead.sum()) == round(fraction * hidden), name


def test_set_and_rigl_move_their_masks_and_rigl_regrows_by_the_gradient():
    moved = {}
    for method in ("set", "rigl"):
        model = user_model()
        optimizer = torch.optim.Adam(model.parameters(), lr=0.05)
        sp = sparsify(model, method, 0.75, optimizer=optimizer, seed=3, **OPTIONS[method])
        start = _all_masks(model)
        _train(model, sp, optimizer, N_STEPS)
        end = _all_masks(model)
        moved[method] = sum(int((start[k] != end[k]).sum()) for k in start)
    assert moved["set"] > 0 and moved["rigl"] > 0


def test_squash_sparse_gives_sparse_rnns_with_the_same_outputs():
    """The user model (bidirectional LSTM, GRU) pruned to 90% and squashed into SparseRNNs:
    the same outputs, and only the kept weights stored."""
    from sparsernn.nn import SparseRNN

    model = user_model()
    tokens, _ = user_batch()
    sp = sparsify(model, "magnitude", 0.9)
    kept = sum(int(m.sum()) for mod in _masked_modules(model).values() for _, m in mod.masks())
    dense_out = model(tokens)
    assert sp.squash(sparse=True) is model
    assert type(model.encoder) is SparseRNN and type(model.decoder) is SparseRNN
    assert (model(tokens) - dense_out).abs().max() <= 1e-10
    stored = sum(
        p.numel() for mod in (model.encoder, model.decoder)
        for n, p in mod.named_parameters() if "weight" in n
    )  # fmt: skip
    assert stored == kept
