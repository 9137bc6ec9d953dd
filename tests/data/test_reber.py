"""Tests for sparsernn.data.reber: acceptors (hand-checked examples) and samplers."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from sparsernn.data import EMBEDDED_REBER, REBER, Grammar, get_grammar, reber
from sparsernn.errors import ConfigError

# Each walk written out by hand from SPEC section 2 (state after each symbol).
REBER_VALID = [
    "BTXSE",  # 0 B 1 T 2 X 4 S 6 E end
    "BPVVE",  # 0 B 1 P 3 V 5 V 6 E end
    "BTSSXXTVVE",  # 1 T 2 S 2 S 2 X 4 X 3 T 3 V 5 V 6 E
    "BPTVPSE",  # 1 P 3 T 3 V 5 P 4 S 6 E
    "BTXXVVE",  # 1 T 2 X 4 X 3 V 5 V 6 E
    "BPVPXVVE",  # 1 P 3 V 5 P 4 X 3 V 5 V 6 E
    "BTSXSE",  # 1 T 2 S 2 X 4 S 6 E
    "BPTTVPXTVVE",  # 1 P 3 T 3 T 3 V 5 P 4 X 3 T 3 V 5 V 6 E
]
REBER_INVALID = [
    "",  # empty
    "B",  # just B
    "TXSE",  # wrong start
    "BTXS",  # stops in state 6, no E
    "BTXSS",  # wrong end: 6 has no S exit
    "BTXSEE",  # symbol after the end
    "BTASE",  # foreign letter
    "BTVSE",  # broken transition: 2 has no V exit
    "BPXSE",  # broken transition: 3 has no X exit
    "btxse",  # lower case
    "EBTXSE",
]


@pytest.mark.parametrize("s", REBER_VALID)
def test_reber_accepts_valid(s: str) -> None:
    assert reber.accepts(s)
    assert REBER.accepts(s)


@pytest.mark.parametrize("s", REBER_INVALID)
def test_reber_rejects_invalid(s: str) -> None:
    assert not reber.accepts(s)


def test_reber_rejects_non_strings() -> None:
    assert not REBER.accepts(None)  # type: ignore[arg-type]
    assert not REBER.accepts(["B", "T", "X", "S", "E"])  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "s, ok",
    [
        ("BTBTXSETE", True),
        ("BPBPVVEPE", True),
        ("BTBPTVPSETE", True),
        ("BTBTXSEPE", False),  # wrappers differ
        ("BPBTXSETE", False),
        ("BTXSE", False),  # a plain Reber string
        ("BTBTXSE", False),  # closing wrapper missing
        ("BTBTVSETE", False),  # inner string broken
        ("", False),
    ],
)
def test_embedded_acceptor(s: str, ok: bool) -> None:
    assert EMBEDDED_REBER.accepts(s) is ok


def test_grammar_properties() -> None:
    assert REBER.name == "reber" and EMBEDDED_REBER.name == "embedded_reber"
    assert REBER.alphabet == "BEPSTVX"
    assert EMBEDDED_REBER.alphabet == "BEPSTVX"
    assert REBER.shortest_length == 5
    assert EMBEDDED_REBER.shortest_length == 9
    assert REBER.is_deterministic and EMBEDDED_REBER.is_deterministic
    # Length 5: BTXSE, BPVVE; length 6: BTSXSE, BPTVVE, BPVPSE.
    assert [REBER.count_strings(k) for k in range(7)] == [0, 0, 0, 0, 0, 2, 3]
    assert get_grammar("reber") is REBER
    assert get_grammar(EMBEDDED_REBER) is EMBEDDED_REBER


def test_get_grammar_unknown_lists_valid_names() -> None:
    with pytest.raises(ConfigError, match="embedded_reber, reber"):
        get_grammar("tomita")


@settings(max_examples=40, deadline=None)
@given(
    seed=st.integers(0, 2**32),
    embedded=st.booleans(),
    low=st.integers(0, 30),
    span=st.one_of(st.none(), st.integers(0, 25)),
)
def test_sampler_output_is_valid_and_in_bounds(
    seed: int, embedded: bool, low: int, span: int | None
) -> None:
    g = EMBEDDED_REBER if embedded else REBER
    high = None if span is None else low + span
    assume(g.achievable_lengths(low, low + 40 if high is None else high))
    strings = g.sample_many(5, seed, min_length=low, max_length=high)
    one = g.sample(seed, min_length=low, max_length=high)
    for s in [*strings, one]:
        assert g.accepts(s)
        assert len(s) >= low and (high is None or len(s) <= high)


def test_sample_is_deterministic_and_module_level_sample_works() -> None:
    assert reber.sample(3, 11, 53) == reber.sample(3, 11, 53)
    assert REBER.sample_many(50, 1) == REBER.sample_many(50, 1)
    assert REBER.sample_many(50, 1) != REBER.sample_many(50, 2)
    assert reber.accepts(reber.sample())


def _walk_probabilities(g: Grammar, low: int, high: int) -> dict[str, float]:
    """Every string with length in [low, high] and its equal-exits walk probability (by DFS)."""
    out: dict[str, float] = {}
    stack = [(g.start, "", 1.0)]
    while stack:
        state, prefix, p = stack.pop()
        if state == g.end:
            if len(prefix) >= low:
                out[prefix] = p
            continue
        if len(prefix) >= high:
            continue
        exits = g.transitions[state]
        stack.extend((nxt, prefix + sym, p / len(exits)) for sym, nxt in exits)
    total = sum(out.values())
    return {s: p / total for s, p in out.items()}


def test_sampler_matches_rejection_distribution() -> None:
    # Frequencies of each string of length 5..8 in 4000 draws, within 4.5 standard errors of
    # the walk's probability conditioned on the length range (what rejection sampling gives).
    expected = _walk_probabilities(REBER, 5, 8)
    n = 4000
    draws = REBER.sample_many(n, seed=11, min_length=5, max_length=8)
    counts: dict[str, int] = {}
    for s in draws:
        counts[s] = counts.get(s, 0) + 1
    assert set(counts) <= set(expected)
    for s, p in expected.items():
        se = math.sqrt(p * (1 - p) / n)
        assert abs(counts.get(s, 0) / n - p) < 4.5 * se + 1e-9, s


def test_sampler_without_max_uses_rejection() -> None:
    # min_length only: the walk is rejected until long enough; lengths have no upper bound.
    strings = REBER.sample_many(200, seed=5, min_length=9)
    assert all(len(s) >= 9 and REBER.accepts(s) for s in strings)


def test_sample_unique_is_distinct_and_peaks_like_the_study() -> None:
    strings = REBER.sample_unique(2000, seed=0, min_length=11, max_length=53)
    assert len(set(strings)) == 2000
    assert all(REBER.accepts(s) and 11 <= len(s) <= 53 for s in strings)
    lengths = np.bincount([len(s) for s in strings])
    # All 24 strings of length 11 exist; short lengths saturate, so the mode moves up.
    assert lengths[11] <= REBER.count_strings(11) == 24
    assert int(np.argmax(lengths)) > 14
    assert REBER.sample_unique(100, 4, 11, 53) == REBER.sample_unique(100, 4, 11, 53)


def test_sample_unique_raises_when_too_few_strings_exist() -> None:
    with pytest.raises(ConfigError, match="only 2 distinct"):
        REBER.sample_unique(3, seed=0, min_length=5, max_length=5)
    with pytest.raises(ConfigError, match="distinct"):
        REBER.sample_unique(30, seed=0, min_length=11, max_length=12, max_draws=40)


@pytest.mark.parametrize(
    "low, high, match",
    [
        (10, 5, "exceeds max_length"),
        (0, 4, "below the shortest"),
        (-1, None, "min_length=-1"),
        (5, 10**6, "use None"),
    ],
)
def test_impossible_bounds_raise(low: int, high: int | None, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        REBER.sample(0, low, high)


def _odd_grammar() -> Grammar:
    # (aa)*b: only odd lengths; the second exit of state 0 makes the walk non-uniform.
    return Grammar({0: [("a", 1), ("b", 2)], 1: [("a", 0)]}, start=0, end=2, name="odd")


def test_generic_grammar() -> None:
    g = _odd_grammar()
    assert g.accepts("b") and g.accepts("aab") and not g.accepts("ab") and not g.accepts("")
    assert g.alphabet == "ab" and g.shortest_length == 1
    assert g.achievable_lengths(0, 6) == [1, 3, 5]
    with pytest.raises(ConfigError, match="no valid string"):
        g.sample(0, 2, 2)
    assert sorted(g.sample_unique(3, 0, 1, 5)) == ["aaaab", "aab", "b"]
    assert all(len(s) % 2 == 1 for s in g.sample_many(20, 0, 3, 9))


def test_nondeterministic_grammar_accepts() -> None:
    # a(a|b)*: two 'a' exits from the start; accepts via the set of current states.
    g = Grammar({0: [("a", 1), ("a", 2)], 1: [("b", 1), ("c", 3)], 2: [("d", 3)]}, 0, 3)
    assert not g.is_deterministic
    assert g.accepts("ac") and g.accepts("abbc") and g.accepts("ad") and not g.accepts("abd")
    assert all(g.accepts(s) for s in g.sample_unique(4, 0, 2, 6))


@pytest.mark.parametrize(
    "transitions, start, end, match",
    [
        ({0: [("a", 1)]}, 5, 1, "start state"),
        ({0: [("ab", 1)]}, 0, 1, "one ASCII character"),
        ({0: [("a", 9)]}, 0, 1, "unknown state"),
        ({0: [("a", 1)], 1: [("b", 1)]}, 0, 2, "cannot reach the end"),
        ({0: [("a", 1)], 1: [("b", 0)]}, 0, 1, "must have no exits"),
    ],
)
def test_bad_grammar_definitions(transitions, start, end, match) -> None:
    with pytest.raises(ConfigError, match=match):
        Grammar(transitions, start, end)


def test_unbounded_long_walks_are_sampled_exactly() -> None:
    # P(length >= 35) is ~1e-4: rejection with a 50,000-try budget used to fail here.
    out = REBER.sample_many(50, 0, min_length=35)
    assert len(out) == 50 and all(REBER.accepts(s) and len(s) >= 35 for s in out)
