"""Describe and compare labelled string data sets: what a user checks before trusting a comparison.

A data set read from CSV carries no negative kinds, so :func:`infer_kinds` recovers them: a
negative that is a walk of one of the alternative grammars (SPEC 2.1) gets that grammar's kind,
any other negative is ``other_reber_letters`` or ``other_foreign_letters``. :func:`describe`
and :func:`compare` return pandas DataFrames per class, family and kind: counts, length
statistics and the total-variation distance between two files' length distributions.

Examples
--------
>>> from sparsernn.data import DataSpec, make_dataset
>>> from sparsernn.data.describe import describe
>>> train, _ = make_dataset(DataSpec(n_strings=200, seed=0))
>>> table = describe(train)
>>> int(table.loc[table["kind"] == "all", "n"].iloc[0])
150
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence

import numpy as np
import pandas as pd

from sparsernn.data.dataset import Dataset
from sparsernn.data.negatives import (
    STUDY_ALTERNATIVES,
    alternative_family,
    alternative_kind,
)
from sparsernn.data.reber import Grammar, get_grammar, reber_variant
from sparsernn.errors import DataError

__all__ = [
    "infer_kinds",
    "family_of",
    "group_rows",
    "describe",
    "compare",
    "conflicting_labels",
    "duplicates",
    "total_variation",
    "letter_shares",
    "check_labels_agree",
    "letter_share_tv",
]

_ALT = "alt_"


def family_of(kind: str) -> str:
    """A kind's family: ``valid``, ``reber_letters``, ``foreign_letters`` or the kind itself."""
    if kind.startswith(_ALT):
        return alternative_family(kind[len(_ALT) :])
    return kind.removeprefix("other_")


_STUDY_LETTERS = tuple(pair[0] for pair in STUDY_ALTERNATIVES)


def infer_kinds(
    dataset: Dataset,
    grammar: Grammar | str = "reber",
    alternatives: Iterable[str] = _STUDY_LETTERS,
) -> list[str]:
    """Each string's kind: ``dataset.kinds`` when known, else recovered from the string.

    Label 1 is ``valid``. A label-0 string accepted by an alternative grammar gets that
    grammar's kind (the first in ``alternatives`` order); otherwise ``other_reber_letters`` if
    it only uses the grammar's letters, else ``other_foreign_letters``.
    """
    if dataset.kinds is not None:
        return list(dataset.kinds)
    g = get_grammar(grammar)
    embedded = g.name == "embedded_reber"
    variants = [(alternative_kind(l), reber_variant(l, embedded=embedded)) for l in alternatives]
    alphabet = set(g.alphabet)
    out = []
    for s, y in zip(dataset.strings, dataset.labels.tolist(), strict=True):
        if y == 1:
            out.append("valid")
            continue
        kind = next((k for k, v in variants if v.accepts(s)), None)
        if kind is None:
            kind = "other_reber_letters" if set(s) <= alphabet else "other_foreign_letters"
        out.append(kind)
    return out


def total_variation(a: Sequence[int] | np.ndarray, b: Sequence[int] | np.ndarray) -> float:
    """Total-variation distance between the empirical distributions of two integer samples.

    ``0.5 * sum_k |p_a(k) - p_b(k)|``: 0 for equal distributions, 1 for disjoint supports.
    NaN when either sample is empty.
    """
    ca, cb = Counter(np.asarray(a).tolist()), Counter(np.asarray(b).tolist())
    na, nb = sum(ca.values()), sum(cb.values())
    if not na or not nb:
        return float("nan")
    return 0.5 * sum(abs(ca[k] / na - cb[k] / nb) for k in set(ca) | set(cb))


def _frame(dataset: Dataset, kinds: list[str]) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "string": dataset.strings,
            "label": dataset.labels,
            "kind": kinds,
            "family": [family_of(k) for k in kinds],
            "length": dataset.lengths,
        }
    )


def group_rows(frame: pd.DataFrame) -> Iterable[tuple[str, str, pd.DataFrame]]:
    """``(level, name, rows)`` of a frame with ``label``, ``family`` and ``kind`` columns:
    the whole set, each class, each negative family, each negative kind."""
    yield "all", "all", frame
    for label, name in ((1, "valid"), (0, "invalid")):
        yield "class", name, frame[frame["label"] == label]
    for name, rows in frame[frame["label"] == 0].groupby("family", sort=True):
        yield "family", str(name), rows
    for name, rows in frame[frame["label"] == 0].groupby("kind", sort=True):
        yield "kind", str(name), rows


def describe(
    dataset: Dataset,
    grammar: Grammar | str = "reber",
) -> pd.DataFrame:
    """One row per class, negative family and negative kind: count, share and length statistics.

    Columns: ``level`` (all / class / family / kind), ``kind``, ``n``, ``share`` (of the whole
    set), ``length_mean``, ``length_min``, ``length_max``, ``length_mode``, ``n_distinct``.
    """
    frame = _frame(dataset, infer_kinds(dataset, grammar))
    rows = []
    for level, name, part in group_rows(frame):
        lengths = part["length"].to_numpy()
        rows.append(
            {
                "level": level,
                "kind": name,
                "n": len(part),
                "share": len(part) / max(len(frame), 1),
                "length_mean": float(lengths.mean()) if lengths.size else float("nan"),
                "length_min": int(lengths.min()) if lengths.size else None,
                "length_max": int(lengths.max()) if lengths.size else None,
                "length_mode": int(np.bincount(lengths).argmax()) if lengths.size else None,
                "n_distinct": int(part["string"].nunique()),
            }
        )
    return pd.DataFrame(rows)


def compare(a: Dataset, b: Dataset, grammar: Grammar | str = "reber") -> pd.DataFrame:
    """Per class, family and kind: counts and mean lengths in ``a`` and ``b`` and the
    total-variation distance between their length distributions (``length_tv``)."""
    fa, fb = _frame(a, infer_kinds(a, grammar)), _frame(b, infer_kinds(b, grammar))
    parts_a = {(level, name): rows for level, name, rows in group_rows(fa)}
    parts_b = {(level, name): rows for level, name, rows in group_rows(fb)}
    rows = []
    for key in [*parts_a, *(k for k in parts_b if k not in parts_a)]:
        pa, pb = parts_a.get(key, fa.iloc[0:0]), parts_b.get(key, fb.iloc[0:0])
        rows.append(
            {
                "level": key[0],
                "kind": key[1],
                "n_a": len(pa),
                "n_b": len(pb),
                "share_a": len(pa) / max(len(fa), 1),
                "share_b": len(pb) / max(len(fb), 1),
                "length_mean_a": float(pa["length"].mean()) if len(pa) else float("nan"),
                "length_mean_b": float(pb["length"].mean()) if len(pb) else float("nan"),
                "length_tv": total_variation(pa["length"], pb["length"]),
            }
        )
    return pd.DataFrame(rows)


def letter_shares(dataset: Dataset) -> pd.DataFrame:
    """Share of each letter among the symbols of valid and of invalid strings (columns)."""
    out = {}
    for label, name in ((1, "valid"), (0, "invalid")):
        pairs = zip(dataset.strings, dataset.labels.tolist(), strict=True)
        counts = Counter("".join(s for s, y in pairs if y == label))
        total = sum(counts.values()) or 1
        out[name] = {k: v / total for k, v in counts.items()}
    return pd.DataFrame(out).fillna(0.0).sort_index()


def letter_share_tv(a: Dataset, b: Dataset) -> dict[str, float]:
    """Total-variation distance between ``a``'s and ``b``'s letter shares, per class."""
    la, lb = letter_shares(a), letter_shares(b)
    letters = la.index.union(lb.index)
    return {
        cls: 0.5
        * float(
            (la[cls].reindex(letters, fill_value=0.0) - lb[cls].reindex(letters, fill_value=0.0))
            .abs()
            .sum()
        )
        for cls in ("valid", "invalid")
    }


def duplicates(dataset: Dataset) -> pd.DataFrame:
    """Strings that occur more than once: ``string``, ``count``, ``rows`` (1-based data rows)."""
    rows: dict[str, list[int]] = {}
    for i, s in enumerate(dataset.strings, start=1):
        rows.setdefault(s, []).append(i)
    dup = [(s, len(r), r) for s, r in rows.items() if len(r) > 1]
    return pd.DataFrame(dup, columns=["string", "count", "rows"])


def conflicting_labels(dataset: Dataset) -> pd.DataFrame:
    """Strings labelled both 0 and 1: ``string`` and the 1-based data ``rows`` of each label."""
    labels: dict[str, dict[int, list[int]]] = {}
    for i, (s, y) in enumerate(zip(dataset.strings, dataset.labels.tolist(), strict=True), 1):
        labels.setdefault(s, {}).setdefault(int(y), []).append(i)
    bad = [(s, by[1], by[0]) for s, by in labels.items() if len(by) == 2]
    return pd.DataFrame(bad, columns=["string", "rows_valid", "rows_invalid"])


def check_labels_agree(dataset: Dataset, where: str) -> None:
    """Raise :class:`DataError` naming the rows if any string is labelled both ways."""
    bad = conflicting_labels(dataset)
    if len(bad):
        first = bad.iloc[0]
        raise DataError(
            f"{where}: {len(bad)} string(s) labelled both valid and invalid, e.g. "
            f"{first['string']!r} in data rows {first['rows_valid']} (1) and "
            f"{first['rows_invalid']} (0); fix the labels"
        )
