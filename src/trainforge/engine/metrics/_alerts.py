"""Training alerts: validation loss spikes, accuracy drops, gradient explosions, data drift
and miscalibrated predictions."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

__all__ = ["Alert", "AlertConfig"]

AlertType = Literal[
    "val_loss_spike", "accuracy_drop", "gradient_explosion", "data_drift", "calibration"
]


@dataclass(frozen=True)
class AlertConfig:
    """When an alert is raised.

    Attributes:
        val_loss_spike_threshold: Relative rise of ``val/loss`` above the best so far
            (0.2: 20 % above the best).
        accuracy_drop_threshold: Absolute drop of ``val/acc`` below the best so far.
        gradient_explosion_threshold: Global gradient norm above which to alert.

    Examples:
        >>> from trainforge.engine import MetricsEngine
        >>> engine = MetricsEngine(alert_config=AlertConfig(val_loss_spike_threshold=0.1))
        >>> engine.check_epoch_alerts(0, {"val/loss": 0.50})
        >>> engine.check_epoch_alerts(1, {"val/loss": 0.52})  # 4 % above the best: no alert
        >>> engine.check_epoch_alerts(2, {"val/loss": 0.60})
        >>> [alert.type for alert in engine.get_alerts()]
        ['val_loss_spike']
    """

    val_loss_spike_threshold: float = 0.2
    accuracy_drop_threshold: float = 0.05
    gradient_explosion_threshold: float = 1e3


@dataclass(frozen=True)
class Alert:
    """One alert: what, how large, against which threshold, and when."""

    type: AlertType
    message: str
    value: float
    threshold: float
    step: int | None = None
    epoch: int | None = None

    def __getitem__(self, key: str) -> object:
        """Dict-style access (``alert["type"]``) for callers that treat alerts as dicts."""
        return getattr(self, key)
