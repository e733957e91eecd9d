"""``build_callbacks``: the ``callbacks`` config section -> Lightning callback objects.

The section says which callbacks run and how; the objects they wrap (the gradient
monitor, the checkpoint manager, the tracker) are built once by the composition root and
passed in, so both drivers share them.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from lightning.pytorch.callbacks import Callback, EarlyStopping, LearningRateMonitor

from trainforge.checkpoint import CheckpointManager
from trainforge.engine import GradientMonitor
from trainforge.hooks import HookManager
from trainforge.lightning._callbacks import (
    ExperimentTrackingCallback,
    GradientHealthCallback,
    HookCallback,
    TrainingMonitor,
)
from trainforge.lightning._checkpointing import CheckpointEngineCallback

if TYPE_CHECKING:
    from trainforge.config._schema import CallbacksConfig

__all__ = ["build_callbacks"]


def build_callbacks(
    section: CallbacksConfig,
    *,
    gradient_monitor: GradientMonitor | None = None,
    checkpoint_manager: CheckpointManager | None = None,
    tracker: Any = None,
    checkpoint_every_n_steps: int | None = None,
    config: Any = None,
    params: dict[str, Any] | None = None,
    hooks: HookManager | None = None,
    hook_objects: Sequence[Any] = (),
    alerts: Any = None,
) -> list[Callback]:
    """The Lightning callbacks of ``config.callbacks``, in the order they should run.

    Args:
        section: ``config.callbacks`` (monitoring, gradient_health, early_stopping,
            lr_monitor; the profiler is :func:`build_profiler`'s).
        gradient_monitor: The engine's monitor; required when gradient_health is enabled.
        checkpoint_manager: Adds :class:`CheckpointEngineCallback` when given.
        tracker: An ExperimentTracker: adds :class:`ExperimentTrackingCallback` and
            receives the monitor's gradient and weight statistics.
        checkpoint_every_n_steps: Also checkpoint every N optimizer steps.
        config: The run's config, stored in checkpoints.
        params: Run parameters for the tracker.
        hooks: Receives trainforge's epoch and validation events (:class:`HookCallback`).
        hook_objects: Objects with ``on_epoch_end`` etc. methods, called at those moments.
        alerts: A MetricsEngine checking each validation for loss spikes and accuracy
            drops.

    Raises:
        ValueError: gradient_health is enabled but no ``gradient_monitor`` was given.

    Examples:
        >>> from trainforge.config._schema import CallbacksConfig
        >>> [type(c).__name__ for c in build_callbacks(
        ...     CallbacksConfig(), gradient_monitor=GradientMonitor())]
        ['TrainingMonitor', 'GradientHealthCallback', 'LearningRateMonitor']
    """
    callbacks: list[Callback] = []
    monitoring = section.monitoring
    if monitoring.enabled:
        callbacks.append(
            TrainingMonitor(
                log_frequency=monitoring.log_frequency,
                log_gradients=monitoring.log_gradients,
                log_weights=monitoring.log_weights,
                histogram=monitoring.histogram,
                sinks=[tracker] if tracker is not None else [],
            )
        )
    health = section.gradient_health
    if health.enabled:
        if gradient_monitor is None:
            raise ValueError(
                "callbacks.gradient_health.enabled=true needs the GradientMonitor: pass "
                "gradient_monitor=..., or disable callbacks.gradient_health"
            )
        callbacks.append(GradientHealthCallback(gradient_monitor, policy=health.policy))
    saver = None
    if checkpoint_manager is not None:
        saver = CheckpointEngineCallback(
            checkpoint_manager,
            gradient_monitor,
            every_n_steps=checkpoint_every_n_steps,
            config=config,
        )
        callbacks.append(saver)
    if hooks is not None or hook_objects or alerts is not None:
        callbacks.append(HookCallback(hooks, hook_objects, checkpoints=saver, alerts=alerts))
    if tracker is not None:
        callbacks.append(ExperimentTrackingCallback(tracker, params=params))
    early = section.early_stopping
    if early.enabled:
        callbacks.append(
            EarlyStopping(
                monitor=early.monitor,
                mode=early.mode,
                patience=early.patience,
                min_delta=early.min_delta,
            )
        )
    if section.lr_monitor.enabled:
        # needs a logger: Lightning refuses a LearningRateMonitor with logger=False
        callbacks.append(LearningRateMonitor(logging_interval=section.lr_monitor.logging_interval))
    return callbacks
