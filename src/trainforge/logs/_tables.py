"""Aligned plain-text tables and ``log_section``: one call, one readable block."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

__all__ = ["format_table", "log_section"]

Rows = Sequence[Sequence[Any]] | Mapping[str, Any]


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)


def _normalise(rows: Rows, headers: Sequence[str] | None) -> tuple[list[str], list[list[str]]]:
    if isinstance(rows, Mapping):
        return list(headers or ("key", "value")), [[str(k), _cell(v)] for k, v in rows.items()]
    body = [[_cell(c) for c in row] for row in rows]
    width = max((len(r) for r in body), default=len(headers or ()))
    return list(headers or [f"col{i}" for i in range(width)]), body


def format_table(
    rows: Rows, headers: Sequence[str] | None = None, *, title: str | None = None
) -> str:
    """Render rows as an aligned text table with one header line (and an optional title)."""
    head, body = _normalise(rows, headers)
    widths = [len(h) for h in head]
    for row in body:
        for i, cell in enumerate(row):
            if i < len(widths):
                widths[i] = max(widths[i], len(cell))
            else:
                widths.append(len(cell))
    lines = []
    if title:
        lines.append(title)
    lines.append("  ".join(h.ljust(w) for h, w in zip(head, widths)).rstrip())
    lines.extend("  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip() for row in body)
    return "\n".join(lines)


def log_section(
    title: str,
    rows: Rows,
    *,
    headers: Sequence[str] | None = None,
    logger: logging.Logger | None = None,
    level: int = logging.INFO,
) -> None:
    """Log a titled table; in JSON mode it becomes one object with the rows as data."""
    log = logger or logging.getLogger("trainforge")
    if not log.isEnabledFor(level):
        return
    head, body = _normalise(rows, headers)
    section = {"section": title, "rows": [dict(zip(head, row)) for row in body]}
    log.log(
        level, "%s", format_table(rows, headers, title=f"== {title}"), extra={"tf_section": section}
    )
