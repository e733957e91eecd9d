"""A Rich progress bar for training: loss, learning rate, throughput and ETA.

Drawn only on an interactive terminal; elsewhere (CI, files, notebooks piping output)
the same object is silent and the epoch summaries in the log say the same thing. Both loop
drivers draw this bar (the Lightning driver through a thin ``ProgressBar`` callback).

A step costs a counter increment: the bar itself is updated at most every
``update_s`` seconds and redrawn four times a second on Rich's own thread, as one line
without Rich's table layout (:class:`~trainforge.logs._progress_line.LineProgress`:
about 0.2 ms a redraw instead of 1 ms), and the learning rate is read only when the status
line is rebuilt, so a fast step loop does not pay for the terminal.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import Any

__all__ = ["TrainingProgress", "progress_drawn"]


def progress_drawn(enabled: bool = True) -> bool:
    """Whether a bar enabled by ``enabled`` is drawn: only when stderr is a terminal."""
    return enabled and sys.stderr.isatty()


class TrainingProgress:
    """Progress over optimizer steps (or samples) with live loss and throughput.

    Args:
        total: Total units of work (samples over all epochs).
        enabled: Draw the bar (it is also skipped when stderr is not a terminal).
        refresh_s: Seconds between loss reads; each read is one host-device sync.
        update_s: Seconds between updates of the bar's count.
        console: Draw on this Rich console (default: stderr, if it is a terminal).
    """

    def __init__(
        self,
        total: int | None,
        *,
        enabled: bool = True,
        refresh_s: float = 0.5,
        update_s: float = 0.1,
        console: Any = None,
    ):
        self.enabled = enabled and (console is not None or progress_drawn())
        self.total = total
        self.refresh_s = refresh_s
        self.update_s = update_s
        self.console = console
        self._progress: Any = None
        self._task: Any = None
        self._last = 0.0
        self._next_update = 0.0
        self._pending = 0
        self._lr_source: Callable[[], float] | None = None

    def __enter__(self) -> TrainingProgress:
        if self.enabled:
            from rich.console import Console

            from trainforge.logs._progress_line import LineProgress, training_columns

            self._progress = LineProgress(
                *training_columns(),
                console=self.console or Console(stderr=True),
                transient=True,
                refresh_per_second=4,
            )
            self._progress.start()
            self._task = self._progress.add_task("train", total=self.total, status="")
        return self

    def __exit__(self, *exc: object) -> None:
        if self._progress is not None:
            self._progress.update(self._task, advance=self._pending)
            self._pending = 0
            self._progress.stop()
            self._progress = None

    def track_lr(self, source: Callable[[], float]) -> None:
        """Show the learning rate ``source()`` returns, read only when the status is redrawn."""
        self._lr_source = source

    def track_optimizer(self, optimizer: Any) -> None:
        """Show the learning rate of the first parameter group of ``optimizer``."""
        groups = optimizer.param_groups
        self.track_lr(lambda: groups[0]["lr"])

    def advance(self, samples: int, loss: Any = None) -> None:
        """Count ``samples`` done; now and then show ``loss`` (reading it syncs)."""
        if self._progress is None:
            return
        self._pending += samples
        now = time.perf_counter()
        if now < self._next_update:
            return
        self._next_update = now + self.update_s
        samples, self._pending = self._pending, 0
        if loss is not None and now - self._last >= self.refresh_s:
            self._last = now
            detach = getattr(loss, "detach", None)  # a tensor that is part of the graph
            # host-device sync, at most every refresh_s seconds
            value = float(detach() if detach is not None else loss)
            task = self._progress.tasks[0]
            speed = task.speed or 0.0
            status = f"loss {value:.4f}"
            if self._lr_source is not None:
                status += f"  lr {self._lr_source():.2e}"
            status += f"  {speed:,.0f} samples/s"
            self._progress.update(self._task, advance=samples, status=status)
        else:
            self._progress.update(self._task, advance=samples)

    @property
    def completed(self) -> float:
        """Units counted so far (what the bar shows once the pending count is drawn)."""
        if self._progress is None:
            return 0.0
        return float(self._progress.tasks[0].completed) + self._pending
