"""A compiled time loop for block-diagonal recurrent layers (the structure networks' wide layers).

A structure network's wide layer (:mod:`sparsernn.nn.structured`) runs T small recurrent steps
per call; from Python each step costs ~20 torch calls, and a training step of a 50-node graph
makes ~24,000 of them (``docs/structure.md``). ``_native/recurrence.cpp`` runs a whole layer's
loop, forward and the hand-written backward, in one call each (:func:`block_recurrence`),
skipping the zero blocks of the block-diagonal h2h matrix, with the batch as the innermost
(vectorised) dimension; :func:`layer_schedule` runs a whole network's wide layers and the sums
of their sub-layers in one call each way (what ``StructuredRNN`` uses: one autograd node).

The library is plain C++ with a C ABI, no torch headers: it is compiled with the system's C++
compiler (``$CXX``, else ``c++``/``g++``; ~20 s of CPU time at -O3, minutes of wall time on a
busy machine) into a per-user cache (``$SPARSERNN_CACHE_DIR``, else
``$XDG_CACHE_HOME/sparsernn``, else ``~/.cache/sparsernn``), keyed by the source, the flags, the
compiler and the CPU, and loaded with :mod:`ctypes`. ``make install`` builds it once
(``python -m sparsernn.nn.native``); a study builds it in its driver before any unit starts;
otherwise the first forward does. Without a compiler, or with ``SPARSERNN_NATIVE=0``,
:func:`available` is False, a one-line warning says why, and
:class:`~sparsernn.nn.StructuredRNN` runs the PyTorch path (the same function, slower).

What is loaded is verified (:func:`verify`): a build is written to a temporary file, fsynced,
renamed into place, and its SHA-256 recorded beside it (``<library>.sha256``, written after);
before ``dlopen`` the library must match it, and the cache folder and files must belong to
this user and be writable by nobody else. A library that fails (truncated by a full disk,
changed, planted) is rebuilt with one line saying so, or the PyTorch path runs with one line.
:func:`build` and :func:`open_library` take the source of another library of this kind.
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import platform
import shutil
import stat
import subprocess
import sys
import tempfile
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from itertools import accumulate
from pathlib import Path

import torch
from torch import Tensor
from torch.autograd.function import once_differentiable

from sparsernn._files import remove_stale_temporaries
from sparsernn.nn.cells import CellSpec

__all__ = [
    "available",
    "build",
    "cached",
    "disabled",
    "fallback_line",
    "fallback_said",
    "open_library",
    "verify",
    "block_recurrence",
    "layer_schedule",
    "unavailable_reason",
    "NativeUnavailable",
    "Schedule",
    "Wiring",
]

SOURCE = Path(__file__).with_name("_native") / "recurrence.cpp"
ABI_VERSION = 11
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


def _compile(cxx: str, flags: Sequence[str], source: Path, out: Path) -> None:
    cmd = [cxx, *flags, str(source), "-o", str(out)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    if proc.returncode != 0:
        raise NativeUnavailable(f"{Path(cxx).name} failed: {_first_error(proc.stderr)}")


def _first_error(stderr: str) -> str:
    """The compiler's first error line (its last line, source excerpts and carets, says less)."""
    lines = [ln.strip() for ln in stderr.splitlines() if ln.strip()]
    errors = [ln for ln in lines if "error" in ln.lower()]
    return (errors or lines or ["(no output)"])[0]


# ------------------------------------------------------------------ the verified build cache
#: Part of every cache key: libraries cached before checksums existed are not used.
_CACHE_LAYOUT = "sha256-verified-1"
#: A build's temporary output older than this was left by a killed build.
_STALE_BUILD_S = 3600.0


def _say(text: str) -> None:
    """One line on stderr about the cache (a library rebuilt after a failed check)."""
    print(f"sparsernn: {text}", file=sys.stderr, flush=True)


def _owned_privately(path: Path, what: str) -> None:
    """Refuse a cache folder or file that another user owns or others may write: a library
    planted there would run inside this process."""
    try:
        info = path.lstat()
    except OSError as exc:
        raise NativeUnavailable(f"cannot read the kernel cache {path} ({exc.strerror})") from None
    if stat.S_ISLNK(info.st_mode):
        problem = "is a symbolic link"
    elif info.st_uid != os.geteuid():
        problem = f"belongs to another user (uid {info.st_uid})"
    elif info.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        problem = f"is writable by others (mode {stat.S_IMODE(info.st_mode):04o})"
    else:
        return
    fix = "chmod go-w it" if "writable" in problem else "remove it"
    raise NativeUnavailable(
        f"the kernel cache {what} {path} {problem}, so a library there could be swapped; "
        f"{fix}, or set $SPARSERNN_CACHE_DIR to a folder of your own"
    )


def private_cache() -> Path:
    """The cache folder, created 0700 if missing, checked to be this user's alone."""
    folder = cache_dir()
    try:
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    except OSError as exc:
        raise NativeUnavailable(
            f"cannot write the build cache {folder} ({exc.strerror}); set "
            "$SPARSERNN_CACHE_DIR to a writable folder"
        ) from None
    _owned_privately(folder, "folder")
    return folder


def _checksum_file(library: Path) -> Path:
    return library.with_name(library.name + ".sha256")


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def verify(library: Path) -> str | None:
    """Why the cached ``library`` must not be loaded (None: it may): missing, not this user's
    alone, or not the bytes its build recorded in ``<library>.sha256``."""
    if not library.is_file():
        return "is missing"
    for path, what in ((library, "file"), (_checksum_file(library), "checksum")):
        if path.exists():
            _owned_privately(path, what)
    try:
        recorded = _checksum_file(library).read_text().strip()
    except (OSError, UnicodeDecodeError):
        return "has no checksum (built by an older sparsernn, or the build was killed)"
    if _sha256(library) != recorded:
        return "does not match its checksum (truncated or changed since it was built)"
    return None


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _build_into(cxx: str, flags: Sequence[str], source: Path, target: Path) -> None:
    """Compile into a temporary file beside ``target``, fsync it, rename it into place and
    record its SHA-256 (written and fsynced after it), so no process loads half a library."""
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    try:
        _compile(cxx, flags, source, Path(tmp))
        os.chmod(tmp, 0o700)
        _fsync(Path(tmp))
        digest = _sha256(Path(tmp))
        _checksum_file(target).unlink(missing_ok=True)  # a reader never sees the old one match
        os.replace(tmp, target)
        _write_private(_checksum_file(target), f"{digest}\n")
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def _write_private(path: Path, text: str) -> None:
    """Write ``path`` atomically, mode 0600 whatever the umask, fsynced."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def _targets(cxx: str, source: Path, folder: Path) -> list[tuple[tuple[str, ...], Path]]:
    """The flag sets to try (``-march=native`` first, then portable) and each one's cached
    library, keyed by the source, the flags, the compiler's version and the CPU."""
    version = subprocess.run([cxx, "--version"], capture_output=True, text=True).stdout
    text = source.read_text()
    out = []
    for extra in (("-march=native",), ()):
        flags = (*_BASE_FLAGS, *extra)
        parts = [_CACHE_LAYOUT, text, *flags, version, _cpu_id()]
        key = hashlib.sha256("\0".join(parts).encode()).hexdigest()[:16]
        out.append((flags, folder / f"{source.stem}-{key}.so"))
    return out


def cached(source: Path = SOURCE) -> Path | None:
    """The verified cached library of ``source``, or None when it has to be built."""
    try:
        if not source.is_file():
            return None
        cxx = _compiler()
        folder = private_cache()
        targets = _targets(cxx, source, folder)
        return next((t for _, t in targets if t.is_file() and verify(t) is None), None)
    except NativeUnavailable:
        return None


def build(force: bool = False, source: Path = SOURCE) -> Path:
    """Compile ``source`` into the cache once (per source, flags, compiler and CPU); the
    path of a library that passed :func:`verify`.

    A cached library that fails its check (truncated, changed, no checksum) is rebuilt, with
    one line saying so. Tries ``-march=native`` first, then portable flags. Raises
    :class:`NativeUnavailable` naming the problem (no compiler, a failed build, a cache folder
    others may write).
    """
    if not source.is_file():
        raise NativeUnavailable(f"the kernel's source {source} is missing from the install")
    cxx = _compiler()
    folder = private_cache()
    remove_stale_temporaries(folder, min_age_s=_STALE_BUILD_S)
    targets = _targets(cxx, source, folder)
    for _, target in [] if force else targets:
        problem = verify(target) if target.exists() else "is missing"
        if problem is None:
            return target
        if target.exists():
            _say(f"the cached kernel {target} {problem}; rebuilding it")
    errors = []
    for flags, target in targets:
        try:
            _build_into(cxx, flags, source, target)
        except (NativeUnavailable, OSError, subprocess.TimeoutExpired) as exc:
            errors.append(str(exc))
            continue
        problem = verify(target)
        if problem is None:
            return target
        errors.append(f"the library just built {problem}")
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
    """The C struct ``Layer`` of ``recurrence.cpp``: one layer's sizes, wiring and buffers
    (``block_io`` and ``add_d_x`` are set by the C side, within a whole schedule)."""

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


def _declare(lib: ctypes.CDLL) -> None:
    for fn_name, struct, label in (("srnn_layer_size", LayerArgs, "Layer"),
                                   ("srnn_net_size", NetArgs, "Net")):  # fmt: skip
        fn = getattr(lib, fn_name)
        fn.restype = ctypes.c_int64
        if fn() != ctypes.sizeof(struct):
            raise NativeUnavailable(f"the library's {label} struct differs from sparsernn's")
    for prefix, struct in (("srnn", LayerArgs), ("srnn_net", NetArgs)):
        for name in ("forward", "backward"):
            for suffix in ("f32", "f64"):
                fn = getattr(lib, f"{prefix}_{name}_{suffix}")
                fn.argtypes = [ctypes.POINTER(struct)]
                fn.restype = None


def disabled() -> bool:
    """Whether ``SPARSERNN_NATIVE=0`` (or false, no, off) turns the compiled loop off."""
    return os.environ.get("SPARSERNN_NATIVE", "1").strip().lower() in ("0", "false", "no", "off")


def open_library(source: Path = SOURCE) -> ctypes.CDLL:
    """Build ``source`` if needed (:func:`build`) and load the library that passed
    :func:`verify`; raises :class:`NativeUnavailable` or :class:`OSError`."""
    return ctypes.CDLL(str(build(source=source)))


@lru_cache(maxsize=1)
def _library() -> ctypes.CDLL | str:
    """The loaded library, or the one-line reason it is unavailable."""
    if disabled():
        return "disabled by SPARSERNN_NATIVE=0"
    try:
        lib = open_library()
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
        tables = {
            "source": _int64(self.sources),
            "block_ptr": _int64(list(accumulate((len(d) for d in self.dests), initial=0))),
            "block_dest": _int64([l for d in self.dests for l in d]),
            "sizes": _int64(self.sizes),
        }
        object.__setattr__(self, "_tables", tables)  # kept alive: the C side reads them

    def pointers(self) -> dict[str, int | None]:
        """The int64 tables' addresses, by the name of their ``NetArgs`` field."""
        return {name: _ptr(t) for name, t in self._tables.items()}  # type: ignore[attr-defined]


def _ptr(t: Tensor | None) -> int | None:
    return None if t is None or t.numel() == 0 else t.data_ptr()


def _call(name: str, args: LayerArgs | NetArgs, dtype: torch.dtype) -> None:
    lib = _library()
    if isinstance(lib, str):
        raise NativeUnavailable(lib)
    prefix = "srnn_net" if isinstance(args, NetArgs) else "srnn"
    suffix = "f64" if dtype == torch.float64 else "f32"
    getattr(lib, f"{prefix}_{name}_{suffix}")(ctypes.byref(args))


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


class _BlockRecurrence(torch.autograd.Function):
    """One wide layer's recurrence through the compiled loop (one autograd node)."""

    @staticmethod
    def forward(ctx, spec, wiring, x, *weights):
        steps, _, batch = x.shape
        x = x.contiguous()
        weights = [None if w is None else w.contiguous() for w in weights]
        args, bufs = _layer_args(spec, wiring, steps, batch, weights)
        args.x = _ptr(x)
        _call("forward", args, x.dtype)
        _save(ctx, x, *bufs, weights=weights)
        ctx.args, ctx.wiring = args, wiring  # args point into them and the saved tensors
        return bufs[0][1:]

    @staticmethod
    @once_differentiable  # the compiled backward is not itself differentiable
    def backward(ctx, g_out):
        (x, *_), weights = _saved(ctx, 4)  # kept alive: ctx.args points into them
        g_out = g_out.contiguous()
        d_x = torch.empty_like(x)  # every entry is written
        args = LayerArgs.from_buffer_copy(ctx.args)  # the inputs' and saved tensors' pointers
        grads = _grad_args(args, weights)
        args.g_out, args.d_x = _ptr(g_out), _ptr(d_x)
        _call("backward", args, x.dtype)
        return None, None, d_x, *grads


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


def layer_schedule(
    spec: CellSpec, schedule: Schedule, x: Tensor, weights: Sequence[Tensor | None]
) -> tuple[Tensor, ...]:
    """Every layer's output sequence (T, size, B) of a structure network's layer schedule.

    The same function as running :func:`block_recurrence` for each wide layer in order and
    adding each sub-layer's slice of its states into its destination layer's output, but in
    one call forward and one backward, with the sums done in the compiled code.

    Parameters
    ----------
    spec : the cell.
    schedule : the wide layers, their wirings and where their sub-layers write (:class:`Schedule`).
    x : (T, I, B) the network's input, feature-major (batch last).
    weights : ``(w_ih, w_hh, b_ih, b_hh)`` of each wide layer in turn (4 per layer, biases may
        be None), as :func:`block_recurrence` takes them.

    Gradients flow to ``x`` and every weight; an output whose gradient is not needed counts
    as zero. CPU only, float32 or float64; callers check :func:`available` first.
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
