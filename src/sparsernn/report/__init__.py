"""The study report: figures (:mod:`.plots`) and one self-contained HTML file.

:func:`build_report` writes it; :mod:`.plots` holds the figure functions it uses.

Examples
--------
>>> from sparsernn.report import build_report  # doctest: +SKIP
>>> build_report("runs/quick", "runs/quick/report.html")  # doctest: +SKIP
"""

from sparsernn.report import plots
from sparsernn.report.html import SECTIONS, build_report, markdown_table
from sparsernn.report.summaries import pruning_summary, structure_summary

__all__ = [
    "build_report",
    "plots",
    "SECTIONS",
    "markdown_table",
    "pruning_summary",
    "structure_summary",
]
