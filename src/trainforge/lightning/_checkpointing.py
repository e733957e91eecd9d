"""Checkpoints of a Lightning fit through trainforge's CheckpointManager, and resume.

:class:`LightningSaver` writes the state of a fit as a verified trainforge checkpoint with
the layout both drivers share (the bare network's ``model_state_dict``, the optimizer,
the scheduler, ``custom_state["position"]`` and ``["policies"]``, see
:class:`~trainforge.engine.RunPosition`); what only Lightning needs to continue exactly
(its loop progress and callback states) travels in ``custom_state["lightning"]``.

:func:`to_lightning_checkpoint` turns a trainforge checkpoint back into the dict
``Trainer.fit(ckpt_path=...)`` restores. A checkpoint of the plain driver has no Lightning
loop state: its loops are rebuilt from the shared position, as Lightning itself would have
saved them at the end of that optimizer step.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import torch
from lightning.pytorch.callbacks import Callback

from trainforge.checkpoint import CheckpointManager
from trainforge.engine import RunPosition
from trainforge.engine.policies import CheckpointCadence, RunPolicies
from trainforge.lightning._callbacks import (
    epoch_batches,
    network_of,
    running_epoch,
    scalar_metrics,
)
from trainforge.lightning._lightning_state import (
    MAPPED_KEYS,
    _unprefixed,
    _unprefixed_optimizer,
)
from trainforge.records import ConfigSource

__all__ = [
    "CheckpointEngineCallback",
    "LightningSaver",
]


class LightningSaver:
    """Writes one trainforge checkpoint of a Lightning fit (global rank zero only).

    Args:
        manager: Where and how checkpoints are written (retention, storage, mirror).
        policies: Whose state (best metric, early stopping, health) is saved with it.
        config: The run's config record, stored for resume compatibility checks.

    Rank zero writes alone, which is right for replicated state (single device, DDP).
    With ``sharded`` (FSDP2 under ``ModelParallelStrategy``, or Lightning's FSDP) every
    rank calls it and writes its shards of the model and optimizer through
    :meth:`CheckpointManager.save_sharded`; rank zero writes the rest and publishes.
    """

    def __init__(
        self,
        manager: CheckpointManager,
        policies: RunPolicies | None = None,
        *,
        config: ConfigSource | None = None,
        sharded: bool = False,
    ) -> None:
        self.manager = manager
        self.policies = policies
        self.config = config
        self.sharded = sharded

    def __call__(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, metrics: Mapping[str, float]
    ) -> Path | None:
        """Checkpoint the fit now, recording ``metrics``; None on ranks other than zero.

        ``metrics`` are the values of this moment (the epoch's at an epoch end, the step's
        loss after a step): a step checkpoint never carries an older validation's values.
        """
        if not trainer.is_global_zero and not self.sharded:
            return None
        # Lightning's own checkpoint dict: the loop and callback states it restores from.
        state = trainer._checkpoint_connector.dump_checkpoint(weights_only=False)
        if state.get("loops"):
            _reopen_cut_epoch(trainer, state["loops"])
        optimizers = state.get("optimizer_states") or []
        schedulers = state.get("lr_schedulers") or []
        network = network_of(pl_module)
        values = dict(metrics)
        if self.manager.monitor and self.manager.monitor not in values:
            values[self.manager.monitor] = math.nan  # a step save before any validation
        epoch = running_epoch(trainer)
        custom = {
            "driver": "lightning",
            "position": _position(trainer, epoch).to_dict(),
            "policies": self.policies.state_dict() if self.policies is not None else {},
            "lightning": {
                "loops": state.get("loops"),
                "callbacks": state.get("callbacks") or {},
                "version": state.get("pytorch-lightning_version"),
                "state_dict_prefix": "model." if network is not pl_module else "",
                "extra_optimizer_states": optimizers[1:],
                "extra_lr_schedulers": schedulers[1:],
                "extra": {
                    k: v
                    for k, v in state.items()
                    if k not in (*MAPPED_KEYS, "loops", "callbacks", "pytorch-lightning_version")
                },
            },
        }
        if self.sharded:
            return self._save_sharded(trainer, network, schedulers, epoch, values, custom)
        return self.manager.save(
            model=network,
            optimizer=optimizers[0] if optimizers else None,
            scheduler=schedulers[0] if schedulers else None,
            epoch=epoch,
            metrics=values,
            global_step=trainer.global_step,
            custom_state=custom,
            config=self.config,
        )

    def _save_sharded(
        self,
        trainer: pl.Trainer,
        network: torch.nn.Module,
        schedulers: list[Any],
        epoch: int,
        values: dict[str, float],
        custom: dict[str, Any],
    ) -> Path:
        """Every rank: its shards of the network and optimizer, keyed by parameter name."""
        from torch.distributed.checkpoint.state_dict import get_model_state_dict, get_state_dict

        optimizers = list(trainer.optimizers)
        if len(optimizers) > 1:
            raise ValueError(
                f"a sharded checkpoint holds one optimizer; this fit has {len(optimizers)}"
            )
        prefix = ""
        root = trainer.strategy.model
        if root is not None and root is not trainer.lightning_module:  # Lightning's FSDP wraps it
            network, prefix = root, custom["lightning"]["state_dict_prefix"]
        if optimizers:
            model_state, optimizer_state = get_state_dict(network, optimizers)
            sharded = {
                "model": _unprefixed(model_state, prefix),
                "optimizer": _unprefixed_optimizer(optimizer_state, prefix),
            }
        else:
            sharded = {"model": _unprefixed(get_model_state_dict(network), prefix)}
        custom["lightning"]["extra_optimizer_states"] = []  # sharded ones live in the shards
        return self.manager.save_sharded(
            sharded=sharded,
            scheduler=schedulers[0] if schedulers else None,
            epoch=epoch,
            metrics=values,
            global_step=trainer.global_step,
            custom_state=custom,
            config=self.config,
        )


class CheckpointEngineCallback(Callback):
    """trainforge checkpoints as a Lightning fit's checkpointing, for your own Lightning code.

    A thin adapter over :class:`~trainforge.engine.policies.CheckpointCadence` (when) and
    :class:`LightningSaver` (how): at the end of every ``manager.save_interval_epochs``-th
    training epoch and of the last one, every ``every_n_steps`` optimizer steps, and at the
    end of the fit if its final state has no checkpoint yet. Rank zero writes.

    Args:
        manager: Where and how checkpoints are written (retention, storage, mirror).
        every_n_steps: Also save every N optimizer steps (None: epoch ends only).
        policies: Whose state is saved with each checkpoint (optional).
        config: The run's config (a record, a mapping or a TrainingConfig), stored with it.

    Examples:
        >>> from trainforge.lightning import TaskModule, UniversalDataModule
        >>> from trainforge.lightning import to_lightning_checkpoint
        >>> pairs = torch.utils.data.TensorDataset(torch.randn(16, 4), torch.randint(0, 2, (16,)))
        >>> data = UniversalDataModule(pairs, pairs, batch_size=8)
        >>> module = TaskModule(
        ...     torch.nn.Linear(4, 2),
        ...     lambda outputs, batch: torch.nn.functional.cross_entropy(outputs, batch["labels"]),
        ...     optimizer_factory=lambda m: torch.optim.SGD(m.parameters(), lr=0.1))
        >>> manager = CheckpointManager("ckpts")
        >>> def trainer(epochs):
        ...     return pl.Trainer(max_epochs=epochs, callbacks=[CheckpointEngineCallback(manager)],
        ...                       enable_checkpointing=False, logger=False,
        ...                       enable_progress_bar=False, enable_model_summary=False)
        >>> trainer(1).fit(module, datamodule=data)
        >>> checkpoint = manager.load("last", restore_rng=False)
        >>> resume = to_lightning_checkpoint(checkpoint, "resume.ckpt")
        >>> trainer(2).fit(module, datamodule=data, ckpt_path=resume)  # continues with epoch 1
        >>> manager.load("last", restore_rng=False)["epoch"]
        1
    """

    def __init__(
        self,
        manager: CheckpointManager,
        every_n_steps: int | None = None,
        *,
        policies: RunPolicies | None = None,
        config: ConfigSource | None = None,
    ) -> None:
        self.manager = manager
        self.cadence = CheckpointCadence(manager.save_interval_epochs, every_n_steps)
        self.saver = LightningSaver(manager, policies, config=config)
        self.last_path: Path | None = None

    def _save(self, trainer: pl.Trainer, pl_module: pl.LightningModule, *, epoch: bool) -> None:
        # a step checkpoint records the training values only: validation's are older
        keep = None if epoch else ("train/",)
        self.cadence.saved(trainer.global_step)
        path = self.saver(trainer, pl_module, scalar_metrics(trainer.callback_metrics, keep))
        self.last_path = path or self.last_path

    def on_train_batch_end(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, *args: Any
    ) -> None:
        """Every ``every_n_steps`` optimizer steps (once per step under accumulation)."""
        if self.cadence.step_due(trainer.global_step):
            self._save(trainer, pl_module, epoch=False)

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """At the end of every ``save_interval_epochs``-th epoch and of the last."""
        max_epochs = trainer.max_epochs or -1
        final = 0 < max_epochs <= trainer.current_epoch + 1
        if self.cadence.epoch_due(trainer.current_epoch, final=final):
            self._save(trainer, pl_module, epoch=True)

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """The final state (early stopping, ``max_steps``) when it has no checkpoint yet."""
        if self.cadence.final_due(trainer.global_step):
            self._save(trainer, pl_module, epoch=False)


def _position(trainer: pl.Trainer, epoch: int) -> RunPosition:
    """Where the fit continues, in the shared form (from the stateful training loader)."""
    processed, finished = epoch_batches(trainer)
    state_dict = getattr(trainer.train_dataloader, "state_dict", None)
    sampler = state_dict() if callable(state_dict) else None
    done = epoch + 1 if finished else epoch
    return RunPosition(
        epoch=done,
        global_step=trainer.global_step,
        batches_done=0 if finished else processed,
        samples_done=int(sampler["position"]) if sampler else 0,
        epochs_completed=done,
        sampler=sampler,
    )


def _reopen_cut_epoch(trainer: pl.Trainer, loops: dict[str, Any]) -> None:
    # Lightning counts an epoch that max_steps cut short as completed, and a fit resumed
    # from it would skip the epoch's remaining batches; record it as the in-progress epoch
    # it is, as a step checkpoint inside it would
    _, done = epoch_batches(trainer)
    epochs = loops.get("fit_loop", {}).get("epoch_progress")
    if done or epochs is None:
        return
    for counts in (epochs["total"], epochs["current"]):
        counts["processed"] = counts["completed"] = counts["started"] - 1
