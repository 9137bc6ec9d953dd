"""What a report section holds, as plain data, and the context every section is computed in.

A section is a list of blocks: :class:`Paragraph`, :class:`Heading`, :class:`Table` (a
DataFrame), :class:`Image` (a PNG) and :class:`Details` (collapsed preformatted text). The
section modules compute them; ``templates/report.html.j2`` renders them. Nothing here writes HTML
or files, so a section's content can be tested as data.
"""

from __future__ import annotations

import base64
import dataclasses
import re
import shlex
from pathlib import Path
from typing import Any, ClassVar

import pandas as pd
from matplotlib.figure import Figure

from sparsernn.experiments.results import StudyResults
from sparsernn.report import plots

__all__ = [
    "Paragraph",
    "Heading",
    "Table",
    "Image",
    "Details",
    "Block",
    "Section",
    "Context",
    "note",
    "missing",
    "notes",
]

#: Table columns that hold published figures or the difference to them.
PUBLISHED_COLUMNS = frozenset({"published", "published_safe", "difference"})


@dataclasses.dataclass(frozen=True)
class Paragraph:
    """A paragraph of plain text (`backticks` mark code); ``style`` is its CSS class:
    ``""``, ``"note"``, ``"missing"`` (what is lacking and how to get it) or ``"caveat"``."""

    text: str
    style: str = ""
    kind: ClassVar[str] = "paragraph"


@dataclasses.dataclass(frozen=True)
class Heading:
    """A sub-heading inside a section."""

    text: str
    kind: ClassVar[str] = "heading"


@dataclasses.dataclass(frozen=True)
class Table:
    """A table, written as ``<name>.csv`` and ``<name>.md`` and shown (or only linked when
    ``show`` is False) with its caption."""

    name: str
    frame: pd.DataFrame
    caption: str = ""
    show: bool = True
    kind: ClassVar[str] = "table"


@dataclasses.dataclass(frozen=True)
class Image:
    """A figure as a base64 PNG, embedded with its caption."""

    caption: str
    png_base64: str
    kind: ClassVar[str] = "image"


@dataclasses.dataclass(frozen=True)
class Details:
    """Preformatted text (a config, a traceback) behind a collapsed ``summary``."""

    summary: str
    text: str
    kind: ClassVar[str] = "details"


Block = Paragraph | Heading | Table | Image | Details


@dataclasses.dataclass
class Section:
    """One report section: id, title, blocks; ``error`` (with ``traceback``) when its
    computation failed."""

    sid: str
    title: str
    blocks: list[Block] = dataclasses.field(default_factory=list)
    error: str | None = None
    traceback: str | None = None


def note(text: str | None) -> list[Block]:
    """A side note (nothing for no text)."""
    return [Paragraph(text, "note")] if text else []


def missing(text: str) -> Paragraph:
    """A paragraph saying what is missing and how to get it."""
    return Paragraph(text, "missing")


def notes(frame: pd.DataFrame | None = None, text: str | None = None) -> list[Block]:
    """The analysis note of ``frame`` (``attrs["note"]``) and/or ``text``, as side notes."""
    return [b for t in (text, getattr(frame, "attrs", {}).get("note")) for b in note(t)]


@dataclasses.dataclass
class Context:
    """What every section builder needs: the results, the per-kind configs and the options."""

    results: StudyResults
    structure: pd.DataFrame
    tolerance: float
    n_boot: int
    n_repeats: int
    seed: int
    #: The config of each planned kind ("base", "prune", "structure"); empty for stores
    #: that hold one config for all (then :attr:`StudyResults.study` serves every kind).
    configs: dict[str, dict[str, Any]] = dataclasses.field(default_factory=dict)
    #: Why these numbers mean little (smoke profile, too few epochs or graphs), or None.
    caveat: str | None = None
    #: Why the published figures are left out (another task or protocol), or None.
    unpublished: str | None = None

    def config(self, kind: str) -> dict[str, Any]:
        """The config of the command that planned ``kind``'s units (else the study's)."""
        return self.configs.get(kind) or self.results.study or {}

    def published(self, text: str) -> str:
        """``text`` when published figures are shown, else nothing."""
        return "" if self.unpublished else text

    @property
    def where(self) -> Path:
        return Path(self.results.study_dir)

    @property
    def shell_where(self) -> str:
        """The study directory as a shell word, for the commands a section suggests."""
        return shlex.quote(str(self.where))

    def table(
        self, name: str, df: pd.DataFrame, caption: str | None = None, show: bool = True
    ) -> Table:
        """``df`` as table ``name``; without published figures their columns are dropped and
        a "(published ...)" remark leaves the caption."""
        df = df.reset_index(drop=True)
        caption = caption or ""
        if self.unpublished:
            df = df.drop(columns=[c for c in df.columns if c in PUBLISHED_COLUMNS])
            caption = re.sub(r"\s*\(published[^)]*\)", "", caption)
        return Table(name, df, caption, show)

    def figure(self, fig: Figure, caption: str) -> Block:
        """``fig`` as an embedded PNG with a caption; an empty plot of a study with a caveat
        becomes a note giving the reason instead (the caveat is said once, at the top)."""
        empty = getattr(fig, plots.NO_DATA_ATTR, None)
        if self.caveat and empty:
            reason = empty.removeprefix("no data: ")
            return missing(f"{caption}: nothing to plot ({reason}; see the note at the top).")
        data = base64.b64encode(plots.to_png(fig, dpi=90)).decode("ascii")
        return Image(caption, data)
