"""Each recurrent cell described once (:class:`CellSpec`), and its math, with PyTorch's gate order.

:data:`CELLS` is the one list of cells the package knows; :func:`cell_spec` is the one place a
cell name is validated, so every layer (config, models, modules) reports an unknown cell with the
same message. The attributes of a :class:`CellSpec` (gates, cell state, bias folding, fused CPU
path) are what the fast paths branch on, instead of comparing cell names.

:func:`cell_step` is the readable per-time-step definition of the cells (``nn.RNN`` tanh/ReLU,
``nn.GRU`` with gates (r, z, n), ``nn.LSTM`` with gates (i, f, g, o)). The fast paths in
:mod:`sparsernn.nn.functional` call PyTorch's fused kernels or hand-fused recurrences instead;
slow references in the tests and benchmarks call this function so that both are checked against
the same equations.

This module imports torch only when a cell is run or a torch class is asked for: the command line
reads :data:`CELLS` without paying for torch's import.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Literal, Union

from sparsernn.errors import ConfigError

if TYPE_CHECKING:
    from torch import Tensor, nn

__all__ = ["CellSpec", "CELLS", "MODES", "GATES", "cell_spec", "cell_step", "zero_state"]

State = Union["Tensor", tuple["Tensor", "Tensor"]]
Family = Literal["rnn", "gru", "lstm"]


@dataclass(frozen=True)
class CellSpec:
    """What distinguishes one recurrent cell from another, in one record.

    Attributes
    ----------
    name : the package's name of the cell (``"rnn_tanh"``, ``"rnn_relu"``, ``"gru"``, ``"lstm"``).
    torch_mode : ``torch.nn.RNNBase.mode`` of the matching PyTorch module (``"RNN_TANH"``, ...).
    family : the equations: ``"rnn"`` (Elman), ``"gru"`` or ``"lstm"``.
    gates : stacked gate blocks in each weight matrix (rows are ``gates * hidden``).
    has_cell_state : the state is ``(h, c)`` (LSTM) rather than ``h``.
    nonlinearity : the Elman activation (``"tanh"`` / ``"relu"``, ``nn.RNN``'s argument), else None.
    folds_b_hh : ``b_hh`` adds to the same pre-activation as ``b_ih``, so the two may be summed
        once per forward; false for GRU, whose ``b_hn`` sits inside ``r * (W_hn h + b_hn)``.
    fused_cpu : on CPU the hand-fused recurrence
        (:func:`~sparsernn.nn.functional.fused_recurrence`) beats PyTorch's kernel, so
        :func:`~sparsernn.nn.functional.run_layers` uses it and a study trains its pruning points
        together (``bundle = 0``). False for LSTM: oneDNN's fused LSTM is faster.
    """

    name: str
    torch_mode: str
    family: Family
    gates: int
    has_cell_state: bool
    nonlinearity: str | None
    folds_b_hh: bool
    fused_cpu: bool

    @property
    def torch_class(self) -> Callable[..., nn.RNNBase]:
        """``torch.nn.RNN``, ``torch.nn.GRU`` or ``torch.nn.LSTM``."""
        from torch import nn

        return {"rnn": nn.RNN, "gru": nn.GRU, "lstm": nn.LSTM}[self.family]

    @property
    def torch_kwargs(self) -> dict[str, Any]:
        """Extra keyword arguments :attr:`torch_class` needs (``nonlinearity`` for ``nn.RNN``)."""
        return {} if self.nonlinearity is None else {"nonlinearity": self.nonlinearity}

    def fold_biases(
        self, b_ih: Tensor | None, b_hh: Tensor | None
    ) -> tuple[Tensor | None, Tensor | None]:
        """``(b_ih + b_hh, None)`` where the cell allows it (:attr:`folds_b_hh`), else unchanged.

        One addition per forward instead of one per time step; the function is the same.
        """
        if not self.folds_b_hh or b_hh is None:
            return b_ih, b_hh
        return (b_hh if b_ih is None else b_ih + b_hh), None

    def hidden(self, state: State) -> Tensor:
        """The hidden state ``h`` of a state (``h`` itself, or ``h`` of ``(h, c)``)."""
        return state[0] if isinstance(state, tuple) else state

    def zero_state(self, batch: int, hidden: int, like: Tensor) -> State:
        """The study's initial state: zeros (and a zero cell state for LSTM)."""
        h = like.new_zeros(batch, hidden)
        return (h, h.clone()) if self.has_cell_state else h


def _spec(name: str, family: Family, gates: int, nonlinearity: str | None = None) -> CellSpec:
    return CellSpec(
        name=name,
        torch_mode=name.upper(),
        family=family,
        gates=gates,
        has_cell_state=family == "lstm",
        nonlinearity=nonlinearity,
        folds_b_hh=family != "gru",
        fused_cpu=family != "lstm",
    )


#: Every cell the package knows, by name, in the order the study's figures list them.
CELLS: Mapping[str, CellSpec] = MappingProxyType(
    {
        "rnn_tanh": _spec("rnn_tanh", "rnn", 1, "tanh"),
        "rnn_relu": _spec("rnn_relu", "rnn", 1, "relu"),
        "gru": _spec("gru", "gru", 3),
        "lstm": _spec("lstm", "lstm", 4),
    }
)
#: The cell names (``tuple(CELLS)``).
MODES: tuple[str, ...] = tuple(CELLS)
#: Number of stacked gate blocks in each weight matrix, by cell name.
GATES: Mapping[str, int] = MappingProxyType({name: s.gates for name, s in CELLS.items()})


def cell_spec(cell: str | CellSpec) -> CellSpec:
    """The :class:`CellSpec` of a cell name (a spec is returned as is).

    Raises
    ------
    ConfigError
        ``unknown cell 'x'; choose one of rnn_tanh, rnn_relu, gru, lstm``: the one message for
        an unknown cell anywhere in the package.
    """
    if isinstance(cell, CellSpec):
        return cell
    try:
        return CELLS[cell]
    except (KeyError, TypeError):
        raise ConfigError(f"unknown cell {cell!r}; choose one of {', '.join(MODES)}") from None


def spec_of_torch(module: nn.RNNBase) -> CellSpec:
    """The :class:`CellSpec` of a ``torch.nn.RNN/GRU/LSTM`` module (from its ``mode``)."""
    for spec in CELLS.values():
        if spec.torch_mode == module.mode:
            return spec
    raise ConfigError(f"torch module mode {module.mode!r} has no matching cell")


# ------------------------------------------------------------------------------ the math
def _elman(spec: CellSpec, gi: Tensor, gh: Tensor, state: State) -> State:
    return getattr(gi + gh, spec.nonlinearity or "tanh")()  # Tensor.tanh / Tensor.relu


def _gru(spec: CellSpec, gi: Tensor, gh: Tensor, state: State) -> State:
    h = spec.hidden(state)
    i_r, i_z, i_n = gi.chunk(3, dim=1)
    h_r, h_z, h_n = gh.chunk(3, dim=1)
    r = (i_r + h_r).sigmoid()
    z = (i_z + h_z).sigmoid()
    n = (i_n + r * h_n).tanh()
    return (1 - z) * n + z * h


def _lstm(spec: CellSpec, gi: Tensor, gh: Tensor, state: State) -> State:
    c = state[1]
    i, f, g, o = (gi + gh).chunk(4, dim=1)
    c_new = f.sigmoid() * c + i.sigmoid() * g.tanh()
    h_new = o.sigmoid() * c_new.tanh()
    return h_new, c_new


_STEPS = {"rnn": _elman, "gru": _gru, "lstm": _lstm}


def cell_step(
    mode: str | CellSpec,
    x: Tensor,
    state: State,
    w_ih: Tensor,
    w_hh: Tensor,
    b_ih: Tensor | None,
    b_hh: Tensor | None,
) -> State:
    """One time step: ``x`` (B, I), ``state`` (B, H) or ``(h, c)`` for LSTM -> the new state."""
    from torch.nn.functional import linear

    spec = cell_spec(mode)
    gi = linear(x, w_ih, b_ih)  # (B, G*H)
    gh = linear(spec.hidden(state), w_hh, b_hh)  # (B, G*H)
    return _STEPS[spec.family](spec, gi, gh, state)


def zero_state(mode: str | CellSpec, batch: int, hidden: int, like: Tensor) -> State:
    """The study's initial state: zeros (and a zero cell state for LSTM)."""
    return cell_spec(mode).zero_state(batch, hidden, like)
