"""``Trainer``: one call from a config to a trained, tracked, checkpointed model.

The trainer builds every component through the composition root (``_build``), then
runs the plain loop driver: epochs of ``TrainingLoop`` + ``ValidationLoop``, metrics fanned
out by ``MetricsEngine`` to the loggers and the tracker, checkpoints through
``CheckpointManager`` at the end of every epoch and every ``checkpoint_every_n_steps``
optimizer steps. A checkpoint holds everything a bit-exact resume needs: model,
optimizer, schedule, accumulator, gradient monitor, sampler position and RNG states.
"""

from __future__ import annotations

import logging
import math
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import pandas as pd
from torch import nn

from trainforge.config import TrainingConfig
from trainforge.engine import TaskSpec
from trainforge.engine._loop import EpochResult, StepInfo, TrainingLoop, ValidationLoop
from trainforge.engine._optim import ScheduleSettings
from trainforge.engine._weight_stats import WeightStatistics
from trainforge.engine.metrics import MetricsEngine
from trainforge.errors import GradientHealthError
from trainforge.hooks import HookEvent, HookManager, call_hook_objects
from trainforge.logs import TrainingProgress, log_config_overview, log_section
from trainforge.seeding import set_random_seed
from trainforge.train import _build as build
from trainforge.zoo import task_metrics

__all__ = ["Trainer", "TrainingHooks", "TrainingResults"]

logger = logging.getLogger(__name__)


@runtime_checkable
class TrainingHooks(Protocol):
    """Callbacks a user object may implement (any subset); each gets keyword payloads."""

    def on_training_start(self, **payload: Any) -> None:
        """Before the first epoch."""

    def on_epoch_start(self, **payload: Any) -> None:
        """Before each epoch (``epoch``)."""

    def on_batch_end(self, **payload: Any) -> None:
        """After each optimizer step (``global_step``, ``epoch``)."""

    def on_validation_end(self, **payload: Any) -> None:
        """After validation (``epoch``, ``metrics``)."""

    def on_epoch_end(self, **payload: Any) -> None:
        """After each epoch (``epoch``, ``metrics``, ``checkpoint_path``)."""

    def on_training_end(self, **payload: Any) -> None:
        """After the last epoch (``results``)."""


@dataclass
class TrainingResults:
    """What ``Trainer.train`` returns."""

    run_id: str
    run_dir: Path
    metrics_summary: pd.DataFrame
    best_epoch: int | None
    best_metric: float | None
    monitor: str
    final_loss: float
    checkpoint_path: Path | None
    best_checkpoint_path: Path | None
    training_time: float
    global_step: int
    epochs_completed: int


def _is_better(value: float, best: float | None, mode: str) -> bool:
    if math.isnan(value):
        return False
    if best is None:
        return True
    # ties go to the newer epoch, as in checkpoint retention
    return value <= best if mode == "min" else value >= best


class Trainer:
    """Train a model from a :class:`TrainingConfig` with the plain loop driver.

    Args:
        model: The network; built from ``model.name`` / ``model.kwargs`` when None.
        training_config: The config (all defaults when None).
        task_spec: The task; derived from the ``task`` section when None.
        hooks: A :class:`HookManager` (events ``ON_TRAIN_START`` ...) and/or objects
            implementing :class:`TrainingHooks` methods.
        allow_config_changes: Breaking config keys accepted when resuming.
        command: The command line, saved in the run folder (``sys.argv`` when None).
        log_config: Log the config overview (non-default values with provenance) first.

    Examples:
        >>> from trainforge.config import load_config
        >>> cfg = load_config(cli=["trainer.max_epochs=1"])  # doctest: +SKIP
        >>> results = Trainer(training_config=cfg).train()  # doctest: +SKIP
        >>> results.best_metric  # doctest: +SKIP
    """

    def __init__(
        self,
        model: nn.Module | None = None,
        training_config: TrainingConfig | None = None,
        task_spec: TaskSpec | None = None,
        hooks: HookManager | Any | Sequence[Any] | None = None,
        *,
        allow_config_changes: Sequence[str] = (),
        command: Sequence[str] | None = None,
        log_config: bool = True,
    ) -> None:
        self.config = training_config if training_config is not None else TrainingConfig()
        self.model = model
        self.task_spec = task_spec
        given = list(hooks) if isinstance(hooks, (list, tuple)) else [hooks]
        managers = [h for h in given if isinstance(h, HookManager)]
        if len(managers) > 1:
            raise ValueError("pass at most one HookManager in hooks")
        self.hook_manager = managers[0] if managers else HookManager()
        self.user_hooks: list[Any] = [
            h for h in given if h is not None and not isinstance(h, HookManager)
        ]
        self.allow_config_changes = tuple(allow_config_changes)
        self.log_config = log_config
        self.command = list(command) if command is not None else list(sys.argv)

    # ------------------------------------------------------------------------- train
    def train(
        self,
        train_data: Any = None,
        val_data: Any = None,
        resume_from: str | Path | None = None,
    ) -> TrainingResults:
        """Train; return results. ``resume_from`` is ``last``, ``best`` or a path.

        Raises:
            GradientHealthError: Gradients unhealthy for too many steps in a row; the
                run is marked failed and the checkpoints written before stay loadable.
            ResumeError: The checkpoint does not fit the config or the model.
        """
        config = self.config
        set_random_seed(config.run.seed, config.run.deterministic)
        spec = self.task_spec or build.task_spec_from_config(config)
        model = self.model if self.model is not None else build.build_model_for(config, spec)
        if train_data is None or val_data is None:
            built_train, built_val = build.build_datasets_for(config, spec)
            train_data = train_data if train_data is not None else built_train
            val_data = val_data if val_data is not None else built_val
        if config.trainer.engine == "lightning":
            from trainforge.train._lightning import train_with_lightning

            return train_with_lightning(self, spec, model, train_data, val_data, resume_from)
        device = build.pick_device(config.trainer.accelerator)
        model.to(device)
        dtype = build.autocast_dtype(config.trainer.precision, device)
        loss_fn = build.build_loss(spec)
        optimizer = build.build_optimizer_for(config, model)
        datamodule = build.build_datamodule(config, train_data, val_data, spec)
        train_loader = datamodule.train_dataloader()
        val_loader = datamodule.val_dataloader()
        total_steps = build.total_optimizer_steps(config, len(train_loader))
        scheduler = build.build_scheduler_for(config, optimizer, total_steps)
        monitor = build.build_monitor(config, self.hook_manager)
        accumulator = build.build_accumulator(config, optimizer, monitor, device)

        resume = None
        if resume_from is not None:
            resume = self._load_resume(
                resume_from, model, optimizer, scheduler, accumulator, monitor
            )

        tracker, run_id, run_dir = build.start_run(
            config, self.command, resumed_from=resume["path"] if resume is not None else None
        )
        with build.failed_on_error(tracker):
            metrics = MetricsEngine(
                loggers=build.build_loggers(config, run_id),
                tracker=tracker,
                hooks=self.hook_manager,
            )
            checkpoints = build.build_checkpoint_manager(
                config, run_dir, self.hook_manager, tracker
            )
            compiled = model
            if config.trainer.compile:
                import torch

                compiled = torch.compile(model)
            if self.log_config:
                log_config_overview(config.overview_rows())
            state = _RunState(
                config, checkpoints, model, optimizer, scheduler, accumulator, monitor
            )
            state.sampler = train_loader.sampler
            if resume is not None:
                state.restore(resume["custom_state"] or {})

            def on_step(info: StepInfo) -> bool:
                return state.on_step(info, metrics, train_loader, self.user_hooks)

            loop = TrainingLoop(
                compiled,
                loss_fn,
                accumulator,
                device=device,
                autocast_dtype=dtype,
                on_step=on_step,
                max_steps=config.trainer.max_steps,
                max_batches=build.batch_limit(
                    config.trainer.limit_train_batches, len(train_loader)
                ),
            )
            validation = ValidationLoop(
                compiled,
                loss_fn,
                metric_fn=lambda outputs, batch: task_metrics(spec, outputs, batch),
                device=device,
                autocast_dtype=dtype,
                max_batches=build.batch_limit(config.trainer.limit_val_batches, len(val_loader)),
            )
            start = time.perf_counter()
            self.hook_manager.fire(HookEvent.ON_TRAIN_START, run_id=run_id, run_dir=run_dir)
            call_hook_objects(self.user_hooks, "on_training_start", run_id=run_id, config=config)
        status = "failed"
        try:
            batches = loop.max_batches or len(train_loader)
            with TrainingProgress(
                min(len(train_data), batches * config.data.batch_size)
                * (config.trainer.max_epochs or 1),
                enabled=config.trainer.enable_progress_bar,
            ) as progress:
                loop.progress = progress
                self._run_epochs(state, loop, validation, train_loader, val_loader, metrics)
            status = "completed"
        except GradientHealthError:
            logger.error(
                "training stopped: unhealthy gradients; the last good checkpoint is %s",
                state.last_checkpoint,
            )
            raise
        except KeyboardInterrupt:
            status = "killed"
            raise
        finally:
            metrics.close("success" if status == "completed" else "failed")
            checkpoints.wait_for_mirror()
            if tracker is not None:
                tracker.finish(status)
        results = TrainingResults(
            run_id=run_id,
            run_dir=run_dir,
            metrics_summary=metrics.get_epoch_summary(),
            best_epoch=state.best_epoch,
            best_metric=state.best_metric,
            monitor=config.checkpoint.monitor,
            final_loss=state.final_loss,
            checkpoint_path=state.last_checkpoint,
            best_checkpoint_path=_best_or_none(checkpoints),
            training_time=time.perf_counter() - start,
            global_step=accumulator.effective_step,
            epochs_completed=state.epochs_completed,
        )
        self.hook_manager.fire(HookEvent.ON_TRAIN_END, results=results)
        call_hook_objects(self.user_hooks, "on_training_end", results=results)
        return results

    def _run_epochs(
        self,
        state: _RunState,
        loop: TrainingLoop,
        validation: ValidationLoop,
        train_loader: Any,
        val_loader: Any,
        metrics: MetricsEngine,
    ) -> None:
        config = self.config
        max_epochs = config.trainer.max_epochs or math.inf
        epoch = state.epoch
        while epoch < max_epochs and not state.reached_max_steps():
            train_loader.sampler.set_epoch(epoch)
            self.hook_manager.fire(HookEvent.ON_EPOCH_START, epoch=epoch)
            call_hook_objects(self.user_hooks, "on_epoch_start", epoch=epoch)
            state.begin_epoch(epoch)
            result = loop.run_epoch(
                train_loader, epoch, state.scheduler, samples_before=state.samples_done
            )
            val = validation.run_epoch(val_loader, epoch)
            self.hook_manager.fire(HookEvent.ON_VALIDATION_END, epoch=epoch, metrics=val.metrics)
            call_hook_objects(
                self.user_hooks, "on_validation_end", epoch=epoch, metrics=val.metrics
            )
            values = state.end_epoch(result, val, metrics)
            finished = (
                not result.completed
                or epoch + 1 >= max_epochs
                or state.reached_max_steps()
                or state.should_stop_early()  # the final state is always checkpointed
            )
            path = state.save_epoch(values, final=finished, completed=result.completed)
            self.hook_manager.fire(
                HookEvent.ON_EPOCH_END, epoch=epoch, metrics=values, checkpoint_path=path
            )
            call_hook_objects(
                self.user_hooks, "on_epoch_end", epoch=epoch, metrics=values, checkpoint_path=path
            )
            log_section(f"epoch {epoch}", values)
            if state.should_stop_early():
                logger.info(
                    "early stopping: %s did not improve", config.callbacks.early_stopping.monitor
                )
                break
            if not result.completed:
                break
            epoch += 1

    def _load_resume(
        self,
        target: str | Path,
        model: nn.Module,
        optimizer: Any,
        scheduler: Any,
        accumulator: Any,
        monitor: Any,
    ) -> dict[str, Any]:
        _, result = build.open_resume(
            self.config,
            target,
            self.hook_manager,
            allow_changes=self.allow_config_changes,
            model=model,
        )
        checkpoint = result.checkpoint
        if result.model_mismatches:
            build.warm_start(model, checkpoint, result.model_mismatches)
            return {**checkpoint, "custom_state": {}}
        model.load_state_dict(checkpoint["model_state_dict"])
        if checkpoint.get("optimizer_state_dict"):
            optimizer.load_state_dict(checkpoint["optimizer_state_dict"])
        if checkpoint.get("scheduler_state_dict"):
            settings = ScheduleSettings(scheduler)
            scheduler.load_state_dict(checkpoint["scheduler_state_dict"])
            settings.apply(scheduler, optimizer)
        custom = checkpoint.get("custom_state") or {}
        if "accumulator" in custom:
            accumulator.load_state_dict(custom["accumulator"])
        if monitor is not None and "monitor" in custom:
            monitor.load_state_dict(custom["monitor"])
        logger.info(
            "resuming from %s (epoch %s, step %s)",
            checkpoint["path"],
            checkpoint["epoch"],
            checkpoint["global_step"],
        )
        return checkpoint


def _best_or_none(checkpoints: Any) -> Path | None:
    try:
        return checkpoints.get_best()
    except FileNotFoundError:
        return None


class _RunState:
    """Counters, best metric and checkpoint writing shared by the epoch and step paths."""

    def __init__(
        self,
        config: TrainingConfig,
        checkpoints: Any,
        model: Any,
        optimizer: Any,
        scheduler: Any,
        accumulator: Any,
        monitor: Any,
    ):
        self.config = config
        self.checkpoints = checkpoints
        self.model = model
        self.optimizer = optimizer
        self.scheduler = scheduler
        self.accumulator = accumulator
        self.monitor = monitor
        self.epoch = 0
        self.samples_done = 0
        self.best_metric: float | None = None
        self.best_epoch: int | None = None
        self.final_loss = math.nan
        self.last_checkpoint: Path | None = None
        self.epochs_completed = 0
        self.bad_epochs = 0
        self.early_best: float | None = None
        self.sampler: Any = None
        self._pending_sampler: dict[str, Any] | None = None
        # weight norms and update ratios on monitoring steps (a snapshot before the step)
        self.weights = WeightStatistics()
        monitoring = config.callbacks.monitoring
        if monitoring.enabled and monitoring.log_weights:
            accumulator.before_step = self._snapshot_weights

    def _snapshot_weights(self, step: int) -> None:
        if step % self.config.callbacks.monitoring.log_frequency == 0:
            self.weights.snapshot(self.model)

    # -- resume ---------------------------------------------------------------------
    def restore(self, custom: dict[str, Any]) -> None:
        """Continue where the checkpoint left off (epoch, position in it, best so far)."""
        loop = custom.get("loop", {})
        self.epoch = int(loop.get("epoch", 0))
        self.samples_done = int(loop.get("samples_done", 0))
        self.best_metric = loop.get("best_metric")
        self.best_epoch = loop.get("best_epoch")
        self.epochs_completed = int(loop.get("epochs_completed", 0))
        self.early_best = loop.get("early_best")
        self.bad_epochs = int(loop.get("bad_epochs", 0))
        self._pending_sampler = custom.get("sampler")

    def begin_epoch(self, epoch: int) -> None:
        """Position the sampler: a resumed epoch continues at its saved position."""
        pending = self._pending_sampler
        if pending is not None and int(pending.get("epoch", -1)) == epoch:
            self.sampler.load_state_dict(pending)
        else:
            self.samples_done = 0
        self._pending_sampler = None
        self.epoch = epoch

    def reached_max_steps(self) -> bool:
        """True once ``trainer.max_steps`` optimizer steps are done."""
        limit = self.config.trainer.max_steps
        return limit is not None and self.accumulator.effective_step >= limit

    # -- per step -------------------------------------------------------------------
    def on_step(
        self, info: StepInfo, metrics: MetricsEngine, loader: Any, hooks: Sequence[Any]
    ) -> bool:
        """Log every ``log_every_n_steps``; checkpoint every ``checkpoint_every_n_steps``."""
        trainer = self.config.trainer
        step = info.global_step
        self.samples_done = info.samples_done
        if step % trainer.log_every_n_steps == 0:
            values = {"train/loss": float(info.loss)}  # host-device sync, once per N steps
            if self.config.callbacks.lr_monitor.enabled:
                values.update(
                    # Lightning's LearningRateMonitor names: the same in both drivers
                    {f"lr/pg{i + 1}": g["lr"] for i, g in enumerate(self.optimizer.param_groups)}
                )
            metrics.log_metrics(values, step)
        monitoring = self.config.callbacks.monitoring
        if monitoring.enabled and step % monitoring.log_frequency == 0:
            metrics.log_metrics(self._layer_statistics(monitoring), step)
        every = trainer.checkpoint_every_n_steps
        suspect = self.monitor is not None and self.monitor.consecutive_failures > 0
        if every and step % every == 0 and not suspect:
            # an unhealthy step's weights are not worth keeping: the last good checkpoint
            # must stay the newest one if training goes on to diverge
            self._save(
                {"train/loss": float(info.loss), self.config.checkpoint.monitor: math.nan},
                epoch_done=False,
            )
        call_hook_objects(hooks, "on_batch_end", global_step=step, epoch=info.epoch)
        return False

    def _layer_statistics(self, monitoring: Any) -> dict[str, float]:
        """Gradient norms (from the health check), weight norms and update ratios."""
        values: dict[str, float] = {}
        if monitoring.log_gradients and self.monitor is not None:
            values.update(self.monitor.last_layer_norms())
        if monitoring.log_weights:
            # norms, and update ratios against the snapshot taken before this step
            values.update(self.weights.after_step(self.model))
        return values

    # -- per epoch ------------------------------------------------------------------
    def end_epoch(
        self, result: EpochResult, val: EpochResult, metrics: MetricsEngine
    ) -> dict[str, float]:
        """Combine train and val metrics, log them, and track the best epoch."""
        values = {
            **result.metrics,
            **val.metrics,
            "system/epoch_time_s": result.duration_s,
            "system/throughput": result.throughput,
        }
        # the epoch mean goes to the loggers as train/loss_epoch, as under Lightning; the
        # per-step values own train/loss
        metrics.log_epoch(
            result.epoch,
            values,
            step=result.global_step,
            logged_as={"train/loss": "train/loss_epoch"},
        )
        self.final_loss = result.metrics["train/loss"]
        self.epochs_completed = result.epoch + 1 if result.completed else self.epochs_completed
        monitor, mode = self.config.checkpoint.monitor, self.config.checkpoint.mode
        value = values.get(monitor)
        if value is not None and _is_better(value, self.best_metric, mode):
            self.best_metric, self.best_epoch = value, result.epoch
        self._track_early_stopping(values)
        self.epoch = result.epoch + 1 if result.completed else result.epoch
        return values

    def save_epoch(
        self, values: dict[str, float], *, final: bool, completed: bool = True
    ) -> Path | None:
        """Checkpoint at the end of an epoch (every ``save_interval_epochs``, and the last).

        An epoch cut short (``max_steps``) keeps its position, so a resumed run with a
        higher limit trains the rest of that epoch, not the whole of it again.
        """
        monitor = self.config.checkpoint.monitor
        if monitor not in values:
            values = {**values, monitor: math.nan}
        if final or self.checkpoints.should_save(self.epoch - 1):
            return self._save(values, epoch_done=completed)
        return None

    def _save(self, values: dict[str, float], *, epoch_done: bool) -> Path:
        sampler = self.sampler
        if epoch_done:
            sampler_state = (
                {"epoch": self.epoch, "seed": sampler.seed, "position": 0} if sampler else None
            )
            samples = 0
        else:
            sampler_state = sampler.state_dict(consumed=self.samples_done) if sampler else None
            samples = self.samples_done
        custom = {
            "loop": {
                "epoch": self.epoch,
                "samples_done": samples,
                "best_metric": self.best_metric,
                "best_epoch": self.best_epoch,
                "epochs_completed": self.epochs_completed,
                "early_best": self.early_best,
                "bad_epochs": self.bad_epochs,
            },
            "sampler": sampler_state,
            "accumulator": self.accumulator.state_dict(),
            "monitor": self.monitor.state_dict() if self.monitor is not None else None,
        }
        path = self.checkpoints.save(
            model=self.model,
            optimizer=self.optimizer,
            scheduler=self.scheduler,
            epoch=self.epoch - 1 if epoch_done else self.epoch,
            metrics=values,
            global_step=self.accumulator.effective_step,
            custom_state=custom,
            config=self.config,
        )
        self.last_checkpoint = path
        return path

    # -- early stopping -------------------------------------------------------------
    def _track_early_stopping(self, values: dict[str, float]) -> None:
        early = self.config.callbacks.early_stopping
        if not early.enabled or early.monitor not in values:
            return
        value = values[early.monitor]
        improved = self.early_best is None or (
            value < self.early_best - early.min_delta
            if early.mode == "min"
            else value > self.early_best + early.min_delta
        )
        if improved:
            self.early_best, self.bad_epochs = value, 0
        else:
            self.bad_epochs += 1

    def should_stop_early(self) -> bool:
        """True after ``patience`` validations without improvement."""
        early = self.config.callbacks.early_stopping
        return early.enabled and self.bad_epochs >= early.patience
