"""Helpers for training tests: fast digits configs and a subprocess runner."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

# A short, deterministic digits run: 2 epochs, step checkpoints, no progress bar.
FAST = [
    "trainer.max_epochs=2",
    "trainer.enable_progress_bar=false",
    "run.deterministic=true",
    "loggers.tensorboard.enabled=true",
]


def run_train(workdir: Path, *args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    """Run ``trainforge train`` in ``workdir`` as a real subprocess."""
    env = {**os.environ, "TRAINFORGE_DB": f"sqlite:///{workdir / 'tracking.db'}"}
    return subprocess.run(
        [sys.executable, "-m", "trainforge.cli", "train", *args],
        cwd=workdir,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    """An empty working directory for one training run."""
    path = tmp_path / "work"
    path.mkdir()
    return path


@pytest.fixture
def train_cli():
    """``train_cli(workdir, *args)`` runs ``trainforge train`` as a subprocess."""
    return run_train


@pytest.fixture
def fast_args() -> list[str]:
    """Overrides for a short deterministic digits run."""
    return list(FAST)
