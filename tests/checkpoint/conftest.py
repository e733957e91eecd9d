"""Shared helpers for the checkpoint tests: a tiny model and a way to train it a step."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch

from trainforge.checkpoint import CheckpointManager


def tiny_training(seed: int = 0) -> tuple[torch.nn.Module, torch.optim.Optimizer, Any]:
    """A 2-layer MLP, AdamW with state after one step, and a StepLR scheduler."""
    torch.manual_seed(seed)
    model = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 2))
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=2)
    model(torch.randn(3, 4)).sum().backward()
    optimizer.step()
    scheduler.step()
    return model, optimizer, scheduler


def save_n(manager: CheckpointManager, losses: list[float], **extra: Any) -> list[Path]:
    """Save one checkpoint per loss value (epoch i, step 10*i)."""
    model, optimizer, scheduler = tiny_training()
    return [
        manager.save(
            model=model,
            optimizer=optimizer,
            scheduler=scheduler,
            epoch=i,
            global_step=10 * i,
            metrics={"val_loss": loss},
            **extra,
        )
        for i, loss in enumerate(losses)
    ]


@pytest.fixture
def make_training() -> Any:
    """Factory fixture for :func:`tiny_training`."""
    return tiny_training


@pytest.fixture
def save_many() -> Any:
    """Factory fixture for :func:`save_n`."""
    return save_n


@pytest.fixture
def manager(tmp_path: Path) -> CheckpointManager:
    """A manager that keeps everything (retention tested separately)."""
    return CheckpointManager(tmp_path / "ckpts", keep_best_k=100, keep_last_n=100)
