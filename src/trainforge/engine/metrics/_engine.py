"""``MetricsEngine``: one place where scalars go, fanned out to every logger and tracker.

Sinks are duck-typed: anything with ``log_metrics(metrics, step=...)`` - Lightning's
CSVLogger / TensorBoardLogger used standalone, trainforge's ExperimentTracker, your own.
The engine also keeps every value in memory for :meth:`MetricsEngine.get_summary`, and
watches for drift, miscalibration and alert conditions. It never imports Lightning.

Step rule: a metric logged with ``micro_step=`` (the count of micro-batches so far,
0-based) is kept only when ``should_log(micro_step)`` - on the micro-batch that completes
an accumulation window - and is recorded at the effective (optimizer) step
``(micro_step + 1) // gradient_accumulation_steps``, so every logger's x-axis counts
optimizer updates. A metric logged with ``step=`` is recorded at that step as given.
"""

from __future__ import annotations

import inspect
import logging
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from torch import Tensor

from trainforge.engine.metrics._alerts import Alert, AlertConfig
from trainforge.engine.metrics._confidence import ConfidenceMetrics, confidence_metrics
from trainforge.engine.metrics._drift import DatasetProfile, DriftMetrics, compare_profiles
from trainforge.hooks import HookEvent, HookManager

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["MetricsEngine"]

logger = logging.getLogger(__name__)

AlertCallback = Callable[[Alert], Any]


class MetricsEngine:
    """Fans scalars out to loggers and a tracker, keeps history, drift, confidence, alerts.

    Args:
        loggers: Sinks with ``log_metrics(metrics, step=...)`` (Lightning loggers work).
        tracker: The experiment tracker (same protocol), logged to after the loggers.
        gradient_accumulation_steps: Micro-batches per optimizer step (the step rule).
        drift_warning: Jensen-Shannon divergence at which drift is a warning.
        drift_critical: Jensen-Shannon divergence at which drift is critical.
        alert_config: Alert thresholds (defaults: :class:`AlertConfig`).
        alert_callbacks: Called with each :class:`Alert`.
        hooks: ``ON_ALERT`` is fired with ``alert=`` for each alert.

    Examples:
        >>> engine = MetricsEngine(gradient_accumulation_steps=2)
        >>> engine.log_scalar("train/loss", 0.5, micro_step=0), engine.should_log(1)
        (False, True)
        >>> engine.log_scalar("train/loss", 0.4, micro_step=1)
        True
        >>> engine.get_summary()[["step", "train/loss"]].values.tolist()
        [[1.0, 0.4]]
    """

    def __init__(
        self,
        loggers: Sequence[Any] = (),
        tracker: Any | None = None,
        gradient_accumulation_steps: int = 1,
        drift_warning: float = 0.1,
        drift_critical: float = 0.25,
        alert_config: AlertConfig | None = None,
        alert_callbacks: Iterable[AlertCallback] = (),
        hooks: HookManager | None = None,
    ) -> None:
        if gradient_accumulation_steps < 1:
            raise ValueError(
                f"gradient_accumulation_steps must be >= 1, got {gradient_accumulation_steps}"
            )
        if not 0 < drift_warning < drift_critical <= 1:
            raise ValueError(
                "need 0 < drift_warning < drift_critical <= 1, got "
                f"{drift_warning} and {drift_critical}"
            )
        self.loggers = list(loggers)
        self.tracker = tracker
        # ExperimentTracker records the epoch of each value; other sinks take (values, step)
        self._tracker_takes_epoch = tracker is not None and _accepts(tracker.log_metrics, "epoch")
        self.gradient_accumulation_steps = gradient_accumulation_steps
        self.drift_warning = drift_warning
        self.drift_critical = drift_critical
        self.alert_config = alert_config or AlertConfig()
        self.alert_callbacks = list(alert_callbacks)
        self.hooks = hooks
        self._history: dict[int, dict[str, float]] = {}
        self._epochs: list[dict[str, float]] = []
        self._alerts: list[Alert] = []
        self._best_val_loss = math.inf
        self._best_val_acc = -math.inf
        self._last_step = 0

    # -- scalars --------------------------------------------------------------------------

    def should_log(self, micro_step: int) -> bool:
        """True when ``micro_step`` (0-based) completes an accumulation window."""
        return (micro_step + 1) % self.gradient_accumulation_steps == 0

    def log_scalar(
        self,
        name: str,
        value: float | Tensor,
        step: int | None = None,
        *,
        micro_step: int | None = None,
    ) -> bool:
        """Log one scalar; see :meth:`log_metrics`."""
        return self.log_metrics({name: value}, step, micro_step=micro_step)

    def log_metrics(
        self,
        metrics: Mapping[str, float | Tensor],
        step: int | None = None,
        *,
        micro_step: int | None = None,
        epoch: int | None = None,
    ) -> bool:
        """Record ``metrics`` and send them to every logger and the tracker.

        Args:
            metrics: Metric name (SPEC names: ``train/loss``, ``val/acc``) to value. A
                tensor value is converted here, which syncs with its device.
            step: The effective step; None reuses the latest step seen.
            micro_step: The 0-based micro-batch count instead of ``step`` (step rule in
                the module docstring).
            epoch: The epoch the values belong to (recorded by the tracker).

        Returns:
            True when the values were logged, False when the step rule dropped them.
        """
        if micro_step is not None:
            if not self.should_log(micro_step):
                return False
            step = (micro_step + 1) // self.gradient_accumulation_steps
        if step is None:
            step = self._last_step
        values = {name: float(value) for name, value in metrics.items()}
        self._last_step = max(self._last_step, step)
        self._history.setdefault(step, {}).update(values)
        for sink in self.loggers:
            sink.log_metrics(values, step=step)
        if self.tracker is not None:
            if self._tracker_takes_epoch and epoch is not None:
                self.tracker.log_metrics(values, step=step, epoch=epoch)
            else:
                self.tracker.log_metrics(values, step=step)
        return True

    def log_histogram(self, name: str, values: Any, step: int) -> None:
        """Send a sample's histogram to every logger that draws one (TensorBoard)."""
        for sink in self.loggers:
            # Lightning's TensorBoardLogger: its SummaryWriter; other loggers keep only the
            # distribution statistics logged beside the sample
            add_histogram = getattr(getattr(sink, "experiment", None), "add_histogram", None)
            if callable(add_histogram):
                add_histogram(name, values, global_step=step)

    def get_summary(self) -> pd.DataFrame:
        """One row per step (column ``step`` first), one column per metric name."""
        import pandas as pd  # only here: pandas costs half a second to import

        rows = [{"step": step, **values} for step, values in sorted(self._history.items())]
        return (
            pd.DataFrame(rows, columns=["step", *self._metric_names()])
            if rows
            else pd.DataFrame(columns=["step"])
        )

    def get_epoch_summary(self) -> pd.DataFrame:
        """One row per :meth:`log_epoch` call (column ``epoch`` first)."""
        import pandas as pd

        return pd.DataFrame(self._epochs)

    def _metric_names(self) -> list[str]:
        names: dict[str, None] = {}
        for values in self._history.values():
            names.update(dict.fromkeys(values))
        return list(names)

    def flush(self) -> None:
        """Ask every logger to write what it buffered (``save()`` where it exists)."""
        for sink in self.loggers:
            save = getattr(sink, "save", None)
            if callable(save):
                save()

    def close(self, status: str = "success") -> None:
        """Flush and finalize every logger (``finalize(status)`` where it exists)."""
        self.flush()
        for sink in self.loggers:
            finalize = getattr(sink, "finalize", None)
            if callable(finalize):
                finalize(status)

    # -- epochs, drift, confidence --------------------------------------------------------

    def log_epoch(
        self,
        epoch: int,
        metrics: Mapping[str, float | Tensor],
        train_profile: DatasetProfile | None = None,
        val_profile: DatasetProfile | None = None,
        *,
        step: int | None = None,
        logged_as: Mapping[str, str] | None = None,
    ) -> DriftMetrics | None:
        """Log epoch-level metrics; check alerts; measure drift when both profiles are given.

        Args:
            epoch: The epoch number (recorded as the ``epoch`` metric).
            metrics: e.g. ``{"train/loss": ..., "val/loss": ..., "val/acc": ...}``.
            train_profile: Reference profile (:func:`profile_dataset` of the training set).
            val_profile: Profile to compare with it.
            step: The effective step (default: the latest step logged).
            logged_as: Names the loggers and the tracker get instead, e.g.
                ``{"train/loss": "train/loss_epoch"}`` when per-step values already use
                the name; the epoch summary keeps the given names.

        Returns:
            The drift between the profiles, or None when a profile is missing. Drift is
            logged as ``drift/<feature>/jsd`` and ``health/drift_status`` (0 healthy, 1
            warning, 2 critical).
        """
        values = {name: float(value) for name, value in metrics.items()}
        drift = None
        if train_profile is not None and val_profile is not None:
            drift = compare_profiles(
                train_profile, val_profile, warning=self.drift_warning, critical=self.drift_critical
            )
            values.update({f"drift/{name}/jsd": v for name, v in drift.details.items()})
            values["health/drift_status"] = float(
                ("healthy", "warning", "critical").index(drift.status)
            )
            if drift.status != "healthy":
                logger.warning(
                    "data drift %s: max Jensen-Shannon divergence %.3f in %s",
                    drift.status,
                    drift.js_divergence,
                    ", ".join(drift.affected_features),
                )
        renamed = {(logged_as or {}).get(k, k): v for k, v in values.items()}
        self.log_metrics({"epoch": float(epoch), **renamed}, step, epoch=epoch)
        self._epochs.append({"epoch": epoch, **values})
        self.check_epoch_alerts(epoch, values, step)
        return drift

    def log_confidence(
        self, logits: Tensor, labels: Tensor, step: int | None = None, *, split: str = "val"
    ) -> ConfidenceMetrics:
        """Log top-1 / top-5 confidence, entropy and ECE (15 bins) as ``<split>/...``."""
        m = confidence_metrics(logits, labels, num_bins=15)
        self.log_metrics(
            {
                f"{split}/confidence_top1": m.top1_confidence,
                f"{split}/confidence_top5": m.top5_confidence,
                f"{split}/entropy": m.entropy,
                f"{split}/ece": m.expected_calibration_error,
            },
            step,
        )
        return m

    # -- alerts ---------------------------------------------------------------------------

    def report_gradient_norm(self, norm: float, step: int | None = None) -> None:
        """Alert when a global gradient norm exceeds the explosion threshold."""
        threshold = self.alert_config.gradient_explosion_threshold
        if not norm <= threshold:  # also catches NaN
            self._raise_alert(
                Alert(
                    "gradient_explosion",
                    f"gradient norm {norm:.3e} exceeds {threshold:.3e}",
                    norm,
                    threshold,
                    step=step,
                )
            )

    def alert_state(self) -> dict[str, float]:
        """The best validation loss and accuracy the alerts compare against (plain data)."""
        return {"best_val_loss": self._best_val_loss, "best_val_acc": self._best_val_acc}

    def load_alert_state(self, state: Mapping[str, float]) -> None:
        """Restore :meth:`alert_state` (a resumed run keeps alerting against its best)."""
        self._best_val_loss = float(state["best_val_loss"])
        self._best_val_acc = float(state["best_val_acc"])

    def has_alerts(self) -> bool:
        """True when any alert was raised."""
        return bool(self._alerts)

    def get_alerts(self) -> list[Alert]:
        """Every alert raised so far, oldest first."""
        return list(self._alerts)

    def check_epoch_alerts(
        self, epoch: int, values: Mapping[str, float], step: int | None = None
    ) -> None:
        """Raise the val-loss-spike and accuracy-drop alerts of one validation's metrics."""
        cfg = self.alert_config
        loss = values.get("val/loss")
        if loss is not None:
            limit = self._best_val_loss * (1 + cfg.val_loss_spike_threshold)
            if math.isfinite(self._best_val_loss) and not loss <= limit:
                self._raise_alert(
                    Alert(
                        "val_loss_spike",
                        f"val/loss {loss:.4g} is more than {cfg.val_loss_spike_threshold:.0%} "
                        f"above the best so far ({self._best_val_loss:.4g})",
                        loss,
                        limit,
                        step=step,
                        epoch=epoch,
                    )
                )
            self._best_val_loss = min(self._best_val_loss, loss)
        acc = values.get("val/acc")
        if acc is not None:
            floor = self._best_val_acc - cfg.accuracy_drop_threshold
            if acc < floor:
                self._raise_alert(
                    Alert(
                        "accuracy_drop",
                        f"val/acc {acc:.4f} dropped more than {cfg.accuracy_drop_threshold} "
                        f"below the best so far ({self._best_val_acc:.4f})",
                        acc,
                        floor,
                        step=step,
                        epoch=epoch,
                    )
                )
            self._best_val_acc = max(self._best_val_acc, acc)

    def raise_alert(self, alert: Alert) -> None:
        """Record an alert raised elsewhere (drift, calibration): logged, tracked, ON_ALERT."""
        self._raise_alert(alert)

    def _raise_alert(self, alert: Alert) -> None:
        self._alerts.append(alert)
        logger.warning("alert %s: %s", alert.type, alert.message)
        self.log_metrics({f"health/{alert.type}": alert.value}, alert.step)
        for callback in self.alert_callbacks:
            callback(alert)
        if self.hooks is not None:
            self.hooks.fire(HookEvent.ON_ALERT, alert=alert)


def _accepts(function: Callable[..., Any], name: str) -> bool:
    """Whether ``function`` takes a keyword argument ``name``."""
    try:
        parameters = inspect.signature(function).parameters
    except (TypeError, ValueError):
        return False
    return name in parameters or any(p.kind is p.VAR_KEYWORD for p in parameters.values())
