"""The compiled sparse recurrent layer: only the kept weights are read, forward and backward.

``_native/sparse_layer.cpp`` runs one direction of one recurrent layer over a whole sequence in
one call each way (:func:`sparse_layer`), its weights given as compressed rows and columns of
their kept entries (:class:`Pattern`) and a vector of the kept values. Sequences are
feature-major with the batch innermost, (features, T, B), so a stack passes each layer's
states on to the next without copies (:mod:`sparsernn.nn.sparse_stack` drives whole stacks).

The library is built, cached, verified and checked by :mod:`sparsernn.nn._build`, as the
structure networks' compiled loop is (the system's C++ compiler, a per-user cache keyed by the
assembled source, the flags, the compiler and the CPU; ``SPARSERNN_NATIVE=0`` turns it off).
Its ABI version is typed once, :data:`ABI_VERSION` (``-DSPL_ABI=<n>`` to the compiler), and
its ``SpLayer``, ``Pattern`` and ``Sliced`` structs must match :class:`LayerArgs`,
:class:`PatternArgs` and :class:`SlicedArgs` field by field when it loads. Where it cannot be
built or fails a check, :func:`available` is False after one line saying why, and the callers
run the dense path (PyTorch's kernels over the same weights: the same function).
"""

from __future__ import annotations

import ctypes
import subprocess
import warnings
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import torch
from torch import Tensor
from torch.autograd.function import once_differentiable

from sparsernn.nn._build import NativeUnavailable, build, disabled, open_checked
from sparsernn.nn.cells import CellSpec

__all__ = ["ABI_VERSION", "Pattern", "SparseWeights", "available", "sparse_layer", "supports"]

SOURCE = Path(__file__).with_name("_native") / "sparse_layer.cpp"
#: The library's ABI version, typed only here: the build passes it as ``-DSPL_ABI=<n>``.
ABI_VERSION = 3
_CELL = {("rnn", "tanh"): 0, ("rnn", "relu"): 1, ("gru", None): 2, ("lstm", None): 3}
_SAVED = {"rnn": 1, "gru": 5, "lstm": 6}  # values per unit and lane kept for backward
_GRADS = ("d_x", "d_ih_val", "d_hh_val", "d_b_ih", "d_b_hh", "d_h0", "d_c0")
#: Scalar types the kernel is compiled for, and the values in one of its vectors.
DTYPES = (torch.float32, torch.float64)
_LANES = {torch.float32: 16, torch.float64: 8}


class SlicedArgs(ctypes.Structure):
    """The C struct ``Sliced``: lines packed a vector at a time (:meth:`Pattern.sliced`)."""

    _fields_ = [
        ("n_slices", ctypes.c_int64),
        *((name, ctypes.c_void_p) for name in ("order", "start", "index", "pos")),
    ]


class PatternArgs(ctypes.Structure):
    """The C struct ``Pattern``: a matrix's kept entries by rows and by columns (and, for a
    few lanes, both sliced)."""

    _fields_ = [
        *((name, ctypes.c_void_p) for name in ("row_ptr", "cols", "col_ptr", "rows", "perm")),
        ("by_rows", SlicedArgs),
        ("by_cols", SlicedArgs),
    ]


#: At most this many lanes (batch), the recurrent products gather, lane by lane, from sliced
#: rows (:meth:`Pattern.sliced`); more lanes share each weight as a vector.
FEW_LANES = 4


_SIZES = ("cell", "steps", "batch", "hidden", "in_size", "reverse", "save")


class LayerArgs(ctypes.Structure):
    """The C struct ``SpLayer`` of ``sparse_layer.cpp``."""

    _fields_ = [
        *((name, ctypes.c_int64) for name in _SIZES),
        ("active", ctypes.c_void_p),
        ("ih", PatternArgs),
        ("hh", PatternArgs),
        *((name, ctypes.c_void_p) for name in ("ih_val", "hh_val", "b_ih", "b_hh", "x")),
        ("x_ld", ctypes.c_int64),
        *((name, ctypes.c_void_p) for name in ("h0", "c0", "hs", "c_last", "acts")),
        *((name, ctypes.c_void_p) for name in ("g_out", "g_hn", "g_cn", "d_x", "d_ih_val")),
        *((name, ctypes.c_void_p) for name in ("d_hh_val", "d_b_ih", "d_b_hh", "d_h0", "d_c0")),
    ]


#: The C structs the library shares with Python, checked field by field when it loads.
STRUCTS = {"Sliced": SlicedArgs, "Pattern": PatternArgs, "SpLayer": LayerArgs}


def _load() -> ctypes.CDLL:
    """Build, load and check the library (:func:`sparsernn.nn._build.open_checked`), its
    function declared."""
    if disabled():
        raise NativeUnavailable("disabled by SPARSERNN_NATIVE=0")
    lib = open_checked(SOURCE, ("SPL_ABI", ABI_VERSION), "spl", STRUCTS)
    lib.spl_run.argtypes = [ctypes.POINTER(LayerArgs), ctypes.c_int64, ctypes.c_int64]
    lib.spl_run.restype = None
    return lib


@lru_cache(maxsize=1)
def _library() -> ctypes.CDLL | str:
    """The loaded library, or the one-line reason it is unavailable."""
    try:
        return _load()
    except (NativeUnavailable, OSError, subprocess.SubprocessError) as exc:
        return str(exc)


def unavailable_reason() -> str | None:
    """Why the compiled sparse layer cannot be used here, or None when it can."""
    lib = _library()
    return lib if isinstance(lib, str) else None


_warned = False


def available(warn: bool = True) -> bool:
    """Whether the compiled sparse layer is usable; the first False warns once, in one line
    (not when ``SPARSERNN_NATIVE=0`` asked for it)."""
    global _warned
    reason = unavailable_reason()
    if reason is None:
        return True
    if warn and not (_warned or "SPARSERNN_NATIVE" in reason):
        _warned = True
        message = (f"sparsernn: compiled sparse layer unavailable ({reason}); sparse "
                   "recurrent layers run the dense path (same results, no speed-up)")  # fmt: skip
        warnings.warn(message, RuntimeWarning, stacklevel=3)
    return False


def supports(x: Tensor) -> bool:
    """Whether the compiled layer takes tensors like ``x`` (CPU, float32 or float64)."""
    return x.device.type == "cpu" and x.dtype in DTYPES


# ---------------------------------------------------------------------------------- patterns
@dataclass(frozen=True, eq=False)
class Pattern:
    """The kept entries of one (rows, cols) weight matrix, as the kernel reads them.

    ``row_ptr`` (rows + 1) and ``cols`` list each row's kept columns (CSR, the values' order);
    ``col_ptr`` (cols + 1), ``rows`` and ``perm`` the same entries by column (``perm[k]``: the
    CSR position of column-order entry ``k``); ``flat`` is each entry's position in the dense
    matrix, row-major (to gather values from, and scatter gradients to, a dense weight).
    """

    shape: tuple[int, int]
    row_ptr: Tensor
    cols: Tensor
    col_ptr: Tensor
    rows: Tensor
    perm: Tensor
    flat: Tensor

    @property
    def nnz(self) -> int:
        return int(self.cols.numel())

    @property
    def density(self) -> float:
        """Kept entries over all entries (1.0 for an empty matrix)."""
        n = self.shape[0] * self.shape[1]
        return self.nnz / n if n else 1.0

    @classmethod
    def of(cls, mask: Tensor) -> Pattern:
        """The pattern of a boolean (rows, cols) matrix's True entries."""
        mask = mask.detach().to("cpu", torch.bool)
        flat = mask.reshape(-1).nonzero().squeeze(1)
        return cls._from_flat(tuple(mask.shape), flat)  # type: ignore[arg-type]

    @classmethod
    def from_csr(cls, shape: tuple[int, int], row_ptr: Tensor, cols: Tensor) -> Pattern:
        """From CSR arrays (any integer type), columns sorted within each row."""
        rows = torch.repeat_interleave(torch.arange(shape[0]), torch.diff(row_ptr.to(torch.int64)))
        return cls._from_flat(shape, rows * shape[1] + cols.to(torch.int64))

    @classmethod
    def _from_flat(cls, shape: tuple[int, int], flat: Tensor) -> Pattern:
        n_rows, n_cols = shape
        rows, cols = flat // n_cols, flat % n_cols
        by_col = torch.argsort(cols * n_rows + rows)  # column-major order of the entries
        return cls(
            shape=(int(n_rows), int(n_cols)),
            row_ptr=_pointers(rows, n_rows),
            cols=cols.to(torch.int32),
            col_ptr=_pointers(cols, n_cols),
            rows=rows[by_col].to(torch.int32).contiguous(),
            perm=by_col.to(torch.int64),
            flat=flat.to(torch.int64),
        )

    def args(self, width: int = 0) -> PatternArgs:
        """The C struct pointing into this pattern's tensors, with its rows and columns sliced
        ``width`` lines at a time when ``width`` is given (made once each: they never change)."""
        cache = self.__dict__.setdefault("_args", {})
        if width not in cache:
            tensors = (self.row_ptr, self.cols, self.col_ptr, self.rows, self.perm)
            made = PatternArgs(*(_ptr(t) for t in tensors))
            if width:
                made.by_rows = self.sliced("rows", width)
                made.by_cols = self.sliced("cols", width)
            cache[width] = made
        return cache[width]

    def sliced(self, lines: str, width: int) -> SlicedArgs:
        """The rows (``lines="rows"``) or columns packed ``width`` lines at a time, sorted by
        decreasing length (sliced ELLPACK; the C struct ``Sliced``), its tensors kept here."""
        if lines == "rows":
            ptr, index, pos = self.row_ptr, self.cols, torch.arange(self.nnz)
        else:
            ptr, index, pos = self.col_ptr, self.rows, self.perm
        tensors = _slice(ptr, index, pos, width)
        self.__dict__.setdefault("_sliced", []).append(tensors)  # alive as long as the pattern
        return SlicedArgs(tensors[1].numel() - 1, *(_ptr(t) for t in tensors))

    def gather(self, weight: Tensor) -> Tensor:
        """The kept values of a dense (rows, cols) weight, in CSR order (differentiable)."""
        return weight.reshape(-1).index_select(0, self.flat.to(weight.device))

    def dense(self, values: Tensor) -> Tensor:
        """The dense (rows, cols) matrix holding ``values`` at the kept entries (differentiable)."""
        out = values.new_zeros(self.shape[0] * self.shape[1])
        return out.index_put((self.flat.to(values.device),), values).view(self.shape)


def _slice(ptr: Tensor, index: Tensor, pos: Tensor, width: int) -> tuple[Tensor, ...]:
    """(order, start, index, pos) of lines ``ptr``/``index`` packed ``width`` at a time (see
    :meth:`Pattern.sliced`); ``pos``: each entry's position among the values."""
    lens = torch.diff(ptr)
    n = lens.numel()
    order = torch.argsort(-lens, stable=True)
    n_slices = -(-n // width)
    padded = torch.full((n_slices * width,), -1, dtype=torch.int64)
    padded[:n] = order
    counts = lens[order]  # decreasing: a slice's first line is its longest
    start = torch.cat([counts.new_zeros(1), torch.cumsum(counts[::width], 0)])
    line = torch.repeat_interleave(torch.arange(n), counts)  # each entry's place in the order
    k = torch.arange(line.numel()) - torch.repeat_interleave(torch.cumsum(counts, 0) - counts,
                                                             counts)  # fmt: skip
    slot = (start[line // width] + k) * width + line % width
    source = ptr[order][line] + k
    packed_index = torch.zeros(int(start[-1]) * width, dtype=torch.int32)
    packed_pos = torch.full((int(start[-1]) * width,), -1, dtype=torch.int32)
    packed_index[slot] = index[source].to(torch.int32)
    packed_pos[slot] = pos[source].to(torch.int32)
    return padded.to(torch.int32), start, packed_index, packed_pos


def _pointers(index: Tensor, n: int) -> Tensor:
    """CSR-style pointers (n + 1, int64) of sorted or unsorted line indices."""
    counts = torch.bincount(index, minlength=n)
    return torch.cat([counts.new_zeros(1), counts.cumsum(0)]).to(torch.int64)


def _ptr(t: Tensor | None) -> int | None:
    return None if t is None or t.numel() == 0 else t.data_ptr()


def _call(name: str, args: LayerArgs, dtype: torch.dtype) -> None:
    lib = _library()
    if isinstance(lib, str):
        raise NativeUnavailable(lib)
    lib.spl_run(ctypes.byref(args), int(name == "backward"), int(dtype == torch.float64))


# ---------------------------------------------------------------------------------- one layer
def _layer_args(spec: CellSpec, ih: Pattern, hh: Pattern, x: Tensor, reverse: bool,
                active: Tensor | None) -> LayerArgs:  # fmt: skip
    n_in, steps, batch = x.shape
    return LayerArgs(
        cell=_CELL[(spec.family, spec.nonlinearity)], steps=steps, batch=batch,
        hidden=hh.shape[1], in_size=n_in, reverse=int(reverse), active=_ptr(active),
        ih=ih.args(), hh=hh.args(_LANES[x.dtype] if batch <= FEW_LANES else 0), x=_ptr(x),
        x_ld=x.stride(0) if x.numel() else 0,
    )  # fmt: skip


class _SparseLayer(torch.autograd.Function):
    """One direction of one layer through the compiled loop (one autograd node)."""

    @staticmethod
    def forward(ctx, spec, ih, hh, reverse, active, x, ih_val, hh_val, b_ih, b_hh, h0, c0):
        ctx.set_materialize_grads(False)
        n_in, steps, batch = x.shape
        hidden = hh.shape[1]
        save = any(ctx.needs_input_grad)
        hs = x.new_empty(hidden, steps + 1, batch)
        c_n = x.new_empty(hidden, batch) if spec.has_cell_state else x.new_empty(0)
        acts = x.new_empty(steps if save else 0, _SAVED[spec.family] * hidden * batch)
        args = _layer_args(spec, ih, hh, x, reverse, active)
        args.save = int(save)
        args.ih_val, args.hh_val, args.b_ih, args.b_hh = map(_ptr, (ih_val, hh_val, b_ih, b_hh))
        args.h0, args.c0, args.hs, args.c_last, args.acts = map(_ptr, (h0, c0, hs, c_n, acts))
        _call("forward", args, x.dtype)
        if save:  # args points into the saved tensors and the patterns, kept with it
            ctx.save_for_backward(x, ih_val, hh_val, b_ih, b_hh, hs, acts)
            ctx.args, ctx.held = args, (ih, hh, active, h0 is not None, c0 is not None)
        out = hs[:, :steps] if reverse else hs[:, 1:]
        return out, hs[:, 0 if reverse else steps], c_n

    @staticmethod
    @once_differentiable  # the compiled backward is not itself differentiable
    def backward(ctx, g_out, g_hn, g_cn):
        x, ih_val, hh_val, b_ih, b_hh, hs, _ = ctx.saved_tensors
        need, (_, _, _, has_h0, has_c0) = ctx.needs_input_grad, ctx.held
        args = LayerArgs.from_buffer_copy(ctx.args)
        g_out, g_hn, g_cn = (None if g is None else g.contiguous() for g in (g_out, g_hn, g_cn))
        args.g_out, args.g_hn, args.g_cn = _ptr(g_out), _ptr(g_hn), _ptr(g_cn)
        hidden, batch = hs.shape[0], hs.shape[2]
        grads = [
            x.new_empty(shape) if given and need[i] else None
            for i, shape, given in (
                (5, x.shape, True),  # contiguous, whatever x's row stride
                (6, ih_val.shape, True),
                (7, hh_val.shape, True),
                (8, (hh_val.new_empty(0) if b_ih is None else b_ih).shape, b_ih is not None),
                (9, (hh_val.new_empty(0) if b_hh is None else b_hh).shape, b_hh is not None),
                (10, (hidden, batch), has_h0),
                (11, (hidden, batch), has_c0),
            )
        ]
        for name, grad in zip(_GRADS, grads, strict=True):
            setattr(args, name, _ptr(grad))
        _call("backward", args, x.dtype)
        return None, None, None, None, None, *grads


@dataclass(frozen=True, eq=False)
class SparseWeights:
    """One direction of one layer: the kept entries of ``w_ih`` (G*H, I) and ``w_hh`` (G*H, H)
    (:class:`Pattern`), their values in the patterns' order, and the biases (G*H,) or None."""

    ih: Pattern
    hh: Pattern
    ih_val: Tensor
    hh_val: Tensor
    b_ih: Tensor | None = None
    b_hh: Tensor | None = None


def sparse_layer(
    spec: CellSpec,
    weights: SparseWeights,
    x: Tensor,
    h0: Tensor | None = None,
    c0: Tensor | None = None,
    *,
    reverse: bool = False,
    active: Tensor | None = None,
) -> tuple[Tensor, Tensor, Tensor | None]:
    """One direction of one sparse recurrent layer over a whole sequence, feature-major.

    Parameters
    ----------
    spec : the cell.
    weights : the layer's kept weights and biases (:class:`SparseWeights`).
    x : (I, T, B), the last two dimensions contiguous (rows may be further apart).
    h0, c0 : (H, B) initial states or None (zeros; ``c0``: LSTM only).
    reverse : run from the last step to the first (a bidirectional layer's second direction).
    active : (T,) int64 lanes updated at each step (a PackedSequence's ``batch_sizes``: lengths
        sorted in decreasing order); the other lanes keep their state. None: all.

    Returns
    -------
    ``(out, h_n, c_n)``: the states after each step (H, T, B), the final state (H, B) and, for
    LSTM, the final cell state (else None). CPU only, float32 or float64, every tensor of one
    dtype; callers check :func:`available` and :func:`supports` first.
    """
    if x.stride(2) != 1 or x.stride(1) != x.shape[2]:
        x = x.contiguous()
    w = weights
    tensors = [None if t is None else t.contiguous()
               for t in (w.ih_val, w.hh_val, w.b_ih, w.b_hh, h0, c0)]  # fmt: skip
    c0 = tensors[5] if spec.has_cell_state else None
    act = None if active is None else active.to("cpu", torch.int64).contiguous()
    out, h_n, c_n = _SparseLayer.apply(spec, w.ih, w.hh, reverse, act, x, *tensors[:5], c0)
    return out, h_n, (c_n if spec.has_cell_state else None)


def main() -> int:
    """``python -m sparsernn.nn.sparse_kernel``: build the library now and say where, or why not."""
    try:
        path = build(SOURCE, {"SPL_ABI": ABI_VERSION})
    except NativeUnavailable as exc:
        print(f"sparsernn: compiled sparse layer not built ({exc}); sparse layers will run the "
              "dense path (same results, no speed-up)")  # fmt: skip
        return 0
    print(f"sparsernn: compiled sparse layer ready ({path})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
