"""The Lightning loop driver: one ``lightning.Trainer.fit`` over trainforge's parts.

``fit`` takes plain arguments (the module, the data module, callbacks, loggers, trainer
options); the composition root (``trainforge.train``) builds them from the config. The
only callback added here records each validation's metrics, so the driver returns the
same per-epoch summary as the plain driver.
"""

from __future__ import annotations

import logging
import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import pandas as pd
from lightning.pytorch.callbacks import Callback

__all__ = ["FitOutcome", "fit"]


class _NoAdverts(logging.Filter):
    """Drops Lightning's product tips ("💡 Tip: ..."); its other messages pass."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith("💡 Tip")


_RANK_ZERO_LOGGER = logging.getLogger("lightning.pytorch.utilities.rank_zero")
_RANK_ZERO_LOGGER.addFilter(_NoAdverts())


class _EpochHistory(Callback):
    """Keeps the metrics of every validation (not the sanity check) and of training."""

    def __init__(self) -> None:
        self.rows: list[dict[str, float]] = []

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.sanity_checking:
            return
        row: dict[str, float] = {"epoch": float(trainer.current_epoch)}
        for name, value in trainer.callback_metrics.items():
            if name != "train/loss_epoch":  # the previous epoch's until this one ends
                row[name] = float(value)  # host-device sync, once per validation
        # the epoch's mean training loss (the loggers get it only on logging steps)
        mean = getattr(pl_module, "epoch_train_loss", None)
        if mean is not None:
            row["train/loss"] = mean
        self.rows.append(row)


@dataclass
class FitOutcome:
    """What one fit produced."""

    history: pd.DataFrame
    global_step: int
    epochs_completed: int
    interrupted: bool


def fit(
    module: pl.LightningModule,
    datamodule: pl.LightningDataModule,
    *,
    callbacks: Sequence[Callback] = (),
    loggers: Sequence[Any] = (),
    profiler: Any = None,
    ckpt_path: str | Path | None = None,
    default_root_dir: str | Path | None = None,
    **trainer_options: Any,
) -> FitOutcome:
    """Run ``lightning.Trainer(...).fit`` and return the per-validation history.

    Args:
        module: A :class:`~trainforge.lightning.TaskModule` (or any LightningModule).
        datamodule: Usually a :class:`~trainforge.lightning.UniversalDataModule`.
        callbacks: Built by :func:`~trainforge.lightning.build_callbacks`.
        loggers: Built by :func:`~trainforge.lightning.create_logger`.
        profiler: Built by :func:`~trainforge.lightning.build_profiler`, or None.
        ckpt_path: A ``.ckpt`` to resume from (see ``to_lightning_checkpoint``).
        default_root_dir: Lightning's own scratch directory (the run folder).
        **trainer_options: ``lightning.Trainer`` arguments (max_epochs, precision, ...).
    """
    history = _EpochHistory()
    trainer = pl.Trainer(
        callbacks=[*callbacks, history],
        logger=list(loggers) if loggers else False,
        profiler=profiler,
        enable_checkpointing=False,  # checkpoints go through trainforge's CheckpointManager
        enable_model_summary=False,
        default_root_dir=str(default_root_dir) if default_root_dir else None,
        **trainer_options,
    )
    with warnings.catch_warnings():
        # Lightning 2.6 under torch 2.13 warns about its own use of torch's pytree API on
        # every fit; nothing a user can act on
        warnings.filterwarnings("ignore", message=r".*isinstance\(treespec, LeafSpec\)")
        # trainforge logs on global steps (log_every_n_steps counts across epochs), so an
        # epoch shorter than the interval loses nothing
        warnings.filterwarnings("ignore", message=r".*smaller than the logging interval")
        trainer.fit(module, datamodule=datamodule, ckpt_path=str(ckpt_path) if ckpt_path else None)
    frame = pd.DataFrame(history.rows)
    max_epochs = trainer_options.get("max_epochs")
    completed = trainer.current_epoch
    if max_epochs is not None and not math.isinf(max_epochs):
        completed = min(completed, int(max_epochs))
    return FitOutcome(
        history=frame,
        global_step=int(trainer.global_step),
        epochs_completed=int(completed),
        interrupted=bool(trainer.interrupted),
    )
