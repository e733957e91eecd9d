"""The progress bar at a terminal counts every trained sample, the same on both drivers."""

from __future__ import annotations

import io
import re
import sys

import pytest

from trainforge.config import load_config
from trainforge.train import Trainer

pytestmark = pytest.mark.filterwarnings("ignore:.*does not have many workers.*")


class _Terminal(io.StringIO):
    """What Rich draws on: a stream that is a terminal."""

    def isatty(self) -> bool:
        return True


@pytest.mark.parametrize("engine", ["plain", "lightning"])
def test_the_bar_drawn_at_a_terminal_ends_at_every_sample_trained(tmp_path, monkeypatch, engine):
    terminal = _Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    monkeypatch.setenv("COLUMNS", "160")
    config = load_config(
        template="digits",
        cli=[
            f"trainer.engine={engine}",
            f"run.output_dir={tmp_path}",
            f"tracking.database=sqlite:///{tmp_path / 't.db'}",
            "trainer.max_epochs=2",
            "trainer.limit_train_batches=5",
            "data.batch_size=16",
            "loggers.tensorboard.enabled=false",
        ],
        environ={},
    )
    Trainer(training_config=config, log_config=False).train()
    counts = re.findall(r"(\d+)/(\d+)", terminal.getvalue())
    assert counts, "no progress bar was drawn"
    # the last frame, drawn as the bar closes: 2 epochs x 5 batches x 16 samples
    assert counts[-1] == ("160", "160")


def _drawn(progress_type: type, width: int, total: int | None, completed: int) -> str:
    """One frame of ``progress_type`` with the bar's columns, as a terminal receives it."""
    from rich.console import Console

    from trainforge.logs._progress_line import training_columns

    out = io.StringIO()
    console = Console(file=out, width=width, force_terminal=True, color_system="truecolor")
    progress = progress_type(*training_columns(), console=console, get_time=lambda: 42.0)
    status = "loss 0.1234  lr 1.00e-03  9,876 samples/s"
    task = progress.add_task("train", total=total, status=status)
    progress.update(task, completed=completed)
    console.print(progress.make_tasks_table(progress.tasks))
    return out.getvalue()


@pytest.mark.parametrize(("total", "completed"), [(1000, 0), (1000, 333), (1000, 1000), (None, 7)])
def test_the_one_line_bar_draws_what_richs_table_draws(total, completed):
    """Same columns, characters and colours as Rich's own layout, at a terminal's full width."""
    from rich.progress import Progress

    from trainforge.logs._progress_line import LineProgress

    line = _drawn(LineProgress, 120, total, completed)
    table = _drawn(Progress, 120, total, completed)
    if total is None:  # no time remaining: the table pads the empty cell with a coloured space
        table = table.replace("\x1b[36m \x1b[0m\n", "\n")
    assert line == table


@pytest.mark.parametrize("width", [40, 60, 80, 100])
def test_on_a_narrow_terminal_the_bar_narrows_and_the_count_stays_whole(width):
    from rich.text import Text

    from trainforge.logs._progress_line import LineProgress

    line = Text.from_ansi(_drawn(LineProgress, width, 1000, 333)).plain.rstrip("\n")
    assert len(line) <= width
    assert line.startswith("train ━") and " 333/1000 " in line
