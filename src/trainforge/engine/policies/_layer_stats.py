"""``LayerStatistics``: per-layer gradient norms, weight norms and update ratios.

Measured on every ``log_frequency``-th optimizer step only. The gradient norms are the
ones the health check measured for that step (one fused kernel and one sync per step, not
two); without a health check they are measured here, on logging steps only. Weight norms
and update ratios need a copy of the weights before the step, taken on logging steps only.
"""

from __future__ import annotations

from typing import Any

from torch import nn

from trainforge.engine._gradient_monitor import GradientMonitor
from trainforge.engine._weight_stats import WeightStatistics

__all__ = ["LayerStatistics"]


class _Collect:
    """A metrics sink that keeps values (and a histogram sample) until after the step."""

    def __init__(self) -> None:
        self.values: dict[str, float] = {}
        self.histograms: dict[str, Any] = {}

    def log_metrics(self, metrics: dict[str, float], step: int | None = None) -> None:
        self.values.update(metrics)

    def log_histogram(self, name: str, values: Any, step: int | None = None) -> None:
        self.histograms[name] = values


class LayerStatistics:
    """``grad/<layer>/norm``, ``grad/global_norm``, ``weights/<layer>/norm`` and ratios.

    Args:
        log_frequency: Measure every N optimizer steps.
        log_gradients: Gradient norms (and, with ``histogram``, their distribution).
        log_weights: Weight norms and update-to-weight ratios.
        histogram: Also ``grad/distribution/*`` statistics and a histogram sample.
        health_monitor: The health check's monitor, whose norms of the same step are
            reused (None: measured here).

    Examples:
        >>> import torch
        >>> model = nn.Linear(2, 1)
        >>> stats = LayerStatistics(log_frequency=1)
        >>> model(torch.ones(1, 2)).sum().backward()
        >>> stats.before_step(1, model)
        >>> sorted(stats.after_step(1, model))[:2]
        ['grad/bias/norm', 'grad/global_norm']
    """

    def __init__(
        self,
        log_frequency: int = 50,
        *,
        log_gradients: bool = True,
        log_weights: bool = True,
        histogram: bool = False,
        health_monitor: GradientMonitor | None = None,
    ) -> None:
        if log_frequency < 1:
            raise ValueError(f"log_frequency must be >= 1, got {log_frequency}")
        self.log_frequency = log_frequency
        self.log_gradients = log_gradients
        self.log_weights = log_weights
        self.histogram = histogram
        self.health_monitor = health_monitor
        self._own_monitor = GradientMonitor(log_histogram=histogram)
        self.weights = WeightStatistics()
        self._pending = _Collect()

    def due(self, step: int) -> bool:
        """True when optimizer step ``step`` (1-based) is measured."""
        return step % self.log_frequency == 0

    def before_step(self, step: int, model: nn.Module) -> None:
        """Gradient norms of this step and the weight snapshot (logging steps only)."""
        if not self.due(step):
            return
        if self.log_gradients:
            shared = self.health_monitor
            if shared is not None:
                self._pending.values.update(shared.last_layer_norms())  # no new sync
            else:
                self._pending.values.update(self._own_monitor.layer_norms(model))
            if self.histogram:
                self._own_monitor.log_distribution(model, self._pending, step)
        if self.log_weights:
            self.weights.snapshot(model)

    def after_step(self, step: int, model: nn.Module) -> dict[str, float]:
        """Everything measured for ``step``: the values to log (empty on other steps)."""
        if self.weights.has_snapshot:
            self._pending.values.update(self.weights.after_step(model))
        values, self._pending.values = self._pending.values, {}
        return values

    def take_histograms(self) -> dict[str, Any]:
        """Histogram samples of the latest measured step (``grad/distribution``)."""
        histograms, self._pending.histograms = self._pending.histograms, {}
        return histograms
