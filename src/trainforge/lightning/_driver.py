"""The Lightning loop driver: one ``lightning.Trainer.fit`` over trainforge's parts.

``fit`` takes plain arguments (the module, the data module, callbacks, trainer options);
the composition root (``trainforge.train``) builds them. Lightning runs the batches, the
devices and the processes; every metric goes through the run's own loggers (the same
objects the plain driver writes to), so the Trainer itself gets no logger.
"""

from __future__ import annotations

import logging
import math
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
from lightning.pytorch.callbacks import Callback

from trainforge.lightning._callbacks import epoch_batches, max_steps_reached

__all__ = ["FitOutcome", "fit"]


class _NoAdverts(logging.Filter):
    """Drops Lightning's product tips ("💡 Tip: ..."); its other messages pass."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith("💡 Tip")


_RANK_ZERO_LOGGER = logging.getLogger("lightning.pytorch.utilities.rank_zero")
_RANK_ZERO_LOGGER.addFilter(_NoAdverts())


@dataclass
class FitOutcome:
    """What one fit produced."""

    global_step: int
    epochs_completed: int
    interrupted: bool


def fit(
    module: pl.LightningModule,
    datamodule: pl.LightningDataModule,
    *,
    callbacks: Sequence[Callback] = (),
    profiler: Any = None,
    ckpt_path: str | Path | Callable[[pl.Trainer], Path | None] | None = None,
    default_root_dir: str | Path | None = None,
    **trainer_options: Any,
) -> FitOutcome:
    """Run ``lightning.Trainer(...).fit``.

    Args:
        module: A :class:`~trainforge.lightning.TaskModule` (or any LightningModule).
        datamodule: Usually a :class:`~trainforge.lightning.UniversalDataModule`.
        callbacks: e.g. a :class:`~trainforge.lightning.RunCallback`.
        profiler: Built by :func:`~trainforge.lightning.build_profiler`, or None.
        ckpt_path: A ``.ckpt`` to resume from, or a function of the new ``Trainer`` that
            writes one (its fresh loop state is the template for a checkpoint that has
            none; see :func:`~trainforge.lightning.lightning_loops`).
        default_root_dir: Lightning's own scratch directory (the run folder).
        **trainer_options: ``lightning.Trainer`` arguments (max_epochs, precision, ...).
    """
    trainer = pl.Trainer(
        callbacks=list(callbacks),
        logger=False,  # every metric goes through the run's MetricsEngine
        profiler=profiler,
        enable_checkpointing=False,  # checkpoints go through trainforge's CheckpointManager
        enable_model_summary=False,
        default_root_dir=str(default_root_dir) if default_root_dir else None,
        **trainer_options,
    )
    path = ckpt_path(trainer) if callable(ckpt_path) else ckpt_path
    with warnings.catch_warnings():
        # Lightning 2.6 under torch 2.13 warns about its own use of torch's pytree API on
        # every fit; nothing a user can act on
        warnings.filterwarnings("ignore", message=r".*isinstance\(treespec, LeafSpec\)")
        trainer.fit(module, datamodule=datamodule, ckpt_path=str(path) if path else None)
    max_epochs = trainer_options.get("max_epochs")
    completed = trainer.current_epoch
    processed, finished = epoch_batches(trainer)
    epochs: Any = trainer.fit_loop.epoch_progress.current  # started, processed, completed
    cut = processed > 0 and not finished and max_steps_reached(trainer)
    if cut and epochs.completed == epochs.started:
        # Lightning counts an epoch this fit ended on max_steps as completed; it is not (a
        # fit resumed inside such an epoch with nothing left to do does not count it)
        completed -= 1
    if max_epochs is not None and max_epochs > 0 and not math.isinf(max_epochs):
        completed = min(completed, int(max_epochs))
    return FitOutcome(
        global_step=int(trainer.global_step),
        epochs_completed=int(completed),
        interrupted=bool(trainer.interrupted),
    )
