"""Invalid strings for a grammar: the study's kind and three others, each checked by the acceptor.

- ``alternative`` (the study's, SPEC 2.1): distinct walks of ALTERNATIVE GRAMMARS, the same
  automaton with other letters on its ten inner edges (:func:`~sparsernn.data.reber.reber_variant`).
  The study used eight (:data:`STUDY_ALTERNATIVES`): four keep the Reber letters and break the
  grammar in one or two places (hard negatives), four use foreign letters. Each contributes a
  fixed number of distinct walks; the de-duplication inside each grammar is what gives each group
  its length profile, so lengths are not forced.
- ``iid_foreign``: B...E framed, letters A..Z, at least one letter outside the grammar's alphabet.
- ``broken_transition``: B...E framed, only the grammar's letters, but the walk breaks a transition.
- ``edit``: one substitution, insertion or deletion inside a valid string that makes it
  invalid; the first and last symbols are kept, so it stays B...E framed (beyond the study: the
  hard kind, since it differs from a valid string by one symbol).

``iid_foreign``, ``broken_transition`` and ``edit`` follow the valid strings' length distribution
(each target length is drawn from a pool of valid strings), so length is not a shortcut. They
are EASIER IN KIND than the study's negatives: networks trained on them reach 0.99 there but only
0.78-0.88 on the study's test set (SPEC 2.1), so use ``alternative`` to compare with the study.
"""

from __future__ import annotations

import string as _string
from collections.abc import Callable, Sequence

import numpy as np

from sparsernn._seed import SeedLike, rng
from sparsernn.data.reber import REBER_LETTERS, Grammar, get_grammar, reber_variant
from sparsernn.errors import ConfigError

__all__ = [
    "NEGATIVE_KINDS",
    "STUDY_ALTERNATIVES",
    "alternative_kind",
    "alternative_family",
    "alternative_walks",
    "foreign",
    "transition",
    "edit",
    "foreign_string",
    "transition_string",
    "edit_string",
    "make_negatives",
]

#: Negative kinds a :class:`~sparsernn.data.DataSpec` can mix; ``alternative`` is the study's.
NEGATIVE_KINDS: tuple[str, ...] = ("alternative", "iid_foreign", "broken_transition", "edit")

#: The study's eight alternative grammars (SPEC 2.1): letters on the inner edges
#: 1->2, 1->3, 2->2, 2->4, 3->3, 3->5, 4->3, 4->6, 5->4, 5->6, and the number of distinct walks
#: each gave per 12,500 negatives (the weights that split the ``alternative`` share).
STUDY_ALTERNATIVES: tuple[tuple[str, float], ...] = (
    ("TPTVSXXSPV", 2000.0),  # Reber letters; edges 2->2, 2->4, 3->3, 3->5 differ
    ("TPXSVTXSPV", 500.0),  # Reber letters; edges 2->2, 2->4, 3->3, 3->5 differ
    ("TPSXTVPVXS", 1500.0),  # Reber letters; edges 4->3, 4->6, 5->4, 5->6 differ
    ("PTSXTVXSPV", 1500.0),  # Reber letters; only the first branch differs
    ("ACDFJIHGLK", 2000.0),  # foreign letters
    ("MNOQCAURFD", 1500.0),  # foreign letters
    ("MNOQWVURZY", 2000.0),  # foreign letters
    ("QOMNCAURFD", 1500.0),  # foreign letters
)

_FIRST, _LAST = "B", "E"
_LETTERS = _string.ascii_uppercase
# Random tries per string before giving up (each try is almost always invalid at once).
_MAX_TRIES = 200


_ALT_PREFIX = "alt_"
# Extra distinct walks asked for per round, beyond those still missing, to cover exclusions.
_ALT_MARGIN = 16


def alternative_kind(letters: str) -> str:
    """The kind label of negatives from the alternative grammar with these inner-edge letters."""
    return _ALT_PREFIX + letters


def alternative_family(letters: str) -> str:
    """``"reber_letters"`` if the grammar uses only Reber letters, else ``"foreign_letters"``.

    The first family gives the study's hard negatives (the grammar's rhythm and letters, broken
    in one or two places); the second differs in every inner letter.
    """
    return "reber_letters" if set(letters) <= set(REBER_LETTERS) else "foreign_letters"


def alternative_walks(
    grammar: Grammar | str,
    letters: str,
    n: int,
    seed: SeedLike = None,
    *,
    min_length: int | None = None,
    max_length: int | None = None,
    exclude: set[str] | frozenset[str] = frozenset(),
) -> list[str]:
    """``n`` distinct walks of the alternative grammar ``letters``, none valid for ``grammar``.

    The walks are the first ``n`` distinct ones of the variant's equal-exits sampler with lengths
    in ``[min_length, max_length]`` (the study's de-duplication), skipping strings in ``exclude``
    (e.g. strings already in the data set) and strings the real grammar accepts. For
    ``grammar="embedded_reber"`` the variant is embedded the same way.

    Raises
    ------
    ConfigError
        If the variant cannot give ``n`` such strings (too few distinct walks in the length
        range, or its letters are the real grammar's).
    """
    g = get_grammar(grammar)
    if g.name not in ("reber", "embedded_reber"):
        raise ConfigError(
            f"alternative negatives relabel the Reber automaton; grammar {g.name!r} is not "
            "reber or embedded_reber: use another negative kind"
        )
    variant = reber_variant(letters, embedded=g.name == "embedded_reber")
    lo = 0 if min_length is None else min_length
    hi = variant.shortest_length + 200 if max_length is None else max_length
    capacity = sum(variant.count_strings(k) for k in variant.achievable_lengths(lo, hi))
    gen = rng(seed)
    want = n
    for _ in range(8):
        ask = min(want + _ALT_MARGIN, capacity)
        walks = variant.sample_unique(ask, gen, min_length, max_length) if ask >= n else []
        out = [s for s in walks if s not in exclude and not g.accepts(s)][:n]
        if len(out) == n:
            return out
        if ask >= capacity or not any(not g.accepts(s) for s in walks):
            break
        want = 2 * want + len(walks) - len(out)
    raise ConfigError(
        f"alternative grammar {letters!r}: could not find {n} distinct walks with lengths in "
        f"[{min_length}, {max_length}] that are invalid for {g.name} and not already used; "
        "give it a smaller weight, widen the length range, or change its letters"
    )


def _framed_too_short(kind: str, length: int) -> ConfigError:
    return ConfigError(f"{kind} negatives need length >= 3 (B, a letter, E); got {length}")


def foreign_string(grammar: Grammar | str, length: int, seed: SeedLike = None) -> str:
    """One invalid string ``B...E`` of ``length`` letters A..Z with a letter outside the grammar.

    The inner letters are uniform over A..Z, redrawn until at least one is foreign.
    """
    g = get_grammar(grammar)
    if length < 3:
        raise _framed_too_short("foreign", length)
    foreign_letters = [c for c in _LETTERS if c not in g.alphabet]
    if not foreign_letters:
        raise ConfigError(f"grammar {g.name}: uses all of A..Z, so no foreign letter exists")
    gen = rng(seed)
    letters = np.array(list(_LETTERS))
    is_foreign = np.array([c not in g.alphabet for c in _LETTERS])
    for _ in range(_MAX_TRIES):
        idx = gen.integers(0, len(_LETTERS), size=length - 2)
        if is_foreign[idx].any():
            out = _FIRST + "".join(letters[idx].tolist()) + _LAST
            if not g.accepts(out):
                return out
    # Practically unreachable (19 of 26 letters are foreign for Reber); force one foreign letter.
    idx = gen.integers(0, len(_LETTERS), size=length - 2)
    inner = letters[idx].tolist()
    inner[int(gen.integers(len(inner)))] = foreign_letters[int(gen.integers(len(foreign_letters)))]
    return _FIRST + "".join(inner) + _LAST


def transition_string(grammar: Grammar | str, length: int, seed: SeedLike = None) -> str:
    """One invalid string ``B...E`` of ``length`` symbols, all from the grammar's alphabet.

    The inner symbols are uniform over the alphabet, redrawn until the acceptor rejects the
    string, so it only breaks the transitions.
    """
    g = get_grammar(grammar)
    if length < 3:
        raise _framed_too_short("transition", length)
    if _FIRST not in g.alphabet or _LAST not in g.alphabet:
        raise ConfigError(f"grammar {g.name}: transition negatives need B and E in the alphabet")
    gen = rng(seed)
    letters = np.array(list(g.alphabet))
    for _ in range(_MAX_TRIES):
        idx = gen.integers(0, len(letters), size=length - 2)
        out = _FIRST + "".join(letters[idx].tolist()) + _LAST
        if not g.accepts(out):
            return out
    raise ConfigError(
        f"grammar {g.name}: {_MAX_TRIES} random strings of length {length} over "
        f"{g.alphabet!r} were all valid; use another length"
    )


def _allowed_ops(n: int, min_length: int | None, max_length: int | None) -> list[str]:
    ops = []
    if n >= 3:  # an inner symbol exists
        ops.append("substitute")
        if min_length is None or n - 1 >= max(min_length, 1):
            ops.append("delete")
    if max_length is None or n + 1 <= max_length:
        ops.append("insert")
    return ops


def edit_string(
    grammar: Grammar | str,
    string: str,
    seed: SeedLike = None,
    *,
    min_length: int | None = None,
    max_length: int | None = None,
) -> str:
    """Apply one random edit inside ``string`` (keeping its first and last symbol) so it is invalid.

    The edit kind (substitution, insertion, deletion) is uniform among those that keep the
    length in ``[min_length, max_length]``; the position and the new symbol (from the grammar's
    alphabet, different from the old one for a substitution) are uniform. Edits that leave the
    string valid are redrawn; if random tries fail, every single edit is enumerated.
    """
    g = get_grammar(grammar)
    n = len(string)
    ops = _allowed_ops(n, min_length, max_length)
    if not ops:
        raise ConfigError(
            f"cannot edit {string!r} inside the length range [{min_length}, {max_length}]"
        )
    gen = rng(seed)
    alphabet = g.alphabet
    for _ in range(_MAX_TRIES):
        op = ops[int(gen.integers(len(ops)))]
        if op == "substitute":
            i = int(gen.integers(1, n - 1))
            choices = [c for c in alphabet if c != string[i]]
            out = string[:i] + choices[int(gen.integers(len(choices)))] + string[i + 1 :]
        elif op == "delete":
            i = int(gen.integers(1, n - 1))
            out = string[:i] + string[i + 1 :]
        else:
            i = int(gen.integers(1, n)) if n >= 2 else n
            out = string[:i] + alphabet[int(gen.integers(len(alphabet)))] + string[i:]
        if not g.accepts(out):
            return out
    candidates = sorted(_all_invalid_edits(g, string, ops))
    if not candidates:
        raise ConfigError(f"grammar {g.name}: no single edit inside {string!r} makes it invalid")
    return candidates[int(gen.integers(len(candidates)))]


def _all_invalid_edits(g: Grammar, string: str, ops: list[str]) -> set[str]:
    n, out = len(string), set[str]()
    for i in range(1, max(n - 1, 1)):
        if "substitute" in ops:
            out.update(string[:i] + c + string[i + 1 :] for c in g.alphabet if c != string[i])
        if "delete" in ops:
            out.add(string[:i] + string[i + 1 :])
    if "insert" in ops:
        for i in range(1, n) if n >= 2 else [n]:
            out.update(string[:i] + c + string[i:] for c in g.alphabet)
    return {s for s in out if not g.accepts(s)}


def _pool(
    g: Grammar,
    n: int,
    gen: np.random.Generator,
    valid: Sequence[str] | None,
    min_length: int | None,
    max_length: int | None,
) -> list[str]:
    """``n`` valid strings drawn (with replacement) from ``valid``, or freshly sampled."""
    if valid is None:
        return g.sample_many(n, gen, min_length, max_length)
    if len(valid) == 0:
        raise ConfigError("valid: the pool of valid strings is empty; pass at least one string")
    pick = gen.integers(0, len(valid), size=n)
    return [valid[i] for i in pick.tolist()]


def _pool_generator(rule: Callable[..., str], name: str, doc: str) -> Callable[..., list[str]]:
    """A public generator ``name(grammar, n, seed, *, valid, min_length, max_length)`` that draws
    ``n`` valid strings (from ``valid`` or the grammar) and turns each into a negative with
    ``rule(g, string, gen, min_length, max_length)``."""

    def generate(
        grammar: Grammar | str,
        n: int,
        seed: SeedLike = None,
        *,
        valid: Sequence[str] | None = None,
        min_length: int | None = None,
        max_length: int | None = None,
    ) -> list[str]:
        g = get_grammar(grammar)
        gen = rng(seed)
        pool = _pool(g, n, gen, valid, min_length, max_length)
        return [rule(g, s, gen, min_length, max_length) for s in pool]

    generate.__name__ = generate.__qualname__ = name
    generate.__doc__ = doc
    return generate


foreign = _pool_generator(
    lambda g, s, gen, lo, hi: foreign_string(g, len(s), gen),
    "foreign",
    """``n`` foreign-letter negatives whose lengths are drawn from valid strings' lengths.

    Parameters
    ----------
    grammar : Grammar or str
        The grammar (or its name) the strings must be invalid for.
    n : int
        Number of strings (duplicates possible).
    seed : int, Generator or None
        Randomness.
    valid : sequence of str, optional
        Pool of valid strings whose lengths the negatives copy; by default ``n`` strings are
        sampled from ``grammar`` within ``[min_length, max_length]``.
    """,
)
transition = _pool_generator(
    lambda g, s, gen, lo, hi: transition_string(g, len(s), gen),
    "transition",
    """``n`` broken-transition negatives whose lengths are drawn from valid strings' lengths.

    Parameters are as for :func:`foreign`.
    """,
)
edit = _pool_generator(
    lambda g, s, gen, lo, hi: edit_string(g, s, gen, min_length=lo, max_length=hi),
    "edit",
    """``n`` one-edit negatives, each made from a valid string drawn from ``valid``.

    Parameters are as for :func:`foreign`; results keep lengths in ``[min_length, max_length]``.
    """,
)


# The kinds drawn from a pool of valid strings (``alternative`` has its own generator).
_GENERATORS: dict[str, Callable[..., list[str]]] = {
    "iid_foreign": foreign,
    "broken_transition": transition,
    "edit": edit,
}


def make_negatives(
    kind: str,
    grammar: Grammar | str,
    n: int,
    seed: SeedLike = None,
    *,
    valid: Sequence[str] | None = None,
    min_length: int | None = None,
    max_length: int | None = None,
) -> list[str]:
    """Dispatch to the pool-based generator ``kind``: iid_foreign, broken_transition or edit.

    ``alternative`` negatives need their grammar's letters: use :func:`alternative_walks`.
    """
    try:
        fn = _GENERATORS[kind]
    except KeyError:
        raise ConfigError(
            f"unknown negative kind {kind!r} for make_negatives; valid kinds: "
            f"{', '.join(_GENERATORS)} (alternative: use alternative_walks)"
        ) from None
    return fn(grammar, n, seed, valid=valid, min_length=min_length, max_length=max_length)
