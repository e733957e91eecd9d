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
from trainforge.records import ConfigSource

__all__ = [
    "CheckpointEngineCallback",
    "LightningSaver",
    "lightning_loops",
    "to_lightning_checkpoint",
]

# Keys of Lightning's checkpoint dict that the trainforge payload stores elsewhere.
_MAPPED = ("state_dict", "optimizer_states", "lr_schedulers", "epoch", "global_step")


class LightningSaver:
    """Writes one trainforge checkpoint of a Lightning fit (global rank zero only).

    Args:
        manager: Where and how checkpoints are written (retention, storage, mirror).
        policies: Whose state (best metric, early stopping, health) is saved with it.
        config: The run's config record, stored for resume compatibility checks.

    Rank zero writes alone, which is right for replicated state (single device, DDP).
    With ``sharded`` (FSDP2 under ``ModelParallelStrategy``) every rank calls it and
    writes its shards of the model and optimizer through
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
                    if k not in (*_MAPPED, "loops", "callbacks", "pytorch-lightning_version")
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
        if optimizers:
            model_state, optimizer_state = get_state_dict(network, optimizers)
            sharded = {"model": model_state, "optimizer": optimizer_state}
        else:
            sharded = {"model": get_model_state_dict(network)}
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


def _set(tracker: dict[str, Any], value: int, *, lag: int = 0) -> None:
    """Set every counter of a progress tracker to ``value`` (``completed`` to value - lag)."""
    for key in tracker:
        tracker[key] = value - lag if key == "completed" else value


def lightning_loops(
    template: Mapping[str, Any],
    position: RunPosition,
    *,
    batches_per_epoch: int,
    accumulate: int = 1,
    manual: bool = False,
) -> dict[str, Any]:
    """Lightning's ``loops`` state for ``position``, as a save after that step has it.

    Args:
        template: A fresh fit's ``{"fit_loop": trainer.fit_loop.state_dict()}`` (zeros).
        position: Where training continues.
        batches_per_epoch: Training batches per epoch (after ``limit_train_batches``).
        accumulate: Batches per optimizer step.
        manual: Manual optimization counts steps in its own progress tracker.
    """
    import copy

    loops = copy.deepcopy(dict(template))
    fit = loops["fit_loop"]
    epoch, batches, step = position.epoch, position.batches_done, position.global_step
    mid = batches > 0
    for part in ("total", "current"):
        _set(fit["epoch_progress"][part], epoch + 1 if mid else epoch, lag=1 if mid else 0)
        fit["epoch_progress"][part]["processed"] = epoch
    batch = fit["epoch_loop.batch_progress"]
    _set(batch["total"], epoch * batches_per_epoch + batches, lag=1 if mid else 0)
    _set(batch["current"], batches, lag=1 if mid else 0)
    batch["is_last_batch"] = mid and batches >= batches_per_epoch
    steps_now = batches // accumulate
    for name in ("epoch_loop.scheduler_progress",):
        _set(fit[name]["total"], step)
        _set(fit[name]["current"], steps_now)
    if manual:
        progress = fit["epoch_loop.manual_optimization.optim_step_progress"]
        _set(progress["total"], step)
        _set(progress["current"], steps_now)
    else:
        optim = fit["epoch_loop.automatic_optimization.optim_progress"]["optimizer"]
        for name in ("step", "zero_grad"):
            _set(optim[name]["total"], step)
            _set(optim[name]["current"], steps_now)
    # Lightning counts a step's batch into _batches_that_stepped after on_train_batch_end
    fit["epoch_loop.state_dict"] = {"_batches_that_stepped": step - 1 if mid else step}
    fit["state_dict"] = {"combined_loader": [position.sampler]} if position.sampler else {}
    return loops


def to_lightning_checkpoint(
    checkpoint: Mapping[str, Any],
    path: str | Path,
    *,
    loops: Mapping[str, Any] | None = None,
) -> Path:
    """Write a loaded trainforge checkpoint as a ``.ckpt`` for ``fit(ckpt_path=...)``.

    Args:
        checkpoint: What :meth:`CheckpointManager.load` returned.
        path: Where to write it (plain data only: loads with ``torch.load(weights_only=True)``).
        loops: Lightning loop state to use (:func:`lightning_loops`) when the checkpoint
            has none of its own (the plain driver wrote it).

    Raises:
        ValueError: No loop state in the checkpoint and none given.
    """
    custom = checkpoint.get("custom_state") or {}
    saved = custom.get("lightning") or {}
    if saved.get("loops") is None and loops is None:
        raise ValueError(
            f"{checkpoint['path']} holds no Lightning loop state and none was given; "
            "pass loops=lightning_loops(...) built from its position"
        )
    prefix = saved.get("state_dict_prefix", "model.")
    optimizer, scheduler = checkpoint["optimizer_state_dict"], checkpoint["scheduler_state_dict"]
    if optimizer is not None and _named(optimizer):  # a sharded save names parameters
        optimizer = _prefixed(optimizer, prefix)
    state = {
        **saved.get("extra", {}),
        "epoch": checkpoint["epoch"],
        "global_step": checkpoint["global_step"],
        "pytorch-lightning_version": saved.get("version") or pl.__version__,
        "state_dict": {f"{prefix}{k}": v for k, v in checkpoint["model_state_dict"].items()},
        "loops": saved.get("loops") if saved.get("loops") is not None else dict(loops or {}),
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
    torch.save(state, out)
    return out


def _named(optimizer: Mapping[str, Any]) -> bool:
    """True when an optimizer state is keyed by parameter name (``get_state_dict``'s form)."""
    return any(isinstance(key, str) for key in optimizer.get("state", {}))


def _prefixed(optimizer: Mapping[str, Any], prefix: str) -> dict[str, Any]:
    """The named optimizer state with the LightningModule's prefix on every parameter name."""
    return {
        **optimizer,
        "state": {f"{prefix}{name}": value for name, value in optimizer["state"].items()},
        "param_groups": [
            {**group, "params": [f"{prefix}{name}" for name in group["params"]]}
            for group in optimizer["param_groups"]
        ],
    }
