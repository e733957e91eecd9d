"""One run assembly: every shared part of a run, built once, handed to either driver.

The facade builds a :class:`RunAssembly` (model, loss, data module, policies, checkpoint
manager, tracker, loggers, hooks, the resume point) and gives it to the plain or the
Lightning driver. A driver only runs batches and calls the policies at its moments, so
both take the same decisions from the same objects.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from torch import nn

from trainforge.checkpoint import CheckpointManager
from trainforge.config import TrainingConfig
from trainforge.engine import ClusterPosition, DataModule, ForwardInputs, GradientMonitor, TaskSpec
from trainforge.engine.metrics import MetricsEngine
from trainforge.engine.policies import (
    BestMetric,
    CheckpointCadence,
    ConfidenceMonitor,
    DriftMonitor,
    EarlyStopping,
    HealthPolicy,
    LayerStatistics,
    LrReporter,
    RunPolicies,
)
from trainforge.errors import ConfigError, TrainforgeError
from trainforge.hooks import HookManager
from trainforge.records import ConfigRecord
from trainforge.train import _build as build
from trainforge.train._cluster import SINGLE_PROCESS, RankZeroChannel
from trainforge.train._resume import ResumePoint
from trainforge.train._run_setup import (
    RUN_DIR_VARIABLE,
    build_checkpoint_manager,
    build_loggers,
    failed_on_error,
    start_run,
)
from trainforge.zoo import task_metrics

if TYPE_CHECKING:
    from trainforge.tracking import ExperimentTracker

__all__ = ["RunAssembly", "assemble", "build_policies"]


@dataclass
class RunAssembly:
    """The shared parts of one run.

    Attributes:
        config: The run's config (only ``train/`` reads it).
        record: The config as plain data, stored with checkpoints and the tracked run.
        spec: The task.
        model: The network (bare, uncompiled).
        loss_fn: The loss strategy.
        metric_fn: Task metrics of a validation batch.
        datamodule: Training and validation loaders for both drivers.
        has_validation: False when the run has no validation set.
        policies: Every decision of the run.
        monitor: The gradient monitor behind the health policy (None when off).
        checkpoints: Where checkpoints go.
        metrics: Every logger and the tracker.
        tracker: The tracked run (None when tracking is off, or not rank zero).
        hooks: The user's hooks (empty on ranks other than zero).
        run_id: The run folder's name.
        run_dir: The run folder.
        rank: This process's global rank.
        total_steps: Optimizer steps of the whole run (for the schedule); None for a
            stream of unknown length whose schedule does not need it.
        resume: The checkpoint to continue from, if any.
        forward_inputs: How batches map to the model's forward (``model.input_keys``,
            ``data.input_key``).
        position: This process's place among the run's processes and nodes.
    """

    config: TrainingConfig
    record: ConfigRecord
    spec: TaskSpec
    model: nn.Module
    loss_fn: Any
    metric_fn: Callable[[Any, Mapping[str, Any]], Mapping[str, float]]
    datamodule: DataModule
    has_validation: bool
    policies: RunPolicies
    monitor: GradientMonitor | None
    checkpoints: CheckpointManager
    metrics: MetricsEngine
    tracker: ExperimentTracker | None
    hooks: HookManager
    run_id: str
    run_dir: Path
    rank: int
    total_steps: int | None
    resume: ResumePoint | None
    forward_inputs: ForwardInputs
    position: ClusterPosition = SINGLE_PROCESS

    def optimizer_for(self, model: nn.Module) -> Any:
        """``optim.*`` for ``model``."""
        return build.build_optimizer_for(self.config, model)

    def scheduler_for(self, optimizer: Any) -> Any:
        """``optim.scheduler`` over ``total_steps``."""
        return build.build_scheduler_for(self.config, optimizer, self.total_steps)


def build_policies(
    config: TrainingConfig,
    *,
    metrics: MetricsEngine,
    hooks: HookManager,
    monitor: GradientMonitor | None,
    print_epochs: bool = True,
) -> RunPolicies:
    """``checkpoint``, ``callbacks`` and ``trainer`` sections -> the run's policies."""
    callbacks, trainer, ckpt = config.callbacks, config.trainer, config.checkpoint
    early = callbacks.early_stopping
    monitoring = callbacks.monitoring
    return RunPolicies(
        best=BestMetric(ckpt.monitor, ckpt.mode),
        cadence=CheckpointCadence(ckpt.save_interval_epochs, trainer.checkpoint_every_n_steps),
        metrics=metrics,
        hooks=hooks,
        health=(
            HealthPolicy(monitor, callbacks.gradient_health.policy) if monitor is not None else None
        ),
        early_stopping=(
            EarlyStopping(early.monitor, early.mode, early.patience, early.min_delta)
            if early.enabled
            else None
        ),
        layer_stats=(
            LayerStatistics(
                monitoring.log_frequency,
                log_gradients=monitoring.log_gradients,
                log_weights=monitoring.log_weights,
                histogram=monitoring.histogram,
                health_monitor=monitor,
            )
            if monitoring.enabled
            else None
        ),
        lr=(
            LrReporter(trainer.log_every_n_steps, callbacks.lr_monitor.logging_interval)
            if callbacks.lr_monitor.enabled
            else None
        ),
        confidence=(
            ConfidenceMonitor(callbacks.confidence.bins, callbacks.confidence.ece_threshold)
            if callbacks.confidence.enabled
            else None
        ),
        log_every_n_steps=trainer.log_every_n_steps,
        print_epochs=print_epochs,
    )


def build_drift(
    config: TrainingConfig, spec: TaskSpec, datamodule: DataModule
) -> DriftMonitor | None:
    """``callbacks.drift`` -> the drift monitor (None when off).

    Raises:
        ConfigError: Drift is on but there is nothing to compare with (no validation
            split and no ``callbacks.drift.dataset``).
    """
    drift = config.callbacks.drift
    if not drift.enabled:
        return None
    if drift.dataset is not None:
        data = config.data.model_copy(
            update={"name": drift.dataset, "kwargs": drift.dataset_kwargs}
        )
        try:
            current, _ = build.build_datasets_for(config.model_copy(update={"data": data}), spec)
        except TrainforgeError as exc:
            message = exc.issues[0].message if isinstance(exc, ConfigError) and exc.issues else exc
            raise ConfigError(
                f"callbacks.drift.dataset={drift.dataset!r} cannot be built: {message}",
                key="callbacks.drift.dataset",
                hint="a built-in data name or 'package.module:factory', with options in "
                "callbacks.drift.dataset_kwargs",
            ) from None
    else:
        current = datamodule.val_dataset
    if current is None or len(current) == 0:
        raise ConfigError(
            "callbacks.drift.enabled: there is no data to compare the training data with",
            key="callbacks.drift.dataset",
            hint="set data.val_split > 0, or name a drift dataset in callbacks.drift.dataset",
        )
    return DriftMonitor(
        datamodule.train_dataset,
        current,
        modality=spec.modality,
        warning=drift.warning,
        critical=drift.critical,
        max_samples=drift.max_samples,
    )


def _task_metric_fn(spec: TaskSpec) -> Callable[[Any, Mapping[str, Any]], Mapping[str, float]]:
    return lambda outputs, batch: task_metrics(spec, outputs, batch)


def assemble(
    config: TrainingConfig,
    *,
    spec: TaskSpec,
    model: nn.Module,
    datamodule: DataModule,
    has_validation: bool,
    hooks: HookManager,
    command: list[str],
    resume: ResumePoint | None,
    total_steps: int | None,
    position: ClusterPosition = SINGLE_PROCESS,
) -> RunAssembly:
    """Open the run (rank zero) or join it (other ranks) and build its shared parts.

    Rank zero creates the run folder and the tracked run; other ranks of a data-parallel
    fit join the folder rank zero announced and write nothing but what Lightning needs.
    The caller must finish ``tracker`` if anything after this raises.
    """
    rank = position.global_rank
    opened: list[Any] = []

    def open_run() -> str:
        resumed_from = resume.path if resume is not None else None
        opened.extend(start_run(config, command, resumed_from=resumed_from))
        return str(opened[2])

    shared = RankZeroChannel(position).share(RUN_DIR_VARIABLE, open_run)
    if rank == 0:
        tracker, run_id, run_dir = opened
        user_hooks = hooks
    else:
        tracker, run_dir = None, Path(str(shared))
        run_id, user_hooks = run_dir.name, HookManager()
    with failed_on_error(tracker):  # a missing logger package: the run is failed, not running
        loggers = build_loggers(config, run_id) if rank == 0 else []
        metrics = MetricsEngine(loggers=loggers, tracker=tracker, hooks=user_hooks)
        monitor = build.build_monitor(config, user_hooks)
        checkpoints = build_checkpoint_manager(config, run_dir, user_hooks, tracker)
        policies = build_policies(
            config, metrics=metrics, hooks=user_hooks, monitor=monitor, print_epochs=rank == 0
        )
        metric_fn = _task_metric_fn(spec)
        if policies.confidence is not None:
            metric_fn = policies.confidence.wrap(metric_fn)
        if rank == 0:  # the data is profiled once, by the process that logs
            policies.drift = build_drift(config, spec, datamodule)
            policies.start(run_dir)
    return RunAssembly(
        config=config,
        record=config.record(),
        spec=spec,
        model=model,
        loss_fn=build.build_loss(spec),
        metric_fn=metric_fn,
        datamodule=datamodule,
        has_validation=has_validation,
        policies=policies,
        monitor=monitor,
        checkpoints=checkpoints,
        metrics=metrics,
        tracker=tracker,
        hooks=user_hooks,
        run_id=run_id,
        run_dir=run_dir,
        rank=rank,
        total_steps=total_steps,
        resume=resume,
        forward_inputs=ForwardInputs(config.model.input_keys, config.data.input_key),
        position=position,
    )
