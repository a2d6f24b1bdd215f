"""Plain-text tables for the command line, aligned for Chinese (wide) characters."""

from __future__ import annotations

import unicodedata
from collections.abc import Sequence


def width(text: str) -> int:
    """Columns ``text`` takes in a terminal: CJK characters take two."""
    return sum(2 if unicodedata.east_asian_width(ch) in ("W", "F") else 1 for ch in text)


def _pad(text: str, size: int, right: bool) -> str:
    gap = " " * max(0, size - width(text))
    return gap + text if right else text + gap


def render(
    headers: Sequence[str], rows: Sequence[Sequence[object]], *, right: Sequence[int] = ()
) -> str:
    """A table with a header line and a rule; columns in ``right`` are right-aligned."""
    cells = [[("" if v is None else str(v)) for v in row] for row in rows]
    sizes = [width(h) for h in headers]
    for row in cells:
        for index, value in enumerate(row):
            sizes[index] = max(sizes[index], width(value))
    lines = [
        "  ".join(_pad(h, sizes[i], i in right) for i, h in enumerate(headers)).rstrip(),
        "  ".join("-" * s for s in sizes),
    ]
    for row in cells:
        lines.append("  ".join(_pad(v, sizes[i], i in right) for i, v in enumerate(row)).rstrip())
    return "\n".join(lines)
