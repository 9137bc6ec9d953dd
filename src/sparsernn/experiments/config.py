"""A study as one frozen configuration, with the ``smoke``/``quick``/``full`` profiles.

A study = base-model trainings (cells x seeds), pruning points (cells x seeds x targets x
amounts, each retrained with its mask fixed) and random-structure networks (cells x seeds x
generators x graphs). ``full`` is the study's exact protocol (SPEC sections 3-5).
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Any

from sparsernn.config import Config, load_toml
from sparsernn.data import DataSpec
from sparsernn.errors import ConfigError
from sparsernn.nn.cells import MODES, cell_spec
from sparsernn.nn.structured import GATE_LAYOUTS
from sparsernn.prune import SCOPES, TARGETS
from sparsernn.sparsity import STUDY_METHODS
from sparsernn.tasks import check_spec, spec_fields
from sparsernn.train import TrainConfig

__all__ = [
    "KINDS",
    "PruningConfig",
    "StructureConfig",
    "StudyConfig",
    "PROFILES",
    "profile",
    "load_study_config",
    "load_study_plans",
    "parse_range",
]

#: The kinds of unit a study plans, in plan order (pruning units depend on base units).
KINDS = ("base", "prune", "structure")

_GENERATORS = ("ws", "ba", "er")

#: Each generator's smallest node count with the study's parameters, and why.
_MIN_NODES = {
    "ws": (10, "Watts-Strogatz joins each node to k = n // 5 >= 2 neighbours"),
    "ba": (10, "Barabasi-Albert attaches m = n // 10 >= 1 edges per new node"),
    "er": (10, "Erdos-Renyi takes its edge probability from k = n // 5 >= 2"),
}


@dataclasses.dataclass(frozen=True)
class PruningConfig(Config):
    """The pruning grid (SPEC section 4): targets x amounts, each retrained ``retrain_epochs``.

    ``method``: the sparsity method (:data:`sparsernn.sparsity.STUDY_METHODS`; what each
    trains: :mod:`sparsernn.experiments.methods`), or several (a list or ``"a,b"``: the grid
    is run with each, over the same base models); ``rounds``/``rewind_epoch`` (lottery) and
    ``update_every``/``drop_fraction``/``redistribute`` (agp, set, rigl) are its options.

    The constructor only validates; :meth:`from_dict` (TOML, the CLI) makes input canonical:
    ``"a,b"`` or a one-name list as :attr:`method`, integer amounts as floats (so that 50 and
    50.0 give one study key; a unit's ``amount`` is a float either way).
    """

    enabled: bool = True
    targets: tuple[str, ...] = ("both", "i2h", "h2h")
    amounts: tuple[float, ...] = (10.0, 20.0, 30.0, 40.0, 50.0, 60.0, 70.0, 80.0, 90.0, 100.0)
    scope: str = "global"
    retrain_epochs: int = 10
    tolerance: float = 0.01
    #: Retrain this many pruning points of one base model together
    #: (:func:`sparsernn.train.train_many`); 1 = one by one; 0 = auto (all of a base's points
    #: for tanh/ReLU/GRU, where that is faster; LSTM one by one). Part of each unit's identity:
    #: bundled training agrees with one-by-one training to float rounding, not bit for bit.
    bundle: int = 0
    method: str | tuple[str, ...] = "magnitude"
    rounds: int = 3
    rewind_epoch: int = 0
    update_every: int = 50
    drop_fraction: float = 0.3
    redistribute: bool = False

    @property
    def methods(self) -> tuple[str, ...]:
        """The methods the grid is run with (:attr:`method` as a tuple)."""
        return (self.method,) if isinstance(self.method, str) else tuple(self.method)

    @classmethod
    def normalise(cls, data: dict[str, Any]) -> dict[str, Any]:
        """``method`` as one name or a tuple of several; ``amounts`` as floats."""
        method = data.get("method")
        if isinstance(method, (str, list, tuple)):
            names = method.split(",") if isinstance(method, str) else list(method)
            names = [n.strip() if isinstance(n, str) else n for n in names]
            data["method"] = names[0] if len(names) == 1 else tuple(names)
        amounts = data.get("amounts")
        if isinstance(amounts, (list, tuple)):
            data["amounts"] = tuple(
                float(a) if isinstance(a, int) and not isinstance(a, bool) else a for a in amounts
            )
        return data

    def __post_init__(self) -> None:
        _check_method(self)
        if isinstance(self.bundle, bool) or not isinstance(self.bundle, int) or self.bundle < 0:
            raise ConfigError(
                f"pruning bundle={self.bundle!r} must be an integer >= 0 (0 = auto, 1 = off)"
            )
        for t in self.targets:
            if t not in TARGETS:
                raise ConfigError(f"unknown pruning target {t!r}; choose from {', '.join(TARGETS)}")
        if not all(isinstance(a, (int, float)) and not isinstance(a, bool) for a in self.amounts):
            raise ConfigError(f"pruning amounts {self.amounts!r} must be numbers")
        for a in self.amounts:
            if not 0 <= a <= 100:
                raise ConfigError(f"pruning amount {a} is outside 0..100 (a percentage)")
        if self.scope not in SCOPES:
            raise ConfigError(f"unknown pruning scope {self.scope!r}; choose from {SCOPES}")
        if self.retrain_epochs < 0:
            raise ConfigError(f"retrain_epochs={self.retrain_epochs} must be >= 0")
        if not 0 <= self.tolerance < 1:
            raise ConfigError(f"tolerance={self.tolerance} must be a fraction in [0, 1)")


def _check_method(p: PruningConfig) -> None:
    """Validate :attr:`PruningConfig.method` (one name, a string; several, a tuple of two or
    more) and the methods' options."""
    names = [p.method] if isinstance(p.method, str) else list(p.method)
    several = isinstance(p.method, tuple) and len(names) > 1
    if not (several or isinstance(p.method, str)) or "," in names[0]:
        raise ConfigError(
            f"pruning method {p.method!r}: give one name, or a tuple of several "
            "(PruningConfig.from_dict also takes 'a,b' or a list)"
        )
    for name in names:
        if name not in STUDY_METHODS:
            raise ConfigError(
                f"unknown pruning method {name!r}; choose one of {', '.join(STUDY_METHODS)}"
            )
    if not names or len(set(names)) < len(names):
        raise ConfigError(f"pruning method {p.method!r}: give each method once")
    if p.rounds < 1 or p.rewind_epoch < 0 or p.update_every < 1:
        raise ConfigError("pruning rounds and update_every must be >= 1, rewind_epoch >= 0")
    if not 0 <= p.drop_fraction <= 1 or not isinstance(p.redistribute, bool):
        raise ConfigError("pruning drop_fraction must be in [0, 1] and redistribute true/false")


@dataclasses.dataclass(frozen=True)
class StructureConfig(Config):
    """The random-structure grid (SPEC section 5).

    ``gate_layout``: GRU/LSTM i2h mask rows, ``"blocked"`` (graph-faithful) or
    ``"interleaved"`` (the study's code); see :class:`~sparsernn.nn.StructuredRNN`.

    ``graphs_from`` names a folder of graph files (``*.graphml``, ``*.edgelist``, node-link
    ``*.json``; ``*.gpickle`` only with ``allow_pickle``, as unpickling runs code): its graphs,
    one per file, replace the generators' (``generators``, ``n_graphs`` and ``nodes`` are then
    unused). See :func:`sparsernn.experiments.inputs.read_graph_dir`.
    """

    enabled: bool = True
    generators: tuple[str, ...] = ("ws", "ba")
    n_graphs: int = 100
    nodes: tuple[int, int] = (10, 50)
    epochs: int = 15
    batch_size: int = 128
    gate_layout: str = "blocked"
    graphs_from: str | None = None
    allow_pickle: bool = False

    def __post_init__(self) -> None:
        if self.gate_layout not in GATE_LAYOUTS:
            raise ConfigError(
                f"unknown gate_layout {self.gate_layout!r}; choose one of {', '.join(GATE_LAYOUTS)}"
            )
        for g in self.generators:
            if g not in _GENERATORS:
                raise ConfigError(
                    f"unknown graph generator {g!r}; choose from {', '.join(_GENERATORS)}"
                )
        if self.n_graphs < 0:
            raise ConfigError(f"n_graphs={self.n_graphs} must be >= 0")
        lo, hi = self.nodes
        if lo > hi:
            raise ConfigError(f"nodes range {lo}:{hi} is invalid; need lo <= hi")
        for g in self.generators if self.graphs_from is None else ():
            least, why = _MIN_NODES[g]
            if lo < least:
                raise ConfigError(
                    f"nodes range {lo}:{hi} is too small for generator {g!r}: {why}, "
                    f"so it needs n >= {least}"
                )
        if not isinstance(self.allow_pickle, bool):
            raise ConfigError(f"structure allow_pickle={self.allow_pickle!r} must be true/false")
        if self.epochs < 1 or self.batch_size < 1:
            raise ConfigError("structure epochs and batch_size must be >= 1")


@dataclasses.dataclass(frozen=True)
class StudyConfig(Config):
    """Everything that defines a study's results (defaults: the study's ``full`` protocol).

    Each seed trains its own base model (initial weights, batch order); the data set is the
    same for all seeds (``data.seed``) so that seeds measure training variance.
    """

    cells: tuple[str, ...] = MODES
    seeds: tuple[int, ...] = (0,)
    data: DataSpec = DataSpec()
    embedding_dim: int = 50
    hidden_size: int = 50
    num_layers: int = 3
    train: TrainConfig = TrainConfig()
    pruning: PruningConfig = PruningConfig()
    structure: StructureConfig = StructureConfig()

    @classmethod
    def normalise(cls, data: dict[str, Any]) -> dict[str, Any]:
        """A finite task's ``data.n_strings`` capped at its size (:func:`spec_fields`)."""
        if isinstance(data.get("data"), dict):
            data["data"] = spec_fields(data["data"])
        return data

    def __post_init__(self) -> None:
        check_spec(self.data)
        if not self.cells:
            raise ConfigError("no cells selected; choose from " + ", ".join(MODES))
        for c in self.cells:
            cell_spec(c)
        if not self.seeds:
            raise ConfigError("no seeds given; use e.g. --seeds 1")
        if min(self.embedding_dim, self.hidden_size, self.num_layers) < 1:
            raise ConfigError("embedding_dim, hidden_size and num_layers must be >= 1")


def profile(name: str) -> StudyConfig:
    """The named profile: ``full`` (the study), ``quick`` (~2.5 min) or ``smoke`` (~20 s).

    Times: ``sparsernn reproduce`` on 2 idle cores with 2 workers (see README.md).
    """
    try:
        return PROFILES[name]
    except KeyError:
        raise ConfigError(f"unknown profile {name!r}; choose from {', '.join(PROFILES)}") from None


PROFILES: dict[str, StudyConfig] = {
    "full": StudyConfig(),
    "quick": StudyConfig(
        data=DataSpec(n_strings=5000),
        train=TrainConfig(epochs=5),
        pruning=PruningConfig(retrain_epochs=2),
        structure=StructureConfig(n_graphs=8, nodes=(10, 35), epochs=3),
    ),
    "smoke": StudyConfig(
        cells=("gru", "rnn_tanh"),
        data=DataSpec(n_strings=1500),
        train=TrainConfig(epochs=3),
        pruning=PruningConfig(targets=("both", "h2h"), amounts=(50.0, 100.0), retrain_epochs=1),
        structure=StructureConfig(n_graphs=2, nodes=(10, 14), epochs=3, batch_size=32),
    ),
}


def load_study_config(
    path: str | Path, base: StudyConfig | None = None, kind: str | None = None
) -> StudyConfig:
    """Read a study TOML file; its tables override ``base`` (default: the ``full`` profile).

    A top-level ``profile = "quick"`` key picks the base profile. Relative file paths
    (``[data] train_csv``/``test_csv``, ``[structure] graphs_from``) are taken relative to the
    TOML file's folder and made absolute. A study directory's ``study.toml`` may hold several
    ``[[plan]]`` tables (see :func:`load_study_plans`): then ``kind`` picks the one that
    planned that kind of unit.
    """
    plans = load_study_plans(path, base)
    if len(plans) == 1:
        return plans[0][1]
    for kinds, study in plans:
        if kind in (kinds or KINDS):
            return study
    held = "; ".join(",".join(kinds or KINDS) for kinds, _ in plans)
    raise ConfigError(
        f"{path} holds {len(plans)} plans ({held}) and none for {kind or 'this command'}; "
        f"rerun all of them with sparsernn reproduce --config {path}"
    )


def load_study_plans(
    path: str | Path, base: StudyConfig | None = None
) -> list[tuple[tuple[str, ...] | None, StudyConfig]]:
    """Read a study TOML file as ``(kinds, study)`` pairs: what to run, of which kinds.

    A plain study file is one pair with ``kinds`` None (every kind it enables). The
    ``study.toml`` a study directory writes holds one ``[[plan]]`` table per config that
    planned units there, each a full study table with its ``kinds`` (e.g. ``["base",
    "prune"]`` from ``sparsernn prune``, ``["structure"]`` from ``sparsernn structure``).
    """
    data = load_toml(path)
    folder = Path(path).absolute().parent
    if "plan" not in data:
        return [(None, _from_table(data, folder, base, str(path)))]
    tables = data.pop("plan")
    if data or not isinstance(tables, list) or not all(isinstance(t, dict) for t in tables):
        raise ConfigError(
            f"{path}: a study file of [[plan]] tables holds nothing else; move "
            f"{', '.join(sorted(data)) or 'plan'} into each [[plan]] table"
        )
    plans = []
    for number, table in enumerate(tables, 1):
        kinds = table.pop("kinds", None)
        if kinds is not None and not (isinstance(kinds, list) and set(kinds) <= set(KINDS)):
            raise ConfigError(
                f"{path}: [[plan]] {number} kinds = {kinds!r}; give a list of {', '.join(KINDS)}"
            )
        study = _from_table(table, folder, base, f"{path} [[plan]] {number}")
        plans.append((None if kinds is None else tuple(kinds), study))
    return plans


def _from_table(
    data: dict[str, Any], folder: Path, base: StudyConfig | None, where: str
) -> StudyConfig:
    """One study table (a file's, or a ``[[plan]]``'s) over ``base`` or its ``profile``."""
    _absolute_paths(data, folder)
    name = data.pop("profile", None)
    start = profile(name) if name else (base or StudyConfig())
    return merge(start, data, where=where)


#: The study's file paths: (table, key) of each, in a TOML file or CLI overrides.
PATH_FIELDS = (("data", "train_csv"), ("data", "test_csv"), ("structure", "graphs_from"))


def _absolute_paths(data: dict[str, Any], folder: Path) -> None:
    """Make the :data:`PATH_FIELDS` of ``data`` absolute, relative ones taken from ``folder``."""
    for table, name in PATH_FIELDS:
        section = data.get(table)
        value = section.get(name) if isinstance(section, dict) else None
        if isinstance(section, dict) and isinstance(value, str) and value:
            section[name] = os.path.abspath(folder / Path(value).expanduser())


def merge(config: StudyConfig, overrides: dict[str, Any], where: str = "overrides") -> StudyConfig:
    """Apply nested overrides (TOML tables / CLI flags) to a study config, validating them."""
    merged = _deep_update(config.to_dict(), overrides)
    try:
        return StudyConfig.from_dict(merged)
    except (TypeError, ConfigError) as exc:
        raise ConfigError(f"{where}: {exc}") from None


def _deep_update(base: dict[str, Any], new: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for k, v in new.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = _deep_update(out[k], v)
        else:
            out[k] = v
    return out


def parse_range(text: str, *, what: str = "range") -> tuple[float, ...]:
    """Parse ``"10:100:10"`` (inclusive start:stop:step), ``"10,20,30"`` or ``"50"``."""
    text = text.strip()
    try:
        if ":" in text:
            parts = [float(p) for p in text.split(":")]
            if len(parts) == 2:
                return (parts[0], parts[1])
            start, stop, step = parts
            if step <= 0:
                raise ValueError
            n = int(round((stop - start) / step)) + 1
            values = tuple(
                start + i * step for i in range(max(n, 0)) if start + i * step <= stop + 1e-9
            )
        else:
            values = tuple(float(p) for p in text.split(",") if p.strip())
    except ValueError:
        raise ConfigError(
            f"cannot parse {what} {text!r}; use start:stop:step (e.g. 10:100:10) or a comma list"
        ) from None
    if not values:
        raise ConfigError(f"{what} {text!r} selects no values; e.g. 10:100:10 or 50,90")
    return values


def study_from_store(config: dict[str, Any]) -> StudyConfig:
    """The :class:`StudyConfig` a results store recorded (its ``study`` meta entries).

    Stores written before pruning bundles existed hold no ``pruning.bundle``: every pruning
    point in them ran alone, which is ``bundle = 1`` (not today's default, auto).
    """
    pruning = config.get("pruning")
    if isinstance(pruning, dict) and "bundle" not in pruning:
        config = {**config, "pruning": {**pruning, "bundle": 1}}
    return StudyConfig.from_dict(config)
