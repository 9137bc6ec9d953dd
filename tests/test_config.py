"""The run-key rule of :mod:`sparsernn.config`: a :func:`key_field` at its default is not in
``to_dict`` (the key's input), and configs are made canonical by ``from_dict``, not by
rewriting themselves."""

from __future__ import annotations

import dataclasses
import inspect
from pathlib import Path

import pytest

import sparsernn
from sparsernn.config import KEY_OMIT_DEFAULT, Config, config_key, key_field
from sparsernn.errors import ConfigError


@dataclasses.dataclass(frozen=True)
class _Old(Config):
    """A config as it was before ``warmup`` and ``schedule`` existed."""

    lr: float = 0.1


@dataclasses.dataclass(frozen=True)
class _New(Config):
    """The same config after two fields were added with :func:`key_field`."""

    lr: float = 0.1
    warmup: int = key_field(0)
    schedule: tuple[str, ...] | None = key_field(None)

    def __post_init__(self) -> None:
        if self.warmup < 0:
            raise ConfigError(f"warmup={self.warmup} must be >= 0")


@dataclasses.dataclass(frozen=True)
class _Names(Config):
    """A config whose ``names`` may be given as ``"a,b"`` at the boundary."""

    names: tuple[str, ...] = ()

    @classmethod
    def normalise(cls, data):
        if isinstance(data.get("names"), str):
            data["names"] = tuple(data["names"].split(","))
        return data


def test_a_key_field_at_its_default_is_not_in_to_dict_nor_the_key():
    assert _New().to_dict() == {"lr": 0.1}
    assert _New().key == _Old().key == config_key({"lr": 0.1})
    assert _New(lr=0.5).key == _Old(lr=0.5).key  # configs made before the field keep their key


def test_a_key_field_changed_from_its_default_is_in_to_dict_and_changes_the_key():
    base = _New()
    warm = _New(warmup=5)
    assert warm.to_dict()["warmup"] == 5 and warm.key != base.key
    sched = _New(schedule=("cosine",))
    assert sched.to_dict()["schedule"] == ["cosine"] and sched.key != base.key
    assert _New(warmup=0).key == base.key  # set to the default: the same key
    assert _New.from_dict(warm.to_dict()) == warm  # and it round-trips
    assert _New.from_dict(base.to_dict()) == base


def test_the_rule_is_field_metadata():
    fields = {f.name: f for f in dataclasses.fields(_New)}
    assert fields["warmup"].metadata == {"key": KEY_OMIT_DEFAULT}
    assert "key" not in fields["lr"].metadata
    assert fields["warmup"].default == 0


def test_nested_configs_follow_the_same_rule():
    @dataclasses.dataclass(frozen=True)
    class Outer(Config):
        inner: _New = _New()

    assert Outer().to_dict() == {"inner": {"lr": 0.1}}
    assert Outer(inner=_New(warmup=2)).to_dict()["inner"]["warmup"] == 2
    assert config_key(Outer()) == Outer().key


def test_from_dict_normalises_and_the_constructor_only_validates():
    assert _Names.from_dict({"names": "a,b"}).names == ("a", "b")
    assert _Names.from_dict({"names": ["a"]}).names == ("a",)  # lists become tuples
    assert _Names(names="a,b").names == "a,b"  # type: ignore[arg-type]  # not rewritten
    with pytest.raises(ConfigError, match="warmup=-1"):
        _New(warmup=-1)


def test_no_config_rewrites_itself_in_post_init():
    """Configs validate in ``__post_init__``; none sets a field there (``object.__setattr__``)."""
    root = Path(inspect.getfile(sparsernn)).parent
    offenders = []
    for path in root.rglob("*.py"):
        text = path.read_text(encoding="utf-8")
        if "(Config)" in text and "object.__setattr__" in text:
            offenders.append(str(path.relative_to(root)))
    assert not offenders
