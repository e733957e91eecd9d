"""trainforge's CheckpointManager as Lightning's checkpointing, and resume through it.

:class:`CheckpointEngineCallback` saves where Lightning's own ``ModelCheckpoint`` would
(validation end, every N optimizer steps), but writes verified, versioned, retained
trainforge checkpoints. The payload keeps the plain driver's layout (the bare network's
``model_state_dict``, the optimizer, the scheduler) so either driver, ``trainforge
checkpoint`` and export read it; what only Lightning needs to continue (its loop
progress, callback states) travels in ``custom_state["lightning"]``, the same key that
``lightning_to_state`` uses for imported ``.ckpt`` files.

To resume, :func:`to_lightning_checkpoint` turns a trainforge checkpoint back into the
dict ``Trainer.fit(ckpt_path=...)`` restores: Lightning then puts its loops, optimizer,
scheduler and callbacks back exactly as they were, mid-epoch included.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import torch
from lightning.pytorch.callbacks import Callback

from trainforge.checkpoint import CheckpointManager
from trainforge.engine import GradientMonitor
from trainforge.lightning._callbacks import network_of, running_epoch, scalar_metrics

__all__ = ["CheckpointEngineCallback", "to_lightning_checkpoint"]

# Keys of Lightning's checkpoint dict that the trainforge payload stores elsewhere.
_MAPPED = ("state_dict", "optimizer_states", "lr_schedulers", "epoch", "global_step")


class CheckpointEngineCallback(Callback):
    """Saves trainforge checkpoints from a Lightning fit, on global rank zero only.

    Saves at validation ends (of every ``manager.save_interval_epochs``-th epoch and of
    the last), every ``every_n_steps`` optimizer steps, and at the end of training when
    the final step has no checkpoint yet (an early stop, ``max_steps``).

    Args:
        manager: Where and how checkpoints are written (retention, storage, mirror).
        monitor: A GradientMonitor whose failure counters are saved with the run
            (as the plain driver does), or None.
        every_n_steps: Also save every N optimizer steps (None: validation ends only).
        config: The run's config, stored for resume compatibility checks.

    Rank zero writes alone, which is right for replicated state (single device, DDP);
    sharded strategies (FSDP, DeepSpeed) need a collective save and are not supported.

    Examples:
        >>> from trainforge.checkpoint import CheckpointManager  # doctest: +SKIP
        >>> manager = CheckpointManager("ckpts", monitor="val/loss")  # doctest: +SKIP
        >>> trainer = pl.Trainer(callbacks=[CheckpointEngineCallback(manager)],
        ...                      enable_checkpointing=False)  # doctest: +SKIP
        >>> trainer.fit(module, datamodule=data)  # doctest: +SKIP
        >>> resume = to_lightning_checkpoint(manager, "last", "resume.ckpt")  # doctest: +SKIP
        >>> trainer.fit(module, datamodule=data, ckpt_path=resume)  # doctest: +SKIP
    """

    def __init__(
        self,
        manager: CheckpointManager,
        monitor: GradientMonitor | None = None,
        every_n_steps: int | None = None,
        *,
        config: Any = None,
    ) -> None:
        if every_n_steps is not None and every_n_steps < 1:
            raise ValueError(f"every_n_steps must be >= 1 or None, got {every_n_steps}")
        self.manager = manager
        self.monitor = monitor
        self.every_n_steps = every_n_steps
        self.config = config
        self.last_path: Path | None = None
        self._last_step = -1

    def on_train_batch_end(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, *args: Any
    ) -> None:
        """Every ``every_n_steps`` optimizer steps."""
        step = trainer.global_step
        # with accumulation several batches end on the same step: save once
        due = bool(self.every_n_steps) and step > 0 and step % self.every_n_steps == 0
        if due and step != self._last_step:
            self.save(trainer, pl_module)

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """At the validation ends of every ``save_interval_epochs``-th epoch and the last."""
        if trainer.sanity_checking:
            return
        if self.manager.should_save(trainer.current_epoch) or _last_epoch(trainer):
            self.save(trainer, pl_module)

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """The final state is always checkpointed (early stopping, ``max_steps``)."""
        if trainer.global_step != self._last_step and trainer.global_step > 0:
            self.save(trainer, pl_module)

    def _reopen_cut_epoch(self, trainer: pl.Trainer, loops: dict[str, Any]) -> None:
        # Lightning counts an epoch that max_steps cut short as completed, and a fit
        # resumed from it would skip the epoch's remaining batches; record it as the
        # in-progress epoch it is, as a step checkpoint inside it would
        batches = trainer.fit_loop.epoch_loop.batch_progress
        done = batches.is_last_batch or batches.current.processed >= trainer.num_training_batches
        epochs = loops.get("fit_loop", {}).get("epoch_progress")
        if done or not trainer.fit_loop.done or epochs is None:
            return
        for counts in (epochs["total"], epochs["current"]):
            if counts["completed"] == counts["started"]:
                counts["processed"] = counts["completed"] = counts["started"] - 1

    def save(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> Path | None:
        """Write one checkpoint now (rank zero; other ranks return None)."""
        self._last_step = trainer.global_step
        if not trainer.is_global_zero:
            return None
        # Lightning's own checkpoint dict: the loop and callback states it restores from.
        state = trainer._checkpoint_connector.dump_checkpoint(weights_only=False)
        if state.get("loops"):
            self._reopen_cut_epoch(trainer, state["loops"])
        optimizers = state.get("optimizer_states") or []
        schedulers = state.get("lr_schedulers") or []
        network = network_of(pl_module)
        prefix = "model." if network is not pl_module else ""
        metrics = scalar_metrics(trainer.callback_metrics)
        if self.manager.monitor and self.manager.monitor not in metrics:
            metrics[self.manager.monitor] = math.nan  # a step save before any validation
        epoch = running_epoch(trainer)
        custom = {
            "loop": {
                "epoch": epoch,
                "global_step": trainer.global_step,
                "batches_done": trainer.fit_loop.epoch_loop.batch_progress.current.processed,
            },
            "lightning": {
                "loops": state.get("loops"),
                "callbacks": state.get("callbacks") or {},
                "version": state.get("pytorch-lightning_version"),
                "state_dict_prefix": prefix,
                "extra_optimizer_states": optimizers[1:],
                "extra_lr_schedulers": schedulers[1:],
                "extra": {
                    k: v
                    for k, v in state.items()
                    if k not in (*_MAPPED, "loops", "callbacks", "pytorch-lightning_version")
                },
            },
            "monitor": self.monitor.state_dict() if self.monitor is not None else None,
        }
        self.last_path = self.manager.save(
            model=network,
            optimizer=optimizers[0] if optimizers else None,
            scheduler=schedulers[0] if schedulers else None,
            epoch=epoch,
            metrics=metrics,
            global_step=trainer.global_step,
            custom_state=custom,
            config=self.config,
        )
        return self.last_path


def _last_epoch(trainer: pl.Trainer) -> bool:
    max_epochs = trainer.max_epochs
    return max_epochs is not None and max_epochs > 0 and trainer.current_epoch + 1 >= max_epochs


def to_lightning_checkpoint(
    manager: CheckpointManager, target: str | Path | None, path: str | Path
) -> Path:
    """Write a verified trainforge checkpoint as a ``.ckpt`` for ``fit(ckpt_path=...)``.

    Args:
        manager: The manager holding the checkpoint.
        target: ``last``, ``best`` or a checkpoint directory (None: ``last``).
        path: Where to write the Lightning checkpoint (plain data only: it loads with
            ``torch.load(weights_only=True)``).

    Returns:
        ``path``.

    Raises:
        ValueError: The checkpoint was not written by a Lightning fit (no loop state).
    """
    loaded = manager.load(target)
    custom = loaded.get("custom_state") or {}
    saved = custom.get("lightning")
    if not saved or saved.get("loops") is None:
        raise ValueError(
            f"{loaded['path']} holds no Lightning loop state (written by the plain driver or "
            "imported); resume it with the driver that wrote it"
        )
    prefix = saved.get("state_dict_prefix", "")
    optimizer, scheduler = loaded["optimizer_state_dict"], loaded["scheduler_state_dict"]
    checkpoint = {
        **saved.get("extra", {}),
        "epoch": loaded["epoch"],
        "global_step": loaded["global_step"],
        "pytorch-lightning_version": saved.get("version") or pl.__version__,
        "state_dict": {f"{prefix}{k}": v for k, v in loaded["model_state_dict"].items()},
        "loops": saved["loops"],
        "callbacks": saved.get("callbacks") or {},
        "optimizer_states": [
            *([optimizer] if optimizer is not None else []),
            *saved.get("extra_optimizer_states", []),
        ],
        "lr_schedulers": [
            *([scheduler] if scheduler is not None else []),
            *saved.get("extra_lr_schedulers", []),
        ],
    }
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    torch.save(checkpoint, out)
    return out
