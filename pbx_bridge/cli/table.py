"""Plain aligned text tables: readable on any terminal, greppable, no colour codes."""

from __future__ import annotations

from collections.abc import Sequence

EMPTY = "-"


def render_table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    cells = [[EMPTY if value is None else str(value) for value in row] for row in rows]
    widths = [len(header) for header in headers]
    for row in cells:
        for index, value in enumerate(row):
            widths[index] = max(widths[index], len(value))

    def line(values: Sequence[str]) -> str:
        return "  ".join(value.ljust(width) for value, width in zip(values, widths, strict=True))

    return "\n".join(line(row).rstrip() for row in [list(headers), *cells])
