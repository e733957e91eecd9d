"""Rich's ``Progress``, drawn as one line per task without a table layout.

Rich lays a progress display out as a table grid, measuring and wrapping every column on
every redraw: about a millisecond of Python on the refresh thread, which a training loop
shares the interpreter with. A training bar is one line whose columns are texts and one
bar, so this draws them side by side: the same columns, styles and characters, the bar
narrowed to what the terminal leaves of its width, in about a tenth of the time.

Imported only when a bar is drawn (it imports Rich).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from rich.console import Console, ConsoleOptions, RenderResult
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    Task,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.segment import Segment
from rich.text import Text

__all__ = ["LineProgress", "training_columns"]


def training_columns() -> tuple[ProgressColumn, ...]:
    """The training bar's columns: label, bar, count, status (loss, lr, speed), times."""
    return (
        TextColumn("[bold]train"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[status]}"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
    )


class LineProgress(Progress):
    """A :class:`rich.progress.Progress` whose display is one line per visible task."""

    def make_tasks_table(self, tasks: Iterable[Task]) -> Any:
        """The display: each visible task's columns on one line, separated by a space."""
        return _TaskLines([task for task in tasks if task.visible], self.columns)


class _TaskLines:
    """The renderable of :meth:`LineProgress.make_tasks_table`."""

    def __init__(self, tasks: list[Task], columns: Sequence[str | ProgressColumn]) -> None:
        self.tasks = tasks
        self.columns = columns

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        space = Segment(" ")
        for task in self.tasks:
            parts = [
                Text.from_markup(column.format(task=task))
                if isinstance(column, str)
                else column(task)
                for column in self.columns
            ]
            # the texts keep their width; the bars share what is left of the line
            used = sum(part.cell_len for part in parts if isinstance(part, Text))
            bars = sum(1 for part in parts if not isinstance(part, Text)) or 1
            room = max((options.max_width - used - (len(parts) - 1)) // bars, 1)
            for index, part in enumerate(parts):
                if index:
                    yield space
                if isinstance(part, Text):  # its own style under its spans' styles
                    base = console.get_style(part.style) if part.style else None
                    yield from Segment.apply_style(part.render(console), base)
                else:
                    yield from console.render(part, options.update(width=room))
            yield Segment.line()
