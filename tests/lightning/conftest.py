"""Tiny models and data for real ``lightning.Trainer`` fits on the CPU."""

from __future__ import annotations

from typing import Any

import lightning.pytorch as pl
import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from trainforge.lightning import TaskModule


def cross_entropy(outputs: Any, batch: Any) -> torch.Tensor:
    """The loss strategy of the tiny classification task."""
    return nn.functional.cross_entropy(outputs, batch["labels"])


def tiny_model(seed: int = 0) -> nn.Module:
    """A two-layer MLP, 8 features -> 3 classes."""
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 3))


def loader(n: int = 64, batch_size: int = 16, seed: int = 1) -> DataLoader:
    """A fixed classification data set, in order."""
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 8, generator=gen)
    y = torch.randint(0, 3, (n,), generator=gen)
    return DataLoader(TensorDataset(x, y), batch_size=batch_size, shuffle=False)


def sgd(model: nn.Module) -> torch.optim.Optimizer:
    """Plain SGD with momentum."""
    return torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)


def task_module(**kwargs: Any) -> TaskModule:
    """A TaskModule over :func:`tiny_model` and :func:`cross_entropy`."""
    kwargs.setdefault("optimizer_factory", sgd)
    return TaskModule(tiny_model(), cross_entropy, **kwargs)


def trainer(**kwargs: Any) -> pl.Trainer:
    """A quiet CPU trainer; keyword arguments override."""
    options: dict[str, Any] = {
        "accelerator": "cpu",
        "devices": 1,
        "logger": False,
        "enable_checkpointing": False,
        "enable_progress_bar": False,
        "enable_model_summary": False,
    }
    options.update(kwargs)
    return pl.Trainer(**options)


class Tiny:
    """The helpers above, as one fixture (test modules cannot import conftest)."""

    cross_entropy = staticmethod(cross_entropy)
    tiny_model = staticmethod(tiny_model)
    loader = staticmethod(loader)
    sgd = staticmethod(sgd)
    task_module = staticmethod(task_module)
    trainer = staticmethod(trainer)


@pytest.fixture
def tiny() -> type[Tiny]:
    """Tiny models, data and quiet CPU trainers."""
    return Tiny
