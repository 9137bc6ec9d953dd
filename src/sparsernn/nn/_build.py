"""The verified build cache of sparsernn's compiled libraries, and their checks on loading.

Both compiled libraries of :mod:`sparsernn.nn` (the structure networks' time loop,
:mod:`sparsernn.nn.native`, and the sparse layer, :mod:`sparsernn.nn.sparse_kernel`) are plain
C++ with a C ABI, no torch headers, built here by one path:

- **Assembled.** A library's main source and the parts it ``#include "..."``\\ s (files beside
  it) are one translation unit, assembled into one text (:func:`assemble`), which is what is
  compiled and what keys the cache: a change to any part rebuilds the library.
- **Compiled once** with the system's C++ compiler (``$CXX``, else ``c++``/``g++``/``clang++``)
  into a per-user cache (``$SPARSERNN_CACHE_DIR``, else ``$XDG_CACHE_HOME/sparsernn``, else
  ``~/.cache/sparsernn``), keyed by that text, the flags (the library's ABI version among them,
  as ``-D<NAME>=<n>``), the compiler's version and the CPU; ``-march=native`` first, then
  portable flags.
- **Verified** (:func:`verify`): a build is written to a temporary file, fsynced, renamed into
  place, and its SHA-256 recorded beside it (``<library>.sha256``, written after); before
  ``dlopen`` the library must match it, and the cache folder and files must belong to this
  user and be writable by nobody else. A library that fails (truncated by a full disk,
  changed, planted) is rebuilt with one line saying so.
- **Checked on loading** (:func:`open_checked`): the library's ABI version must be the one
  Python typed (else "stale library"), and every struct it shares with Python must have the
  ctypes declaration's fields at the same offsets and the same size (:func:`layout_problem`,
  from the offsets the library exports), else the library is not used, with one line.

``SPARSERNN_NATIVE=0`` turns every compiled library off (:func:`disabled`).
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import platform
import re
import shutil
import stat
import subprocess
import sys
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path

from sparsernn._files import remove_stale_temporaries

__all__ = [
    "NativeUnavailable",
    "assemble",
    "build",
    "cache_dir",
    "cached",
    "disabled",
    "exported_layout",
    "layout_problem",
    "open_checked",
    "private_cache",
    "verify",
]

BASE_FLAGS = ("-O3", "-funroll-loops", "-std=c++17", "-shared", "-fPIC", "-fopenmp-simd")
#: Part of every cache key: libraries cached before checksums existed are not used.
_CACHE_LAYOUT = "sha256-verified-1"
#: A build's temporary output older than this was left by a killed build.
_STALE_BUILD_S = 3600.0
_INCLUDE = re.compile(r'^#include "([^"/]+)"[ \t]*$', re.MULTILINE)


class NativeUnavailable(RuntimeError):
    """A compiled library cannot be built or loaded here (the message says why)."""


def disabled() -> bool:
    """Whether ``SPARSERNN_NATIVE=0`` (or false, no, off) turns the compiled libraries off."""
    return os.environ.get("SPARSERNN_NATIVE", "1").strip().lower() in ("0", "false", "no", "off")


def cache_dir() -> Path:
    """Where built libraries are kept (see the module docstring)."""
    if os.environ.get("SPARSERNN_CACHE_DIR"):
        return Path(os.environ["SPARSERNN_CACHE_DIR"])
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "sparsernn"


def assemble(source: Path) -> str:
    """``source`` with every ``#include "part"`` line replaced by that file beside it (itself
    assembled), ``#line`` markers keeping the compiler's messages at the parts' own lines."""
    if not source.is_file():
        raise NativeUnavailable(f"the kernel's source {source} is missing from the install")

    def inline(match: re.Match[str]) -> str:
        part = source.with_name(match.group(1))
        if not part.is_file():
            return match.group(0)  # a system header, or a part the compiler will report
        after = source.read_text()[: match.end()].count("\n") + 2
        return f'{assemble(part)}\n#line {after} "{source.name}"'

    return f'#line 1 "{source.name}"\n' + _INCLUDE.sub(inline, source.read_text())


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


def _compile(cxx: str, flags: Sequence[str], text: str, name: str, out: Path) -> None:
    """Compile ``text`` (C++, the assembled source ``name``) into ``out``, from a temporary
    file beside it (removed after)."""
    fd, source = tempfile.mkstemp(prefix=f".{name}.", suffix=".tmp", dir=out.parent)
    try:
        with os.fdopen(fd, "w") as fh:
            fh.write(text)
        cmd = [cxx, *flags, "-x", "c++", source, "-o", str(out)]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    finally:
        os.unlink(source)
    if proc.returncode != 0:
        raise NativeUnavailable(f"{Path(cxx).name} failed: {_first_error(proc.stderr)}")


def _first_error(stderr: str) -> str:
    """The compiler's first error line (its last line, source excerpts and carets, says less)."""
    lines = [ln.strip() for ln in stderr.splitlines() if ln.strip()]
    errors = [ln for ln in lines if "error" in ln.lower()]
    return (errors or lines or ["(no output)"])[0]


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


def _build_into(cxx: str, flags: Sequence[str], text: str, name: str, target: Path) -> None:
    """Compile into a temporary file beside ``target``, fsync it, rename it into place and
    record its SHA-256 (written and fsynced after it), so no process loads half a library."""
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    try:
        _compile(cxx, flags, text, name, Path(tmp))
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


def _targets(
    cxx: str, source: Path, text: str, defines: Mapping[str, int], folder: Path
) -> list[tuple[tuple[str, ...], Path]]:
    """The flag sets to try (``-march=native`` first, then portable) and each one's cached
    library, keyed by the assembled source, the flags, the compiler's version and the CPU."""
    version = subprocess.run([cxx, "--version"], capture_output=True, text=True).stdout
    macros = tuple(f"-D{name}={value}" for name, value in sorted(defines.items()))
    out = []
    for extra in (("-march=native",), ()):
        flags = (*BASE_FLAGS, *macros, *extra)
        parts = [_CACHE_LAYOUT, text, *flags, version, _cpu_id()]
        key = hashlib.sha256("\0".join(parts).encode()).hexdigest()[:16]
        out.append((flags, folder / f"{source.stem}-{key}.so"))
    return out


def cached(source: Path, defines: Mapping[str, int]) -> Path | None:
    """The verified cached library of ``source`` built with ``defines``, or None when it has
    to be built."""
    try:
        text = assemble(source)
        cxx = _compiler()
        folder = private_cache()
        targets = _targets(cxx, source, text, defines, folder)
        return next((t for _, t in targets if t.is_file() and verify(t) is None), None)
    except NativeUnavailable:
        return None


def build(source: Path, defines: Mapping[str, int], force: bool = False) -> Path:
    """Compile ``source`` (assembled, with ``-D<name>=<value>`` for each of ``defines``) into
    the cache once; the path of a library that passed :func:`verify`.

    A cached library that fails its check (truncated, changed, no checksum) is rebuilt, with
    one line saying so. Raises :class:`NativeUnavailable` naming the problem (no compiler, a
    failed build, a cache folder others may write).
    """
    text = assemble(source)
    cxx = _compiler()
    folder = private_cache()
    remove_stale_temporaries(folder, min_age_s=_STALE_BUILD_S)
    targets = _targets(cxx, source, text, defines, folder)
    for _, target in [] if force else targets:
        problem = verify(target) if target.exists() else "is missing"
        if problem is None:
            return target
        if target.exists():
            _say(f"the cached kernel {target} {problem}; rebuilding it")
    errors = []
    for flags, target in targets:
        try:
            _build_into(cxx, flags, text, source.name, target)
        except (NativeUnavailable, OSError, subprocess.TimeoutExpired) as exc:
            errors.append(str(exc))
            continue
        problem = verify(target)
        if problem is None:
            return target
        errors.append(f"the library just built {problem}")
    raise NativeUnavailable(errors[-1])


# ------------------------------------------------------------------ the checks on loading
def exported_layout(lib: ctypes.CDLL, prefix: str, label: str) -> tuple[dict[str, int], int]:
    """The C struct ``label``'s fields (name -> offset) and size, as the library exports them
    (``<prefix>_layout`` fills the offsets and the size, ``<prefix>_field`` names the fields)."""
    try:
        layout, field = getattr(lib, f"{prefix}_layout"), getattr(lib, f"{prefix}_field")
    except AttributeError:
        raise NativeUnavailable("the library exports no struct layouts (an older build)") from None
    layout.restype, field.restype = ctypes.c_int64, ctypes.c_char_p
    layout.argtypes = [ctypes.c_char_p, ctypes.POINTER(ctypes.c_int64), ctypes.c_int64]
    field.argtypes = [ctypes.c_char_p, ctypes.c_int64]
    n = layout(label.encode(), None, 0)
    if n < 1:
        raise NativeUnavailable(f"the library exports no layout of its {label} struct")
    values = (ctypes.c_int64 * n)()
    layout(label.encode(), values, n)
    names = [field(label.encode(), i).decode() for i in range(n - 1)]
    return dict(zip(names, values[: n - 1], strict=True)), values[n - 1]


def layout_problem(
    label: str, exported: tuple[dict[str, int], int], struct: type[ctypes.Structure]
) -> str | None:
    """How the library's struct ``label`` (:func:`exported_layout`) differs from its ctypes
    declaration ``struct`` (one line), or None: the same fields at the same offsets, one size."""
    fields, size = exported
    ours = {name: getattr(struct, name).offset for name, *_ in struct._fields_}
    differs = f"the library's {label} struct differs from sparsernn's"
    for name, offset in fields.items():
        if name not in ours:
            return f"{differs} (field {name} at offset {offset}, which sparsernn lacks)"
        if ours[name] != offset:
            return f"{differs} (field {name} at offset {offset}, expected {ours[name]})"
    for name, offset in ours.items():
        if name not in fields:
            return f"{differs} (no field {name}, expected at offset {offset})"
    if size != ctypes.sizeof(struct):
        return f"{differs} (size {size}, expected {ctypes.sizeof(struct)})"
    return None


def open_checked(
    source: Path,
    abi: tuple[str, int],
    prefix: str,
    structs: Mapping[str, type[ctypes.Structure]],
) -> ctypes.CDLL:
    """Build ``source`` if needed with its ABI version ``abi`` = (macro, n) defined, load the
    library that passed :func:`verify`, and check it: its ``<prefix>_version()`` must be ``n``
    and each C struct named in ``structs`` laid out as its ctypes declaration there.

    Raises :class:`NativeUnavailable` (one line) or :class:`OSError`.
    """
    macro, version = abi
    lib = ctypes.CDLL(str(build(source, {macro: version})))
    try:
        found = getattr(lib, f"{prefix}_version")()
    except AttributeError:
        raise NativeUnavailable(f"the library has no {prefix}_version (not sparsernn's)") from None
    if found != version:
        raise NativeUnavailable(f"stale library (ABI {found}, expected {version})")
    for label, struct in structs.items():
        problem = layout_problem(label, exported_layout(lib, prefix, label), struct)
        if problem is not None:
            raise NativeUnavailable(problem)
    return lib
