"""Rebuild every results page from ``results/`` only: ``make docs`` (``--check``: compare).

Pages, and the folders they read:

- ``docs/pruning.md`` (whole page): ``results/full``
- ``docs/structure.md`` (the section between its ``results`` markers): ``results/full``
- ``docs/methods.md`` (whole page): ``results/methods``, ``results/methods-static``,
  ``results/lm``
- ``docs/tasks.md`` (the section between its markers): ``results/tasks``
- ``README.md`` (the "Measured" section between its markers): all of them

A test in ``make test`` (tests/test_docs.py) regenerates them and fails on any difference, so
no page can drift from its data. Nothing here is typed by hand: a sentence that states a result
is chosen by the numbers.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))  # docs/: the pages package

from pages import methods, pruning, readme, sparse, structure, tasks  # noqa: E402

#: The lines around a generated section inside a hand-written page.
BEGIN, END = "<!-- begin generated: {} (make docs; do not edit) -->", "<!-- end generated: {} -->"


def splice(text: str, name: str, body: str, where: str) -> str:
    """``text`` with the section ``name`` replaced by ``body``."""
    begin, end = BEGIN.format(name), END.format(name)
    if text.count(begin) != 1 or text.count(end) != 1:
        raise SystemExit(f"{where}: needs exactly one '{begin}' and one '{end}' line")
    head, rest = text.split(begin, 1)
    _, tail = rest.split(end, 1)
    return f"{head}{begin}\n{body.strip()}\n{end}{tail}"


def pages(root: Path) -> dict[Path, Callable[[str], str]]:
    """Each page's path and a function from its current text to its generated text."""
    results = root / "results"

    def whole(render: Callable[[], str]) -> Callable[[str], str]:
        return lambda _old: render()

    def section(name: str, render: Callable[[], str], where: str) -> Callable[[str], str]:
        return lambda old: splice(old, name, render(), where)

    return {
        root / "docs/pruning.md": whole(lambda: pruning.render(results / "full")),
        root / "docs/structure.md": section(
            "results", lambda: structure.render(results / "full"), "docs/structure.md"
        ),
        root / "docs/methods.md": whole(lambda: methods.render(results)),
        root / "docs/tasks.md": section(
            "results", lambda: tasks.render(results / "tasks"), "docs/tasks.md"
        ),
        root / "docs/sparse.md": whole(lambda: sparse.render(root)),
        root / "README.md": section("measured", lambda: readme.render(results), "README.md"),
    }


def build(root: Path) -> dict[Path, tuple[str, str]]:
    """Each page's (current text, generated text)."""
    out = {}
    for path, make in pages(root).items():
        old = path.read_text(encoding="utf-8") if path.exists() else ""
        new = make(old)
        out[path] = (old, new if new.endswith("\n") else new + "\n")
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="compare, write nothing")
    args = parser.parse_args()
    root = HERE.parent
    stale = []
    for path, (old, new) in build(root).items():
        if old != new:
            stale.append(path.relative_to(root).as_posix())
            if not args.check:
                path.write_text(new, encoding="utf-8")
    if args.check and stale:
        print(f"out of date with results/: {', '.join(stale)}; run make docs", file=sys.stderr)
        return 1
    print(f"{'checked' if args.check else 'wrote'} {len(stale)} changed page(s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
