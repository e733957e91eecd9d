"""Lightning callbacks over engine and tracking logic that works without Lightning.

Each callback only decides *when* (which hook, which rank, which step) and hands the
*what* to a framework-free object: :class:`~trainforge.engine.GradientMonitor`,
:class:`WeightStatistics`, :class:`~trainforge.tracking.ExperimentTracker`. Lightning
calls ``on_before_optimizer_step`` after backward (and after unscaling fp16 gradients),
before clipping and the step, in both automatic and manual optimization: it is the
one hook where gradients are complete.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Literal

import lightning.pytorch as pl
import torch
from lightning.pytorch.callbacks import Callback
from torch import nn

from trainforge.engine import GradientMonitor, WeightStatistics
from trainforge.engine._gradient_monitor import MetricsSink
from trainforge.hooks import HookEvent, HookManager, call_hook_objects

__all__ = [
    "ExperimentTrackingCallback",
    "GradientHealthCallback",
    "HookCallback",
    "TrainingMonitor",
]

logger = logging.getLogger(__name__)

HealthPolicy = Literal["stop", "skip", "warn"]


def network_of(pl_module: pl.LightningModule) -> nn.Module:
    """The wrapped network (``pl_module.model``) when there is one, else the module.

    Parameter names then match the plain driver's (``0.weight``, not ``model.0.weight``).
    """
    inner = getattr(pl_module, "model", None)
    return inner if isinstance(inner, nn.Module) else pl_module


class TrainingMonitor(Callback):
    """Per-layer gradient norms, weight norms and update ratios every ``log_frequency`` steps.

    Metrics (SPEC names): ``grad/<layer>/norm``, ``grad/global_norm``,
    ``weights/<layer>/norm``, ``weights/<layer>/update_ratio``; written to every Lightning
    logger at the optimizer step, and to ``sinks`` (e.g. the ExperimentTracker).

    Args:
        log_frequency: Compute every N optimizer steps (each costs one weight copy).
        log_gradients: Log gradient norms.
        log_weights: Log weight norms and update ratios.
        histogram: Also log gradient distribution statistics (``grad/distribution/*``:
            mean, std, absmax, percentiles) and, to TensorBoard, the histogram of a
            sample of the gradients (``grad/distribution``).
        sinks: More metric sinks (``log_metrics(metrics, step)``), rank zero only.
    """

    def __init__(
        self,
        log_frequency: int = 50,
        log_gradients: bool = True,
        log_weights: bool = True,
        histogram: bool = False,
        *,
        sinks: Sequence[MetricsSink] = (),
    ) -> None:
        if log_frequency < 1:
            raise ValueError(f"log_frequency must be >= 1, got {log_frequency}")
        self.log_frequency = log_frequency
        self.log_gradients = log_gradients
        self.log_weights = log_weights
        self.gradients = GradientMonitor(log_histogram=histogram)
        self.weights = WeightStatistics()
        self.sinks = list(sinks)
        self._pending: dict[str, float] = {}
        self._histograms: dict[str, Any] = {}

    def _is_log_step(self, trainer: pl.Trainer) -> bool:
        return trainer.global_step % self.log_frequency == 0

    def on_before_optimizer_step(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, optimizer: Any
    ) -> None:
        """Gradient norms, and the weight snapshot for the update ratio."""
        if not self._is_log_step(trainer):
            return
        if self.log_gradients:
            self.gradients.log_gradient_distribution(
                network_of(pl_module),
                _Collect(self._pending, self._histograms),
                trainer.global_step,
            )
        if self.log_weights:
            self.weights.snapshot(network_of(pl_module))

    def on_train_batch_end(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, *args: Any
    ) -> None:
        """After the step: weight norms and update ratios; write everything once."""
        if self.weights.has_snapshot:
            self._pending.update(self.weights.after_step(network_of(pl_module)))
        if not self._pending:
            return
        metrics, self._pending = self._pending, {}
        histograms, self._histograms = self._histograms, {}
        step = trainer.global_step - 1  # the optimizer step these values belong to
        if trainer.is_global_zero:
            for sink in [*trainer.loggers, *self.sinks]:
                sink.log_metrics(metrics, step=step)
            for name, values in histograms.items():
                for target in trainer.loggers:
                    # TensorBoard's SummaryWriter; other loggers keep the statistics
                    add_histogram = getattr(target.experiment, "add_histogram", None)
                    if callable(add_histogram):
                        add_histogram(name, values, global_step=step)


class _Collect:
    """A MetricsSink that keeps the values for the monitor to write with the weights."""

    def __init__(self, into: dict[str, float], histograms: dict[str, Any]) -> None:
        self.into = into
        self.histograms = histograms

    def log_metrics(self, metrics: dict[str, float], step: int | None = None) -> None:
        self.into.update(metrics)

    def log_histogram(self, name: str, values: Any, step: int | None = None) -> None:
        self.histograms[name] = values


class GradientHealthCallback(Callback):
    """Runs :meth:`GradientMonitor.check_gradients` before every optimizer step.

    Policies: ``stop`` skips unhealthy steps until the monitor's
    ``max_consecutive_failures`` is reached, then its ``GradientHealthError`` ends the
    fit (Lightning calls ``on_exception`` on every callback and re-raises it);
    ``skip`` drops the gradients of every unhealthy step (the parameters and the
    optimizer state stay as they were), never stopping; ``warn`` only logs.

    Args:
        monitor: The engine's gradient monitor (thresholds, failure limit, hooks).
        policy: ``stop``, ``skip`` or ``warn``.
    """

    def __init__(self, monitor: GradientMonitor, policy: HealthPolicy = "stop") -> None:
        if policy not in ("stop", "skip", "warn"):
            raise ValueError(f"policy must be 'stop', 'skip' or 'warn', got {policy!r}")
        self.monitor = monitor
        self.policy = policy
        self.skipped_steps = 0

    def on_before_optimizer_step(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, optimizer: Any
    ) -> None:
        """Check the gradients; drop them per policy (one host-device sync)."""
        health = self.monitor.check_gradients(network_of(pl_module), step=trainer.global_step)
        if health.is_healthy or self.policy == "warn":
            return
        if self.policy == "skip" or health.has_nan or health.has_inf:
            # grad=None, not zeros: optimizers skip such parameters entirely, so
            # momentum and weight decay do not move the weights on a bad step
            optimizer.zero_grad(set_to_none=True)
            self.skipped_steps += 1

    def state_dict(self) -> dict[str, Any]:
        """The monitor's failure counters (restored on resume)."""
        return {**self.monitor.state_dict(), "skipped_steps": self.skipped_steps}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restore :meth:`state_dict`."""
        self.monitor.load_state_dict(state_dict)
        self.skipped_steps = int(state_dict.get("skipped_steps", 0))


def running_epoch(trainer: pl.Trainer) -> int:
    """The epoch being trained, or the last one trained once the fit loop has ended.

    ``trainer.current_epoch`` counts completed epochs, so after the last epoch (in
    ``on_train_end``) it is one past the epoch whose state a checkpoint holds.
    """
    return max(trainer.fit_loop.epoch_progress.current.started - 1, 0)


def scalar_metrics(
    metrics: Mapping[str, Any], keep: Iterable[str] | None = None
) -> dict[str, float]:
    """Finite-or-not float values of scalar metrics (one sync per tensor)."""
    out = {}
    for key, value in metrics.items():
        if keep is not None and not any(key.startswith(p) for p in keep):
            continue
        if isinstance(value, torch.Tensor):
            if value.numel() != 1:
                continue
            value = value.item()
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            out[key] = float(value)
    return out


class ExperimentTrackingCallback(Callback):
    """Records a Lightning fit in an :class:`~trainforge.tracking.ExperimentTracker`.

    On global rank zero: ``params`` and the trainer's settings at fit start; the
    Lightning and device facts as tags; the training metrics every ``log_every_n_steps``;
    the ``val/`` metrics at each validation end; the final status (``completed``, or
    ``failed`` when the fit raises). Other ranks do nothing.

    Args:
        tracker: The run to write to.
        params: Run parameters (e.g. the resolved config as a dict).
        finish: Finish the run at the end of the fit (False: the caller finishes it).
    """

    def __init__(
        self, tracker: Any, *, params: Mapping[str, Any] | None = None, finish: bool = True
    ) -> None:
        self.tracker = tracker
        self.params = dict(params or {})
        self.finish = finish

    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """Params, trainer settings and system facts."""
        if not trainer.is_global_zero:
            return
        settings = {
            "max_epochs": trainer.max_epochs,
            "max_steps": trainer.max_steps,
            "precision": str(trainer.precision),
            "accumulate_grad_batches": trainer.accumulate_grad_batches,
            "gradient_clip_val": trainer.gradient_clip_val,
            "optimization": "automatic" if pl_module.automatic_optimization else "manual",
        }
        self.tracker.log_params({**self.params, "lightning": settings})
        self.tracker.set_tags(
            {
                "engine": "lightning",
                "lightning_version": pl.__version__,
                "accelerator": type(trainer.accelerator).__name__,
                "strategy": type(trainer.strategy).__name__,
                "world_size": trainer.world_size,
                "parameters": sum(p.numel() for p in pl_module.parameters()),
            }
        )

    def on_train_batch_end(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, *args: Any
    ) -> None:
        """Training metrics, at Lightning's logging cadence."""
        step = trainer.global_step
        if not trainer.is_global_zero or step % trainer.log_every_n_steps:
            return
        metrics = scalar_metrics(trainer.callback_metrics, keep=("train/",))
        if metrics:
            self.tracker.log_metrics(metrics, step=step, epoch=trainer.current_epoch)

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """Validation metrics (skipped during the sanity check)."""
        if not trainer.is_global_zero or trainer.sanity_checking:
            return
        metrics = scalar_metrics(trainer.callback_metrics, keep=("val/",))
        if metrics:
            self.tracker.log_metrics(metrics, step=trainer.global_step, epoch=trainer.current_epoch)

    def on_fit_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """Mark the run ``completed``."""
        if trainer.is_global_zero and self.finish:
            self.tracker.finish("completed")

    def on_exception(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, exception: BaseException
    ) -> None:
        """Mark the run ``failed`` (``killed`` on Ctrl-C) before the exception propagates."""
        if not trainer.is_global_zero:
            return
        status = "killed" if isinstance(exception, KeyboardInterrupt) else "failed"
        self.tracker.set_tags({"error": f"{type(exception).__name__}: {exception}"[:500]})
        self.tracker.finish(status)


class HookCallback(Callback):
    """Fires trainforge's hook events from a Lightning fit, as the plain driver does.

    ``epoch_start``, ``validation_end`` (with the ``val/`` metrics) and ``epoch_end``
    (with every scalar metric and the checkpoint saved that epoch, or None) go to the
    :class:`~trainforge.hooks.HookManager`; the same moments, and ``on_batch_end`` after
    each optimizer step, call the hook objects' methods of those names. Global rank zero
    only: a data-parallel run reports once.

    Args:
        manager: Receives the events.
        hook_objects: Objects with any of ``on_epoch_start``, ``on_validation_end``,
            ``on_epoch_end``, ``on_batch_end``.
        checkpoints: The :class:`CheckpointEngineCallback` whose last save is reported.
        alerts: A :class:`~trainforge.engine.metrics.MetricsEngine` that checks every
            validation's metrics for a loss spike or an accuracy drop (``ON_ALERT``, a
            warning and a ``health/<alert>`` metric), as in the plain driver.
    """

    def __init__(
        self,
        manager: HookManager | None = None,
        hook_objects: Sequence[Any] = (),
        checkpoints: Any = None,
        alerts: Any = None,
    ) -> None:
        self.manager = manager if manager is not None else HookManager()
        self.hook_objects = list(hook_objects)
        self.checkpoints = checkpoints
        self.alerts = alerts
        self._epoch_start_path: Any = None
        self._last_step = -1

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """``epoch_start``."""
        if not trainer.is_global_zero:
            return
        self._epoch_start_path = getattr(self.checkpoints, "last_path", None)
        epoch = trainer.current_epoch
        self.manager.fire(HookEvent.ON_EPOCH_START, epoch=epoch)
        call_hook_objects(self.hook_objects, "on_epoch_start", epoch=epoch)

    def on_train_batch_end(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, *args: Any
    ) -> None:
        """``on_batch_end`` of the hook objects, once per optimizer step."""
        step = trainer.global_step
        if not self.hook_objects or step == self._last_step or not trainer.is_global_zero:
            return
        self._last_step = step
        call_hook_objects(
            self.hook_objects, "on_batch_end", global_step=step, epoch=trainer.current_epoch
        )

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """``validation_end`` with the ``val/`` metrics (not for the sanity check)."""
        if trainer.sanity_checking or not trainer.is_global_zero:
            return
        metrics = scalar_metrics(trainer.callback_metrics, keep=("val/",))
        epoch = trainer.current_epoch
        self.manager.fire(HookEvent.ON_VALIDATION_END, epoch=epoch, metrics=metrics)
        if self.alerts is not None:
            self.alerts.check_epoch_alerts(epoch, metrics, step=trainer.global_step)
        call_hook_objects(self.hook_objects, "on_validation_end", epoch=epoch, metrics=metrics)

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """``epoch_end`` with the epoch's metrics and its checkpoint."""
        if not trainer.is_global_zero:
            return
        path = getattr(self.checkpoints, "last_path", None)
        saved = path if path != self._epoch_start_path else None
        payload = {
            "epoch": trainer.current_epoch,
            "metrics": scalar_metrics(trainer.callback_metrics),
            "checkpoint_path": saved,
        }
        self.manager.fire(HookEvent.ON_EPOCH_END, **payload)
        call_hook_objects(self.hook_objects, "on_epoch_end", **payload)
