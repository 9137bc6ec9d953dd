"""Tests for sparsernn.data.negatives: every generator's output is rejected by the acceptor."""

from __future__ import annotations

import string

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sparsernn.data import EMBEDDED_REBER, NEGATIVE_KINDS, REBER, negatives
from sparsernn.data.reber import REBER_LETTERS, reber_variant
from sparsernn.errors import ConfigError

grammars = st.sampled_from([REBER, EMBEDDED_REBER])
seeds = st.integers(0, 2**32)


def _ascii_ok(s: str) -> bool:
    return len(s) >= 1 and all(ord(c) < 128 for c in s)


def _one_edit_apart(a: str, b: str) -> bool:
    """True iff b is a with exactly one symbol substituted, inserted or deleted."""
    if len(a) == len(b):
        return sum(x != y for x, y in zip(a, b, strict=True)) == 1
    short, long_ = (a, b) if len(a) < len(b) else (b, a)
    if len(long_) - len(short) != 1:
        return False
    return any(long_[:i] + long_[i + 1 :] == short for i in range(len(long_)))


def test_kinds_constant() -> None:
    assert NEGATIVE_KINDS == ("alternative", "iid_foreign", "broken_transition", "edit")


@settings(max_examples=30, deadline=None)
@given(g=grammars, seed=seeds)
def test_foreign(g, seed: int) -> None:
    for s in negatives.foreign(g, 20, seed, min_length=11, max_length=53):
        assert not g.accepts(s) and _ascii_ok(s)
        assert s[0] == "B" and s[-1] == "E" and 11 <= len(s) <= 53
        assert set(s) <= set(string.ascii_uppercase)
        assert set(s) - set(g.alphabet)


@settings(max_examples=30, deadline=None)
@given(g=grammars, seed=seeds)
def test_transition(g, seed: int) -> None:
    for s in negatives.transition(g, 20, seed, min_length=g.shortest_length, max_length=30):
        assert not g.accepts(s) and _ascii_ok(s)
        assert s[0] == "B" and s[-1] == "E" and len(s) <= 30
        assert set(s) <= set(g.alphabet)


@settings(max_examples=30, deadline=None)
@given(g=grammars, seed=seeds, low=st.integers(0, 15), span=st.integers(0, 10))
def test_edit(g, seed: int, low: int, span: int) -> None:
    low = max(low, g.shortest_length)
    pool = g.sample_many(10, seed, low, low + span)
    out = negatives.edit(g, 20, seed, valid=pool, min_length=low, max_length=low + span)
    for s in out:
        assert not g.accepts(s) and _ascii_ok(s)
        assert low <= len(s) <= low + span
        assert s[0] == "B" and s[-1] == "E"
        assert any(_one_edit_apart(v, s) for v in pool)


def test_lengths_follow_the_valid_pool() -> None:
    pool = ["BTXSE", "BTSSXXTVVE", "BPTTVPXTVVE"]
    for kind in ("iid_foreign", "broken_transition"):
        out = negatives.make_negatives(kind, REBER, 60, 0, valid=pool)
        assert {len(s) for s in out} == {5, 10, 11}
    edits = negatives.edit(REBER, 60, 0, valid=pool)
    assert {len(s) for s in edits} <= {4, 5, 6, 9, 10, 11, 12}


def test_default_pool_uses_the_length_bounds() -> None:
    out = negatives.foreign(REBER, 50, 3, min_length=20, max_length=25)
    assert all(20 <= len(s) <= 25 for s in out)


def test_deterministic() -> None:
    for kind in NEGATIVE_KINDS[1:]:
        a = negatives.make_negatives(kind, "reber", 30, 9, min_length=11, max_length=53)
        b = negatives.make_negatives(kind, "reber", 30, 9, min_length=11, max_length=53)
        assert a == b


def test_per_string_functions() -> None:
    assert len(negatives.foreign_string(REBER, 3, 0)) == 3
    assert len(negatives.transition_string(REBER, 5, 0)) == 5
    assert not REBER.accepts(negatives.edit_string(REBER, "BTXSE", 0, min_length=5, max_length=5))


def test_errors() -> None:
    with pytest.raises(ConfigError, match="valid kinds: iid_foreign, broken_transition, edit"):
        negatives.make_negatives("swap", REBER, 3)
    with pytest.raises(ConfigError, match="length >= 3"):
        negatives.foreign_string(REBER, 2)
    with pytest.raises(ConfigError, match="length >= 3"):
        negatives.transition_string(REBER, 1)
    with pytest.raises(ConfigError, match="empty"):
        negatives.foreign(REBER, 3, valid=[])
    with pytest.raises(ConfigError, match="cannot edit"):
        negatives.edit_string(REBER, "BE", 0, min_length=2, max_length=2)


# ----------------------------------------------------------------- alternative grammars
def test_reber_variant_relabels_only_the_inner_edges() -> None:
    assert reber_variant(REBER_LETTERS).transitions == REBER.transitions
    g = reber_variant("ACDFJIHGLK")
    # B -A-> 2 -F-> 4 -G-> 6 -E-> end: the automaton's shortest path, relabelled.
    assert g.accepts("BAFGE") and REBER.accepts("BTXSE") and not g.accepts("BTXSE")
    assert g.count_strings(20) == REBER.count_strings(20)  # same automaton, same counts
    with pytest.raises(ConfigError, match="10 characters"):
        reber_variant("TPS")


def test_alternative_walks_are_distinct_invalid_walks() -> None:
    exclude = set(REBER.sample_unique(50, 0, 11, 20))
    for letters, _ in negatives.STUDY_ALTERNATIVES:
        out = negatives.alternative_walks(
            "reber", letters, 200, 1, min_length=11, max_length=53, exclude=exclude
        )
        g = reber_variant(letters)
        assert len(set(out)) == 200 and not exclude & set(out)
        assert all(g.accepts(s) and not REBER.accepts(s) and 11 <= len(s) <= 53 for s in out)
    # A relabelling that keeps some Reber walks valid: those walks are skipped, not returned.
    out = negatives.alternative_walks("reber", "TPSXTVXSPA", 100, 0, min_length=11, max_length=30)
    assert len(out) == 100 and not any(REBER.accepts(s) for s in out)


def test_alternative_families() -> None:
    fams = [negatives.alternative_family(l) for l, _ in negatives.STUDY_ALTERNATIVES]
    assert fams == ["reber_letters"] * 4 + ["foreign_letters"] * 4  # SPEC 2.1's table


def test_alternative_walks_too_few() -> None:
    # Only 2 walks of length 5 exist (BTXSE / BPVVE relabelled); 3 cannot be found.
    with pytest.raises(ConfigError, match="could not find 3 distinct walks"):
        negatives.alternative_walks("reber", "ACDFJIHGLK", 3, 0, min_length=5, max_length=5)
