"""Plain-text and Markdown tables (no extra dependency)."""
from __future__ import annotations

import math
from collections.abc import Sequence


def fmt(x: object, digits: int = 2, na: str = "-") -> str:
    if x is None:
        return na
    if isinstance(x, float):
        if math.isnan(x):
            return na
        return f"{x:.{digits}f}"
    return str(x)


def text_table(header: Sequence[str], rows: Sequence[Sequence[str]],
               right: Sequence[bool] | None = None, indent: str = "") -> str:
    """Fixed-width columns; ``right[i]`` right-aligns column i (numbers)."""
    cols = len(header)
    right = list(right) if right is not None else [False] * cols
    widths = [max(len(str(header[i])), *(len(str(r[i])) for r in rows)) if rows
              else len(str(header[i])) for i in range(cols)]

    def line(cells: Sequence[str]) -> str:
        parts = [str(c).rjust(w) if r else str(c).ljust(w)
                 for c, w, r in zip(cells, widths, right)]
        return (indent + "  ".join(parts)).rstrip()

    out = [line(header), indent + "  ".join("-" * w for w in widths)]
    out += [line(r) for r in rows]
    return "\n".join(out)


def _md_cell(x: object) -> str:
    return str(x).replace("|", "\\|").replace("\n", " ")


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[str]],
                   right: Sequence[bool] | None = None) -> str:
    right = list(right) if right is not None else [False] * len(header)
    out = ["| " + " | ".join(_md_cell(h) for h in header) + " |",
           "|" + "|".join("---:" if r else "---" for r in right) + "|"]
    out += ["| " + " | ".join(_md_cell(c) for c in r) + " |" for r in rows]
    return "\n".join(out)
