"""``RunProgressBar``: the plain driver's progress bar, drawn for a Lightning fit.

Lightning's own bars redraw and collect the logged metrics on every batch, which costs
more than a small model's step; this callback hands each batch to
:class:`~trainforge.logs.TrainingProgress` instead, so both drivers draw the same bar
(samples over the whole run, loss, learning rate, throughput, ETA) at the same cost.
"""

from __future__ import annotations

import math
from typing import Any

import lightning.pytorch as pl
from lightning.pytorch.callbacks import ProgressBar

from trainforge.engine import as_batch_dict, batch_size_of
from trainforge.lightning._run_callback import keep_batch_hooks
from trainforge.logs import TrainingProgress

__all__ = ["RunProgressBar"]


class RunProgressBar(ProgressBar):
    """Draws :class:`~trainforge.logs.TrainingProgress` during ``fit`` (on rank zero).

    Args:
        console: Draw on this Rich console (default: stderr, if it is a terminal).
    """

    def __init__(self, console: Any = None) -> None:
        super().__init__()
        self.console = console
        self.progress: TrainingProgress | None = None
        self._enabled = True
        # Lightning calls every hook of every callback on every batch
        keep_batch_hooks(self, RunProgressBar, ["on_train_batch_end"])

    def disable(self) -> None:
        """Draw nothing (Lightning calls this on ranks other than zero)."""
        self._enabled = False

    def enable(self) -> None:
        """Draw again."""
        self._enabled = True

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """Open the bar over every sample the fit will train on."""
        if not self._enabled:
            return
        progress = TrainingProgress(_total_samples(trainer), console=self.console)
        if progress.enabled:  # off a terminal: no bar, and no per-batch work either
            self.progress = progress.__enter__()
            if trainer.optimizers:
                progress.track_optimizer(trainer.optimizers[0])

    def on_train_batch_end(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch: Any, *_: Any
    ) -> None:
        """Count the batch's samples; show the loss (and the learning rate) now and then."""
        progress = self.progress
        if progress is None:
            return
        # the run's module has already sized the batch (sizing it again costs ~4 us a step)
        size = getattr(pl_module, "last_train_batch_size", 0) or batch_size_of(as_batch_dict(batch))
        progress.advance(size, getattr(pl_module, "last_train_loss", None))

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """Close the bar."""
        self._close()

    def on_exception(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, exception: BaseException
    ) -> None:
        """Close the bar, so the error is printed on a clean line."""
        self._close()

    def _close(self) -> None:
        if self.progress is not None:
            self.progress.__exit__(None, None, None)
            self.progress = None


def _total_samples(trainer: pl.Trainer) -> int | None:
    """Samples over all epochs, as the plain driver counts them (None for a stream)."""
    batches = trainer.num_training_batches
    datamodule = getattr(trainer, "datamodule", None)
    size = getattr(datamodule, "batch_size", None)
    if not isinstance(batches, int) or math.isinf(batches) or not size:
        return None
    total = batches * int(size)
    train_samples = getattr(datamodule, "train_samples", None)
    samples = train_samples() if callable(train_samples) else None
    if samples is not None:
        total = min(total, int(samples))
    epochs = trainer.max_epochs if trainer.max_epochs and trainer.max_epochs > 0 else 1
    return total * epochs
