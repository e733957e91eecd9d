"""``RunPolicies``: every decision of a training run, taken once for both loop drivers.

A driver runs batches; this object decides everything else at the same moments on both:

- before each optimizer step: the gradient-health policy (take or skip the step, stop),
  the learning rate the step uses, the weight snapshot for update ratios;
- after each optimizer step: ``train/loss``, ``lr/*`` and layer statistics on their
  logging steps, a step checkpoint when due (never while unhealthy), ``batch_end``;
- at each validation's end: drift and confidence values, and their alerts;
- at each epoch's end: the epoch metrics to every logger and the tracker, the alerts, the
  best epoch, early stopping, the epoch checkpoint, ``epoch_end`` and the printed summary;
- at the end: the final state's checkpoint if it has none.

The plain loop calls these methods directly; the Lightning driver calls them from one thin
callback. A driver hands in ``save``: a function that checkpoints its current state and
returns the path, so the decision of *when* lives here and the *how* stays with the driver.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from torch import Tensor, nn

from trainforge.engine.metrics import MetricsEngine
from trainforge.engine.policies._best import BestMetric
from trainforge.engine.policies._cadence import CheckpointCadence
from trainforge.engine.policies._data_quality import ConfidenceMonitor, DriftMonitor
from trainforge.engine.policies._early_stopping import EarlyStopping
from trainforge.engine.policies._health import HealthPolicy
from trainforge.engine.policies._layer_stats import LayerStatistics
from trainforge.engine.policies._lr import LrReporter
from trainforge.hooks import HookEvent, HookManager
from trainforge.logs import log_section

__all__ = ["EpochOutcome", "RunPolicies", "SaveFn"]

logger = logging.getLogger(__name__)

SaveFn = Callable[[Mapping[str, float], bool], "Path | None"]
"""``save(metrics, epoch_done)``: checkpoint the driver's current state; return the path."""


@dataclass(frozen=True)
class EpochOutcome:
    """What the end of an epoch decided."""

    values: dict[str, float]
    checkpoint: Path | None
    stop: bool
    reason: str | None = None


class RunPolicies:
    """The run's policies behind one set of driver-agnostic events.

    Args:
        best: Ranks epochs by the checkpoint monitor.
        cadence: When checkpoints are written.
        metrics: Where every value goes (loggers, tracker) and the epoch summary is kept.
        hooks: Receives ``epoch_start``, ``batch_end``, ``validation_end``, ``epoch_end``.
        health: The gradient-health policy (None: no check).
        early_stopping: None: never stop early.
        layer_stats: Per-layer statistics (None: not measured).
        lr: Learning-rate reporting (None: not logged).
        drift: Data drift against the training data (None: not measured).
        confidence: Confidence and calibration of validation predictions (None: not measured).
        log_every_n_steps: ``train/loss`` (and step-interval ``lr/*``) every N steps.
        print_epochs: Log each epoch's metrics as a table at INFO.
    """

    def __init__(
        self,
        *,
        best: BestMetric,
        cadence: CheckpointCadence | None = None,
        metrics: MetricsEngine | None = None,
        hooks: HookManager | None = None,
        health: HealthPolicy | None = None,
        early_stopping: EarlyStopping | None = None,
        layer_stats: LayerStatistics | None = None,
        lr: LrReporter | None = None,
        drift: DriftMonitor | None = None,
        confidence: ConfidenceMonitor | None = None,
        log_every_n_steps: int = 10,
        print_epochs: bool = True,
    ) -> None:
        if log_every_n_steps < 1:
            raise ValueError(f"log_every_n_steps must be >= 1, got {log_every_n_steps}")
        self.best = best
        self.cadence = cadence or CheckpointCadence()
        self.metrics = metrics if metrics is not None else MetricsEngine()
        self.hooks = hooks if hooks is not None else HookManager()
        self.health = health
        self.early_stopping = early_stopping
        self.layer_stats = layer_stats
        self.lr = lr
        self.drift = drift
        self.confidence = confidence
        self.log_every_n_steps = log_every_n_steps
        self.print_epochs = print_epochs
        self.last_checkpoint: Path | None = None
        self.final_loss = float("nan")

    @property
    def healthy(self) -> bool:
        """True unless the latest optimizer step was unhealthy."""
        return self.health is None or self.health.healthy

    # -- steps ----------------------------------------------------------------------------

    @property
    def acts_before_step(self) -> bool:
        """False when :meth:`before_optimizer_step` has nothing to do (a driver may skip it)."""
        return self.health is not None or self.lr is not None or self.layer_stats is not None

    def before_optimizer_step(self, step: int, model: nn.Module, optimizer: Any) -> bool:
        """Before optimizer step ``step`` (1-based), gradients complete: take it?

        Raises:
            GradientHealthError: The health policy stops training.
        """
        take = self.health.check(model, step=step) if self.health is not None else True
        if self.lr is not None:
            self.lr.capture(step, optimizer)
        if self.layer_stats is not None and take:
            self.layer_stats.before_step(step, model)
        return take

    def after_optimizer_step(
        self,
        step: int,
        epoch: int,
        model: nn.Module,
        loss: Tensor | float,
        save: SaveFn | None = None,
    ) -> Path | None:
        """After optimizer step ``step``: log on logging steps, checkpoint when due."""
        values: dict[str, float] = {}
        if step % self.log_every_n_steps == 0:
            values["train/loss"] = float(loss)  # host-device sync, on logging steps only
            if self.lr is not None:
                values.update(self.lr.take())
        if self.layer_stats is not None and self.layer_stats.due(step):
            values.update(self.layer_stats.after_step(step, model))
            for name, sample in self.layer_stats.take_histograms().items():
                self.metrics.log_histogram(name, sample, step)
        if values:
            self.metrics.log_metrics(values, step, epoch=epoch)
        path = None
        if save is not None and self.cadence.step_due(step, healthy=self.healthy):
            path = self._save(save, {"train/loss": float(loss)}, step, epoch_done=False)
        if self.hooks.has_hooks(HookEvent.ON_BATCH_END):
            self.hooks.fire(HookEvent.ON_BATCH_END, global_step=step, epoch=epoch)
        return path

    # -- epochs ---------------------------------------------------------------------------

    def start(self, run_dir: Path | None) -> None:
        """Before the first epoch: profile the training data once (drift)."""
        if self.drift is not None:
            path = self.drift.start(run_dir)
            if path is not None and self.metrics.tracker is not None:
                self.metrics.tracker.log_artifact(path)

    def start_epoch(self, epoch: int) -> None:
        """``epoch_start``."""
        if self.confidence is not None:  # drop what a sanity check fed it
            self.confidence.reset()
        self.hooks.fire(HookEvent.ON_EPOCH_START, epoch=epoch)

    def end_validation(
        self, epoch: int, step: int, metrics: Mapping[str, float], *, log: bool = False
    ) -> dict[str, float]:
        """``validation_end``; ``log`` writes the values now (a validation inside an epoch).

        Returns:
            The validation's metrics with the drift and confidence values added.
        """
        values = {k: float(v) for k, v in metrics.items()}
        alerts = []
        if self.confidence is not None:
            values.update(self.confidence.take())
            alerts.append(self.confidence.alert(values, epoch, step))
        if self.drift is not None:
            values.update(self.drift.values())
            alerts.append(self.drift.alert(epoch, step))
        for alert in alerts:
            if alert is not None:
                self.metrics.raise_alert(alert)
        if log and values:
            self.metrics.log_metrics(values, step, epoch=epoch)
        self.hooks.fire(HookEvent.ON_VALIDATION_END, epoch=epoch, metrics=values)
        return values

    def end_epoch(
        self,
        epoch: int,
        step: int,
        train: Mapping[str, float],
        val: Mapping[str, float],
        *,
        final: bool,
        save: SaveFn | None = None,
    ) -> EpochOutcome:
        """Log, rank, decide to stop and checkpoint at the end of ``epoch``.

        Args:
            epoch: The epoch that ended (0-based).
            step: Optimizer steps taken so far.
            train: ``train/loss`` (the epoch's mean) and ``system/*`` of the epoch.
            val: The epoch's validation metrics (empty without validation).
            final: The run ends after this epoch (last epoch, ``max_steps``).
            save: Checkpoints the driver's state; None: never.
        """
        values = {
            **{k: float(v) for k, v in train.items()},
            **{k: float(v) for k, v in val.items()},
        }
        if self.lr is not None:
            values.update(self.lr.epoch_end())
        # the epoch mean goes to the loggers as train/loss_epoch: per-step values own the name
        self.metrics.log_epoch(
            epoch, values, step=step, logged_as={"train/loss": "train/loss_epoch"}
        )
        self.final_loss = values.get("train/loss", self.final_loss)
        self.best.update(epoch, values)
        reason = None
        if self.early_stopping is not None and self.early_stopping.update(values):
            reason = self.early_stopping.reason
        stop = reason is not None
        path = None
        if save is not None and self.cadence.epoch_due(
            epoch, final=final or stop, healthy=self.healthy
        ):
            path = self._save(save, values, step, epoch_done=True)
        self.hooks.fire(HookEvent.ON_EPOCH_END, epoch=epoch, metrics=values, checkpoint_path=path)
        if self.print_epochs:
            log_section(f"epoch {epoch}", values)
        if stop:
            logger.info("early stopping after epoch %d: %s", epoch, reason)
        return EpochOutcome(values, path, stop, reason)

    def end(self, step: int, save: SaveFn | None = None) -> Path | None:
        """The run's final state is checkpointed if it has no checkpoint yet (and is healthy)."""
        if save is None or not self.cadence.final_due(step, healthy=self.healthy):
            return None
        return self._save(save, {"train/loss": self.final_loss}, step, epoch_done=False)

    def _save(
        self, save: SaveFn, metrics: Mapping[str, float], step: int, *, epoch_done: bool
    ) -> Path | None:
        path = save(metrics, epoch_done)
        if path is not None:
            self.cadence.saved(step)
            self.last_checkpoint = path
        return path

    # -- resume ---------------------------------------------------------------------------

    def state_dict(self) -> dict[str, Any]:
        """Every policy's state as plain data (saved in each checkpoint, either driver)."""
        return {
            "best": self.best.state_dict(),
            "early_stopping": (
                self.early_stopping.state_dict() if self.early_stopping is not None else None
            ),
            "health": self.health.state_dict() if self.health is not None else None,
            "alerts": self.metrics.alert_state(),
            "final_loss": self.final_loss,
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore :meth:`state_dict` (parts whose policy is off now are ignored)."""
        self.best.load_state_dict(state.get("best") or {})
        if self.early_stopping is not None and state.get("early_stopping"):
            self.early_stopping.load_state_dict(state["early_stopping"])
        if self.health is not None and state.get("health"):
            self.health.load_state_dict(state["health"])
        if state.get("alerts"):
            self.metrics.load_alert_state(state["alerts"])
        self.final_loss = float(state.get("final_loss", self.final_loss))
