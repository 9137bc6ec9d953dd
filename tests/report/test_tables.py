"""Report tables: one rule for numbers as text, rendered by pandas as Markdown and HTML."""

from __future__ import annotations

import html
import re

import numpy as np
import pandas as pd
import pytest

from sparsernn.report.tables import csv_safe, format_value, html_table, markdown_table, text_frame


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (None, "–"),
        (float("nan"), "–"),
        (pd.NA, "–"),
        (True, "yes"),
        (np.bool_(False), "no"),
        (np.int64(7), "7"),
        (0.12345, "0.123"),
        (123.456, "123.5"),
        (0.000123, "1.23e-04"),
        (0.0, "0.000"),
        (float("-inf"), "-inf"),
        ("a<b", "a<b"),
        ([1, 2], "[1, 2]"),
    ],
)
def test_format_value(value, text):
    assert format_value(value) == text


def test_float_column_of_whole_numbers_is_written_as_integers():
    df = pd.DataFrame({"n": [1.0, np.nan, 3.0], "x": [1.0, 2.5, np.nan]})
    assert text_frame(df).to_dict("list") == {"n": ["1", "–", "3"], "x": ["1.000", "2.500", "–"]}


def _cells(table: str, tag: str) -> list[tuple[str, str]]:
    """(class attribute, unescaped text) of every ``<tag>`` cell."""
    found = re.findall(rf'<{tag}\b(?:[^>]*class="([^"]*)")?[^>]*>(.*?)</{tag}>', table, re.S)
    return [(cls, html.unescape(text)) for cls, text in found]


def test_html_table_escapes_and_marks_number_cells():
    df = pd.DataFrame({"<graph>": ["<b>x</b>", "a&b"], "acc": [0.5, np.nan]})
    table = html_table(df, "t")
    assert "<b>" not in table and "&lt;b&gt;x&lt;/b&gt;" in table
    assert [text for _, text in _cells(table, "th")] == ["<graph>", "acc"]
    body = _cells(table, "td")
    assert [text for _, text in body] == ["<b>x</b>", "0.500", "a&b", "–"]
    assert ["num" in cls.split() for cls, _ in body] == [False, True, False, True]


def test_markdown_table_lines_match_the_frame():
    df = pd.DataFrame({"cell": ["gru", "lstm", "rnn_tanh"], "r": [0.1, 0.2, 0.3]})
    lines = markdown_table(df).splitlines()
    assert len(lines) == len(df) + 2 and all(line.startswith("| ") for line in lines[:1])
    assert re.fullmatch(r"\|:?-+\|-+:\|", lines[1])  # text left, numbers right
    assert [line.split("|")[1].strip() for line in lines[2:]] == list(df["cell"])


def test_markdown_cells_and_headers_carry_no_raw_html():
    evil = '<img src=x onerror="alert(1)">'
    table = markdown_table(pd.DataFrame({evil: [evil, "a & b"], "n": [1, 2]}))
    assert "<" not in table and ">" not in table
    assert "&lt;img src=x onerror=\"alert(1)\"&gt;" in table and "a &amp; b" in table


@pytest.mark.parametrize(
    ("cell", "written"),
    [
        ('=HYPERLINK("http://x","y")', '\'=HYPERLINK("http://x","y")'),
        ("+cmd|' /C calc'!A0", "\'+cmd|' /C calc'!A0"),
        ("-2+3", "\'-2+3"),
        ("@SUM(A1)", "\'@SUM(A1)"),
        ("\t=1", "\'\t=1"),
        ("-0.5", "-0.5"),  # a plain number stays a number
        ("1e-3", "1e-3"),
        ("ws", "ws"),
    ],
)
def test_csv_text_a_spreadsheet_would_run_is_kept_text(cell, written):
    safe = csv_safe(pd.DataFrame({"graph": [cell], "x": [-1.5]}))
    assert safe["graph"].tolist() == [written]
    assert safe["x"].tolist() == [-1.5]  # numbers untouched
    assert list(csv_safe(pd.DataFrame({"=A1": [1]})).columns) == ["\'=A1"]
