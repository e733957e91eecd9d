"""Helpers for training tests: fast digits configs and a subprocess runner."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from trainforge.checkpoint import CheckpointManager

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


def kill_at_first_checkpoint(command: list[str], work: Path, env: dict[str, str]) -> None:
    """Run ``command`` in ``work``; SIGKILL it as soon as its first checkpoint is complete."""
    child = subprocess.Popen(
        command, cwd=work, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    deadline = time.monotonic() + 180
    try:
        while time.monotonic() < deadline and not list(work.glob("outputs/run-*/checkpoints/last")):
            time.sleep(0.005)
        child.send_signal(signal.SIGKILL)
    finally:
        child.wait(timeout=30)
    assert child.returncode == -signal.SIGKILL, "the run ended before its first checkpoint"


def last_checkpoint(output_dir: Path) -> dict:
    """The ``last`` checkpoint of the newest run under ``output_dir``, loaded."""
    (run,) = sorted(output_dir.glob("run-*"), key=lambda p: p.stat().st_mtime)[-1:]
    manager = CheckpointManager(run / "checkpoints", monitor=None)
    return manager.load("last", restore_rng=False)


def assert_bitwise_equal(a, b, path: str = "") -> None:
    """Tensors, dicts, lists and values equal bit for bit (the first difference named)."""
    if isinstance(a, torch.Tensor):
        assert isinstance(b, torch.Tensor) and torch.equal(a, b), f"tensor differs at {path}"
    elif isinstance(a, dict):
        assert a.keys() == b.keys(), f"keys differ at {path}"
        for key in a:
            assert_bitwise_equal(a[key], b[key], f"{path}.{key}")
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), f"length differs at {path}"
        for i, (x, y) in enumerate(zip(a, b)):
            assert_bitwise_equal(x, y, f"{path}[{i}]")
    else:
        assert a == b, f"value differs at {path}: {a!r} != {b!r}"
