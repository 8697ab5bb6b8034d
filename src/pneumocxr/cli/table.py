"""Plain-text tables for the command line (no logic beyond layout)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any


def _cell(value: Any) -> str:
    """One cell as text: lists joined with '; ', floats to 4 digits, None as '-'."""
    if value is None:
        return "-"
    if isinstance(value, (list, tuple)):
        return "; ".join(map(str, value)) or "-"
    if isinstance(value, float):
        return f"{value:.4f}"
    return str(value)


def format_table(rows: Iterable[dict[str, Any]], columns: list[str]) -> str:
    """Rows as an aligned text table with a header line."""
    cells = [[_cell(row.get(c)) for c in columns] for row in rows]
    widths = [max([len(c)] + [len(r[i]) for r in cells]) for i, c in enumerate(columns)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(columns, widths))]
    lines += ["  ".join(v.ljust(w) for v, w in zip(r, widths)).rstrip() for r in cells]
    return "\n".join(lines)
