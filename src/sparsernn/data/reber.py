"""The Reber grammar, the embedded Reber grammar, and a generic finite-automaton class for both.

A :class:`Grammar` is a finite automaton given as ``state -> [(symbol, next_state), ...]``. A
string is valid iff reading its symbols walks from the start state to the end state. Sampling
walks from the start state taking each exit with equal probability, as in the study.

Examples
--------
>>> from sparsernn.data import reber
>>> reber.accepts("BTXSE"), reber.accepts("BTXSEE")
(True, False)
>>> s = reber.sample(seed=0, min_length=11, max_length=53)
>>> reber.accepts(s) and 11 <= len(s) <= 53
True
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Mapping, Sequence

import numpy as np

from sparsernn._seed import SeedLike, rng
from sparsernn.errors import ConfigError

__all__ = [
    "Grammar",
    "REBER",
    "EMBEDDED_REBER",
    "GRAMMARS",
    "MAX_LENGTH",
    "get_grammar",
    "accepts",
    "sample",
    "INNER_EDGES",
    "REBER_LETTERS",
    "reber_variant",
]

State = Hashable
Transitions = Mapping[State, Sequence[tuple[str, State]]]

# Walks longer than this are abandoned when no max_length is given (guards a runaway loop).
_WALK_CAP = 100_000
#: Largest max_length accepted (per-length tables are kept up to it).
MAX_LENGTH = 4096
# Uniform numbers drawn per refill of the sampler's random buffer.
_CHUNK = 256


class _Uniforms:
    """A buffered stream of U[0, 1) numbers from a Generator (scalar draws are slow in numpy)."""

    def __init__(self, gen: np.random.Generator) -> None:
        self._gen = gen
        self._buf: list[float] = []
        self._pos = 0

    def next(self) -> float:
        if self._pos == len(self._buf):
            self._buf = self._gen.random(_CHUNK).tolist()
            self._pos = 0
        self._pos += 1
        return self._buf[self._pos - 1]


class Grammar:
    """A finite automaton over single-character symbols, with an acceptor and a random sampler.

    Parameters
    ----------
    transitions : mapping
        ``state -> [(symbol, next_state), ...]``; every symbol is one ASCII character. A state
        may have several exits; the sampler takes each with equal probability.
    start, end : hashable
        The start state and the (single) accepting state. ``end`` has no exits.
    name : str
        Short identifier, e.g. ``"reber"``.
    """

    def __init__(self, transitions: Transitions, start: State, end: State, name: str = "") -> None:
        self.name = name
        self.start = start
        self.end = end
        self.transitions: dict[State, tuple[tuple[str, State], ...]] = {
            state: tuple((str(sym), nxt) for sym, nxt in exits)
            for state, exits in transitions.items()
        }
        self._validate()
        delta: dict[tuple[State, str], list[State]] = {}
        for state, exits in self.transitions.items():
            for sym, nxt in exits:
                delta.setdefault((state, sym), []).append(nxt)
        self._delta = {k: tuple(v) for k, v in delta.items()}
        self._alphabet = "".join(sorted({s for ex in self.transitions.values() for s, _ in ex}))
        self._shortest = self._shortest_length()
        self._counts: list[dict[State, int]] = [{self.end: 1}]
        self._weights: list[dict[State, float]] = [{self.end: 1.0}]
        self._span: list[dict[State, tuple[float, float]]] = [{self.end: (1.0, 1.0)}]

    def _validate(self) -> None:
        where = f"grammar {self.name or '<unnamed>'}"
        if self.start not in self.transitions:
            raise ConfigError(f"{where}: start state {self.start!r} has no exits; add transitions")
        if self.transitions.get(self.end):
            raise ConfigError(f"{where}: end state {self.end!r} must have no exits")
        for state, exits in self.transitions.items():
            if state != self.end and not exits:
                raise ConfigError(f"{where}: state {state!r} has no exits; add one or remove it")
            for sym, nxt in exits:
                if len(sym) != 1 or ord(sym) >= 128:
                    raise ConfigError(
                        f"{where}: symbol {sym!r} of state {state!r} must be one ASCII character"
                    )
                if nxt != self.end and nxt not in self.transitions:
                    raise ConfigError(
                        f"{where}: state {state!r} leads to unknown state {nxt!r}; define it"
                    )
        alive = {self.end}  # states from which the end can be reached
        grew = True
        while grew:
            before = len(alive)
            alive |= {st for st, ex in self.transitions.items() if any(n in alive for _, n in ex)}
            grew = len(alive) > before
        trapped = sorted(map(repr, set(self.transitions) - alive))
        if trapped:
            raise ConfigError(
                f"{where}: states {', '.join(trapped)} cannot reach the end state; "
                "add an exit towards it or remove them"
            )

    # ----------------------------------------------------------------------------------- queries
    @property
    def alphabet(self) -> str:
        """The grammar's symbols, sorted, as one string (``"BEPSTVX"`` for Reber)."""
        return self._alphabet

    @property
    def shortest_length(self) -> int:
        """Length of the shortest valid string."""
        return self._shortest

    @property
    def n_states(self) -> int:
        """Number of states, the end state included."""
        return len(set(self.transitions) | {self.end})

    def _shortest_length(self) -> int:
        frontier, seen, depth = {self.start}, {self.start}, 0
        while frontier:
            if self.end in frontier:
                return depth
            frontier = {n for s in frontier for _, n in self.transitions.get(s, ())} - seen
            seen |= frontier
            depth += 1
        raise ConfigError(f"grammar {self.name or '<unnamed>'}: the end state is unreachable")

    def accepts(self, string: str) -> bool:
        """Return True iff ``string`` walks from the start state to the end state.

        Non-strings and the empty string are rejected (the start state is never the end state).
        """
        if not isinstance(string, str):
            return False
        current: Iterable[State] = (self.start,)
        delta = self._delta
        for ch in string:
            nxt: set[State] = set()
            for state in current:
                nxt.update(delta.get((state, ch), ()))
            if not nxt:
                return False
            current = nxt
        return self.end in current

    # ------------------------------------------------------------------------- length tables
    def _extend_tables(self, high: int) -> None:
        """Fill the per-length tables up to ``high`` symbols (kept between calls).

        For ``k`` symbols left and each state: the number of paths to the end (``_counts``), the
        probability that the equal-exits walk reaches the end in exactly ``k`` symbols
        (``_weights``), and the smallest/largest probability of one such path (``_span``).
        """
        while len(self._counts) <= high:
            prev_c, prev_w, prev_s = self._counts[-1], self._weights[-1], self._span[-1]
            counts, weights, span = {}, {}, {}
            for state, exits in self.transitions.items():
                live = [nxt for _, nxt in exits if nxt in prev_c]
                if not live:
                    continue
                share = 1.0 / len(exits)
                counts[state] = sum(prev_c[nxt] for nxt in live)
                weights[state] = share * sum(prev_w[nxt] for nxt in live)
                span[state] = (
                    share * min(prev_s[nxt][0] for nxt in live),
                    share * max(prev_s[nxt][1] for nxt in live),
                )
            self._counts.append(counts)
            self._weights.append(weights)
            self._span.append(span)

    def achievable_lengths(self, low: int, high: int) -> list[int]:
        """Lengths ``L`` in ``[low, high]`` for which at least one valid string exists."""
        high = min(high, MAX_LENGTH)
        self._extend_tables(high)
        return [k for k in range(max(low, 0), high + 1) if self.start in self._counts[k]]

    def count_strings(self, length: int) -> int:
        """Number of valid strings of exactly ``length`` symbols (paths, if non-deterministic)."""
        self._extend_tables(length)
        return self._counts[length].get(self.start, 0)

    @property
    def is_deterministic(self) -> bool:
        """True if no state has two exits with the same symbol (then paths = strings)."""
        return all(len({s for s, _ in ex}) == len(ex) for ex in self.transitions.values())

    # ---------------------------------------------------------------------------------- sampling
    def _check_bounds(self, min_length: int | None, max_length: int | None) -> tuple[int, int]:
        """Validate length bounds; return ``(low, high)`` with ``high == -1`` meaning unbounded."""
        low = 0 if min_length is None else int(min_length)
        high = -1 if max_length is None else int(max_length)
        where = f"grammar {self.name or '<unnamed>'}"
        if low < 0:
            raise ConfigError(f"{where}: min_length={low} must be >= 0")
        if high != -1 and high < low:
            raise ConfigError(f"{where}: min_length={low} exceeds max_length={high}; swap them")
        if high > MAX_LENGTH:
            raise ConfigError(
                f"{where}: max_length={high} exceeds {MAX_LENGTH}; use None for no upper bound"
            )
        if high != -1 and high < self._shortest:
            raise ConfigError(
                f"{where}: max_length={high} is below the shortest valid string "
                f"({self._shortest}); raise max_length"
            )
        # If any valid string of length >= low exists, one exists within n_states of low (pumping).
        top = high if high != -1 else low + self.n_states
        if not self.achievable_lengths(low, top):
            raise ConfigError(
                f"{where}: no valid string has a length in [{low}, {max_length}]; "
                "widen the length range"
            )
        return low, high

    def _walk(self, uniforms: _Uniforms, cap: int) -> str | None:
        """One equal-exits random walk; None if it grows past ``cap`` symbols."""
        out: list[str] = []
        state, end, transitions = self.start, self.end, self.transitions
        while state != end:
            if len(out) >= cap:
                return None
            exits = transitions[state]
            sym, state = exits[int(uniforms.next() * len(exits))] if len(exits) > 1 else exits[0]
            out.append(sym)
        return "".join(out)

    def _walk_of_length(self, length: int, uniforms: _Uniforms) -> str:
        """An equal-exits walk conditioned on ending after exactly ``length`` symbols."""
        out: list[str] = []
        state = self.start
        for k in range(length, 0, -1):
            exits = self.transitions[state]
            if len(exits) == 1:
                sym, state = exits[0]
            else:
                w = self._weights[k - 1]
                probs = [w.get(nxt, 0.0) for _, nxt in exits]
                u = uniforms.next() * sum(probs)
                i, acc = 0, probs[0]
                while u >= acc and i < len(exits) - 1:
                    i += 1
                    acc += probs[i]
                while probs[i] == 0.0:  # rounding landed on a dead exit: step back
                    i -= 1
                sym, state = exits[i]
            out.append(sym)
        return "".join(out)

    def _unrank(self, length: int, index: int) -> str:
        """The ``index``-th path of exactly ``length`` symbols (order: exits as listed)."""
        out: list[str] = []
        state = self.start
        for k in range(length, 0, -1):
            counts = self._counts[k - 1]
            for sym, nxt in self.transitions[state]:
                c = counts.get(nxt, 0)
                if index < c:
                    out.append(sym)
                    state = nxt
                    break
                index -= c
        return "".join(out)

    def _mass_above(self, low: int) -> float:
        """Probability that the walk ends after ``low`` to ``MAX_LENGTH`` symbols."""
        self._extend_tables(MAX_LENGTH)
        return float(sum(w.get(self.start, 0.0) for w in self._weights[low : MAX_LENGTH + 1]))

    def _length_probs(self, low: int, high: int) -> tuple[np.ndarray, np.ndarray]:
        """Lengths in ``[low, high]`` and the walk's probabilities of them, normalised."""
        self._extend_tables(high)
        lengths = np.arange(low, high + 1)
        probs = np.array([self._weights[k].get(self.start, 0.0) for k in lengths.tolist()])
        if not probs.sum() > 0.0:
            raise ConfigError(
                f"grammar {self.name or '<unnamed>'}: lengths [{low}, {high}] are too unlikely "
                "for the walk (probability underflows); lower the lengths"
            )
        return lengths, probs / probs.sum()

    def sample_many(
        self,
        n: int,
        seed: SeedLike = None,
        min_length: int | None = None,
        max_length: int | None = None,
    ) -> list[str]:
        """Draw ``n`` valid strings (duplicates possible) with lengths in the given bounds.

        The distribution is that of the study's rejection sampler: a random walk from the start
        state taking each exit with equal probability, kept only if its length lies in
        ``[min_length, max_length]``. This is computed exactly without rejections (draw the length
        with the walk's probability, then a walk conditioned on it); without ``max_length``,
        lengths up to :data:`MAX_LENGTH` are considered (longer walks are vanishingly unlikely),
        and walks are rejected only if those lengths' probabilities underflow.

        Raises
        ------
        ConfigError
            If the bounds are impossible, or (no ``max_length``) ``max(10_000, 1000 * n)`` walks
            did not yield ``n`` strings long enough.
        """
        low, high = self._check_bounds(min_length, max_length)
        gen = rng(seed)
        uniforms = _Uniforms(gen)
        if high == -1 and self._mass_above(low) > 0.0:
            high = MAX_LENGTH  # longer walks have probability < 2**-4000: exact enough
        if high != -1:
            lengths, probs = self._length_probs(low, high)
            picks = gen.choice(lengths, size=n, p=probs).tolist()
            return [self._walk_of_length(k, uniforms) for k in picks]
        budget = max(10_000, 1000 * n)
        out: list[str] = []
        attempts = 0
        while len(out) < n:
            if attempts >= budget:
                raise ConfigError(
                    f"grammar {self.name or '<unnamed>'}: only {len(out)} of {n} walks reached "
                    f"length {low} after {attempts} tries; lower min_length"
                )
            attempts += 1
            s = self._walk(uniforms, _WALK_CAP)
            if s is not None and len(s) >= low:
                out.append(s)
        return out

    def sample(
        self,
        seed: SeedLike = None,
        min_length: int | None = None,
        max_length: int | None = None,
    ) -> str:
        """Draw one valid string: an equal-exits walk, rejected until its length is in bounds.

        Raises
        ------
        ConfigError
            If no valid string can have a length in ``[min_length, max_length]``.
        """
        return self.sample_many(1, seed, min_length, max_length)[0]

    def sample_unique(
        self,
        n: int,
        seed: SeedLike = None,
        min_length: int | None = None,
        max_length: int | None = None,
        max_draws: int | None = None,
    ) -> list[str]:
        """The first ``n`` distinct strings of a stream of :meth:`sample_many` draws.

        Short strings are few, so they saturate and longer ones fill the set: for Reber with
        lengths 11..53 the 12,500 distinct strings peak near length 23, as in the study (mode
        22). For deterministic grammars whose paths of one length are equally likely (Reber,
        embedded Reber) the draws are made as (length, rank) pairs in bulk, which is fast.

        Raises
        ------
        ConfigError
            If fewer than ``n`` distinct strings exist in the length range, or ``max_draws``
            draws (default ``max(1_000_000, 100 * n)``) did not yield ``n`` distinct ones.
        """
        low, high = self._check_bounds(min_length, max_length)
        budget = max(1_000_000, 100 * n) if max_draws is None else int(max_draws)
        where = f"grammar {self.name or '<unnamed>'}"
        span = f"[{low}, {max_length}]"
        gen = rng(seed)
        if high != -1 and self.is_deterministic:
            lengths, probs = self._length_probs(low, high)
            counts = [self._counts[k].get(self.start, 0) for k in lengths.tolist()]
            total = sum(counts)
            if total < n:
                raise ConfigError(
                    f"{where}: only {total} distinct strings have lengths in {span}, "
                    f"{n} requested; widen the length range or ask for fewer"
                )
            uniform = all(
                self._span[k][self.start][0] >= self._span[k][self.start][1] * (1 - 1e-9)
                for k in lengths.tolist()
                if self.start in self._span[k]
            )
            if uniform and total < 2**62:
                return self._unique_by_rank(n, gen, lengths, probs, counts, budget, where, span)
        out: list[str] = []
        seen: set[str] = set()
        draws = 0
        while len(out) < n and draws < budget:
            batch = min(max(2 * (n - len(out)), 64), budget - draws)
            draws += batch
            for s in self.sample_many(batch, gen, min_length, max_length):
                if s not in seen:
                    seen.add(s)
                    out.append(s)
                    if len(out) == n:
                        break
        if len(out) < n:
            raise ConfigError(
                f"{where}: only {len(out)} of {n} distinct strings with lengths in {span} after "
                f"{draws} draws; widen the length range or ask for fewer"
            )
        return out

    def _unique_by_rank(
        self,
        n: int,
        gen: np.random.Generator,
        lengths: np.ndarray,
        probs: np.ndarray,
        counts: list[int],
        budget: int,
        where: str,
        span: str,
    ) -> list[str]:
        offsets = np.concatenate([[0], np.cumsum(counts)[:-1]]).astype(np.int64)
        highs = np.maximum(np.asarray(counts, dtype=np.int64), 1)
        keys: list[tuple[int, int]] = []
        seen: set[int] = set()
        draws, batch = 0, 2 * n
        while len(keys) < n and draws < budget:
            batch = min(batch, budget - draws)
            draws += batch
            which = gen.choice(len(lengths), size=batch, p=probs)
            ranks = gen.integers(0, highs[which])
            flat = (offsets[which] + ranks).tolist()
            for j, key in enumerate(flat):
                if key not in seen:
                    seen.add(key)
                    keys.append((int(which[j]), int(ranks[j])))
                    if len(keys) == n:
                        break
            batch *= 2
        if len(keys) < n:
            raise ConfigError(
                f"{where}: only {len(keys)} of {n} distinct strings with lengths in {span} after "
                f"{draws} draws; widen the length range or ask for fewer"
            )
        return [self._unrank(int(lengths[w]), r) for w, r in keys]

    def __repr__(self) -> str:
        return f"Grammar(name={self.name!r}, n_states={self.n_states}, alphabet={self.alphabet!r})"


def _embed(inner: Grammar, wrappers: str = "TP", name: str = "") -> Grammar:
    """B, then one of ``wrappers``, then a string of ``inner``, then the same wrapper, then E."""
    table: dict[State, list[tuple[str, State]]] = {
        "start": [("B", "open")],
        "open": [(w, (w, inner.start)) for w in wrappers],
        "close": [("E", "end")],
    }
    for w in wrappers:
        for state, exits in inner.transitions.items():
            table[(w, state)] = [(sym, (w, nxt)) for sym, nxt in exits]
        table[(w, inner.end)] = [(w, "close")]
    return Grammar(table, start="start", end="end", name=name)


#: The Reber automaton's ten inner edges (state -> state), in the order SPEC 2.1 lists them;
#: the first edge (0 -B-> 1) and the last (6 -E-> end) are not inner edges.
INNER_EDGES: tuple[tuple[int, int], ...] = (
    (1, 2),
    (1, 3),
    (2, 2),
    (2, 4),
    (3, 3),
    (3, 5),
    (4, 3),
    (4, 6),
    (5, 4),
    (5, 6),
)
#: The real grammar's letters on :data:`INNER_EDGES`.
REBER_LETTERS = "TPSXTVXSPV"


def _check_letters(letters: str) -> str:
    if not isinstance(letters, str) or len(letters) != len(INNER_EDGES):
        raise ConfigError(
            f"inner-edge letters {letters!r} must be a string of {len(INNER_EDGES)} characters, "
            f"one per inner edge {INNER_EDGES} (the real grammar's are {REBER_LETTERS!r})"
        )
    bad = [c for c in letters if not 0 < ord(c) < 128]
    if bad:
        raise ConfigError(
            f"inner-edge letters {letters!r}: {bad[0]!r} is not an ASCII character (codes 1..127)"
        )
    return letters


def reber_variant(letters: str, embedded: bool = False, name: str | None = None) -> Grammar:
    """The Reber automaton with other ``letters`` on its ten inner edges (SPEC 2.1).

    Same states, same edges, same 1/2 branching, B on the first edge and E on the last; only
    the letters on :data:`INNER_EDGES` change. ``reber_variant(REBER_LETTERS)`` is the real
    grammar. With ``embedded=True`` the variant sits inside the embedded grammar's frame
    (B, T or P, the variant's string, the same T or P, E).

    Examples
    --------
    >>> g = reber_variant("PTSXTVXSPV")  # the first branch's letters swapped
    >>> g.accepts("BPSXSE"), REBER.accepts("BPSXSE")
    (True, False)
    """
    _check_letters(letters)
    table: dict[State, list[tuple[str, State]]] = {0: [("B", 1)], 6: [("E", 7)]}
    for (src, dst), letter in zip(INNER_EDGES, letters, strict=True):
        table.setdefault(src, []).append((letter, dst))
    inner = Grammar(table, start=0, end=7, name=name or f"reber[{letters}]")
    if not embedded:
        return inner
    return _embed(inner, "TP", name=name or f"embedded_reber[{letters}]")


#: The Reber grammar of the study (SPEC section 2); state 7 is the end state.
REBER = reber_variant(REBER_LETTERS, name="reber")

#: The embedded Reber grammar: B, T or P, a Reber string, the same T or P, E.
EMBEDDED_REBER = _embed(REBER, "TP", name="embedded_reber")

#: Grammars known by name.
GRAMMARS: dict[str, Grammar] = {g.name: g for g in (REBER, EMBEDDED_REBER)}


def get_grammar(name: str | Grammar) -> Grammar:
    """Return the grammar called ``name`` (``"reber"`` or ``"embedded_reber"``).

    A :class:`Grammar` passes through unchanged, so functions can take either.
    """
    if isinstance(name, Grammar):
        return name
    try:
        return GRAMMARS[name]
    except (KeyError, TypeError):
        raise ConfigError(
            f"unknown grammar {name!r}; valid grammars: {', '.join(sorted(GRAMMARS))}"
        ) from None


def accepts(string: str) -> bool:
    """Return True iff ``string`` is a valid Reber string (the study's acceptor)."""
    return REBER.accepts(string)


def sample(
    seed: SeedLike = None, min_length: int | None = None, max_length: int | None = None
) -> str:
    """Draw one valid Reber string with a length in ``[min_length, max_length]``."""
    return REBER.sample(seed, min_length, max_length)
