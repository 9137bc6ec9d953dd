"""A compiled time loop for block-diagonal recurrent layers (the structure networks' wide layers).

A structure network's wide layer (:mod:`sparsernn.nn.structured`) runs T small recurrent steps
per call; from Python each step costs ~20 torch calls, and a training step of a 50-node graph
makes ~24,000 of them (``docs/structure.md``). ``_native/recurrence.cpp`` runs a whole layer's
loop, forward and the hand-written backward, in one call each, skipping the zero blocks of the
block-diagonal h2h matrix, with the batch as the innermost (vectorised) dimension.

The library is plain C++ with a C ABI, no torch headers: it is compiled on first use with the
system's C++ compiler (``$CXX``, else ``c++``/``g++``; about two seconds) into a per-user cache
(``$SPARSERNN_CACHE_DIR``, else ``$XDG_CACHE_HOME/sparsernn``, else ``~/.cache/sparsernn``),
keyed by the source, the flags, the compiler and the CPU, and loaded with :mod:`ctypes`.
``make install`` builds it once (``python -m sparsernn.nn.native``). Without a compiler, or
with ``SPARSERNN_NATIVE=0``, :func:`available` is False, a one-line warning says why, and
:class:`~sparsernn.nn.StructuredRNN` runs the PyTorch path (the same function, slower).
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import torch
from torch import Tensor
from torch.autograd.function import once_differentiable

from sparsernn.nn.cells import CellSpec

__all__ = [
    "available",
    "build",
    "block_recurrence",
    "unavailable_reason",
    "NativeUnavailable",
    "Wiring",
]

SOURCE = Path(__file__).with_name("_native") / "recurrence.cpp"
ABI_VERSION = 8
_BASE_FLAGS = ("-O3", "-funroll-loops", "-std=c++17", "-shared", "-fPIC", "-fopenmp-simd")
_FAMILY = {("rnn", "tanh"): 0, ("rnn", "relu"): 1, ("gru", None): 2, ("lstm", None): 3}
_SAVED_ROWS = {"rnn": 0, "gru": 4, "lstm": 5}  # activations kept for backward, per unit


class NativeUnavailable(RuntimeError):
    """The compiled kernel cannot be built or loaded here (the message says why)."""


def cache_dir() -> Path:
    """Where built libraries are kept (see the module docstring)."""
    if os.environ.get("SPARSERNN_CACHE_DIR"):
        return Path(os.environ["SPARSERNN_CACHE_DIR"])
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "sparsernn"


def _compiler() -> str:
    for name in filter(None, (os.environ.get("CXX"), "c++", "g++", "clang++")):
        path = shutil.which(name)
        if path:
            return path
    raise NativeUnavailable("no C++ compiler found (set $CXX or install g++)")


def _cpu_id() -> str:
    """The CPU's model and feature flags: ``-march=native`` code only runs where it was built."""
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
    except OSError:
        return platform.machine() + platform.processor()
    keep = [ln for ln in lines if ln.startswith(("model name", "flags", "Features"))]
    return "\n".join(sorted(set(keep)))


def _compile(cxx: str, flags: Sequence[str], out: Path) -> None:
    cmd = [cxx, *flags, str(SOURCE), "-o", str(out)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    if proc.returncode != 0:
        raise NativeUnavailable(f"{Path(cxx).name} failed: {_first_error(proc.stderr)}")


def _first_error(stderr: str) -> str:
    """The compiler's first error line (its last line, source excerpts and carets, says less)."""
    lines = [ln.strip() for ln in stderr.splitlines() if ln.strip()]
    errors = [ln for ln in lines if "error" in ln.lower()]
    return (errors or lines or ["(no output)"])[0]


def build(force: bool = False) -> Path:
    """Compile the kernel into the cache (once per source, flags, compiler and CPU); its path.

    Tries ``-march=native`` first, then portable flags. The library is written to a temporary
    name and renamed into place, so processes building at the same time never load half a file.
    Raises :class:`NativeUnavailable` naming the problem.
    """
    if not SOURCE.is_file():
        raise NativeUnavailable(f"the kernel's source {SOURCE} is missing from the install")
    cxx = _compiler()
    version = subprocess.run([cxx, "--version"], capture_output=True, text=True).stdout
    errors = []
    for extra in (("-march=native",), ()):
        flags = (*_BASE_FLAGS, *extra)
        key = hashlib.sha256(
            "\0".join([SOURCE.read_text(), *flags, version, _cpu_id()]).encode()
        ).hexdigest()[:16]
        target = cache_dir() / f"recurrence-{key}.so"
        if target.is_file() and not force:
            return target
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(suffix=".so", dir=target.parent)
            os.close(fd)
        except OSError as exc:
            raise NativeUnavailable(
                f"cannot write the build cache {target.parent} ({exc.strerror}); set "
                "$SPARSERNN_CACHE_DIR to a writable folder"
            ) from None
        try:
            _compile(cxx, flags, Path(tmp))
            os.replace(tmp, target)
            return target
        except (NativeUnavailable, OSError, subprocess.TimeoutExpired) as exc:
            errors.append(str(exc))
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
    raise NativeUnavailable(errors[-1])


#: The fields of the C struct ``Layer``, in order: sizes (int64), then pointers.
_SIZES = ("family", "steps", "batch", "width", "gates", "in_size", "n_blocks")
_POINTERS = (
    *("offsets", "sizes", "row_ptr", "cols", "col_ptr", "rows"),  # the wiring
    *("x", "w_ih", "b_ih", "w_hh", "b_hh"),  # inputs
    *("hs", "cs", "acts"),  # forward results, saved for backward
    *("g_out", "d_x", "d_w_ih", "d_b_ih", "d_w_hh", "d_b_hh"),  # backward
)


class LayerArgs(ctypes.Structure):
    """The C struct ``Layer`` of ``recurrence.cpp``: one layer's sizes, wiring and buffers."""

    _fields_ = [(name, ctypes.c_int64) for name in _SIZES] + [
        (name, ctypes.c_void_p) for name in _POINTERS
    ]


def _declare(lib: ctypes.CDLL) -> None:
    lib.srnn_layer_size.restype = ctypes.c_int64
    if lib.srnn_layer_size() != ctypes.sizeof(LayerArgs):
        raise NativeUnavailable("the library's Layer struct differs from sparsernn's")
    for name in ("forward", "backward"):
        for suffix in ("f32", "f64"):
            fn = getattr(lib, f"srnn_{name}_{suffix}")
            fn.argtypes = [ctypes.POINTER(LayerArgs)]
            fn.restype = None


@lru_cache(maxsize=1)
def _library() -> ctypes.CDLL | str:
    """The loaded library, or the one-line reason it is unavailable."""
    if os.environ.get("SPARSERNN_NATIVE", "1").strip().lower() in ("0", "false", "no", "off"):
        return "disabled by SPARSERNN_NATIVE=0"
    try:
        lib = ctypes.CDLL(str(build()))
        if lib.srnn_version() != ABI_VERSION:
            return f"stale library (ABI {lib.srnn_version()}, expected {ABI_VERSION})"
        _declare(lib)
        return lib
    except (NativeUnavailable, OSError, subprocess.SubprocessError) as exc:
        return str(exc)


_warned = False


def unavailable_reason() -> str | None:
    """Why the compiled kernel cannot be used here, or None when it can."""
    lib = _library()
    return lib if isinstance(lib, str) else None


def available(warn: bool = True) -> bool:
    """Whether the compiled kernel is usable; the first False warns once with the reason."""
    global _warned
    reason = unavailable_reason()
    if reason is not None and warn and not _warned and "SPARSERNN_NATIVE" not in reason:
        _warned = True
        warnings.warn(
            f"sparsernn: compiled recurrence unavailable ({reason}); structure networks use "
            "the PyTorch path (same results, slower)",
            RuntimeWarning,
            stacklevel=2,
        )
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


def _ptr(t: Tensor | None) -> int | None:
    return None if t is None or t.numel() == 0 else t.data_ptr()


def _call(name: str, args: LayerArgs, dtype: torch.dtype) -> None:
    lib = _library()
    if isinstance(lib, str):
        raise NativeUnavailable(lib)
    suffix = "f64" if dtype == torch.float64 else "f32"
    getattr(lib, f"srnn_{name}_{suffix}")(ctypes.byref(args))


class _BlockRecurrence(torch.autograd.Function):
    """One wide layer's recurrence through the compiled loop (one autograd node)."""

    @staticmethod
    def forward(ctx, spec, wiring, x, w_ih, w_hh, b_ih, b_hh):
        steps, in_size, batch = x.shape
        width = w_hh.shape[1]
        x, w_ih, w_hh = x.contiguous(), w_ih.contiguous(), w_hh.contiguous()
        b_ih = None if b_ih is None else b_ih.contiguous()
        b_hh = None if b_hh is None else b_hh.contiguous()
        hs = x.new_empty(steps + 1, width, batch)  # the kernel writes every entry
        cs = x.new_empty(steps + 1 if spec.has_cell_state else 0, width, batch)
        acts = x.new_empty(steps, _SAVED_ROWS[spec.family] * width, batch)
        args = LayerArgs(
            _FAMILY[(spec.family, spec.nonlinearity)], steps, batch, width, spec.gates,
            in_size, len(wiring.sizes), *map(_ptr, (
                wiring.offsets, wiring.sizes, wiring.row_ptr, wiring.cols, wiring.col_ptr,
                wiring.rows, x, w_ih, b_ih, w_hh, b_hh, hs, cs, acts,
            )),
        )  # fmt: skip
        _call("forward", args, x.dtype)
        ctx.save_for_backward(x, w_ih, w_hh, hs, cs, acts)
        ctx.args, ctx.wiring = args, wiring  # the wiring's tensors back the args' pointers
        ctx.has_b = (b_ih is not None, b_hh is not None)
        return hs[1:]

    @staticmethod
    @once_differentiable  # the compiled backward is not itself differentiable
    def backward(ctx, g_out):
        x, w_ih, w_hh, *_ = ctx.saved_tensors  # kept alive: ctx.args points into them
        g_out = g_out.contiguous()
        d_x = torch.empty_like(x)  # every entry is written
        d_w_ih, d_w_hh = torch.zeros_like(w_ih), torch.zeros_like(w_hh)  # kept entries are
        d_b = [x.new_empty(w_hh.shape[0]) if has else None for has in ctx.has_b]
        args = LayerArgs.from_buffer_copy(ctx.args)  # the inputs' and saved tensors' pointers
        for name, t in (("g_out", g_out), ("d_x", d_x), ("d_w_ih", d_w_ih), ("d_w_hh", d_w_hh),
                        ("d_b_ih", d_b[0]), ("d_b_hh", d_b[1])):  # fmt: skip
            setattr(args, name, _ptr(t))
        _call("backward", args, x.dtype)
        return None, None, d_x, d_w_ih, d_w_hh, d_b[0], d_b[1]


def block_recurrence(
    spec: CellSpec,
    wiring: Wiring,
    x: Tensor,
    w_ih: Tensor,
    w_hh: Tensor,
    b_ih: Tensor | None = None,
    b_hh: Tensor | None = None,
) -> Tensor:
    """Hidden states (T, W, B) of a masked, block-diagonal recurrent layer, batch last.

    Parameters
    ----------
    spec : the cell.
    wiring : the layer's blocks and i2h rows (:meth:`Wiring.of`). Only the entries it keeps
        are read: ``w_ih`` where the i2h mask is True, ``w_hh`` on the diagonal blocks (so a
        mask inside the blocks must already be applied to ``w_hh``); the rest are ignored.
    x : (T, I, B) the input sequence, feature-major (batch last).
    w_ih, w_hh : (G*W, I) and (G*W, W) weights in PyTorch's gate-major row order;
        ``b_ih``, ``b_hh`` (G*W,) or None.

    The layer starts from zero states. CPU only, float32 or float64; callers check
    :func:`available` first. Gradients flow to ``x``, the weights and the biases (zero where
    the wiring has no entry).
    """
    return _BlockRecurrence.apply(spec, wiring, x, w_ih, w_hh, b_ih, b_hh)


def main() -> int:
    """``python -m sparsernn.nn.native``: build the kernel now and say where, or why not."""
    try:
        path = build()
    except NativeUnavailable as exc:
        print(
            f"sparsernn: compiled recurrence not built ({exc}); structure networks will use "
            "the PyTorch path (same results, slower)"
        )
        return 0
    print(f"sparsernn: compiled recurrence ready ({path})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
