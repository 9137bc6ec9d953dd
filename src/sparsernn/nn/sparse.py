"""``SparseRNN``: a pruned RNN/GRU/LSTM that stores and computes only its nonzero weights.

:meth:`SparseRNN.from_module` takes a :class:`~sparsernn.nn.MaskedRNN` or a ``torch.nn.RNN``
/ ``GRU`` / ``LSTM`` whose weights hold zeros (pruned with ``torch.nn.utils.prune``, say) and
keeps, per weight, its nonzeros as compressed rows: ``<weight>_values`` (a parameter),
``<weight>_crow_indices`` and ``<weight>_col_indices`` (buffers; column indices int16 where the
columns allow), so its state dict and saved file grow with the number of nonzeros. Its forward
is ``torch.nn.RNN``'s (``batch_first``, ``h_0`` / ``(h_0, c_0)``, ``PackedSequence``, several
layers, ``bidirectional``) and runs the compiled sparse layer
(:mod:`sparsernn.nn.sparse_kernel`), which reads only the kept weights; its outputs equal the
dense module's to float rounding. The values stay trainable (gradients only where nonzeros are).

``kernel="auto"`` runs the compiled layer where the measured crossover says it is faster than
PyTorch's dense kernels (:mod:`sparsernn.nn.sparse_path`), else the dense weights rebuilt from
the stored ones; ``"sparse"`` / ``"dense"`` force either. Without a C++ compiler (one line says
so), on a GPU, or for float16, the dense path runs the same function.
"""

from __future__ import annotations

from typing import cast

import torch
import torch.nn.functional as F
from torch import _VF, Tensor, nn
from torch.nn.utils.rnn import PackedSequence

from sparsernn.errors import ConfigError
from sparsernn.nn import sparse_kernel
from sparsernn.nn.cells import cell_spec, spec_of_torch
from sparsernn.nn.masked import MaskedRNN
from sparsernn.nn.sparse_kernel import Pattern, SparseWeights
from sparsernn.nn.sparse_path import check_kernel, crossover_density
from sparsernn.nn.sparse_stack import run_stack

__all__ = ["SparseRNN"]

#: Devices a SparseRNN runs on (the compiled layer on CPU; PyTorch's dense kernels elsewhere).
DEVICES = ("cpu", "cuda")
_SUFFIXES = ("_values", "_crow_indices", "_col_indices")


def _check_supported(dtype: torch.dtype, device: torch.device) -> None:
    if dtype not in sparse_kernel.DTYPES:
        raise ConfigError(f"SparseRNN supports float32 and float64 weights, not {dtype}")
    if device.type not in DEVICES:
        raise ConfigError(f"SparseRNN runs on cpu or cuda, not {device.type}")


def _index_dtype(limit: int) -> torch.dtype:
    """The smallest signed integer type holding indices up to ``limit``."""
    return torch.int16 if limit < 2**15 else torch.int32 if limit < 2**31 else torch.int64


class SparseRNN(nn.Module):
    """Multi-layer Elman RNN (tanh/ReLU), GRU or LSTM holding only its nonzero weights.

    Build one with :meth:`from_module`; the constructor makes an empty one (every weight
    entirely zero), to be filled by ``load_state_dict`` (the nonzero counts follow the loaded
    state). Arguments are ``torch.nn.RNN``'s; ``mode`` is a cell name
    (:data:`~sparsernn.nn.cells.CELLS`). ``forward(x, hx=None)`` is ``torch.nn.RNN``'s.

    Examples
    --------
    >>> dense = torch.nn.LSTM(8, 16)
    >>> with torch.no_grad():
    ...     _ = dense.weight_hh_l0.mul_(torch.rand(64, 16) < 0.1)
    >>> sparse = SparseRNN.from_module(dense)
    >>> out, (h_n, c_n) = sparse(torch.zeros(5, 3, 8))
    >>> tuple(out.shape), tuple(h_n.shape)
    ((5, 3, 16), (1, 3, 16))
    """

    def __init__(
        self,
        mode: str,
        input_size: int,
        hidden_size: int,
        num_layers: int = 1,
        bias: bool = True,
        batch_first: bool = False,
        dropout: float = 0.0,
        bidirectional: bool = False,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
        *,
        kernel: str = "auto",
    ) -> None:
        super().__init__()
        self.spec = cell_spec(mode)
        self.mode = self.spec.name
        dtype = dtype or torch.get_default_dtype()
        _check_supported(dtype, torch.device(device or "cpu"))
        if min(input_size, hidden_size, num_layers) < 1 or not 0 <= dropout < 1:
            raise ConfigError(
                f"sizes must be positive and dropout in [0, 1) (input_size={input_size}, "
                f"hidden_size={hidden_size}, num_layers={num_layers}, dropout={dropout})"
            )
        self.input_size, self.hidden_size, self.num_layers = input_size, hidden_size, num_layers
        self.bias, self.batch_first, self.dropout = bias, batch_first, float(dropout)
        self.bidirectional = bidirectional
        self.kernel = check_kernel(kernel)
        self._patterns: dict[str, tuple[tuple[int, ...], Pattern]] = {}
        self._shapes: dict[str, tuple[int, int]] = {}
        rows = self.spec.gates * hidden_size
        for k in range(num_layers):
            n_in = input_size if k == 0 else hidden_size * self.num_directions
            for sfx in self._suffixes:
                for kind, cols in (("ih", n_in), ("hh", hidden_size)):
                    self._register_weight(f"weight_{kind}_l{k}{sfx}", rows, cols, device, dtype)
                for kind in ("ih", "hh") if bias else ():
                    empty = torch.zeros(rows, device=device, dtype=dtype)
                    self.register_parameter(f"bias_{kind}_l{k}{sfx}", nn.Parameter(empty))

    @property
    def num_directions(self) -> int:
        return 2 if self.bidirectional else 1

    @property
    def _suffixes(self) -> tuple[str, ...]:
        return ("", "_reverse") if self.bidirectional else ("",)

    def _register_weight(self, name: str, rows: int, cols: int, device, dtype) -> None:
        """An all-zero (rows, cols) weight: no values, every row empty."""
        crow = torch.zeros(rows + 1, dtype=torch.int32, device=device)
        self.register_buffer(f"{name}_crow_indices", crow)
        col = torch.zeros(0, dtype=_index_dtype(cols), device=device)
        self.register_buffer(f"{name}_col_indices", col)
        values = torch.zeros(0, device=device, dtype=dtype)
        self.register_parameter(f"{name}_values", nn.Parameter(values))
        self._shapes[name] = (rows, cols)

    def weight_names(self) -> list[str]:
        """``weight_ih_l0``, ``weight_hh_l0``, (``weight_ih_l0_reverse``, ...), per layer."""
        return [f"weight_{kind}_l{k}{sfx}" for k in range(self.num_layers)
                for sfx in self._suffixes for kind in ("ih", "hh")]  # fmt: skip

    # ------------------------------------------------------------------ building
    @classmethod
    def from_module(cls, module: nn.Module, *, kernel: str = "auto") -> SparseRNN:
        """The sparse twin of a MaskedRNN (its masked weights) or of a ``torch.nn.RNN`` / ``GRU``
        / ``LSTM`` (its weights as they are): only the nonzero entries are kept.

        Raises a one-line ConfigError for anything else, ``proj_size``, layers of different
        sizes, and weights other than float32/float64 on cpu/cuda.
        """
        if not isinstance(module, (MaskedRNN, nn.RNNBase)):
            raise ConfigError(
                f"SparseRNN.from_module takes a MaskedRNN or torch.nn.RNN/GRU/LSTM, not "
                f"{type(module).__name__}"
            )
        if getattr(module, "proj_size", 0):
            raise ConfigError(
                "SparseRNN does not support proj_size; supported: RNN/GRU/LSTM with proj_size=0"
            )
        spec = module.spec if isinstance(module, MaskedRNN) else spec_of_torch(module)
        sizes = module.hidden_sizes if isinstance(module, MaskedRNN) else (module.hidden_size,)
        if len(set(sizes)) != 1:
            raise ConfigError(f"SparseRNN needs one hidden size for all layers, got {sizes}")
        weight = cast(Tensor, module.weight_hh_l0)
        new = cls(
            spec.name, module.input_size, sizes[0], module.num_layers, module.bias,
            module.batch_first, module.dropout, bool(getattr(module, "bidirectional", False)),
            device=weight.device, dtype=weight.dtype, kernel=kernel,
        )  # fmt: skip
        with torch.no_grad():
            for name in new.weight_names():
                dense = getattr(module, name)
                mask = getattr(module, f"{name}_mask", None)
                new.set_weight(name, dense if mask is None else dense * mask)
            for name, param in new.named_parameters():
                if name.startswith("bias_"):
                    param.copy_(getattr(module, name))
        return new.train(module.training)

    @torch.no_grad()
    def set_weight(self, name: str, dense: Tensor) -> None:
        """Keep the nonzero entries of ``dense`` as weight ``name``'s values."""
        shape = self._shapes[name]
        if tuple(dense.shape) != shape:
            raise ConfigError(f"{name} is {shape}, got a weight of shape {tuple(dense.shape)}")
        pattern = Pattern.of(dense != 0)
        device = self._values(name).device
        values = pattern.gather(dense.detach()).to(device, self.weight_dtype)
        self._parameters[f"{name}_values"] = nn.Parameter(values)
        self._buffers[f"{name}_crow_indices"] = pattern.row_ptr.to(device, torch.int32)
        self._buffers[f"{name}_col_indices"] = pattern.cols.to(device, _index_dtype(shape[1]))
        self._patterns.pop(name, None)

    @property
    def weight_dtype(self) -> torch.dtype:
        return self._values("weight_hh_l0").dtype

    def _values(self, name: str) -> Tensor:
        return cast(Tensor, self._parameters[f"{name}_values"])

    # ------------------------------------------------------------------ reading
    def pattern(self, name: str) -> Pattern:
        """Weight ``name``'s kept entries (rebuilt when its index buffers were replaced)."""
        crow, col = self._buffers[f"{name}_crow_indices"], self._buffers[f"{name}_col_indices"]
        assert crow is not None and col is not None
        key = (crow.data_ptr(), crow._version, col.data_ptr(), col._version, col.numel())
        cached = self._patterns.get(name)
        if cached is not None and cached[0] == key:
            return cached[1]
        _check_csr(name, self._shapes[name], crow, col)
        pattern = Pattern.from_csr(self._shapes[name], crow.cpu(), col.cpu())
        self._patterns[name] = (key, pattern)
        return pattern

    def dense_weight(self, name: str) -> Tensor:
        """Weight ``name`` as a dense matrix (differentiable in the values)."""
        return self.pattern(name).dense(self._values(name))

    def nnz(self) -> dict[str, int]:
        """Stored (nonzero) entries per weight."""
        return {name: self.pattern(name).nnz for name in self.weight_names()}

    def density(self) -> float:
        """Stored entries over all entries of the weight matrices."""
        total = sum(r * c for r, c in self._shapes.values())
        return sum(self.nnz().values()) / max(1, total)

    def to_torch(self) -> nn.RNNBase:
        """The dense ``torch.nn.RNN/GRU/LSTM`` with these weights."""
        mod = self.spec.torch_class(
            self.input_size, self.hidden_size, self.num_layers, bias=self.bias,
            batch_first=self.batch_first, dropout=self.dropout,
            bidirectional=self.bidirectional, **self.spec.torch_kwargs,
        )  # fmt: skip
        state = {name: self.dense_weight(name).detach() for name in self.weight_names()}
        state.update({n: p.detach() for n, p in self.named_parameters() if n.startswith("bias")})
        mod.load_state_dict(state)
        return mod.to(self._values("weight_hh_l0").device, self.weight_dtype)

    def _load_from_state_dict(self, state_dict, prefix, local_metadata, strict, *args, **kw):
        # A saved SparseRNN may hold other nonzero counts: take the incoming sizes first.
        for name in self.weight_names():
            for sfx in _SUFFIXES:
                incoming = state_dict.get(prefix + name + sfx)
                if incoming is None:
                    continue
                if sfx == "_values":
                    mine = self._parameters[name + sfx]
                    assert mine is not None
                    fresh = torch.empty(incoming.shape, dtype=mine.dtype, device=mine.device)
                    self._parameters[name + sfx] = nn.Parameter(fresh, mine.requires_grad)
                else:
                    device = cast(Tensor, self._buffers[name + sfx]).device
                    self._buffers[name + sfx] = torch.empty_like(incoming, device=device)
            self._patterns.pop(name, None)
        super()._load_from_state_dict(state_dict, prefix, local_metadata, strict, *args, **kw)

    def extra_repr(self) -> str:
        s = f"{self.mode}, {self.input_size}, {self.hidden_size}, num_layers={self.num_layers}"
        for flag in ("batch_first", "bidirectional"):
            if getattr(self, flag):
                s += f", {flag}=True"
        if not self.bias:
            s += ", bias=False"
        if self.dropout:
            s += f", dropout={self.dropout}"
        return s + f", density={self.density():.3f}"

    # ------------------------------------------------------------------ forward
    def forward(self, x: Tensor | PackedSequence, hx: Tensor | tuple | None = None):
        """``torch.nn.RNN.forward``: ``(output, h_n)``, or ``(output, (h_n, c_n))`` for LSTM."""
        if isinstance(x, PackedSequence):
            data, batch_sizes, order, unorder = x
            pick = (lambda t: t) if order is None else (lambda t: t.index_select(1, order))
            out, finals = self._run(data, self._states(hx, pick), batch_sizes)
            h_n = self._join(finals)
            if unorder is not None:
                h_n = _each(h_n, lambda t: t.index_select(1, unorder))
            return PackedSequence(out, batch_sizes, order, unorder), h_n
        unbatched = x.dim() == 2
        if unbatched:
            x = x.unsqueeze(0 if self.batch_first else 1)
        if x.dim() != 3 or x.shape[-1] != self.input_size:
            raise ValueError(
                f"expected input of shape (T, B, {self.input_size}) "
                f"{'(batch_first) ' if self.batch_first else ''}, got {tuple(x.shape)}"
            )
        out, finals = self._run(x, self._states(hx, lambda t: t.unsqueeze(1) if unbatched else t))
        h_n = self._join(finals)
        if unbatched:
            return out.squeeze(0 if self.batch_first else 1), _each(h_n, lambda t: t.squeeze(1))
        return out, h_n

    def _states(self, hx, prepare) -> list | None:
        """``hx`` ((L*D, B, H), or a pair of them) -> one state per layer and direction."""
        if hx is None:
            return None
        if self.spec.has_cell_state:
            h, c = (prepare(t) for t in hx)
            return list(zip(h.unbind(0), c.unbind(0), strict=True))
        return list(prepare(hx).unbind(0))

    def _join(self, finals: list):
        if self.spec.has_cell_state:
            return torch.stack([h for h, _ in finals]), torch.stack([c for _, c in finals])
        return torch.stack(finals)

    def uses_sparse(self, x: Tensor, batch: int) -> bool:
        """Whether a call on ``x`` with ``batch`` sequences runs the compiled sparse layer."""
        if self.kernel == "dense" or not sparse_kernel.supports(x):
            return False
        if x.dtype != self.weight_dtype or not sparse_kernel.available():
            return False
        if self.kernel == "sparse":
            return True
        training = torch.is_grad_enabled() and self._values("weight_hh_l0").requires_grad
        if self.training and self.dropout > 0:
            return False
        limit = crossover_density(self.mode, self.hidden_size, batch, training)
        return self.density() <= limit

    def _batch(self, x: Tensor, batch_sizes: Tensor | None) -> int:
        if batch_sizes is not None:
            return int(batch_sizes[0]) if batch_sizes.numel() else 0
        return x.shape[0 if self.batch_first else 1]

    def _run(self, x: Tensor, states: list | None, batch_sizes: Tensor | None = None):
        if not self.uses_sparse(x, self._batch(x, batch_sizes)):
            return self._run_dense(x, states, batch_sizes)
        layers = [
            [SparseWeights(
                self.pattern(f"weight_ih_l{k}{sfx}"), self.pattern(f"weight_hh_l{k}{sfx}"),
                getattr(self, f"weight_ih_l{k}{sfx}_values"),
                getattr(self, f"weight_hh_l{k}{sfx}_values"),
                *self._biases(f"l{k}{sfx}"),
            ) for sfx in self._suffixes]
            for k in range(self.num_layers)
        ]  # fmt: skip
        return run_stack(
            self.spec, layers, x, states, batch_first=self.batch_first,
            batch_sizes=batch_sizes, dropout=self.dropout, training=self.training,
        )  # fmt: skip

    def _biases(self, tag: str) -> tuple[Tensor | None, Tensor | None]:
        if not self.bias:
            return None, None
        return getattr(self, f"bias_ih_{tag}"), getattr(self, f"bias_hh_{tag}")

    def _run_dense(self, x: Tensor, states: list | None, batch_sizes: Tensor | None):
        """The same stack through PyTorch's fused kernels, over dense weights rebuilt from the
        stored ones (GPU, no compiler, or above the crossover)."""
        kernel = getattr(_VF, self.spec.torch_mode.lower())
        finals: list = []
        for k in range(self.num_layers):
            flat: list[Tensor] = []
            for sfx in self._suffixes:
                flat += [self.dense_weight(f"weight_{kind}_l{k}{sfx}") for kind in ("ih", "hh")]
                flat += [b for b in self._biases(f"l{k}{sfx}") if b is not None]
            hx = self._layer_hx(states, k, x, batch_sizes)
            args = (flat, self.bias, 1, 0.0, self.training, self.bidirectional)
            if batch_sizes is None:
                x, *h_n = kernel(x, hx, *args, self.batch_first)
            else:
                x, *h_n = kernel(x, batch_sizes, hx, *args)
            if self.spec.has_cell_state:
                finals += list(zip(h_n[0].unbind(0), h_n[1].unbind(0), strict=True))
            else:
                finals += list(h_n[0].unbind(0))
            if self.dropout > 0 and self.training and k < self.num_layers - 1:
                x = F.dropout(x, self.dropout, training=True)
        return x, finals

    def _layer_hx(self, states: list | None, k: int, x: Tensor, batch_sizes: Tensor | None):
        """Layer ``k``'s initial states stacked (D, B, H) as the fused kernels take them."""
        d = self.num_directions
        if states is None:
            zeros = x.new_zeros(d, self._batch(x, batch_sizes), self.hidden_size)
            return (zeros, zeros.clone()) if self.spec.has_cell_state else zeros
        mine = states[k * d : (k + 1) * d]
        if self.spec.has_cell_state:
            return torch.stack([h for h, _ in mine]), torch.stack([c for _, c in mine])
        return torch.stack(mine)


def _check_csr(name: str, shape: tuple[int, int], crow: Tensor, col: Tensor) -> None:
    """A one-line ConfigError unless (crow, col) describe a (rows, cols) matrix."""
    ok = (
        crow.numel() == shape[0] + 1
        and int(crow[0]) == 0
        and int(crow[-1]) == col.numel()
        and bool((crow[1:] >= crow[:-1]).all())
        and (col.numel() == 0 or (int(col.min()) >= 0 and int(col.max()) < shape[1]))
    )
    if not ok:
        raise ConfigError(f"{name}: its compressed rows do not describe a {shape} matrix")


def _each(state, fn):
    """``fn`` applied to a tensor or to each of a pair."""
    return tuple(fn(t) for t in state) if isinstance(state, tuple) else fn(state)
