"""``MaskedRNN``: a drop-in for ``torch.nn.RNN/GRU/LSTM`` whose weights carry boolean masks.

Parameter names, shapes, initialisation, input/output shapes and return values mirror PyTorch,
so a ``torch.nn.GRU`` state dict loads one to one (and back), bidirectional ones too. Each weight
``weight_ih_l{k}`` / ``weight_hh_l{k}`` (``..._reverse``) has a boolean buffer ``<name>_mask``
beside it (the ``torch.nn.utils.prune`` convention). Masks are applied once per forward, to the
weights, and the sequence runs in PyTorch's fused kernels; masked entries get zero gradient, and
:meth:`MaskedRNN.set_mask` also zeroes the stored weights so they stay exactly zero under Adam.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import torch
from torch import Tensor, nn
from torch.nn.utils.rnn import PackedSequence

from sparsernn.errors import ConfigError
from sparsernn.nn import sparse_path
from sparsernn.nn.cells import MODES, cell_spec, spec_of_torch
from sparsernn.nn.functional import run_layers

__all__ = ["MaskedRNN", "MODES", "DIRECTION_SUFFIXES"]

#: Names of the maskable weights (``weight_ih_l0``, ``weight_hh_l3``, ...).
_WEIGHT_NAME = re.compile(r"weight_(ih|hh)_l\d+(_reverse)?")
#: The name suffix of each direction's weights (``torch.nn.RNNBase``'s): forward, reverse.
DIRECTION_SUFFIXES = ("", "_reverse")


def _layer_sizes(input_size: int, hidden_size: int | Sequence[int], num_layers: int | None):
    """The per-layer hidden sizes, checked."""
    if isinstance(hidden_size, int):
        sizes = [hidden_size] * (1 if num_layers is None else num_layers)
    else:
        sizes = [int(h) for h in hidden_size]
        if num_layers is not None and num_layers != len(sizes):
            raise ConfigError(
                f"num_layers={num_layers} disagrees with {len(sizes)} hidden sizes; "
                "give one of them"
            )
    if not sizes or min(sizes) < 1 or input_size < 1:
        raise ConfigError(f"sizes must be positive (input_size={input_size}, hidden_size={sizes})")
    return sizes


def _check_torch_options(dropout: float, proj_size: int) -> None:
    """Refuse the ``torch.nn.RNN`` options MaskedRNN does not implement, in one line each."""
    if not 0.0 <= dropout < 1.0:
        raise ConfigError(f"dropout={dropout} is outside [0, 1)")
    if proj_size:
        raise ConfigError(
            f"proj_size={proj_size} is not supported by MaskedRNN; use proj_size=0 and a "
            "torch.nn.Linear on the output"
        )


class MaskedRNN(nn.Module):
    """Multi-layer Elman RNN (tanh/ReLU), GRU or LSTM with a fixed sparsity mask per weight.

    Parameters
    ----------
    mode : ``"rnn_tanh"``, ``"rnn_relu"``, ``"gru"`` or ``"lstm"`` (see
        :data:`~sparsernn.nn.cells.CELLS`).
    input_size : features of the input ``x``.
    hidden_size : units per layer: one int for all layers or a sequence with one per layer.
    num_layers : number of stacked layers (inferred from ``hidden_size`` when it is a sequence).
    bias, batch_first, dropout, bidirectional, device, dtype : as in ``torch.nn.RNN``; the
        arguments after ``mode`` are in ``torch.nn.RNNBase``'s positions. A bidirectional
        stack has torch's ``..._reverse`` weights; each layer above the first reads both
        directions' outputs (2H features), and ``output`` holds them concatenated.
    proj_size : in torch's position, but only ``0`` is supported (another value raises a
        :class:`~sparsernn.errors.ConfigError` naming an alternative).
    kernel : ``"auto"`` (default), ``"dense"`` or ``"sparse"``: masks multiplied into dense
        weights, or only the kept weights computed (forward and backward); ``auto`` picks per
        call by the crossover measured on this machine class (:mod:`sparsernn.nn.sparse_path`).
        Same outputs and gradients either way, to float rounding. The dense path runs
        whenever :meth:`track_dense_grads` is on (the pruned weights' gradients are needed)
        or under ``torch.autocast``.

    ``x`` is (T, B, I) (or (B, T, I) with ``batch_first``), (T, I) unbatched, or a
    ``PackedSequence`` (each sequence then ends at its own length, as in PyTorch); ``hx`` is
    optional. Returns ``(output, h_n)``, or ``(output, (h_n, c_n))`` for LSTM, shaped as
    PyTorch's: when all layers share one hidden size (the torch-compatible case) ``h_n`` is a
    (num_layers * num_directions, B, H) tensor. Layers of different sizes cannot be stacked:
    ``h_n`` is then a tuple of per-layer (per direction) (B, H_k) tensors (and ``hx`` is given
    the same way).

    Masks may also be set with ``torch.nn.utils.prune``: its mask is combined with ours (see
    :meth:`register_buffer`).

    Examples
    --------
    >>> rnn = MaskedRNN("gru", input_size=8, hidden_size=16, num_layers=2)
    >>> out, h_n = rnn(torch.zeros(5, 3, 8))
    >>> tuple(out.shape), tuple(h_n.shape)
    ((5, 3, 16), (2, 3, 16))
    """

    kernel: str = "auto"  # modules pickled before the option existed read the default

    def __init__(
        self,
        mode: str,
        input_size: int,
        hidden_size: int | Sequence[int],
        num_layers: int | None = None,
        bias: bool = True,
        batch_first: bool = False,
        dropout: float = 0.0,
        bidirectional: bool = False,
        proj_size: int = 0,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
        *,
        kernel: str = "auto",
    ) -> None:
        super().__init__()
        self.kernel = sparse_path.check_kernel(kernel)
        self.spec = cell_spec(mode)
        self.mode = self.spec.name
        sizes = _layer_sizes(input_size, hidden_size, num_layers)
        _check_torch_options(dropout, proj_size)
        self.input_size = int(input_size)
        self.hidden_sizes = tuple(sizes)
        self.num_layers = len(sizes)
        self.bias = bias
        self.batch_first = batch_first
        self.dropout = float(dropout)
        self.bidirectional = bool(bidirectional)
        self.num_directions = 2 if self.bidirectional else 1
        self.proj_size = 0
        #: ``dL/d(masked weight)`` per weight name, summed over backward passes while tracked
        #: (:meth:`track_dense_grads`); None when not tracked.
        self.dense_grads: dict[str, Tensor] | None = None
        in_sizes = [self.input_size, *(self.num_directions * h for h in sizes[:-1])]
        for k, (i, h) in enumerate(zip(in_sizes, sizes, strict=True)):
            for suffix in DIRECTION_SUFFIXES[: self.num_directions]:
                self._register_layer(f"l{k}{suffix}", i, h, device, dtype)
        self.reset_parameters()

    def _register_layer(self, tag: str, n_in: int, n_hidden: int, device, dtype) -> None:
        """One layer's (one direction's) masks (first: see :meth:`register_parameter`),
        weights and biases; ``tag`` is ``l{k}`` or ``l{k}_reverse``."""
        rows = self.spec.gates * n_hidden
        for kind, cols in (("ih", n_in), ("hh", n_hidden)):
            mask = torch.ones(rows, cols, dtype=torch.bool, device=device)
            self.register_buffer(f"weight_{kind}_{tag}_mask", mask)
        shapes: dict[str, tuple[int, ...]] = {
            f"weight_ih_{tag}": (rows, n_in),
            f"weight_hh_{tag}": (rows, n_hidden),
        }
        if self.bias:
            shapes.update({f"bias_ih_{tag}": (rows,), f"bias_hh_{tag}": (rows,)})
        for name, shape in shapes.items():
            tensor = torch.empty(shape, device=device, dtype=dtype)
            self.register_parameter(name, nn.Parameter(tensor))

    def flatten_parameters(self) -> None:
        """A no-op, for code written for ``torch.nn.RNN``: the masked weights are gathered
        afresh on every forward, so there is no cuDNN weight buffer to compact."""

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
            for d in range(self.num_directions):
                for name in self._layer_param_names(k, d):
                    nn.init.uniform_(self.trainable(name), -bound, bound)
        self.apply_masks_()

    def _layer_param_names(self, k: int, direction: int = 0) -> list[str]:
        tag = f"l{k}{DIRECTION_SUFFIXES[direction]}"
        names = [f"weight_ih_{tag}", f"weight_hh_{tag}"]
        return names + ([f"bias_ih_{tag}", f"bias_hh_{tag}"] if self.bias else [])

    def trainable(self, name: str) -> nn.Parameter:
        """The trainable tensor behind ``name``: ``<name>_orig`` while ``torch.nn.utils.prune``
        reparametrises it (``<name>`` is then recomputed from it before every forward)."""
        orig = self._parameters.get(f"{name}_orig")
        return getattr(self, name) if orig is None else orig

    def weight_names(self, kinds: Sequence[str] = ("ih", "hh")) -> list[str]:
        """Names of the maskable weights in torch's order, e.g. ``["weight_ih_l0",
        "weight_hh_l0", "weight_ih_l0_reverse", ...]``."""
        return [
            f"weight_{kind}_l{k}{suffix}"
            for k in range(self.num_layers)
            for suffix in DIRECTION_SUFFIXES[: self.num_directions]
            for kind in kinds
        ]

    def masks(self) -> Iterator[tuple[str, Tensor]]:
        """``(weight_name, bool mask)`` pairs for every maskable weight."""
        for name in self.weight_names():
            yield name, getattr(self, f"{name}_mask")

    def set_mask(self, name: str, mask: Tensor) -> None:
        """Install a boolean keep-mask for weight ``name`` and zero the removed entries."""
        weight = self.trainable(name)
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
            self.trainable(name).mul_(mask)

    def sparsity(self) -> dict[str, float]:
        """Fraction of masked-out entries per weight matrix."""
        return {name: 1.0 - mask.float().mean().item() for name, mask in self.masks()}

    def layer_weights(self) -> list[tuple[Tensor, Tensor, Tensor | None, Tensor | None]]:
        """Per layer (and direction: forward, then reverse) ``(w_ih, w_hh, b_ih, b_hh)`` with
        masks applied (differentiable)."""
        return masked_layer_weights(self, self.num_layers, self.bias, self.num_directions)

    def track_dense_grads(self, enabled: bool = True) -> None:
        """Keep, in :attr:`dense_grads`, the gradient of every backward pass with respect to
        the masked weights, summed until :meth:`track_dense_grads` is called again.

        That is the gradient a pruned weight would get if it came back (the weights entering
        the recurrence are ``w * mask``): what RigL regrows by, without a second forward.
        """
        self.dense_grads = {} if enabled else None

    def _tap(self, weights: list) -> None:
        """Register the hooks that sum ``dL/d(w * mask)`` into :attr:`dense_grads`."""
        sink = self.dense_grads
        assert sink is not None
        for layer, (w_ih, w_hh, _, _) in enumerate(weights):
            k, d = divmod(layer, self.num_directions)
            tag = f"l{k}{DIRECTION_SUFFIXES[d]}"
            for kind, w in (("ih", w_ih), ("hh", w_hh)):
                if w.requires_grad:
                    w.register_hook(_summing_into(sink, f"weight_{kind}_{tag}"))

    # ------------------------------------------------------------------ torch.nn.utils.prune
    def register_buffer(self, name: str, tensor: Tensor | None, persistent: bool = True) -> None:
        """As ``nn.Module.register_buffer``, except that replacing one of our masks combines them.

        ``torch.nn.utils.prune`` stores its mask as ``<weight>_mask``, the name of ours, and
        would silently drop ours: here the installed mask is ``ours & theirs`` (bool), which
        both torch's reparametrisation (``<weight> = <weight>_orig * <weight>_mask``) and our
        forward then apply.
        """
        old = self._buffers.get(name)
        if old is not None and tensor is not None and _WEIGHT_NAME.fullmatch(name[:-5]):
            tensor = old & (tensor.to(old.device) != 0)
        super().register_buffer(name, tensor, persistent)

    def register_parameter(self, name: str, param: nn.Parameter | None) -> None:
        """As ``nn.Module.register_parameter``; a maskable weight that comes back without its
        mask (``torch.nn.utils.prune.remove`` deletes ``<weight>_mask``) gets one again.

        Torch's ``remove`` has already multiplied the combined mask into the weight, so the
        mask is rebuilt as ``weight != 0`` and keeps the pruned entries at zero in training.
        """
        super().register_parameter(name, param)
        mask = f"{name}_mask"
        if param is not None and _WEIGHT_NAME.fullmatch(name) and mask not in self._buffers:
            super().register_buffer(mask, param.detach() != 0)

    # ------------------------------------------------------------------ forward
    # torch.compile runs the recurrence as it runs torch.nn's own RNN modules: eagerly, the
    # graph broken around it (its fused kernels and hand-written backward do not trace), the
    # rest of the model compiled.
    @torch.compiler.disable
    def forward(self, x: Tensor | PackedSequence, hx: Tensor | tuple | None = None):
        """Run the stack over a whole sequence; see the class docstring for shapes."""
        if isinstance(x, PackedSequence):
            return self._forward_packed(x, hx)
        unbatched = x.dim() == 2
        batch_dim = 0 if self.batch_first else 1
        if unbatched:
            x = x.unsqueeze(batch_dim)
        if x.dim() != 3 or x.shape[-1] != self.input_size:
            raise ValueError(
                f"expected input of shape (T, B, {self.input_size}) "
                f"{'(batch_first) ' if self.batch_first else ''}, got {tuple(x.shape)}"
            )
        per_layer = self._split_hx(hx, lambda t: t.unsqueeze(-2) if unbatched else t)
        out, final = self._run(x, per_layer)
        h_n = self._join_hx(final)
        if unbatched:
            out = out.squeeze(batch_dim)
            h_n = _map_state(h_n, lambda t: t.squeeze(-2))
        return out, h_n

    def _forward_packed(self, x: PackedSequence, hx):
        """A PackedSequence in, one out; ``h_n`` at each sequence's last step (as PyTorch)."""
        data, batch_sizes, order, unorder = x
        if data.dim() != 2 or data.shape[-1] != self.input_size:
            raise ValueError(
                f"expected a PackedSequence of {self.input_size} features, got data of shape "
                f"{tuple(data.shape)}"
            )
        per_layer = self._split_hx(hx, lambda t: t if order is None else t.index_select(-2, order))
        out, final = self._run(data, per_layer, batch_sizes)
        if unorder is not None:
            final = [_map_state(s, lambda t: t.index_select(0, unorder)) for s in final]
        return PackedSequence(out, batch_sizes, order, unorder), self._join_hx(final)

    def _run(self, x: Tensor, per_layer, batch_sizes: Tensor | None = None):
        if sparse_path.uses_sparse(self, x, batch_sizes):
            return sparse_path.run(self, self.spec, x, per_layer, batch_sizes)
        weights = self.layer_weights()
        if self.dense_grads is not None and torch.is_grad_enabled():
            self._tap(weights)
        return run_layers(
            self.spec,
            x,
            weights,
            per_layer,
            batch_first=self.batch_first,
            dropout=self.dropout,
            training=self.training,
            batch_sizes=batch_sizes,
            bidirectional=self.bidirectional,
        )

    def _split_hx(self, hx, prepare: Callable[[Tensor], Tensor]):
        """``hx`` as given (stacked, or per layer) -> per-layer states, ``prepare`` applied."""
        if hx is None:
            return None
        hx = _map_state(hx, prepare)
        if self.spec.has_cell_state:
            h, c = hx
            return list(zip(_unstack(h), _unstack(c), strict=True))
        return _unstack(hx)

    def _join_hx(self, final):
        """Per-layer final states -> ``h_n`` (stacked when all layers share one size)."""
        join = torch.stack if len(set(self.hidden_sizes)) == 1 else tuple
        if self.spec.has_cell_state:
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
        if self.bidirectional:
            s += ", bidirectional=True"
        if self.kernel != "auto":
            s += f", kernel={self.kernel!r}"
        return s

    # ------------------------------------------------------------------ interop with torch.nn
    @classmethod
    def from_torch(cls, module: nn.RNNBase, *, share_parameters: bool = False) -> MaskedRNN:
        """A MaskedRNN with the weights of a ``torch.nn.RNN/GRU/LSTM`` (all-ones masks), on
        its device and in its dtype.

        ``share_parameters=True`` takes the module's very ``Parameter`` objects instead of
        copies (an optimizer made for the module then trains the MaskedRNN).
        """
        if module.proj_size:
            raise ConfigError(
                f"proj_size={module.proj_size} is not supported by MaskedRNN; use proj_size=0 "
                "and a torch.nn.Linear on the output"
            )
        spec = spec_of_torch(module)
        first = next(module.parameters())
        new = cls(
            spec.name,
            module.input_size,
            module.hidden_size,
            **_shared_options(module),
            device=first.device,
            dtype=first.dtype,
        )
        if share_parameters:
            for name, param in module.named_parameters(recurse=False):
                new.register_parameter(name, param)
        else:
            new.load_state_dict(module.state_dict(), strict=False)
        return new

    def to_torch(self, *, share_parameters: bool = False) -> nn.RNNBase:
        """A ``torch.nn.RNN/GRU/LSTM`` with the masked weights baked in (equal hidden sizes),
        on this module's device and in its dtype.

        ``share_parameters=True`` zeroes the masked entries of this module's own weights and
        hands the torch module these very ``Parameter`` objects (an optimizer keeps training
        them); otherwise it gets copies.
        """
        if len(set(self.hidden_sizes)) != 1:
            raise ConfigError(
                f"a MaskedRNN with layers of different sizes {self.hidden_sizes} has no torch.nn "
                "equivalent"
            )
        pruned = [n for n in self._parameters if n.endswith("_orig")]
        if share_parameters and pruned:
            raise ConfigError(
                f"{pruned[0][:-5]} is under torch.nn.utils.prune: call "
                "torch.nn.utils.prune.remove on it first"
            )
        mod = self.torch_like(self.hidden_size)
        if share_parameters:
            self.apply_masks_()
            for name, param in self.named_parameters(recurse=False):
                setattr(mod, name, param)  # RNNBase.__setattr__ refreshes its flat weights
            mod.flatten_parameters()
            return mod
        state = {
            name: tensor.detach()
            for n, layer in enumerate(self.layer_weights())
            for name, tensor in zip(
                self._layer_param_names(*divmod(n, self.num_directions)), layer, strict=False
            )
            if tensor is not None
        }
        mod.load_state_dict(state)
        return mod

    def torch_like(self, hidden_size: int) -> nn.RNNBase:
        """A fresh ``torch.nn.RNN/GRU/LSTM`` with this module's cell, options, device and dtype
        and ``hidden_size`` units per layer (its weights freshly initialised)."""
        first = next(self.parameters())
        return self.spec.torch_class(
            self.input_size,
            hidden_size,
            **_shared_options(self),
            **self.spec.torch_kwargs,
            device=first.device,
            dtype=first.dtype,
        )

    def _load_from_state_dict(self, state_dict, prefix, local_metadata, strict, *args, **kw):
        # A plain torch.nn.RNN/GRU/LSTM state dict has no masks: keep ours (all ones by default).
        for name, mask in self.masks():
            state_dict.setdefault(prefix + name + "_mask", mask.clone())
        super()._load_from_state_dict(state_dict, prefix, local_metadata, strict, *args, **kw)


def _shared_options(module: nn.Module) -> dict[str, Any]:
    """The constructor options a MaskedRNN and a ``torch.nn.RNNBase`` share, read from either."""
    return {
        "num_layers": module.num_layers,
        "bias": module.bias,
        "batch_first": module.batch_first,
        "dropout": module.dropout,
        "bidirectional": module.bidirectional,
    }


def masked_layer_weights(
    module: nn.Module, num_layers: int, bias: bool, directions: int = 1
) -> list[tuple[Tensor, Tensor, Tensor | None, Tensor | None]]:
    """``(w_ih * mask, w_hh * mask, b_ih, b_hh)`` per layer (and direction, forward then
    reverse) of any module that follows the ``weight_ih_l{k}`` / ``weight_ih_l{k}_mask``
    naming (also with a leading model axis)."""
    out = []
    for k in range(num_layers):
        for tag in (f"l{k}{suffix}" for suffix in DIRECTION_SUFFIXES[:directions]):
            w_ih = getattr(module, f"weight_ih_{tag}") * getattr(module, f"weight_ih_{tag}_mask")
            w_hh = getattr(module, f"weight_hh_{tag}") * getattr(module, f"weight_hh_{tag}_mask")
            b_ih = getattr(module, f"bias_ih_{tag}") if bias else None
            b_hh = getattr(module, f"bias_hh_{tag}") if bias else None
            out.append((w_ih, w_hh, b_ih, b_hh))
    return out


def _summing_into(sink: dict[str, Tensor], name: str) -> Callable[[Tensor], None]:
    """A gradient hook that adds the gradient it sees to ``sink[name]``."""

    def hook(grad: Tensor) -> None:
        held = sink.get(name)
        sink[name] = grad.detach().clone() if held is None else held + grad.detach()

    return hook


def _unstack(t):
    if isinstance(t, (list, tuple)):
        return list(t)
    return list(t.unbind(0))


def _map_state(state, fn):
    """``fn`` applied to every tensor of a (possibly nested) tuple of tensors."""
    if isinstance(state, (tuple, list)):
        return type(state)(_map_state(s, fn) for s in state)
    return fn(state)
