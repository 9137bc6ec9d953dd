"""Tables as text: one rule for writing numbers, rendered by pandas as Markdown or HTML.

:func:`text_frame` writes every cell as the report shows it (NaN as an en dash, floats with three
decimals, a float column of whole numbers as integers); :func:`markdown_table` and
:func:`html_table` hand that frame to ``DataFrame.to_markdown`` (tabulate) and pandas' ``Styler``.

Cells may hold text a user chose (a graph file's name): :func:`markdown_table` escapes HTML in
it (Markdown renderers pass raw HTML through) and :func:`csv_safe` (from
:mod:`sparsernn._csvcells`) keeps a spreadsheet from reading it as a formula.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from sparsernn._csvcells import csv_safe

__all__ = [
    "csv_safe",
    "format_value",
    "html_table",
    "markdown_table",
    "numeric_columns",
    "text_frame",
]

_NA = "–"


def format_value(value: Any) -> str:
    """A table cell as text: NaN/None as an en dash, floats with three decimals (one from 100
    on, scientific below 0.001), integers and booleans (yes/no) as such."""
    if isinstance(value, bool | np.bool_):
        return "yes" if value else "no"
    if isinstance(value, int | np.integer):
        return str(int(value))
    if isinstance(value, float | np.floating):
        v = float(value)
        if math.isnan(v):
            return _NA
        if math.isinf(v):
            return "inf" if v > 0 else "-inf"
        if v == 0:
            return "0.000"
        return f"{v:.1f}" if abs(v) >= 100 else f"{v:.2e}" if abs(v) < 0.001 else f"{v:.3f}"
    try:
        if value is None or pd.isna(value):
            return _NA
    except (TypeError, ValueError):  # a list or other container: not a missing value
        pass
    return str(value)


def _whole_numbers(series: pd.Series) -> bool:
    """Whether a float column holds only whole numbers (e.g. integers that a NaN made float)."""
    if not pd.api.types.is_float_dtype(series):
        return False
    v = series.to_numpy(float)
    finite = v[np.isfinite(v)]
    return bool(finite.size) and bool(((np.abs(finite) < 1e6) & (finite == np.round(finite))).all())


def _column_text(series: pd.Series) -> pd.Series:
    if _whole_numbers(series):
        return series.map(lambda x: format_value(int(x)) if math.isfinite(x) else format_value(x))
    return series.map(format_value)


def numeric_columns(df: pd.DataFrame) -> list[bool]:
    """Per column: whether it holds numbers (shown right-aligned)."""
    return [
        pd.api.types.is_numeric_dtype(s) and not pd.api.types.is_bool_dtype(s)
        for _, s in df.items()
    ]


def text_frame(df: pd.DataFrame) -> pd.DataFrame:
    """``df`` with every cell written by :func:`format_value` (column names as strings)."""
    out = pd.DataFrame({i: _column_text(df.iloc[:, i]) for i in range(df.shape[1])})
    out.columns = [str(c) for c in df.columns]
    return out.reset_index(drop=True)


def _markdown_cell(text: str) -> str:
    """A cell's text for a Markdown table: HTML escaped (a renderer would run ``<img
    onerror=...>``), ``|`` escaped, one line."""
    text = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return text.replace("|", "\\|").replace("\r", " ").replace("\n", " ")


def markdown_table(df: pd.DataFrame) -> str:
    """``df`` as a GitHub-flavoured Markdown table (numbers right-aligned; HTML and ``|``
    escaped)."""
    text = text_frame(df).apply(lambda column: column.map(_markdown_cell))
    align = ["right" if num else "left" for num in numeric_columns(df)]
    header = [_markdown_cell(c) for c in text.columns]
    table = text.to_markdown(
        index=False, headers=header, tablefmt="pipe", colalign=align, disable_numparse=True
    )
    return table + "\n"


def html_table(df: pd.DataFrame, table_id: str) -> str:
    """``df`` as an HTML ``<table>`` (pandas ``Styler``): cells and headers escaped, number
    cells with class ``num``; ``table_id`` keeps the element ids unique within a page."""
    text = text_frame(df)
    classes = pd.DataFrame(
        [["num" if num else "" for num in numeric_columns(df)]] * len(text),
        index=text.index,
        columns=text.columns,
    )
    styler = (
        text.style.hide(axis="index")
        .format(escape="html")
        .format_index(escape="html", axis=1)
        .set_td_classes(classes)
    )
    return styler.to_html(table_uuid=table_id, cell_ids=False)
