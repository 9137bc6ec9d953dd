"""The one protocol every sparsity method follows, and what a study offers a method.

A method is one class (jaxpruner's split, for RNNs in PyTorch): it computes keep-masks and
never trains. :meth:`SparsityMethod.initial_masks` gives the masks at the start (None: start
dense); :meth:`SparsityMethod.update` the masks after optimizer step ``step`` (None: unchanged);
its options are one frozen dataclass (:attr:`SparsityMethod.options_class`). Installing the
masks, zeroing an optimizer's state and re-applying the masks after every step is the caller's
job: :class:`~sparsernn.sparsity.Sparsifier` in a user's loop, the study's pruning units in
:mod:`sparsernn.experiments.methods`. A study runs a method through
:meth:`SparsityMethod.for_study`, given a :class:`StudyUnit`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any, ClassVar, Protocol

from torch import Tensor, nn

from sparsernn.errors import ConfigError
from sparsernn.sparsity.scores import check_sparsity, install_masks, selected_weights

__all__ = ["Masks", "Gradients", "NoOptions", "SparsityMethod", "StudyUnit", "check_count"]

#: Keep-masks (True = keep) by qualified weight name, e.g. ``encoder.lstm.weight_hh_l0``.
Masks = dict[str, Tensor]
#: Returns ``dL/dw`` at every entry of the selected weights (masked ones too), by name.
Gradients = Callable[[], dict[str, Tensor]]


def check_count(name: str, value: object, least: int) -> None:
    """Refuse an option that is not an integer >= ``least`` (a bool is not one), in one line."""
    if isinstance(value, bool) or not isinstance(value, int) or value < least:
        raise ConfigError(f"{name}={value!r} must be an integer >= {least}")


@dataclasses.dataclass(frozen=True)
class NoOptions:
    """The options of a method that has none."""


class StudyUnit(Protocol):
    """What a study's pruning unit offers a method (:mod:`sparsernn.experiments.methods` makes
    one per unit): the trained base model, the unit's settings, seeded batches and training."""

    @property
    def model(self) -> nn.Module:
        """The trained base model (the unit's own copy)."""

    @property
    def sparsity(self) -> float:
        """The unit's ``amount`` as a fraction."""

    @property
    def target(self) -> str: ...

    @property
    def scope(self) -> str: ...

    @property
    def options(self) -> dict[str, Any]:
        """The unit's ``method_options`` (:attr:`SparsityMethod.study_options`)."""

    @property
    def seed(self) -> int: ...

    @property
    def total_steps(self) -> int:
        """Optimizer steps of the unit's (re)training."""

    def seed_for(self, *parts: object) -> int:
        """A seed derived from the unit's seed and ``parts``."""

    def batches(self, seed: int, n_batches: int, *parts: object) -> list[tuple[Tensor, Tensor]]:
        """``n_batches`` random training batches, drawn with a seed derived from ``seed`` and
        ``parts``."""

    def init_model(self) -> nn.Module:
        """The base model as it was initialised, before its training."""

    def train(self, model: nn.Module, epochs: int | None = None) -> None:
        """Train ``model`` with the unit's training config (masks kept), ``epochs`` if given."""


class SparsityMethod:
    """A sparsity method: initial masks, a per-step update and its options.

    Parameters
    ----------
    model : the model whose :class:`~sparsernn.nn.MaskedRNN` weights are masked.
    sparsity : fraction in [0, 1] of the selected weights to remove.
    target : ``"both"``, ``"i2h"`` or ``"h2h"`` (:data:`~sparsernn.sparsity.TARGETS`).
    scope : ``"global"``, ``"layer"`` or ``"gate"`` (:data:`~sparsernn.sparsity.SCOPES`).
    options : an instance of :attr:`options_class` (None: its defaults).
    seed : seeds every random choice of the method.
    gradients : where a method that scores by gradient gets ``dL/dw`` (:data:`Gradients`).

    A subclass sets the class attributes and overrides :meth:`initial_masks` and/or
    :meth:`update` (and :meth:`state_dict` / :meth:`load_state_dict` when it keeps state
    beyond the step count, and :meth:`for_study` when a study runs it differently).
    """

    #: The registry name (:data:`~sparsernn.sparsity.METHODS`).
    name: ClassVar[str] = ""
    #: One line for tables and docs.
    summary: ClassVar[str] = ""
    #: The frozen dataclass of its options.
    options_class: ClassVar[type] = NoOptions
    #: It calls :meth:`gradients` (in a user's loop, the gradient of the backward passes
    #: since the last step is then kept for it, unless ``loss_fn`` is given).
    uses_gradients: ClassVar[bool] = False
    #: The masks are set once at the start and never change (a study may then retrain its
    #: pruning points together, and needs no per-step hook).
    one_shot: ClassVar[bool] = False
    #: A study trains it for the base model's epochs rather than ``retrain_epochs``.
    from_scratch: ClassVar[bool] = False
    #: The :class:`~sparsernn.experiments.config.PruningConfig` fields a study's unit carries
    #: as ``method_options`` (part of its run key); None: studies do not run the method.
    study_options: ClassVar[tuple[str, ...] | None] = None

    def __init__(
        self,
        model: nn.Module,
        sparsity: float,
        target: str = "both",
        scope: str = "global",
        options: Any = None,
        *,
        seed: int = 0,
        gradients: Gradients | None = None,
    ) -> None:
        check_sparsity(sparsity, target, scope)
        options = self.options_class() if options is None else options
        if not isinstance(options, self.options_class):
            raise ConfigError(
                f"method {self.name!r} takes {self.options_class.__name__} options, "
                f"not {type(options).__name__}"
            )
        selected_weights(model, target)  # refuses a model without recurrent weights
        self.model, self.sparsity, self.target, self.scope = model, sparsity, target, scope
        self.options: Any = options  # an instance of options_class
        self.seed = int(seed)
        self._gradients = gradients

    # ------------------------------------------------------------------ the protocol
    def initial_masks(self) -> Masks | None:
        """The masks at the start of training (None: start dense)."""
        return None

    def update(self, step: int) -> Masks | None:
        """The masks after optimizer step ``step`` (0-based); None: unchanged."""
        return None

    def state_dict(self) -> dict[str, Any]:
        """What, besides the model's masks and the step count, resumes the method exactly."""
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict`."""

    # ------------------------------------------------------------------ helpers for methods
    def gradients(self) -> dict[str, Tensor]:
        """``dL/dw`` at every entry of the selected weights, from the source given."""
        if self._gradients is None:
            raise ConfigError(
                f"method {self.name!r} scores weights by their gradient but has no gradient "
                "source: pass loss_fn= to sparsify, or let it prune after a backward pass"
            )
        return self._gradients()

    def start(self) -> Masks | None:
        """Install :meth:`initial_masks` (if any) and return them."""
        masks = self.initial_masks()
        return None if masks is None else install_masks(self.model, masks)

    def __call__(self, step: int, model: nn.Module) -> None:
        """The training engine's step hook (:data:`sparsernn.train.StepHook`): install the
        masks :meth:`update` returns."""
        masks = self.update(step)
        if masks is not None:
            install_masks(self.model, masks)

    # ------------------------------------------------------------------ studies
    @classmethod
    def options_for_study(cls, unit: StudyUnit) -> Any:
        """The method's options from a study unit's ``method_options`` (default: its fields
        of the same names)."""
        return cls.options_class(**unit.options)

    @classmethod
    def for_study(cls, unit: StudyUnit) -> tuple[nn.Module, SparsityMethod | None]:
        """Start a study unit: the model to (re)train with its starting masks installed, and
        the method to run after every optimizer step (None: the masks stay as they are).

        The default prunes the trained base model at the start and keeps the mask; the seed
        is derived from the unit's seed and the method's name.
        """
        method = cls(
            unit.model,
            unit.sparsity,
            unit.target,
            unit.scope,
            cls.options_for_study(unit),
            seed=unit.seed_for(cls.name),
        )
        method.start()
        return unit.model, (None if cls.one_shot else method)
