"""The compiled layer schedule of the structure networks (their wide layers' time loops).

A structure network's wide layer (:mod:`sparsernn.nn.structured`) runs T small recurrent steps
per call; from Python each step costs ~20 torch calls, and a training step of a 50-node graph
makes ~24,000 of them (``docs/structure.md``). :func:`layer_schedule` runs a whole network's
wide layers and the sums of their sub-layers in one call each way (one autograd node) through
``_native/recurrence.cpp`` (with its included parts): each wide layer's loop, forward and the
hand-written backward, skipping the zero blocks of the block-diagonal h2h matrix, with the
batch as the innermost (vectorised) dimension. ``StructuredRNN`` uses it.

The library is built, cached, verified and checked by :mod:`sparsernn.nn._build` (the system's
C++ compiler; ~20 s of CPU time at -O3, minutes of wall time on a busy machine; a per-user
cache keyed by the assembled source, the flags, the compiler and the CPU; a SHA-256 checked
before ``dlopen``). Its ABI version is typed once, :data:`ABI_VERSION`, and given to the
compiler as ``-DSRNN_ABI=<n>``; a loaded library must report it, and its ``Layer`` and ``Net``
structs must match :class:`LayerArgs` and :class:`NetArgs` field by field (offsets the library
exports), else it is not used. ``make install`` builds it once (``python -m
sparsernn.nn.native``); a study builds it in its driver before any unit starts; otherwise the
first forward does. Without a compiler, with a library that fails a check, or with
``SPARSERNN_NATIVE=0``, :func:`available` is False, a one-line warning says why, and
:class:`~sparsernn.nn.StructuredRNN` runs the PyTorch path (the same function, slower).
"""

from __future__ import annotations

import ctypes
import subprocess
import sys
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property, lru_cache
from itertools import accumulate
from pathlib import Path

import torch
from torch import Tensor
from torch.autograd.function import once_differentiable

from sparsernn.nn._build import (
    NativeUnavailable,
    cache_dir,
    disabled,
    open_checked,
    verify,
)
from sparsernn.nn._build import build as build_library
from sparsernn.nn._build import cached as cached_library
from sparsernn.nn.cells import CellSpec

__all__ = [
    "ABI_VERSION",
    "available",
    "build",
    "cache_dir",
    "cached",
    "disabled",
    "fallback_line",
    "fallback_said",
    "open_library",
    "verify",
    "layer_schedule",
    "unavailable_reason",
    "NativeUnavailable",
    "Schedule",
    "Wiring",
]

SOURCE = Path(__file__).with_name("_native") / "recurrence.cpp"
#: The library's ABI version, typed only here: the build passes it as ``-DSRNN_ABI=<n>``.
ABI_VERSION = 12
_FAMILY = {("rnn", "tanh"): 0, ("rnn", "relu"): 1, ("gru", None): 2, ("lstm", None): 3}
_SAVED_ROWS = {"rnn": 0, "gru": 4, "lstm": 5}  # activations kept for backward, per unit


def build(force: bool = False, source: Path = SOURCE) -> Path:
    """Compile the library into the cache once (:func:`sparsernn.nn._build.build`, with
    ``-DSRNN_ABI``); the path of a library that passed :func:`verify`. Raises
    :class:`NativeUnavailable` naming the problem."""
    return build_library(source, {"SRNN_ABI": ABI_VERSION}, force=force)


def cached(source: Path = SOURCE) -> Path | None:
    """The verified cached library, or None when it has to be built."""
    return cached_library(source, {"SRNN_ABI": ABI_VERSION})


#: The fields of the C struct ``Layer``, in order: sizes (int64), then pointers.
_SIZES = ("family", "steps", "batch", "width", "gates", "in_size", "n_blocks")
_POINTERS = (
    *("offsets", "sizes", "row_ptr", "cols", "col_ptr", "rows"),  # the wiring
    *("x", "w_ih", "b_ih", "w_hh", "b_hh"),  # inputs
    *("hs", "cs", "acts"),  # forward results, saved for backward
    *("d_x", "d_w_ih", "d_b_ih", "d_w_hh", "d_b_hh"),  # backward
)


class LayerArgs(ctypes.Structure):
    """The C struct ``Layer`` of ``recurrence.cpp``: one wide layer's sizes, wiring and buffers
    (``x``, ``block_io``, ``d_x`` and ``add_d_x`` are set by the C side, by the schedule)."""

    _fields_ = [
        *((name, ctypes.c_int64) for name in _SIZES),
        *((name, ctypes.c_void_p) for name in _POINTERS),
        ("block_io", ctypes.c_void_p),
        ("add_d_x", ctypes.c_int64),
    ]


class NetArgs(ctypes.Structure):
    """The C struct ``Net`` of ``recurrence.cpp``: a whole layer schedule (:class:`Schedule`)."""

    _fields_ = [
        *((name, ctypes.c_int64) for name in ("n_wide", "n_layers", "steps", "batch", "in_size")),
        ("layers", ctypes.POINTER(LayerArgs)),
        *((name, ctypes.c_void_p) for name in ("source", "block_ptr", "block_dest")),
        *((name, ctypes.c_void_p) for name in ("sizes", "x", "outs", "g_outs", "d_x")),
    ]


#: The C structs the library shares with Python, checked field by field when it loads.
STRUCTS = {"Layer": LayerArgs, "Net": NetArgs}


def open_library(source: Path = SOURCE) -> ctypes.CDLL:
    """Build ``source`` if needed (:func:`build`), load the library that passed :func:`verify`
    and check its ABI version and struct layouts (:func:`sparsernn.nn._build.open_checked`);
    its functions declared. Raises :class:`NativeUnavailable` or :class:`OSError`."""
    lib = open_checked(source, ("SRNN_ABI", ABI_VERSION), "srnn", STRUCTS)
    for name in ("forward", "backward"):
        for suffix in ("f32", "f64"):
            fn = getattr(lib, f"srnn_net_{name}_{suffix}")
            fn.argtypes = [ctypes.POINTER(NetArgs)]
            fn.restype = None
    return lib


@lru_cache(maxsize=1)
def _library() -> ctypes.CDLL | str:
    """The loaded library, or the one-line reason it is unavailable."""
    if disabled():
        return "disabled by SPARSERNN_NATIVE=0"
    try:
        return open_library()
    except (NativeUnavailable, OSError, subprocess.SubprocessError) as exc:
        return str(exc)


_warned = False


def unavailable_reason() -> str | None:
    """Why the compiled kernel cannot be used here, or None when it can."""
    lib = _library()
    return lib if isinstance(lib, str) else None


def fallback_line(reason: str) -> str:
    """The one line that says the structure networks run the PyTorch path, and why."""
    return (
        f"sparsernn: compiled recurrence unavailable ({reason}); structure networks use the "
        "PyTorch path (same results, slower)"
    )


def fallback_said() -> None:
    """Someone (a study's driver) told the user why the compiled loop is unavailable: this
    process's first fallback does not warn again."""
    global _warned
    _warned = True


def available(warn: bool = True) -> bool:
    """Whether the compiled kernel is usable; the first False warns once with the reason."""
    global _warned
    reason = unavailable_reason()
    if reason is not None and warn and not _warned and "SPARSERNN_NATIVE" not in reason:
        _warned = True
        warnings.warn(fallback_line(reason), RuntimeWarning, stacklevel=2)
    return reason is None


@dataclass(frozen=True)
class Wiring:
    """Which weights of a wide layer exist: its diagonal h2h blocks and its i2h mask's rows.

    ``offsets``/``sizes`` (int64) are the blocks (units ``offset .. offset+size`` read only each
    other); ``row_ptr``/``cols`` list, for every weight row, the input columns its i2h mask
    keeps (compressed sparse rows), ``col_ptr``/``rows`` the same entries by column. Build it
    with :meth:`of`.
    """

    offsets: Tensor
    sizes: Tensor
    row_ptr: Tensor
    cols: Tensor
    col_ptr: Tensor
    rows: Tensor

    @classmethod
    def of(cls, blocks: Sequence[tuple[int, int]], ih_mask: Tensor) -> Wiring:
        """From ``(offset, size)`` blocks tiling the units and the (G*W, I) boolean i2h mask."""
        mask = ih_mask.detach().cpu().bool()
        row_ptr, cols = _compressed(mask)
        col_ptr, rows = _compressed(mask.t())
        return cls(
            offsets=torch.tensor([off for off, _ in blocks], dtype=torch.int64),
            sizes=torch.tensor([size for _, size in blocks], dtype=torch.int64),
            row_ptr=row_ptr,
            cols=cols,
            col_ptr=col_ptr,
            rows=rows,
        )


def _compressed(mask: Tensor) -> tuple[Tensor, Tensor]:
    """``(ptr, index)`` of a boolean matrix's True entries, row by row (CSR, int64)."""
    nz = mask.nonzero()  # row-major order
    counts = torch.bincount(nz[:, 0], minlength=mask.shape[0])
    ptr = torch.cat([counts.new_zeros(1), counts.cumsum(0)])
    return ptr.to(torch.int64), nz[:, 1].contiguous().to(torch.int64)


def _int64(values: Sequence[int]) -> Tensor:
    return torch.tensor(list(values), dtype=torch.int64)


@dataclass(frozen=True)
class Schedule:
    """A structure network's layer schedule as :func:`layer_schedule` runs it in one call.

    Wide layer ``k`` (wiring ``wirings[k]``) reads layer ``sources[k]`` (``-1``: the
    network's input) and its units are the sub-layers of ``dests[k]``, one destination layer
    after another (``sizes[l]`` units each); each layer's output is the sum of the sub-layers
    that write into it. Every layer a wide layer reads must be complete before it, so wide
    layers writing into a layer come before those reading it (checked here).
    """

    sizes: tuple[int, ...]
    sources: tuple[int, ...]
    dests: tuple[tuple[int, ...], ...]
    wirings: tuple[Wiring, ...]

    def __post_init__(self) -> None:
        if not len(self.sources) == len(self.dests) == len(self.wirings):
            raise ValueError("Schedule: sources, dests and wirings need one entry per wide layer")
        for k, s in enumerate(self.sources):
            writers = [j for j, d in enumerate(self.dests) if s in d]
            if any(j >= k for j in writers) or not all(0 <= l < len(self.sizes) and l > s
                                                       for l in self.dests[k]):  # fmt: skip
                raise ValueError(
                    f"Schedule: wide layer {k} (reading layer {s}) comes before a sub-layer "
                    "writing into its source, or writes into a layer not after its source"
                )
        for k, (wiring, dests) in enumerate(zip(self.wirings, self.dests, strict=True)):
            if wiring.sizes.tolist() != [self.sizes[l] for l in dests]:
                raise ValueError(
                    f"Schedule: wide layer {k}'s blocks {wiring.sizes.tolist()} are not its "
                    f"destination layers' sizes {[self.sizes[l] for l in dests]}"
                )

    @cached_property
    def _tables(self) -> dict[str, Tensor]:
        """The int64 tables the C side reads (kept alive with the schedule)."""
        return {
            "source": _int64(self.sources),
            "block_ptr": _int64(list(accumulate((len(d) for d in self.dests), initial=0))),
            "block_dest": _int64([l for d in self.dests for l in d]),
            "sizes": _int64(self.sizes),
        }

    def pointers(self) -> dict[str, int | None]:
        """The int64 tables' addresses, by the name of their ``NetArgs`` field."""
        return {name: _ptr(t) for name, t in self._tables.items()}


def _ptr(t: Tensor | None) -> int | None:
    return None if t is None or t.numel() == 0 else t.data_ptr()


def _call(name: str, args: NetArgs, dtype: torch.dtype) -> None:
    lib = _library()
    if isinstance(lib, str):
        raise NativeUnavailable(lib)
    suffix = "f64" if dtype == torch.float64 else "f32"
    getattr(lib, f"srnn_net_{name}_{suffix}")(ctypes.byref(args))


def _layer_args(
    spec: CellSpec, wiring: Wiring, steps: int, batch: int, weights: Sequence[Tensor | None]
) -> tuple[LayerArgs, tuple[Tensor, ...]]:
    """One layer's forward arguments (its input pointer left unset) and the buffers it fills:
    hidden states, LSTM cell states, and the activations backward reads."""
    w_ih, w_hh, b_ih, b_hh = weights
    assert w_ih is not None and w_hh is not None
    width = w_hh.shape[1]
    hs = w_ih.new_empty(steps + 1, width, batch)  # the kernel writes every entry
    cs = w_ih.new_empty(steps + 1 if spec.has_cell_state else 0, width, batch)
    acts = w_ih.new_empty(steps, _SAVED_ROWS[spec.family] * width, batch)
    args = LayerArgs(
        _FAMILY[(spec.family, spec.nonlinearity)], steps, batch, width, spec.gates,
        w_ih.shape[1], len(wiring.sizes), *map(_ptr, (
            wiring.offsets, wiring.sizes, wiring.row_ptr, wiring.cols, wiring.col_ptr,
            wiring.rows, None, w_ih, b_ih, w_hh, b_hh, hs, cs, acts,
        )),
    )  # fmt: skip
    return args, (hs, cs, acts)


def _save(ctx, *tensors: Tensor, weights: Sequence[Tensor | None]) -> None:
    """Save tensors and weights for backward through autograd, so that one changed in place
    before backward (an optimizer step, say) is an error, not a wrong gradient."""
    ctx.weight_slots = [w is not None for w in weights]
    ctx.save_for_backward(*tensors, *(w for w in weights if w is not None))


def _saved(ctx, n_tensors: int) -> tuple[list[Tensor], list[Tensor | None]]:
    """What :func:`_save` saved: the tensors, and the weights with their Nones back."""
    saved = list(ctx.saved_tensors)
    given = iter(saved[n_tensors:])
    return saved[:n_tensors], [next(given) if has else None for has in ctx.weight_slots]


def _grad_args(args: LayerArgs, weights: Sequence[Tensor | None]) -> list[Tensor | None]:
    """Point a layer's arguments at fresh gradient buffers for its weights; those buffers (in
    the weights' order). Entries outside the wiring are never written, so they start at 0."""
    grads = [None if w is None else (torch.zeros_like if i < 2 else torch.empty_like)(w)
             for i, w in enumerate(weights)]  # fmt: skip
    for name, t in zip(("d_w_ih", "d_w_hh", "d_b_ih", "d_b_hh"), grads, strict=True):
        setattr(args, name, _ptr(t))
    return grads


class _LayerSchedule(torch.autograd.Function):
    """A structure network's whole layer schedule through the compiled loop: one autograd
    node, one call forward and one backward (see :func:`layer_schedule`)."""

    @staticmethod
    def forward(ctx, spec, schedule, x, *weights):
        ctx.set_materialize_grads(False)  # an unused layer output's gradient is null: zero
        steps, in_size, batch = x.shape
        x = x.contiguous()
        weights = [None if w is None else w.contiguous() for w in weights]
        layers = (LayerArgs * len(schedule.wirings))()
        bufs = []
        for k, wiring in enumerate(schedule.wirings):
            layers[k], held = _layer_args(spec, wiring, steps, batch, weights[4 * k : 4 * k + 4])
            bufs.append(held)
        outs = [x.new_empty(steps, size, batch) for size in schedule.sizes]
        out_ptrs = (ctypes.c_void_p * len(outs))(*map(_ptr, outs))
        net = NetArgs(
            len(layers), len(outs), steps, batch, in_size, layers, x=_ptr(x),
            outs=ctypes.cast(out_ptrs, ctypes.c_void_p), **schedule.pointers(),
        )  # fmt: skip
        _call("forward", net, x.dtype)
        _save(ctx, x, *outs, weights=weights)  # wide layers read the outputs as their inputs
        ctx.net, ctx.layers = net, layers
        ctx.held = (schedule, bufs, out_ptrs)  # with the saved tensors: all the pointers reach
        return tuple(outs)

    @staticmethod
    @once_differentiable  # the compiled backward is not itself differentiable
    def backward(ctx, *g_outs):
        (x, *_), weights = _saved(ctx, 1 + len(g_outs))
        layers = (LayerArgs * len(ctx.layers)).from_buffer_copy(ctx.layers)
        grads = []
        for k in range(len(layers)):
            grads += _grad_args(layers[k], weights[4 * k : 4 * k + 4])
        g_outs = [None if g is None else g.contiguous() for g in g_outs]
        g_ptrs = (ctypes.c_void_p * len(g_outs))(*map(_ptr, g_outs))
        d_x = torch.empty_like(x) if ctx.needs_input_grad[2] else None
        net = NetArgs.from_buffer_copy(ctx.net)
        net.layers = layers
        net.g_outs, net.d_x = ctypes.cast(g_ptrs, ctypes.c_void_p), _ptr(d_x)
        _call("backward", net, x.dtype)
        return None, None, d_x, *grads


def layer_schedule(
    spec: CellSpec, schedule: Schedule, x: Tensor, weights: Sequence[Tensor | None]
) -> tuple[Tensor, ...]:
    """Every layer's output sequence (T, size, B) of a structure network's layer schedule.

    Wide layer ``k`` is a masked, block-diagonal recurrent layer from zero states: it reads
    only the entries its wiring keeps (``w_ih`` where the i2h mask is True, ``w_hh`` on the
    diagonal blocks, so a mask inside the blocks must already be applied to ``w_hh``). Each
    sub-layer's slice of its states is added into its destination layer's output, in one
    call forward and one backward, the sums done in the compiled code.

    Parameters
    ----------
    spec : the cell.
    schedule : the wide layers, their wirings and where their sub-layers write (:class:`Schedule`).
    x : (T, I, B) the network's input, feature-major (batch last).
    weights : ``(w_ih, w_hh, b_ih, b_hh)`` of each wide layer in turn (4 per layer): (G*W, I)
        and (G*W, W) weights in PyTorch's gate-major row order, (G*W,) biases or None.

    Gradients flow to ``x`` and every weight (zero where the wiring has no entry); an output
    whose gradient is not needed counts as zero. CPU only, float32 or float64; callers check
    :func:`available` first.
    """
    if len(weights) != 4 * len(schedule.wirings):
        raise ValueError(
            f"layer_schedule: {len(weights)} weights for {len(schedule.wirings)} wide layers "
            "(pass w_ih, w_hh, b_ih, b_hh for each)"
        )
    return _LayerSchedule.apply(spec, schedule, x, *weights)


def main() -> int:
    """``python -m sparsernn.nn.native``: build the kernel now, load it as a structure network
    would (checksum, then ``dlopen``, then its ABI) and say where, or why not."""
    reason = unavailable_reason()
    if reason is not None:
        print(
            f"sparsernn: compiled recurrence not available ({reason}); structure networks "
            "will use the PyTorch path (same results, slower)"
        )
        return 0
    print(f"sparsernn: compiled recurrence ready ({build()}, checksum verified)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
