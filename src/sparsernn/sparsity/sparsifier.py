"""Sparsity for your own model, in your own training loop: :func:`sparsify`.

>>> import torch
>>> from torch import nn
>>> model = nn.Sequential(nn.Embedding(10, 4))
>>> model.rnn = nn.LSTM(4, 8, num_layers=2, batch_first=True)
>>> sp = sparsify(model, "magnitude", 0.5)
>>> type(model.rnn).__name__, round(float(sp.report()["sparsity"].mean()), 2)
('MaskedRNN', 0.5)

In the loop, call ``sp.step()`` after every ``optimizer.step()``. Every ``torch.nn.RNN``,
``GRU`` and ``LSTM`` of the model, at any depth, is replaced in place by an equivalent
:class:`~sparsernn.nn.MaskedRNN` holding the very same ``Parameter`` objects (so an optimizer
made before still trains them), and the method's masks are installed. ``sp.squash()`` gives
the plain ``torch.nn`` modules back, with the zeros baked in.
"""

from __future__ import annotations

import dataclasses
import weakref
from collections.abc import Callable
from typing import Any, cast

import pandas as pd
import torch
from torch import Tensor, nn

from sparsernn.errors import ConfigError
from sparsernn.nn.masked import MaskedRNN
from sparsernn.sparsity.base import Gradients, SparsityMethod
from sparsernn.sparsity.registry import method_class
from sparsernn.sparsity.report import sparsity_report
from sparsernn.sparsity.scores import (
    check_sparsity,
    install_masks,
    loss_gradients,
    selected_weights,
)

__all__ = ["sparsify", "Sparsifier"]

#: The module types :func:`sparsify` replaces (exactly these: a subclass may compute otherwise).
_TORCH_RNNS = (nn.RNN, nn.GRU, nn.LSTM)
#: Which live Sparsifier owns a MaskedRNN (weak both ways: neither keeps the other alive).
_OWNERS: weakref.WeakKeyDictionary[MaskedRNN, weakref.ref[Sparsifier]] = weakref.WeakKeyDictionary()

#: ``(parent module, attribute name, torch RNN module)``: one place such a module is held.
_Place = tuple[nn.Module, str, nn.RNNBase]


def sparsify(
    model: nn.Module,
    method: str | type[SparsityMethod],
    sparsity: float,
    target: str = "both",
    scope: str = "gate",
    *,
    optimizer: torch.optim.Optimizer | None = None,
    loss_fn: Callable[[], Tensor] | None = None,
    seed: int = 0,
    options: Any = None,
    **option_values: Any,
) -> Sparsifier:
    """Make the recurrent layers of ``model`` sparse with ``method``; return its Sparsifier.

    Parameters
    ----------
    model : any ``nn.Module`` holding ``torch.nn.RNN/GRU/LSTM`` (or MaskedRNN) modules, at any
        depth. They are replaced in place by MaskedRNNs that share their parameters and compute
        the same outputs until the first mask is set.
    method : a name of :data:`~sparsernn.sparsity.METHODS` (``"magnitude"``, ``"rigl"``, ...)
        or a :class:`~sparsernn.sparsity.SparsityMethod` subclass of your own.
    sparsity : fraction in [0, 1] of the selected recurrent weights to remove (for ``units``,
        of the hidden units). Biases, embeddings and other layers are never pruned.
    target : ``"both"``, ``"i2h"`` (input-to-hidden) or ``"h2h"`` (hidden-to-hidden).
    scope : where one threshold applies: ``"gate"`` (each gate block of each matrix: every
        matrix and gate gets the asked sparsity), ``"layer"`` (each matrix) or ``"global"``.
    optimizer : the optimizer training the model; its state of pruned weights (Adam's moments,
        SGD's momentum, any per-entry state) is zeroed whenever masks change, so that no
        momentum revives them. May be set later (``sp.optimizer = opt``).
    loss_fn : for the methods that score by gradient (``snip``, ``rigl``): returns a loss of
        the model, whose gradient (masks opened) they use. Without it they use the gradient
        of the backward passes run since the last ``sp.step()``.
    seed : seeds every random choice of the method.
    options, option_values : the method's options, as its options dataclass or as keywords
        (e.g. ``update_every=100, end_step=3000`` for ``rigl``).

    Bad input raises :class:`~sparsernn.errors.ConfigError` with one line naming the problem;
    the model is then left as it was.
    """
    _check_model(model)
    cls = _method_class(method)
    check_sparsity(sparsity, target, scope)
    opts = _options(cls, options, option_values)
    places = _torch_rnn_places(model)
    _refuse_sparsified(model)
    _swap_in(places)
    try:
        return Sparsifier(model, cls, sparsity, target, scope, opts, seed, optimizer, loss_fn)
    except BaseException:
        _swap_back(model, places)
        raise


def _check_model(model: Any) -> None:
    """Refuse, in one line, what is not a module or cannot be replaced in place."""
    if not isinstance(model, nn.Module):
        raise ConfigError(f"sparsify needs a torch.nn.Module, got {type(model).__name__}")
    if isinstance(model, nn.RNNBase):
        raise ConfigError(
            f"model is itself a torch.nn.{type(model).__name__}, which cannot be replaced in "
            "place: pass the module that holds it, or use MaskedRNN.from_torch(model)"
        )


def _method_class(method: str | type[SparsityMethod]) -> type[SparsityMethod]:
    """A SparsityMethod subclass as given, or the registered class of a method name."""
    if isinstance(method, type) and issubclass(method, SparsityMethod):
        return method
    return method_class(method)


def _refuse_sparsified(model: nn.Module) -> None:
    """Refuse a model whose MaskedRNNs a live Sparsifier already owns."""
    for mod in [m for m in model.modules() if isinstance(m, MaskedRNN)]:
        owner = _owner(mod)
        if owner is not None:
            raise ConfigError(
                f"model is already sparsified (method {owner.method.name!r}): keep using that "
                "Sparsifier, or call its squash() first"
            )


def _swap_back(model: nn.Module, places: list[_Place]) -> None:
    """Undo :func:`_swap_in`: the torch modules back in their places, as they were."""
    for parent, attr, old in places:
        setattr(parent, attr, old)
    for module in model.modules():
        if isinstance(module, MaskedRNN):
            module.track_dense_grads(False)


def _options(cls: type[SparsityMethod], options: Any, values: dict[str, Any]) -> Any:
    """The method's options from an options object or keywords (not both), checked."""
    if options is not None and values:
        raise ConfigError("give the method's options either as options= or as keywords, not both")
    if options is not None:
        return options
    known = [f.name for f in dataclasses.fields(cls.options_class)]
    unknown = sorted(set(values) - set(known))
    if unknown:
        listed = ", ".join(known) if known else "none"
        raise ConfigError(
            f"method {cls.name!r} has no option {unknown[0]!r}; its options are: {listed}"
        )
    return cls.options_class(**values)


def _torch_rnn_places(model: nn.Module) -> list[_Place]:
    """Every place a ``torch.nn.RNN/GRU/LSTM`` is held in ``model``; refuses, in one line,
    one that cannot be replaced (a subclass, a projection, torch's pruning on it)."""
    places: list[_Place] = []
    for prefix, parent in model.named_modules(remove_duplicate=False):
        for attr, child in parent._modules.items():
            if not isinstance(child, nn.RNNBase):
                continue
            where = f"{prefix}.{attr}" if prefix else attr
            if type(child) not in _TORCH_RNNS:
                raise ConfigError(
                    f"{where} is a {type(child).__name__}, a subclass of torch.nn.RNNBase that "
                    "sparsify cannot replace: only torch.nn.RNN, GRU and LSTM themselves"
                )
            if child.proj_size:
                raise ConfigError(
                    f"{where}: proj_size={child.proj_size} is not supported by MaskedRNN; use "
                    "proj_size=0 and a torch.nn.Linear on the output"
                )
            pruned = [n for n, _ in child.named_parameters() if n.endswith("_orig")]
            if pruned:
                raise ConfigError(
                    f"{where} is under torch.nn.utils.prune ({pruned[0]}): sparsify first and "
                    "prune afterwards, or call torch.nn.utils.prune.remove on it"
                )
            places.append((parent, attr, cast(nn.RNNBase, child)))
    if not places and not any(isinstance(m, MaskedRNN) for m in model.modules()):
        raise ConfigError(
            f"{type(model).__name__} contains no torch.nn.RNN, GRU or LSTM (nor a MaskedRNN): "
            "nothing to sparsify"
        )
    return places


def _swap_in(places: list[_Place]) -> None:
    """Replace each place's torch module by a MaskedRNN sharing its parameters (one per
    module, also where a module is held twice)."""
    made: dict[int, MaskedRNN] = {}
    for parent, attr, old in places:
        new = made.get(id(old))
        if new is None:
            new = made[id(old)] = MaskedRNN.from_torch(old, share_parameters=True)
            new.train(old.training)
        setattr(parent, attr, new)


def _owner(module: MaskedRNN) -> Sparsifier | None:
    ref = _OWNERS.get(module)
    owner = None if ref is None else ref()
    return None if owner is None or owner.squashed else owner


class Sparsifier:
    """A sparsity method at work on a model in a user's own loop (made by :func:`sparsify`).

    ``step()`` after every ``optimizer.step()``; ``report()``, ``squash()``, ``state_dict()``
    and ``load_state_dict()``. Attributes: ``model``, ``method`` (the
    :class:`~sparsernn.sparsity.SparsityMethod` instance), ``modules`` (its MaskedRNNs),
    ``n_steps`` (steps taken) and ``optimizer``.
    """

    def __init__(
        self,
        model: nn.Module,
        cls: type[SparsityMethod],
        sparsity: float,
        target: str,
        scope: str,
        options: Any,
        seed: int,
        optimizer: torch.optim.Optimizer | None,
        loss_fn: Callable[[], Tensor] | None,
    ) -> None:
        self.model = model
        self.modules = [m for m in model.modules() if isinstance(m, MaskedRNN)]
        self.n_steps = 0
        self.squashed = False
        self._optimizer = optimizer
        self._tapping = cls.uses_gradients and loss_fn is None
        gradients: Gradients
        if loss_fn is not None:
            gradients = lambda: loss_gradients(model, [loss_fn], target)  # noqa: E731
        else:
            gradients = self.kept_gradients
        for mod in self.modules:
            mod.track_dense_grads(self._tapping)
        self.method = cls(model, sparsity, target, scope, options, seed=seed, gradients=gradients)
        masks = self.method.start()
        if masks is not None:
            self._zero_optimizer_state()
        for mod in self.modules:
            _OWNERS[mod] = weakref.ref(self)

    def __repr__(self) -> str:
        m = self.method
        return (
            f"Sparsifier({m.name!r}, sparsity={m.sparsity:g}, target={m.target!r}, "
            f"scope={m.scope!r}, {len(self.modules)} recurrent modules, {self.n_steps} steps)"
        )

    # ------------------------------------------------------------------ the loop
    @property
    def optimizer(self) -> torch.optim.Optimizer | None:
        """The optimizer whose state of pruned weights is zeroed; setting one zeroes it now."""
        return self._optimizer

    @optimizer.setter
    def optimizer(self, optimizer: torch.optim.Optimizer | None) -> None:
        self._optimizer = optimizer
        self._zero_optimizer_state()

    @torch.no_grad()
    def step(self) -> None:
        """Call after every ``optimizer.step()``: re-apply the masks (masked weights exactly
        zero whatever the optimizer did) and run the method's schedule or regrowth."""
        self._check_live()
        for mod in self.modules:
            mod.apply_masks_()
        masks = self.method.update(self.n_steps)
        if masks is not None:
            install_masks(self.model, masks)
            self._zero_optimizer_state()
        self.n_steps += 1
        for mod in self.modules:
            mod.track_dense_grads(self._tapping)  # a fresh sum for the next step

    def kept_gradients(self) -> dict[str, Tensor]:
        """``dL/d(w * mask)`` summed over the backward passes since the last step, by qualified
        name: what ``snip`` and ``rigl`` score by when no ``loss_fn`` was given."""
        out = {}
        for qual, mod, name in selected_weights(self.model, self.method.target):
            grad = (mod.dense_grads or {}).get(name)
            if grad is None:
                raise ConfigError(
                    f"method {self.method.name!r} needs the gradient of a backward pass and "
                    f"none ran since the last step ({qual}): call sp.step() after "
                    "loss.backward(), or pass loss_fn= to sparsify"
                )
            out[qual] = grad
        return out

    @torch.no_grad()
    def _zero_optimizer_state(self) -> None:
        """Zero every per-entry optimizer state (momentum, moments) of the masked entries."""
        if self._optimizer is None:
            return
        for mod in self.modules:
            for name, mask in mod.masks():
                state = self._optimizer.state.get(mod.trainable(name), {})
                for value in state.values():
                    if torch.is_tensor(value) and value.shape == mask.shape:
                        value.mul_(mask)

    # ------------------------------------------------------------------ reading and leaving
    def report(self) -> pd.DataFrame:
        """Sparsity per layer, matrix and gate block (:func:`~sparsernn.sparsity.sparsity_report`
        with ``per_gate=True``)."""
        return sparsity_report(self.model, per_gate=True)

    @torch.no_grad()
    def squash(self, *, sparse: bool = False) -> nn.Module:
        """Replace every MaskedRNN of the model by a module without masks and return the model:
        a plain ``torch.nn.RNN/GRU/LSTM`` holding the same parameters with the masked entries
        zero (stock kernels), or with ``sparse=True`` a :class:`~sparsernn.nn.SparseRNN` that
        stores and computes only the kept weights (torch.nn's forward; smaller and, above the
        measured crossovers of ``docs/sparse.md``, faster on a CPU).

        The Sparsifier is spent afterwards; the model's state dict then has torch's keys only
        (``sparse=True``: SparseRNN's compressed ones).
        """
        self._check_live()
        make = _sparse_twin if sparse else _torch_twin
        plain = {}
        for prefix, mod in self.model.named_modules():
            if isinstance(mod, MaskedRNN):
                try:
                    plain[id(mod)] = make(mod).train(mod.training)
                except ConfigError as error:  # name the module as well
                    raise ConfigError(f"{prefix}.{error}" if prefix else str(error)) from None
        for _, parent in self.model.named_modules(remove_duplicate=False):
            for attr, child in list(parent._modules.items()):
                if id(child) in plain:
                    setattr(parent, attr, plain[id(child)])
        for mod in self.modules:
            mod.track_dense_grads(False)
        self.squashed = True
        return self.model

    def _check_live(self) -> None:
        if self.squashed:
            raise ConfigError(
                "this Sparsifier has squashed its model into torch.nn modules; call sparsify "
                "again to go on pruning"
            )

    # ------------------------------------------------------------------ resuming
    def state_dict(self) -> dict[str, Any]:
        """The method, its settings, the step count and the method's state; the masks are in
        the model's own state dict. Save both (and the optimizer's) to resume exactly."""
        m = self.method
        return {
            "method": m.name,
            "sparsity": m.sparsity,
            "target": m.target,
            "scope": m.scope,
            "seed": m.seed,
            "options": dataclasses.asdict(m.options),
            "n_steps": self.n_steps,
            "method_state": m.state_dict(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Resume from :meth:`state_dict` (of a Sparsifier made with the same arguments)."""
        mine = self.state_dict()
        for key in ("method", "sparsity", "target", "scope", "seed", "options"):
            if state.get(key) != mine[key]:
                raise ConfigError(
                    f"the state is of a Sparsifier with {key}={state.get(key)!r}, this one has "
                    f"{mine[key]!r}: make it with the same arguments"
                )
        self.n_steps = int(state["n_steps"])
        self.method.load_state_dict(state["method_state"])


def _torch_twin(module: MaskedRNN) -> nn.Module:
    return module.to_torch(share_parameters=True)


def _sparse_twin(module: MaskedRNN) -> nn.Module:
    from sparsernn.nn.sparse import SparseRNN

    return SparseRNN.from_module(module)
