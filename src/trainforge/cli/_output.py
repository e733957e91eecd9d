"""Shared printing for CLI commands: Rich tables for people, JSON for scripts."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterable, Sequence
from typing import Any

from rich.console import Console
from rich.table import Table

__all__ = ["console", "metric_pairs", "print_json", "print_table"]


def console(stderr: bool = False) -> Console:
    """A console on the current stdout (or stderr); wide when not a terminal."""
    stream = sys.stderr if stderr else sys.stdout
    columns = os.environ.get("COLUMNS", "")
    width = None if stream.isatty() else int(columns) if columns.isdigit() else 200
    return Console(file=stream, width=width, highlight=False, soft_wrap=False)


def print_table(
    title: str | None,
    headers: Sequence[str],
    rows: Iterable[Sequence[Any]],
    *,
    show_header: bool = True,
) -> None:
    """Print a Rich table; cells are rendered with ``str``."""
    table = Table(title=title, title_justify="left", show_lines=False, show_header=show_header)
    for header in headers:
        table.add_column(header, overflow="fold")
    for row in rows:
        table.add_row(*("" if cell is None else str(cell) for cell in row))
    console().print(table)


def print_json(data: Any) -> None:
    """Print ``data`` as indented JSON (stable key order)."""
    sys.stdout.write(json.dumps(data, indent=2, default=str) + "\n")


def metric_pairs(items: list[str]) -> dict[str, float]:
    """``--metric KEY=NUMBER`` options as a mapping; anything else is a TrackingError."""
    from trainforge.errors import TrackingError

    parsed = {}
    for item in items:
        key, sep, value = item.partition("=")
        try:
            parsed[key] = float(value)
        except ValueError:
            sep = ""
        if not sep or not key:
            raise TrackingError(f"--metric {item!r} is not KEY=NUMBER (e.g. val/loss=0.38)")
    return parsed
