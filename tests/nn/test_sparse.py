"""SparseRNN: torch.nn's forward over only the nonzero weights, against the dense module it
was made from; its state dict and file size; what it refuses."""

import io

import pytest
import torch
from torch.nn.utils.rnn import pack_padded_sequence

from sparsernn.errors import ConfigError
from sparsernn.nn import MaskedRNN, SparseRNN

TORCH = [
    (torch.nn.RNN, {}),
    (torch.nn.RNN, {"nonlinearity": "relu"}),
    (torch.nn.GRU, {}),
    (torch.nn.LSTM, {}),
]


def _pruned(cls, kwargs, density, dtype=torch.float32, seed=0, **options):
    """A torch.nn module whose weights keep about ``density`` of their entries."""
    torch.manual_seed(seed)
    module = cls(5, 8, 2, **kwargs, **options).to(dtype)
    with torch.no_grad():
        for name, p in module.named_parameters():
            if name.startswith("weight"):
                p.mul_(torch.rand_like(p) < density)
    return module


def _states(h):
    return list(h) if isinstance(h, tuple) else [h]


@pytest.mark.parametrize(("cls", "kwargs"), TORCH)
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("layout", ["plain", "batch_first", "packed"])
@pytest.mark.parametrize("bidirectional", [False, True])
def test_outputs_equal_the_dense_module(cls, kwargs, dtype, layout, bidirectional):
    """float32 to 1e-5, float64 to 1e-10, with initial states, both directions, each sequence
    of a PackedSequence stopping at its own length."""
    dense = _pruned(cls, kwargs, 0.3, dtype, batch_first=layout == "batch_first",
                    bidirectional=bidirectional)  # fmt: skip
    sparse = SparseRNN.from_module(dense, kernel="sparse")
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(6, 7, 5, generator=gen, dtype=dtype)  # (B, T) or (T, B): both 6 x 7
    h0 = torch.randn(2 * (1 + bidirectional), 6 if layout == "batch_first" else 7, 8,
                     generator=gen, dtype=dtype)  # fmt: skip
    hx = (h0, h0.flip(1)) if cls is torch.nn.LSTM else h0
    if layout == "packed":
        x = pack_padded_sequence(x, torch.tensor([3, 6, 1, 6, 2, 5, 4]), enforce_sorted=False)
    tol = {"rtol": 1e-10, "atol": 1e-10} if dtype == torch.float64 else {"atol": 1e-5}
    with torch.no_grad():
        (out, h_n), (ref, h_ref) = sparse(x, hx), dense(x, hx)
    if layout == "packed":
        out, ref = out.data, ref.data
    assert out.shape == ref.shape and torch.allclose(out, ref, **tol)
    for a, b in zip(_states(h_n), _states(h_ref), strict=True):
        assert a.shape == b.shape and torch.allclose(a, b, **tol)


def test_unbatched_input_and_the_dense_path_agree():
    dense = _pruned(torch.nn.GRU, {}, 0.2, torch.float64)
    x = torch.randn(4, 5, dtype=torch.float64)
    for kernel in ("sparse", "dense"):
        out, h_n = SparseRNN.from_module(dense, kernel=kernel)(x)
        assert out.shape == (4, 8) and h_n.shape == (2, 8)
        assert torch.allclose(out, dense(x)[0], atol=1e-12)


def test_from_masked_rnn_keeps_its_masked_weights():
    torch.manual_seed(0)
    masked = MaskedRNN("lstm", 5, 8, 2).double()
    for name in masked.weight_names():
        masked.set_mask(name, torch.rand(masked.trainable(name).shape) < 0.1)
    sparse = SparseRNN.from_module(masked, kernel="sparse")
    assert sum(sparse.nnz().values()) == sum(int(m.sum()) for _, m in masked.masks())
    x = torch.randn(6, 3, 5, dtype=torch.float64)
    assert torch.allclose(sparse(x)[0], masked(x)[0], atol=1e-12)


def test_values_train_like_the_masked_dense_weights():
    """Gradients of the stored values equal the dense module's at the nonzero entries."""
    dense = _pruned(torch.nn.LSTM, {}, 0.3, torch.float64)
    sparse = SparseRNN.from_module(dense, kernel="sparse")
    x = torch.randn(5, 4, 5, dtype=torch.float64)
    sparse(x)[0].sum().backward()
    dense(x)[0].sum().backward()
    for name in sparse.weight_names():
        grad = sparse.pattern(name).gather(getattr(dense, name).grad)
        assert torch.allclose(getattr(sparse, f"{name}_values").grad, grad, atol=1e-10)


def _file_bytes(state):
    buf = io.BytesIO()
    torch.save(state, buf)
    return len(buf.getvalue())


def test_saved_file_at_90_percent_is_under_a_quarter_and_loads_back():
    dense = torch.nn.LSTM(64, 64, 2)
    with torch.no_grad():
        for name, p in dense.named_parameters():
            if name.startswith("weight"):
                p.mul_(torch.rand_like(p) < 0.1)
    sparse = SparseRNN.from_module(dense)
    ratio = _file_bytes(sparse.state_dict()) / _file_bytes(dense.state_dict())
    assert ratio < 0.25
    buf = io.BytesIO()
    torch.save(sparse.state_dict(), buf)
    buf.seek(0)
    empty = SparseRNN("lstm", 64, 64, 2, kernel="sparse")
    assert sum(empty.nnz().values()) == 0
    empty.load_state_dict(torch.load(buf))
    x = torch.randn(3, 2, 64)
    assert torch.allclose(empty(x)[0], dense(x)[0], atol=1e-5)
    assert torch.allclose(sparse.to_torch()(x)[0], dense(x)[0], atol=1e-6)


def test_a_corrupt_state_is_refused_in_one_line():
    sparse = SparseRNN.from_module(_pruned(torch.nn.GRU, {}, 0.3))
    state = sparse.state_dict()
    state["weight_hh_l1_col_indices"] = state["weight_hh_l1_col_indices"] + 100
    sparse.load_state_dict(state)
    with pytest.raises(ConfigError, match="^weight_hh_l1: its compressed rows do not describe"):
        sparse(torch.zeros(2, 1, 5))


def test_refusals_name_what_is_supported():
    with pytest.raises(ConfigError, match="proj_size=0"):
        SparseRNN.from_module(torch.nn.LSTM(4, 8, proj_size=3))
    with pytest.raises(ConfigError, match="float32 and float64"):
        SparseRNN.from_module(torch.nn.GRU(4, 8).half())
    with pytest.raises(ConfigError, match="cpu or cuda, not meta"):
        SparseRNN.from_module(torch.nn.GRU(4, 8, device="meta"))
    with pytest.raises(ConfigError, match="MaskedRNN or torch.nn.RNN/GRU/LSTM"):
        SparseRNN.from_module(torch.nn.Linear(3, 4))
    with pytest.raises(ConfigError, match="one hidden size"):
        SparseRNN.from_module(MaskedRNN("gru", 3, [4, 5]))
