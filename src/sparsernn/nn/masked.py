"""``MaskedRNN``: a drop-in for ``torch.nn.RNN/GRU/LSTM`` whose weights carry boolean masks.

Parameter names, shapes, initialisation, input/output shapes and return values mirror PyTorch,
so a ``torch.nn.GRU`` state dict loads one to one (and back). Each weight ``weight_ih_l{k}`` /
``weight_hh_l{k}`` has a boolean buffer ``<name>_mask`` beside it (the ``torch.nn.utils.prune``
convention). Masks are applied once per forward, to the weights, and the sequence runs in
PyTorch's fused kernels; masked entries get zero gradient, and :meth:`MaskedRNN.set_mask` also
zeroes the stored weights so they stay exactly zero under Adam.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence

import torch
from torch import Tensor, nn

from sparsernn.errors import ConfigError
from sparsernn.nn.cells import GATES, MODES
from sparsernn.nn.functional import run_layers

__all__ = ["MaskedRNN", "MODES"]


def _check_mode(mode: str) -> str:
    if mode not in GATES:
        raise ConfigError(f"unknown cell mode {mode!r}; choose one of {', '.join(MODES)}")
    return mode


class MaskedRNN(nn.Module):
    """Multi-layer Elman RNN (tanh/ReLU), GRU or LSTM with a fixed sparsity mask per weight.

    Parameters
    ----------
    mode : ``"rnn_tanh"``, ``"rnn_relu"``, ``"gru"`` or ``"lstm"``.
    input_size : features of the input ``x``.
    hidden_size : units per layer: one int for all layers or a sequence with one per layer.
    num_layers : number of stacked layers (inferred from ``hidden_size`` when it is a sequence).
    bias, batch_first, dropout : as in ``torch.nn.RNN``.

    Inputs ``x`` (T, B, I) (or (B, T, I) with ``batch_first``) and optional ``hx``; returns
    ``(output, h_n)``, or ``(output, (h_n, c_n))`` for LSTM, shaped as PyTorch's. When layers
    have different hidden sizes ``h_n`` cannot be stacked and is a tuple of per-layer (B, H_k).

    Examples
    --------
    >>> rnn = MaskedRNN("gru", input_size=8, hidden_size=16, num_layers=2)
    >>> out, h_n = rnn(torch.zeros(5, 3, 8))
    >>> tuple(out.shape), tuple(h_n.shape)
    ((5, 3, 16), (2, 3, 16))
    """

    def __init__(
        self,
        mode: str,
        input_size: int,
        hidden_size: int | Sequence[int],
        num_layers: int | None = None,
        bias: bool = True,
        batch_first: bool = False,
        dropout: float = 0.0,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        self.mode = _check_mode(mode)
        if isinstance(hidden_size, int):
            n = 1 if num_layers is None else num_layers
            sizes = [hidden_size] * n
        else:
            sizes = [int(h) for h in hidden_size]
            if num_layers is not None and num_layers != len(sizes):
                raise ConfigError(
                    f"num_layers={num_layers} disagrees with {len(sizes)} hidden sizes; "
                    "give one of them"
                )
        if not sizes or min(sizes) < 1 or input_size < 1:
            raise ConfigError(
                f"sizes must be positive (input_size={input_size}, hidden_size={sizes})"
            )
        if not 0.0 <= dropout < 1.0:
            raise ConfigError(f"dropout={dropout} is outside [0, 1)")
        self.input_size = int(input_size)
        self.hidden_sizes = tuple(sizes)
        self.num_layers = len(sizes)
        self.bias = bias
        self.batch_first = batch_first
        self.dropout = float(dropout)
        g = GATES[mode]
        factory = {"device": device, "dtype": dtype}
        in_sizes = [self.input_size, *sizes[:-1]]
        for k, (i, h) in enumerate(zip(in_sizes, sizes, strict=True)):
            self.register_parameter(
                f"weight_ih_l{k}", nn.Parameter(torch.empty(g * h, i, **factory))
            )
            self.register_parameter(
                f"weight_hh_l{k}", nn.Parameter(torch.empty(g * h, h, **factory))
            )
            if bias:
                self.register_parameter(
                    f"bias_ih_l{k}", nn.Parameter(torch.empty(g * h, **factory))
                )
                self.register_parameter(
                    f"bias_hh_l{k}", nn.Parameter(torch.empty(g * h, **factory))
                )
            for kind, cols in (("ih", i), ("hh", h)):
                mask = torch.ones(g * h, cols, dtype=torch.bool, device=device)
                self.register_buffer(f"weight_{kind}_l{k}_mask", mask)
        self.reset_parameters()

    # ------------------------------------------------------------------ parameters and masks
    @property
    def hidden_size(self) -> int:
        """The hidden size when all layers share it (as ``nn.RNN.hidden_size``)."""
        if len(set(self.hidden_sizes)) != 1:
            raise AttributeError("layers have different hidden sizes; use .hidden_sizes")
        return self.hidden_sizes[0]

    def reset_parameters(self) -> None:
        """PyTorch's initialisation: every weight and bias ~ U(-1/sqrt(H), 1/sqrt(H)) per layer."""
        for k, h in enumerate(self.hidden_sizes):
            bound = 1.0 / math.sqrt(h)
            for name in self._layer_param_names(k):
                nn.init.uniform_(getattr(self, name), -bound, bound)
        self.apply_masks_()

    def _layer_param_names(self, k: int) -> list[str]:
        names = [f"weight_ih_l{k}", f"weight_hh_l{k}"]
        return names + ([f"bias_ih_l{k}", f"bias_hh_l{k}"] if self.bias else [])

    def weight_names(self, kinds: Sequence[str] = ("ih", "hh")) -> list[str]:
        """Names of the maskable weights, e.g. ``["weight_ih_l0", "weight_hh_l0", ...]``."""
        return [f"weight_{kind}_l{k}" for k in range(self.num_layers) for kind in kinds]

    def masks(self) -> Iterator[tuple[str, Tensor]]:
        """``(weight_name, bool mask)`` pairs for every maskable weight."""
        for name in self.weight_names():
            yield name, getattr(self, f"{name}_mask")

    def set_mask(self, name: str, mask: Tensor) -> None:
        """Install a boolean keep-mask for weight ``name`` and zero the removed entries."""
        weight = getattr(self, name)
        if tuple(mask.shape) != tuple(weight.shape):
            raise ConfigError(
                f"mask for {name} has shape {tuple(mask.shape)}, expected {tuple(weight.shape)}"
            )
        buf = getattr(self, f"{name}_mask")
        buf.copy_(mask.to(device=buf.device, dtype=torch.bool))
        with torch.no_grad():
            weight.mul_(buf)

    @torch.no_grad()
    def apply_masks_(self) -> None:
        """Zero every masked entry of the stored weights (e.g. after loading a state dict)."""
        for name, mask in self.masks():
            getattr(self, name).mul_(mask)

    def sparsity(self) -> dict[str, float]:
        """Fraction of masked-out entries per weight matrix."""
        return {name: 1.0 - mask.float().mean().item() for name, mask in self.masks()}

    def layer_weights(self) -> list[tuple[Tensor, Tensor, Tensor | None, Tensor | None]]:
        """Per layer ``(w_ih, w_hh, b_ih, b_hh)`` with masks applied (differentiable)."""
        return masked_layer_weights(self, self.num_layers, self.bias)

    # ------------------------------------------------------------------ forward
    def forward(self, x: Tensor, hx: Tensor | tuple | None = None):
        """Run the stack over a whole sequence; see the class docstring for shapes."""
        unbatched = x.dim() == 2
        if unbatched:
            x = x.unsqueeze(1 if not self.batch_first else 0)
        if x.dim() != 3 or x.shape[-1] != self.input_size:
            raise ValueError(
                f"expected input of shape (T, B, {self.input_size}) "
                f"{'(batch_first) ' if self.batch_first else ''}, got {tuple(x.shape)}"
            )
        per_layer = self._split_hx(hx, unbatched)
        out, final = run_layers(
            self.mode,
            x,
            self.layer_weights(),
            per_layer,
            batch_first=self.batch_first,
            dropout=self.dropout,
            training=self.training,
        )
        h_n = self._join_hx(final)
        if unbatched:
            out = out.squeeze(1 if not self.batch_first else 0)
            h_n = _map_state(h_n, lambda t: t.squeeze(-2))
        return out, h_n

    def _split_hx(self, hx, unbatched: bool):
        if hx is None:
            return None
        if unbatched:
            hx = _map_state(hx, lambda t: t.unsqueeze(-2))
        if self.mode == "lstm":
            h, c = hx
            return list(zip(_unstack(h), _unstack(c), strict=True))
        return _unstack(hx)

    def _join_hx(self, final):
        same = len(set(self.hidden_sizes)) == 1
        join = torch.stack if same else tuple
        if self.mode == "lstm":
            hs, cs = zip(*final, strict=True)
            return join(list(hs)), join(list(cs))
        return join(list(final))

    def extra_repr(self) -> str:
        sizes = self.hidden_sizes if len(set(self.hidden_sizes)) > 1 else self.hidden_sizes[0]
        s = f"{self.mode}, {self.input_size}, {sizes}, num_layers={self.num_layers}"
        if not self.bias:
            s += ", bias=False"
        if self.batch_first:
            s += ", batch_first=True"
        if self.dropout:
            s += f", dropout={self.dropout}"
        return s

    # ------------------------------------------------------------------ interop with torch.nn
    @classmethod
    def from_torch(cls, module: nn.RNNBase) -> MaskedRNN:
        """Build a MaskedRNN with the weights of a ``torch.nn.RNN/GRU/LSTM`` (all-ones masks)."""
        if module.bidirectional or getattr(module, "proj_size", 0):
            raise ConfigError("bidirectional and projected RNNs are not supported")
        mode = {"RNN_TANH": "rnn_tanh", "RNN_RELU": "rnn_relu", "GRU": "gru", "LSTM": "lstm"}
        new = cls(
            mode[module.mode],
            module.input_size,
            module.hidden_size,
            module.num_layers,
            bias=module.bias,
            batch_first=module.batch_first,
            dropout=module.dropout,
        )
        new.load_state_dict(module.state_dict(), strict=False)
        return new.to(next(module.parameters()).device)

    def to_torch(self) -> nn.RNNBase:
        """A ``torch.nn.RNN/GRU/LSTM`` with the masked weights baked in (equal hidden sizes)."""
        cls = {"gru": nn.GRU, "lstm": nn.LSTM}.get(self.mode, nn.RNN)
        kwargs = {"nonlinearity": self.mode[4:]} if cls is nn.RNN else {}
        mod = cls(
            self.input_size,
            self.hidden_size,
            self.num_layers,
            bias=self.bias,
            batch_first=self.batch_first,
            dropout=self.dropout,
            **kwargs,
        )
        state = {k: v for k, v in self.state_dict().items() if not k.endswith("_mask")}
        with torch.no_grad():
            for name, mask in self.masks():
                state[name] = state[name] * mask
        mod.load_state_dict(state)
        return mod.to(self.weight_ih_l0.device)

    def _load_from_state_dict(self, state_dict, prefix, local_metadata, strict, *args, **kw):
        # A plain torch.nn.RNN/GRU/LSTM state dict has no masks: keep ours (all ones by default).
        for name, mask in self.masks():
            state_dict.setdefault(prefix + name + "_mask", mask.clone())
        super()._load_from_state_dict(state_dict, prefix, local_metadata, strict, *args, **kw)


def masked_layer_weights(
    module: nn.Module, num_layers: int, bias: bool
) -> list[tuple[Tensor, Tensor, Tensor | None, Tensor | None]]:
    """``(w_ih * mask, w_hh * mask, b_ih, b_hh)`` per layer of any module that follows the
    ``weight_ih_l{k}`` / ``weight_ih_l{k}_mask`` naming (also with a leading model axis)."""
    out = []
    for k in range(num_layers):
        w_ih = getattr(module, f"weight_ih_l{k}") * getattr(module, f"weight_ih_l{k}_mask")
        w_hh = getattr(module, f"weight_hh_l{k}") * getattr(module, f"weight_hh_l{k}_mask")
        b_ih = getattr(module, f"bias_ih_l{k}") if bias else None
        b_hh = getattr(module, f"bias_hh_l{k}") if bias else None
        out.append((w_ih, w_hh, b_ih, b_hh))
    return out


def _unstack(t):
    if isinstance(t, (list, tuple)):
        return list(t)
    return list(t.unbind(0))


def _map_state(state, fn):
    if isinstance(state, tuple) and len(state) == 2 and not isinstance(state[0], Tensor):
        return tuple(_map_state(s, fn) for s in state)
    if isinstance(state, tuple):
        return tuple(_map_state(s, fn) if not isinstance(s, Tensor) else fn(s) for s in state)
    return fn(state)
