"""The training progress bar: the same bar on both drivers, drawn on a real terminal only."""

from __future__ import annotations

import io
import os
import pty
import select
import subprocess
import sys
import time
from pathlib import Path

import pytest
from rich.console import Console

from trainforge.logs import TrainingProgress


def _on_a_terminal(workdir: Path, *args: str, timeout: float = 240) -> tuple[int, str]:
    """Run ``trainforge train`` with stdout and stderr on a pseudo-terminal; its output."""
    leader, follower = pty.openpty()
    env = {
        **os.environ,
        "TRAINFORGE_DB": f"sqlite:///{workdir / 'tracking.db'}",
        "COLUMNS": "160",
        "TERM": "xterm-256color",
    }
    env.pop("NO_COLOR", None)
    process = subprocess.Popen(
        [sys.executable, "-m", "trainforge.cli", "train", *args],
        cwd=workdir,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=follower,
        stderr=follower,
    )
    os.close(follower)
    chunks = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ready, _, _ = select.select([leader], [], [], 0.5)
        if ready:
            try:
                data = os.read(leader, 65536)
            except OSError:  # the child closed the terminal
                break
            if not data:
                break
            chunks.append(data)
        elif process.poll() is not None:
            break
    process.wait(timeout=30)
    os.close(leader)
    return process.returncode, b"".join(chunks).decode("utf-8", "replace")


@pytest.mark.parametrize("schedule", ["none", "cosine"])
@pytest.mark.parametrize("engine", ["plain", "lightning"])
def test_both_drivers_draw_the_same_bar_on_a_terminal(workdir, engine, schedule):
    code, output = _on_a_terminal(
        workdir,
        f"trainer.engine={engine}",
        f"optim.scheduler={schedule}",
        "trainer.max_epochs=2",
        "trainer.limit_train_batches=12",
        "trainer.limit_val_batches=2",
    )
    assert code == 0, output[-3000:]
    assert "samples/s" in output and "loss " in output  # the bar's status, as on plain
    assert "  lr " in output  # the learning rate, read from the run's optimizer, schedule or not
    assert "Epoch 0/" not in output  # not Lightning's own bar


def test_no_bar_when_the_output_is_not_a_terminal(workdir, train_cli):
    result = train_cli(
        workdir,
        "trainer.engine=lightning",
        "trainer.max_epochs=1",
        "trainer.limit_train_batches=3",
        "trainer.limit_val_batches=1",
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert "samples/s" not in result.stderr + result.stdout
    assert "Epoch 0/" not in result.stderr + result.stdout


def test_a_step_is_a_count_the_bar_catches_up_on():
    console = Console(file=io.StringIO(), force_terminal=True, width=120)
    with TrainingProgress(64_000, console=console, update_s=3600) as progress:
        for _ in range(1000):
            progress.advance(64, loss=None)
        assert progress.completed == 64_000
        task = progress._progress.tasks[0]
        assert task.completed == 64  # one update so far: the first step's
    assert progress._progress is None  # closed, pending steps drawn


def test_the_learning_rate_is_read_only_when_the_status_is_redrawn():
    console = Console(file=io.StringIO(), force_terminal=True, width=120)
    reads = []

    def lr() -> float:
        reads.append(1)
        return 0.125

    with TrainingProgress(64_000, console=console, update_s=3600) as progress:
        progress.track_lr(lr)
        for _ in range(1000):
            progress.advance(64, loss=0.5)
        status = progress._progress.tasks[0].fields["status"]
    assert len(reads) == 1  # the first step's update: the only redraw of the status
    assert "loss 0.5000  lr 1.25e-01" in status
