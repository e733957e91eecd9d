"""``EarlyStopping``: stop when the monitored metric stops improving, or stops being finite.

One definition for both drivers (the Lightning driver adapts this object rather than using
Lightning's own ``EarlyStopping``): ``patience`` epochs without an improvement of more than
``min_delta`` stop training; a NaN or infinite value stops it at once, because nothing
after a diverged epoch improves it (Lightning's ``check_finite=True``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from trainforge.engine.policies._best import Mode
from trainforge.errors import TrainingError, did_you_mean

__all__ = ["EarlyStopping"]


class EarlyStopping:
    """Decides, after each epoch, whether training should stop.

    Args:
        monitor: The metric to watch.
        mode: ``min`` or ``max``.
        patience: Epochs in a row without improvement that stop training.
        min_delta: An improvement must beat the best by more than this (a tie never
            counts).
        check_finite: Stop as soon as the metric is NaN or infinite.

    Examples:
        >>> stopper = EarlyStopping("val/loss", patience=2)
        >>> [stopper.update({"val/loss": v}) for v in (1.0, 0.8, 0.8, 0.9)]
        [False, False, False, True]
        >>> stopper.reason
        'val/loss did not improve for 2 epochs (best 0.8)'
    """

    def __init__(
        self,
        monitor: str,
        mode: Mode = "min",
        patience: int = 5,
        min_delta: float = 0.0,
        *,
        check_finite: bool = True,
    ) -> None:
        if patience < 0 or min_delta < 0:
            raise ValueError(f"patience and min_delta must be >= 0, got {patience}, {min_delta}")
        if mode not in ("min", "max"):
            raise ValueError(f"mode must be 'min' or 'max', got {mode!r}")
        self.monitor = monitor
        self.mode: Mode = mode
        self.patience = patience
        self.min_delta = min_delta
        self.check_finite = check_finite
        self.best: float | None = None
        self.bad_epochs = 0
        self.reason: str | None = None

    @property
    def should_stop(self) -> bool:
        """True once a stop was decided."""
        return self.reason is not None

    def update(self, metrics: Mapping[str, float]) -> bool:
        """Consider one epoch's metrics; True when training should stop now.

        Raises:
            TrainingError: ``monitor`` is not among the metrics (the names that are).
        """
        if self.monitor not in metrics:
            close = did_you_mean(self.monitor, metrics)
            raise TrainingError(
                f"early stopping monitors {self.monitor!r}, which this run does not produce; "
                f"it has {', '.join(sorted(metrics))}",
                key="callbacks.early_stopping.monitor",
                hint=f"did you mean {close}?" if close else "set a metric the run logs",
            )
        value = float(metrics[self.monitor])
        if self.check_finite and not math.isfinite(value):
            self.reason = f"{self.monitor} is {value}: training diverged"
        elif self._improves(value):
            self.best, self.bad_epochs = value, 0
        else:
            self.bad_epochs += 1
            if self.bad_epochs >= self.patience:
                self.reason = (
                    f"{self.monitor} did not improve for {self.bad_epochs} epochs "
                    f"(best {self.best:.4g})"
                )
        return self.should_stop

    def _improves(self, value: float) -> bool:
        if self.best is None:
            return not math.isnan(value)
        if self.mode == "min":
            return value < self.best - self.min_delta
        return value > self.best + self.min_delta

    def state_dict(self) -> dict[str, Any]:
        """Best value, epochs without improvement and the stop reason, as plain data."""
        return {"best": self.best, "bad_epochs": self.bad_epochs, "reason": self.reason}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore :meth:`state_dict`."""
        self.best = None if state.get("best") is None else float(state["best"])
        self.bad_epochs = int(state.get("bad_epochs", 0))
        self.reason = state.get("reason")
