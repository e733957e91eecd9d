"""trainforge: from a YAML config to a trained, tracked, trustworthy PyTorch model.

Importing ``trainforge`` is cheap: the names below are loaded on first use, so the
tracking and config CLI commands never pay for importing torch.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from trainforge._version import __version__

__all__ = [
    "CheckpointManager",
    "ConfigError",
    "ExperimentTracker",
    "HookEvent",
    "HookManager",
    "Trainer",
    "TrainforgeError",
    "TrainingConfig",
    "TrainingConfigBuilder",
    "__version__",
    "configure_logging",
    "load_config",
    "set_random_seed",
]

# public name -> module that defines it
_LAZY = {
    "CheckpointManager": "trainforge.checkpoint",
    "ConfigError": "trainforge.errors",
    "ExperimentTracker": "trainforge.tracking",
    "HookEvent": "trainforge.hooks",
    "HookManager": "trainforge.hooks",
    "Trainer": "trainforge.train",
    "TrainforgeError": "trainforge.errors",
    "TrainingConfig": "trainforge.config",
    "TrainingConfigBuilder": "trainforge.config",
    "configure_logging": "trainforge.logs",
    "load_config": "trainforge.config",
    "set_random_seed": "trainforge.seeding",
}

if TYPE_CHECKING:
    from trainforge.checkpoint import CheckpointManager
    from trainforge.config import TrainingConfig, TrainingConfigBuilder, load_config
    from trainforge.errors import ConfigError, TrainforgeError
    from trainforge.hooks import HookEvent, HookManager
    from trainforge.logs import configure_logging
    from trainforge.seeding import set_random_seed
    from trainforge.tracking import ExperimentTracker
    from trainforge.train import Trainer


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'trainforge' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
