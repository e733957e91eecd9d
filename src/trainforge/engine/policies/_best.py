"""``BestMetric``: which epoch is best by the monitored metric, decided in one place.

Both drivers, the results and checkpoint retention rank with the same rule: a NaN is never
best, and a tie goes to the newer epoch (its weights trained longer for the same score).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, Literal

__all__ = ["BestMetric", "is_improvement"]

Mode = Literal["min", "max"]


def is_improvement(value: float, best: float | None, mode: Mode, min_delta: float = 0.0) -> bool:
    """True when ``value`` beats ``best`` by more than ``min_delta`` (a tie counts at 0).

    Examples:
        >>> is_improvement(0.5, 0.5, "min"), is_improvement(float("nan"), None, "min")
        (True, False)
    """
    if math.isnan(value):
        return False
    if best is None:
        return True
    if min_delta:
        return value < best - min_delta if mode == "min" else value > best + min_delta
    return value <= best if mode == "min" else value >= best


class BestMetric:
    """Tracks the best value of ``monitor`` and the epoch that reached it.

    Args:
        monitor: The metric name (``val/loss``, ``val/acc``, ``train/loss``).
        mode: ``min`` or ``max``.

    Examples:
        >>> best = BestMetric("val/acc", "max")
        >>> [best.update(e, {"val/acc": v}) for e, v in enumerate([0.5, 0.7, 0.7, 0.6])]
        [True, True, True, False]
        >>> best.epoch, best.value
        (2, 0.7)
    """

    def __init__(self, monitor: str, mode: Mode = "min") -> None:
        if mode not in ("min", "max"):
            raise ValueError(f"mode must be 'min' or 'max', got {mode!r}")
        self.monitor = monitor
        self.mode: Mode = mode
        self.value: float | None = None
        self.epoch: int | None = None

    def update(self, epoch: int, metrics: Mapping[str, float]) -> bool:
        """Consider one epoch's metrics; True when it is the new best."""
        value = metrics.get(self.monitor)
        if value is None or not is_improvement(float(value), self.value, self.mode):
            return False
        self.value, self.epoch = float(value), epoch
        return True

    def state_dict(self) -> dict[str, Any]:
        """Best value and epoch as plain data."""
        return {"value": self.value, "epoch": self.epoch}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore :meth:`state_dict`."""
        self.value = None if state.get("value") is None else float(state["value"])
        self.epoch = None if state.get("epoch") is None else int(state["epoch"])
