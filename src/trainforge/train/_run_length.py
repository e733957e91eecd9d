"""How long a run is: batches per epoch and process, the ``limit_*_batches`` cut, and
the optimizer steps of the whole run (what the schedule is sized by)."""

from __future__ import annotations

import math
from typing import Any

from trainforge.config import TrainingConfig
from trainforge.engine import loader_length
from trainforge.errors import ConfigError

__all__ = [
    "batch_limit",
    "batches_per_epoch",
    "length_needed_by",
    "total_optimizer_steps",
    "train_batches",
]


def batch_limit(limit: float | int | None, batches: int | None) -> int | None:
    """``limit_*_batches``: an int is a count, a float a fraction of ``batches``.

    ``batches`` is None for a stream without a length: only a count (or 1.0) applies.
    """
    if limit is None:
        return None
    if isinstance(limit, float) and limit <= 1.0:
        if limit == 0:
            return 0
        if batches is None:
            if limit == 1.0:
                return None
            raise ConfigError(
                f"a fraction of the batches ({limit}) needs training data with a length; "
                "this IterableDataset has none",
                key="trainer.limit_train_batches",
                hint="give a number of batches instead (an int), or give the dataset __len__",
            )
        return max(1, int(batches * limit))
    return int(limit)


def batches_per_epoch(config: TrainingConfig, samples: int, processes: int = 1) -> int:
    """Training batches each process runs per epoch (before ``limit_train_batches``)."""
    per_process = math.ceil(samples / processes)
    size = config.data.batch_size
    return per_process // size if config.data.drop_last else math.ceil(per_process / size)


def train_batches(config: TrainingConfig, datamodule: Any, processes: int = 1) -> int | None:
    """Training batches per epoch and process; None for a stream without a length."""
    if datamodule.streams:
        return loader_length(datamodule.train_dataloader())
    return batches_per_epoch(config, len(datamodule.train_dataset), processes)


def total_optimizer_steps(config: TrainingConfig, batches_per_epoch: int | None) -> int | None:
    """Optimizer steps of the whole run (for the schedule); None when nothing tells.

    A stream without a length and neither ``trainer.max_steps`` nor a batch count in
    ``trainer.limit_train_batches`` runs ``max_epochs`` passes of unknown length: fine
    unless the schedule is sized by the run's length (:func:`length_needed_by`).

    Raises:
        ConfigError: Such a stream, with a schedule sized by the run's length.
    """
    trainer = config.trainer
    limit = batch_limit(trainer.limit_train_batches, batches_per_epoch)
    if batches_per_epoch is None:
        if trainer.max_steps is not None:
            return trainer.max_steps
        if limit is None:
            reason = length_needed_by(config)
            if reason is None:
                return None
            raise ConfigError(
                "the training data is an IterableDataset without a length, so the length "
                f"of the run is unknown, and {reason}",
                key="trainer.max_steps",
                hint="set trainer.max_steps (or trainer.limit_train_batches to a number of "
                "batches per epoch), use optim.scheduler=none or step, or give the dataset "
                "__len__",
            )
        batches_per_epoch = limit
    if limit is not None:
        batches_per_epoch = min(batches_per_epoch, limit)
    per_epoch = math.ceil(batches_per_epoch / trainer.accumulate_grad_batches)
    if trainer.max_steps is not None:
        if trainer.max_epochs is not None:
            return min(trainer.max_steps, per_epoch * trainer.max_epochs)
        return trainer.max_steps
    assert trainer.max_epochs is not None  # the schema requires one of the two
    return per_epoch * trainer.max_epochs


def length_needed_by(config: TrainingConfig) -> str | None:
    """What in ``config`` needs the run's length in advance (None: nothing does)."""
    optim = config.optim
    if optim.scheduler in ("cosine", "linear", "onecycle"):
        return f"optim.scheduler={optim.scheduler} is sized by it"
    if optim.warmup_steps == 0 and optim.warmup_ratio > 0:
        return f"optim.warmup_ratio={optim.warmup_ratio} is a fraction of it"
    return None
