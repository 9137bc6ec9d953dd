"""Frozen-dataclass configuration: JSON/TOML round trips and a stable content hash (run key).

A run's identity is the hash of its config's sorted JSON (:meth:`Config.to_dict`), which is how
the results store dedupes finished work and resumes a study. One rule keeps those keys stable
when a config grows: a field declared with :func:`key_field` is left out of ``to_dict`` while it
equals its default, so configs that do not use it keep the JSON and key they had before it
existed. Configs never rewrite themselves: raw input (a mapping for pairs, a list for a tuple,
``"a,b"`` for several names) is made canonical at the boundary, :meth:`Config.from_dict` (TOML,
JSON, the CLI, stored studies), through the :meth:`Config.normalise` hook; the constructor
only validates.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import sys
import types
import typing
from pathlib import Path
from typing import Any, TypeVar

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

from sparsernn.errors import ConfigError

__all__ = ["Config", "KEY_OMIT_DEFAULT", "config_key", "key_field", "load_toml"]

C = TypeVar("C", bound="Config")


#: The :func:`key_field` metadata: ``{"key": KEY_OMIT_DEFAULT}``.
KEY_OMIT_DEFAULT = "omit_default"


def key_field(default: Any, **kwargs: Any) -> Any:
    """A dataclass field that :meth:`Config.to_dict` (so the run key) leaves out while it
    equals ``default``: for fields added after run keys existed, so that configs which keep
    the default keep their key. ``kwargs`` go to :func:`dataclasses.field`.

    Examples
    --------
    >>> @dataclasses.dataclass(frozen=True)
    ... class Opt(Config):
    ...     lr: float = 0.1
    ...     warmup: int = key_field(0)
    >>> Opt().to_dict(), Opt(warmup=5).to_dict()
    ({'lr': 0.1}, {'lr': 0.1, 'warmup': 5})
    """
    metadata = {**kwargs.pop("metadata", {}), "key": KEY_OMIT_DEFAULT}
    return dataclasses.field(default=default, metadata=metadata, **kwargs)


def _omitted(field: dataclasses.Field, value: Any) -> bool:
    """Whether ``to_dict`` leaves ``field`` (holding ``value``) out: a :func:`key_field` at
    its default."""
    return field.metadata.get("key") == KEY_OMIT_DEFAULT and value == field.default


def _jsonable(value: Any) -> Any:
    if isinstance(value, Config):
        return value.to_dict()
    if dataclasses.is_dataclass(value):
        return {f.name: _jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    return value


def config_key(obj: Any, length: int = 16) -> str:
    """Hex digest of the sorted, compact JSON of ``obj`` (a dataclass or plain data)."""
    text = json.dumps(_jsonable(obj), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:length]


#: The scalar field types :meth:`Config.from_dict` checks, and how an error names each.
_SCALARS: dict[type, str] = {
    bool: "true or false",
    int: "an integer",
    float: "a number",
    str: "text",
}


def _kind(value: Any) -> str:
    """How a value's type reads in an error: ``a float (1.5)``, ``a bool (true)``."""
    names = {bool: "a bool", int: "an integer", float: "a float", str: "text"}
    name = names.get(type(value), f"a {type(value).__name__}")
    shown = str(value).lower() if isinstance(value, bool) else repr(value)
    return f"{name} ({shown})"


def _scalar(tp: type, value: Any, where: str) -> Any:
    """``value`` checked against a scalar field type (bool is not an int here; an int is a
    float); a one-line :class:`ConfigError` naming the field otherwise."""
    ok = {
        bool: isinstance(value, bool),
        int: isinstance(value, int) and not isinstance(value, bool),
        float: isinstance(value, (int, float)) and not isinstance(value, bool),
        str: isinstance(value, str),
    }[tp]
    if not ok:
        raise ConfigError(f"{where} must be {_SCALARS[tp]}, not {_kind(value)}")
    return float(value) if tp is float else value


def _coerce(tp: Any, value: Any, where: str) -> Any:
    """Turn JSON data back into the annotated type (tuples, nested configs, optionals),
    checking scalars against their field's type."""
    origin = typing.get_origin(tp)
    if isinstance(tp, type) and issubclass(tp, Config):
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: expected a table/object, got {value!r}")
        return tp.from_dict(value)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if value is None or (value == NONE and str not in args):  # TOML has no null
            return None
        if len(args) == 1:
            return _coerce(args[0], value, where)
        for arg in args:  # the first member the value fits
            try:
                return _coerce(arg, value, where)
            except ConfigError:
                continue
        return value  # the config's own check names what it accepts
    if origin is tuple:
        return _coerce_tuple(typing.get_args(tp), value, where)
    if tp in _SCALARS:
        return _scalar(tp, value, where)
    return value


def _coerce_tuple(args: tuple[Any, ...], value: Any, where: str) -> tuple[Any, ...]:
    """A list as a tuple: of one type (``tuple[int, ...]``) or of one type per position."""
    if len(args) == 2 and args[1] is Ellipsis:
        inner: list[Any] | None = None
        each = args[0]
    else:
        inner, each = list(args) or None, Any
    if isinstance(value, dict) and typing.get_origin(each) is tuple:
        value = list(value.items())  # a TOML table for a tuple of (name, value) pairs
    if not isinstance(value, (list, tuple)):
        raise ConfigError(f"{where}: expected a list, got {value!r}")
    if inner is not None:
        if len(value) != len(inner):
            raise ConfigError(f"{where}: expected {len(inner)} entries, got {list(value)!r}")
        return tuple(_coerce(t, v, where) for t, v in zip(inner, value, strict=True))
    return tuple(_coerce(each, v, where) for v in value)


class Config:
    """Mixin for frozen dataclasses: ``to_dict``/``from_dict``, JSON, TOML and ``key``.

    Subclasses are ``@dataclasses.dataclass(frozen=True)`` with a default for every field and
    validate themselves in ``__post_init__`` by raising :class:`ConfigError`; they never
    rewrite a field there. Input that needs making canonical goes through :meth:`normalise`.
    """

    def to_dict(self) -> dict[str, Any]:
        """The config as JSON data, the input of its key: every field, except a
        :func:`key_field` at its default (nested configs by the same rule)."""
        return {
            f.name: _jsonable(getattr(self, f.name))
            for f in dataclasses.fields(self)  # type: ignore[arg-type]
            if not _omitted(f, getattr(self, f.name))
        }

    @classmethod
    def normalise(cls, data: dict[str, Any]) -> dict[str, Any]:
        """Raw field values made canonical (hook, identity here): :meth:`from_dict` applies it
        before checking types, so that a config is built from canonical values only."""
        return data

    @classmethod
    def from_dict(cls: type[C], data: dict[str, Any]) -> C:
        hints = typing.get_type_hints(cls)
        names = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
        unknown = sorted(set(data) - names)
        if unknown:
            raise ConfigError(
                f"unknown {cls.__name__} field(s) {unknown}; valid fields: {sorted(names)}"
            )
        data = cls.normalise(dict(data))
        kwargs = {k: _coerce(hints[k], v, f"{cls.__name__}.{k}") for k, v in data.items()}
        return cls(**kwargs)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True, indent=2)

    @classmethod
    def from_json(cls: type[C], text: str) -> C:
        return cls.from_dict(json.loads(text))

    def to_toml(self) -> str:
        import tomli_w

        return tomli_w.dumps(_toml_ready(self))

    @classmethod
    def from_toml(cls: type[C], text: str) -> C:
        return cls.from_dict(tomllib.loads(text))

    def replace(self: C, **changes: Any) -> C:
        return dataclasses.replace(self, **changes)  # type: ignore[type-var]

    @property
    def key(self) -> str:
        """Stable identity of this configuration (hash of :meth:`to_dict`'s sorted JSON)."""
        return config_key(self.to_dict())


#: How TOML, which has no null, spells ``None`` for a field whose default is not ``None``
#: (e.g. ``clip = "none"``: no gradient clipping). Fields that default to ``None`` are omitted.
NONE = "none"


def _toml_ready(obj: Any) -> Any:
    """``to_dict`` for TOML: ``None`` omitted where it is the default, else written as "none"."""
    if dataclasses.is_dataclass(obj):
        out = {}
        for f in dataclasses.fields(obj):
            value = getattr(obj, f.name)
            if value is None:
                if f.default is not None:
                    out[f.name] = NONE
            else:
                out[f.name] = _toml_ready(value)
        return out
    return _jsonable(obj)


def load_toml(path: str | Path) -> dict[str, Any]:
    """Read a TOML file, turning syntax errors into a one-line :class:`ConfigError`."""
    path = Path(path)
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such config file") from None
    except IsADirectoryError:
        raise ConfigError(f"{path} is a directory; give a study TOML file") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(
            f"{path} is not UTF-8 text (byte {exc.object[exc.start]:#04x} at offset "
            f"{exc.start}); TOML files are UTF-8: save it as UTF-8"
        ) from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: invalid TOML ({exc}); fix the syntax") from None
