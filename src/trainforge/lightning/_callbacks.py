"""Lightning callbacks: thin adapters over policies that work without Lightning.

Each callback only decides *when* (which hook, which rank, which step) and hands the
*what* to a framework-free object of :mod:`trainforge.engine.policies`:

- :class:`GradientHealthCallback` -> :class:`~trainforge.engine.policies.HealthPolicy`
- :class:`TrainingMonitor` -> :class:`~trainforge.engine.policies.LayerStatistics`
- :class:`EarlyStoppingCallback` -> :class:`~trainforge.engine.policies.EarlyStopping`
- :class:`ExperimentTrackingCallback` -> :class:`~trainforge.tracking.ExperimentTracker`

Use them in your own Lightning code. The Lightning driver of ``trainforge train`` uses
one callback, :class:`~trainforge.lightning.RunCallback`, over all the policies at once.
Lightning calls ``on_before_optimizer_step`` after backward (and after unscaling fp16
gradients), before clipping and the step, in both automatic and manual optimization: it
is the one hook where gradients are complete.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Protocol, cast

import lightning.pytorch as pl
import torch
from lightning.pytorch.callbacks import Callback
from torch import nn

from trainforge.engine import GradientMonitor, MetricsSink
from trainforge.engine.policies import EarlyStopping, HealthPolicy, LayerStatistics, PolicyName

__all__ = [
    "EarlyStoppingCallback",
    "ExperimentTrackingCallback",
    "GradientHealthCallback",
    "TrainingMonitor",
    "epoch_batches",
    "network_of",
    "running_epoch",
    "scalar_metrics",
]

logger = logging.getLogger(__name__)


def network_of(pl_module: pl.LightningModule) -> nn.Module:
    """The wrapped network (``pl_module.model``) when there is one, else the module.

    Parameter names then match the plain driver's (``0.weight``, not ``model.0.weight``).
    """
    inner = getattr(pl_module, "model", None)
    return inner if isinstance(inner, nn.Module) else pl_module


def running_epoch(trainer: pl.Trainer) -> int:
    """The epoch being trained, or the last one trained once the fit loop has ended.

    ``trainer.current_epoch`` counts completed epochs, so after the last epoch (in
    ``on_train_end``) it is one past the epoch whose state a checkpoint holds.
    """
    progress = cast(_Progress, trainer.fit_loop.epoch_progress.current)
    return max(progress.started - 1, 0)


class _Progress(Protocol):
    """Lightning's progress counters (typed there as their base class)."""

    ready: int
    started: int
    processed: int
    completed: int


def epoch_batches(trainer: pl.Trainer) -> tuple[int, bool]:
    """(training batches processed in the current epoch, whether they are all done)."""
    progress = trainer.fit_loop.epoch_loop.batch_progress
    processed = cast(_Progress, progress.current).processed
    return processed, bool(progress.is_last_batch or processed >= trainer.num_training_batches)


def max_steps_reached(trainer: pl.Trainer, step: int | None = None) -> bool:
    """``trainer.max_steps`` optimizer steps are done (at ``step``, default the trainer's)."""
    max_steps = trainer.max_steps
    if max_steps is None or max_steps <= 0:
        return False
    return (trainer.global_step if step is None else step) >= max_steps


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


class GradientHealthCallback(Callback):
    """Applies a :class:`HealthPolicy` before every optimizer step.

    A step the policy refuses has its gradients dropped (``grad=None``: optimizers skip
    such parameters, so momentum and weight decay do not move the weights either); under
    ``stop`` the policy's ``GradientHealthError`` ends the fit (Lightning calls
    ``on_exception`` on every callback and re-raises it).

    Args:
        health: The policy, or a :class:`GradientMonitor` to build one with ``policy``.
        policy: ``stop``, ``skip`` or ``warn`` when ``health`` is a monitor.

    Examples:
        >>> callback = GradientHealthCallback(GradientMonitor(), "skip")
        >>> callback.health.policy
        'skip'
    """

    def __init__(self, health: HealthPolicy | GradientMonitor, policy: PolicyName = "stop") -> None:
        self.health = health if isinstance(health, HealthPolicy) else HealthPolicy(health, policy)

    @property
    def skipped_steps(self) -> int:
        """Steps whose gradients were dropped."""
        return self.health.skipped_steps

    def on_before_optimizer_step(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, optimizer: Any
    ) -> None:
        """Check the gradients; drop them when the policy says so (one host-device sync)."""
        if not self.health.check(network_of(pl_module), step=trainer.global_step + 1):
            optimizer.zero_grad(set_to_none=True)

    def state_dict(self) -> dict[str, Any]:
        """The policy's counters (restored on resume)."""
        return self.health.state_dict()

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restore :meth:`state_dict`."""
        self.health.load_state_dict(state_dict)


class TrainingMonitor(Callback):
    """Per-layer gradient norms, weight norms and update ratios every ``log_frequency`` steps.

    Metrics (SPEC names): ``grad/<layer>/norm``, ``grad/global_norm``,
    ``weights/<layer>/norm``, ``weights/<layer>/update_ratio`` (and ``grad/distribution/*``
    with ``histogram``), written at the optimizer step they belong to, to every Lightning
    logger of the trainer and to ``sinks``; the histogram sample goes to TensorBoard.

    Args:
        stats: The statistics policy (built from the options below when None).
        log_frequency: Measure every N optimizer steps (each costs one weight copy).
        log_gradients: Gradient norms.
        log_weights: Weight norms and update ratios.
        histogram: Also gradient distribution statistics and a histogram.
        sinks: More metric sinks (``log_metrics(metrics, step)``), rank zero only.
    """

    def __init__(
        self,
        stats: LayerStatistics | None = None,
        *,
        log_frequency: int = 50,
        log_gradients: bool = True,
        log_weights: bool = True,
        histogram: bool = False,
        sinks: Sequence[MetricsSink] = (),
    ) -> None:
        self.stats = stats or LayerStatistics(
            log_frequency,
            log_gradients=log_gradients,
            log_weights=log_weights,
            histogram=histogram,
        )
        self.sinks = list(sinks)

    def on_before_optimizer_step(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, optimizer: Any
    ) -> None:
        """Gradient norms, and the weight snapshot for the update ratio."""
        self.stats.before_step(trainer.global_step + 1, network_of(pl_module))

    def on_train_batch_end(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, *args: Any
    ) -> None:
        """After the step: weight norms and update ratios; write everything once."""
        step = trainer.global_step
        if not self.stats.due(step):
            return
        metrics = self.stats.after_step(step, network_of(pl_module))
        histograms = self.stats.take_histograms()
        if not metrics or not trainer.is_global_zero:
            return
        for sink in [*trainer.loggers, *self.sinks]:
            sink.log_metrics(metrics, step=step)
        for name, values in histograms.items():
            for target in trainer.loggers:
                experiment = getattr(target, "experiment", None)
                add_histogram = getattr(experiment, "add_histogram", None)
                if callable(add_histogram):
                    add_histogram(name, values, global_step=step)


class EarlyStoppingCallback(Callback):
    """Stops the fit when an :class:`EarlyStopping` policy says so, after each epoch.

    Reads the epoch's scalar metrics (``trainer.callback_metrics``) at the end of every
    training epoch; the stop is agreed by all data-parallel processes.

    Examples:
        >>> EarlyStoppingCallback(EarlyStopping("val/loss", patience=3)).policy.patience
        3
    """

    def __init__(self, policy: EarlyStopping) -> None:
        self.policy = policy

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """Decide; set ``trainer.should_stop``."""
        stop = self.policy.update(scalar_metrics(trainer.callback_metrics))
        if trainer.strategy.reduce_boolean_decision(stop, all=False):
            logger.info("early stopping: %s", self.policy.reason)
            trainer.should_stop = True

    def state_dict(self) -> dict[str, Any]:
        """The policy's state."""
        return self.policy.state_dict()

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restore :meth:`state_dict`."""
        self.policy.load_state_dict(state_dict)


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
        every = int(getattr(trainer, "log_every_n_steps", 1) or 1)
        if not trainer.is_global_zero or step % every:
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
