"""``BatchedMaskedRNN``: K masked recurrent stacks of one architecture, as one module.

Each parameter and mask has a leading model axis of size K; the recurrence of all K models
runs in :func:`~sparsernn.nn.functional.fused_recurrence` as batched matmuls (on a CPU each
step is bound by per-operation overhead, so K models cost little more than one).
:func:`clip_grad_norm_per_model_` clips each model's gradient norm on its own. Training K
whole classifiers together lives one layer up, in :func:`sparsernn.train.train_many`.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

import torch
from torch import Tensor, nn

from sparsernn.errors import ConfigError
from sparsernn.nn.cells import cell_spec
from sparsernn.nn.functional import fused_recurrence
from sparsernn.nn.masked import MaskedRNN, masked_layer_weights

__all__ = ["BatchedMaskedRNN", "clip_grad_norm_per_model_", "input_gates"]


class BatchedMaskedRNN(nn.Module):
    """K stacks of masked recurrent layers with identical shapes, stacked along a model axis.

    Parameters and mask buffers are named as in :class:`~sparsernn.nn.MaskedRNN`
    (``weight_ih_l{k}``, ``weight_ih_l{k}_mask``, ...) with a leading axis of size
    ``n_models``. ``forward(x)`` takes (K, T, B, I) and returns ``(output (K, T, B, H),
    h_n)`` with ``h_n`` a list of per-layer final states (K, B, H) (``(h, c)`` for LSTM).
    Initial states are zeros.

    Examples
    --------
    >>> rnn = BatchedMaskedRNN("gru", n_models=4, input_size=8, hidden_size=16, num_layers=2)
    >>> out, h_n = rnn(torch.zeros(4, 5, 3, 8))
    >>> tuple(out.shape), len(h_n)
    ((4, 5, 3, 16), 2)
    """

    def __init__(
        self,
        mode: str,
        n_models: int,
        input_size: int,
        hidden_size: int | Sequence[int],
        num_layers: int | None = None,
        bias: bool = True,
    ) -> None:
        super().__init__()
        self.spec = cell_spec(mode)
        if n_models < 1:
            raise ConfigError(f"n_models={n_models} must be >= 1")
        if isinstance(hidden_size, int):
            sizes = [hidden_size] * (1 if num_layers is None else num_layers)
        else:
            sizes = [int(h) for h in hidden_size]
        if not sizes or min(sizes) < 1 or input_size < 1:
            raise ConfigError(f"sizes must be positive (input_size={input_size}, {sizes})")
        self.mode = self.spec.name
        self.n_models = int(n_models)
        self.input_size = int(input_size)
        self.hidden_sizes = tuple(sizes)
        self.num_layers = len(sizes)
        self.bias = bias
        g = self.spec.gates
        in_sizes = [self.input_size, *sizes[:-1]]
        for k, (i, h) in enumerate(zip(in_sizes, sizes, strict=True)):
            for kind, cols in (("ih", i), ("hh", h)):
                shape = (self.n_models, g * h, cols)
                self.register_parameter(f"weight_{kind}_l{k}", nn.Parameter(torch.empty(shape)))
                self.register_buffer(
                    f"weight_{kind}_l{k}_mask", torch.ones(shape, dtype=torch.bool)
                )
            if bias:
                for kind in ("ih", "hh"):
                    p = nn.Parameter(torch.empty(self.n_models, g * h))
                    self.register_parameter(f"bias_{kind}_l{k}", p)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Every weight and bias ~ U(-1/sqrt(H), 1/sqrt(H)) per layer (as ``torch.nn.RNN``)."""
        with torch.no_grad():
            for k, h in enumerate(self.hidden_sizes):
                for name in self._param_names(k):
                    getattr(self, name).uniform_(-1 / math.sqrt(h), 1 / math.sqrt(h))
            self.apply_masks_()

    def _param_names(self, k: int) -> list[str]:
        names = [f"weight_ih_l{k}", f"weight_hh_l{k}"]
        return names + ([f"bias_ih_l{k}", f"bias_hh_l{k}"] if self.bias else [])

    def weight_names(self) -> list[str]:
        """Names of the maskable weights, as in :meth:`MaskedRNN.weight_names`."""
        return [f"weight_{kind}_l{k}" for k in range(self.num_layers) for kind in ("ih", "hh")]

    @torch.no_grad()
    def apply_masks_(self) -> None:
        """Zero every masked entry of the stored weights."""
        for name in self.weight_names():
            getattr(self, name).mul_(getattr(self, f"{name}_mask"))

    def layer_weights(self) -> list[tuple[Tensor, Tensor, Tensor | None, Tensor | None]]:
        """Per layer ``(w_ih, w_hh, b_ih, b_hh)`` stacked over models, masks applied.

        Where the cell allows it (:meth:`CellSpec.fold_biases`: all but GRU) both biases are
        returned summed as ``b_ih``, with ``b_hh`` None.
        """
        out = masked_layer_weights(self, self.num_layers, self.bias)
        return [(w_ih, w_hh, *self.spec.fold_biases(b_ih, b_hh)) for w_ih, w_hh, b_ih, b_hh in out]

    def forward(self, x: Tensor) -> tuple[Tensor, list]:
        """Run the K stacks over ``x`` (K, T, B, I); see the class docstring."""
        if x.dim() != 4 or x.shape[0] != self.n_models or x.shape[-1] != self.input_size:
            raise ValueError(
                f"expected input of shape ({self.n_models}, T, B, {self.input_size}), "
                f"got {tuple(x.shape)}"
            )
        weights = self.layer_weights()
        return self.run_from_gates(input_gates(x, weights[0][0], weights[0][2]), weights)

    def run_from_gates(self, gi: Tensor, weights: list | None = None) -> tuple[Tensor, list]:
        """Like :meth:`forward`, from the first layer's input gates ``x @ w_ih^T + b_ih``."""
        weights = self.layer_weights() if weights is None else weights
        final: list = []
        out = gi
        for k, (w_ih, w_hh, b_ih, b_hh) in enumerate(weights):
            gi = input_gates(out, w_ih, b_ih) if k > 0 else gi
            out, h_n, c_n = fused_recurrence(self.spec, gi, w_hh, b_hh)  # out (K, T, B, H)
            final.append((h_n, c_n) if self.spec.has_cell_state else h_n)
        return out, final

    # ------------------------------------------------------------------ to and from MaskedRNN
    @classmethod
    def from_modules(cls, modules: Sequence[MaskedRNN]) -> BatchedMaskedRNN:
        """Stack the weights and masks of MaskedRNNs of identical shape (copies)."""
        first = modules[0]
        for m in modules:
            if not isinstance(m, MaskedRNN):
                raise ConfigError(f"expected MaskedRNN modules, got {type(m).__name__}")
            if (m.mode, m.input_size, m.hidden_sizes, m.bias) != (
                first.mode,
                first.input_size,
                first.hidden_sizes,
                first.bias,
            ):
                raise ConfigError("all modules must have the same mode, sizes and bias")
            if m.dropout > 0:
                raise ConfigError("dropout is not supported when training models together")
            if m.bidirectional:
                raise ConfigError("bidirectional models cannot be trained together (one by one)")
        new = cls(first.mode, len(modules), first.input_size, first.hidden_sizes, bias=first.bias)
        new = new.to(next(first.parameters()).device)
        with torch.no_grad():
            for name, value in new.state_dict().items():
                value.copy_(torch.stack([m.state_dict()[name] for m in modules]))
        return new

    @torch.no_grad()
    def copy_to(self, modules: Sequence[MaskedRNN]) -> None:
        """Write model ``i``'s weights (and masks) back into ``modules[i]``."""
        if len(modules) != self.n_models:
            raise ConfigError(f"got {len(modules)} modules for {self.n_models} models")
        for name, value in self.state_dict().items():
            for i, m in enumerate(modules):
                getattr(m, name).copy_(value[i])


def input_gates(x: Tensor, w_ih: Tensor, b_ih: Tensor | None) -> Tensor:
    """``x`` (K, T, B, I) -> (K, T, B, G) = x @ w_ih^T + b_ih, as one batched matmul."""
    k, t_len, batch, n_in = x.shape
    flat = x.reshape(k, t_len * batch, n_in)
    if b_ih is None:
        gi = torch.bmm(flat, w_ih.transpose(1, 2))
    else:
        gi = torch.baddbmm(b_ih.unsqueeze(1), flat, w_ih.transpose(1, 2))
    return gi.view(k, t_len, batch, -1)


def clip_grad_norm_per_model_(parameters: Iterable[Tensor], max_norm: float) -> Tensor:
    """Clip each model's gradient norm separately; return the K norms before clipping.

    Every parameter has a leading model axis of size K. Model ``i``'s total norm is the 2-norm
    over all of its gradients, and its gradients are scaled by
    ``min(1, max_norm / (norm + 1e-6))``: ``torch.nn.utils.clip_grad_norm_`` on that model alone.
    """
    grads = [p.grad for p in parameters if p.grad is not None]
    if not grads:
        return torch.zeros(0)
    k = grads[0].shape[0]
    norms = torch.stack([torch.linalg.vector_norm(g.reshape(k, -1), 2, dim=1) for g in grads], 1)
    total = torch.linalg.vector_norm(norms, 2, dim=1)  # (K,)
    coef = (max_norm / (total + 1e-6)).clamp(max=1.0)
    for g in grads:
        g.mul_(coef.view(k, *([1] * (g.dim() - 1))))
    return total
