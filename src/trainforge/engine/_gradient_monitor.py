"""Gradient health checks that cost one norm per gradient and one host-device sync per step.

The per-parameter L2 norms (see :mod:`trainforge.engine._grad_norms`) reach the host in
one sync. NaN and infinity show up in those norms (a NaN element makes its norm NaN, an
infinite one makes it infinite), so the check never scans gradients element-wise a second
time; everything after the sync is arithmetic on a handful of Python floats.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
import torch
from torch import Tensor, nn

from trainforge.engine._grad_norms import NormPlan
from trainforge.errors import GradientHealthError
from trainforge.hooks import HookEvent, HookManager

__all__ = ["GradientHealth", "GradientMonitor", "MetricsSink"]

logger = logging.getLogger(__name__)


class MetricsSink(Protocol):
    """Anything that takes scalar metrics: a tracker, a Lightning logger, the MetricsEngine."""

    def log_metrics(self, metrics: dict[str, float], step: int | None = ...) -> Any:
        """Record ``metrics`` at ``step``."""
        ...


@dataclass(frozen=True)
class GradientHealth:
    """The outcome of one gradient check.

    ``is_healthy`` is False when any gradient is NaN or infinite, or a layer's norm is
    above the explosion threshold. Vanishing layers are reported but do not make a step
    unhealthy: frozen-in-practice layers (unused embeddings) are normal.
    """

    has_nan: bool
    has_inf: bool
    max_norm: float
    min_norm: float
    global_norm: float
    affected_layers: list[str] = field(default_factory=list)
    vanishing_layers: list[str] = field(default_factory=list)
    exploding_layers: list[str] = field(default_factory=list)
    num_parameters: int = 0

    @property
    def is_healthy(self) -> bool:
        """True when no gradient is NaN/inf and none explodes."""
        return not (self.has_nan or self.has_inf or self.exploding_layers)

    def __str__(self) -> str:
        if self.num_parameters == 0:
            return "no gradients (backward has not run, or every parameter is frozen)"
        status = "healthy" if self.is_healthy else "UNHEALTHY"
        lines = [
            f"gradients {status}: global norm {self.global_norm:.3e}, "
            f"per-parameter norms {self.min_norm:.3e} .. {self.max_norm:.3e} "
            f"over {self.num_parameters} parameters"
        ]
        for label, layers in (
            ("NaN/inf in", self.affected_layers),
            ("exploding", self.exploding_layers),
            ("vanishing", self.vanishing_layers),
        ):
            if layers:
                shown = ", ".join(layers[:5]) + (
                    f", ... (+{len(layers) - 5})" if len(layers) > 5 else ""
                )
                lines.append(f"  {label} {len(layers)} layer(s): {shown}")
        return "\n".join(lines)


_REMEDIATION = """\
Remediation steps:
  1. Lower the learning rate (try 0.1x the current optim.lr).
  2. Enable gradient clipping: trainer.gradient_clip_val=1.0.
  3. Check the data for NaN/inf and extreme values (normalise the inputs).
  4. Check the loss for log(0) or division by zero.
  5. With fp16 mixed precision, use bf16 (trainer.precision=bf16-mixed) or fp32.
  6. Raise callbacks.gradient_health.max_consecutive_failures only if the spikes are
     known to be transient."""


class GradientMonitor:
    """Checks gradients after ``backward()``: NaN, inf, exploding and vanishing layers.

    Args:
        vanishing_threshold: A parameter whose gradient norm is below this is vanishing.
        explosion_threshold: A parameter whose gradient norm is above this is exploding.
        max_consecutive_failures: Raise :class:`GradientHealthError` after this many
            unhealthy checks in a row.
        log_histogram: Add gradient-value distribution statistics (and a histogram, when
            the tracker has ``log_histogram``) in :meth:`log_gradient_distribution`.
        max_histogram_samples: Gradient values sampled for the distribution.
        hooks: Fires ``ON_GRADIENT_ANOMALY`` on every unhealthy check.

    Examples:
        >>> model = nn.Linear(3, 1)
        >>> model(torch.ones(2, 3)).sum().backward()
        >>> GradientMonitor().check_gradients(model).is_healthy
        True
    """

    def __init__(
        self,
        vanishing_threshold: float = 1e-7,
        explosion_threshold: float = 1e3,
        max_consecutive_failures: int = 5,
        log_histogram: bool = False,
        max_histogram_samples: int = 10_000,
        *,
        hooks: HookManager | None = None,
    ) -> None:
        if max_consecutive_failures < 1:
            raise ValueError(
                f"max_consecutive_failures must be >= 1, got {max_consecutive_failures}"
            )
        if not 0 <= vanishing_threshold < explosion_threshold:
            raise ValueError(
                "need 0 <= vanishing_threshold < explosion_threshold, got "
                f"{vanishing_threshold} and {explosion_threshold}"
            )
        self.vanishing_threshold = vanishing_threshold
        self.explosion_threshold = explosion_threshold
        self.max_consecutive_failures = max_consecutive_failures
        self.log_histogram = log_histogram
        self.max_histogram_samples = max_histogram_samples
        self.hooks = hooks
        self.consecutive_failures = 0
        self.total_failures = 0
        self._plan: NormPlan | None = None
        self._last: tuple[list[str], list[float], float] = ([], [], 0.0)

    def check_gradients(self, model: nn.Module, *, step: int | None = None) -> GradientHealth:
        """Check every gradient of ``model``; raise after too many unhealthy checks in a row.

        Args:
            model: The model, after ``backward()``.
            step: The optimizer step, passed to the ``ON_GRADIENT_ANOMALY`` hook.

        Returns:
            The :class:`GradientHealth` of this check.

        Raises:
            GradientHealthError: ``max_consecutive_failures`` unhealthy checks in a row;
                the message lists the affected layers and the remediation steps.
        """
        return self._judge(*self._measure(model), step)

    def step_is_healthy(self, model: nn.Module, *, step: int | None = None) -> bool:
        """:meth:`check_gradients` as one bool: no report is built for a healthy step.

        Raises:
            GradientHealthError: As :meth:`check_gradients`.
        """
        names, norms, total = self._measure(model)
        # every layer's norm is at most the global norm: below the threshold, none explodes
        if names and total <= self.explosion_threshold:  # False for NaN
            self.consecutive_failures = 0
            return True
        return self._judge(names, norms, total, step).is_healthy

    def last_health(self) -> GradientHealth:
        """The :class:`GradientHealth` of the latest check (built now; no new sync)."""
        return self._assess(*self._last)

    def _judge(
        self, names: list[str], norms: list[float], total: float, step: int | None
    ) -> GradientHealth:
        """The report of one measurement; counts (and reports) an unhealthy one."""
        health = self._assess(names, norms, total)
        if health.is_healthy:
            self.consecutive_failures = 0
        else:
            self._record_failure(health, step)
        return health

    def _record_failure(self, health: GradientHealth, step: int | None) -> None:
        self.consecutive_failures += 1
        self.total_failures += 1
        logger.warning("gradient anomaly (step %s):\n%s", step, health)
        if self.hooks is not None:
            self.hooks.fire(
                HookEvent.ON_GRADIENT_ANOMALY,
                health=health,
                step=step,
                consecutive_failures=self.consecutive_failures,
            )
        if self.consecutive_failures >= self.max_consecutive_failures:
            raise GradientHealthError(
                f"training is unstable: {self.consecutive_failures} consecutive unhealthy "
                f"gradient checks (limit callbacks.gradient_health.max_consecutive_failures="
                f"{self.max_consecutive_failures})\n{health}\n{_REMEDIATION}"
            )

    def last_layer_norms(self) -> dict[str, float]:
        """``grad/<layer>/norm`` and ``grad/global_norm`` of the latest check (no new sync)."""
        names, norms, total = self._last
        values = {f"grad/{name}/norm": v for name, v in zip(names, norms)}
        if names:
            values["grad/global_norm"] = float(total)
        return values

    def compute_gradient_norm(self, model: nn.Module) -> float:
        """Global L2 norm of all gradients (0.0 when there are none); one sync."""
        _, norms = self._norm_plan(model).norms()  # host-device sync
        if norms is None:
            return 0.0
        return math.hypot(*norms)

    def layer_norms(self, model: nn.Module) -> dict[str, float]:
        """``{"grad/<param>/norm": ..., "grad/global_norm": ...}``, SPEC metric names."""
        names, norms, total = self._measure(model)
        metrics = {f"grad/{name}/norm": v for name, v in zip(names, norms)}
        metrics["grad/global_norm"] = total if names else 0.0
        return metrics

    def log_gradient_distribution(self, model: nn.Module, tracker: MetricsSink, step: int) -> None:
        """Log per-layer norms (and distribution statistics if ``log_histogram``) at ``step``."""
        metrics = self.layer_norms(model)
        if self.log_histogram:
            metrics.update(self._distribution(model, tracker, step))
        tracker.log_metrics(metrics, step=step)

    def log_distribution(self, model: nn.Module, tracker: MetricsSink, step: int) -> None:
        """``grad/distribution/*`` statistics of a gradient sample, and the sample itself.

        The sample goes to ``tracker.log_histogram(name, values, step)`` where the sink
        has one (TensorBoard draws it); the statistics to ``log_metrics``.
        """
        metrics = self._distribution(model, tracker, step)
        if metrics:
            tracker.log_metrics(metrics, step=step)

    def _distribution(self, model: nn.Module, tracker: MetricsSink, step: int) -> dict[str, float]:
        sample = self._sample_gradients(model)
        if sample is None or not sample.numel():
            return {}
        q = torch.quantile(sample, torch.tensor([0.01, 0.5, 0.99], dtype=sample.dtype))
        values = torch.cat([torch.stack([sample.mean(), sample.std(), sample.abs().max()]), q])
        mean, std, absmax, p01, p50, p99 = values.tolist()  # one sync
        log_histogram = getattr(tracker, "log_histogram", None)
        if callable(log_histogram):
            log_histogram("grad/distribution", sample.numpy(), step)
        return {
            "grad/distribution/mean": mean,
            "grad/distribution/std": std,
            "grad/distribution/absmax": absmax,
            "grad/distribution/p01": p01,
            "grad/distribution/p50": p50,
            "grad/distribution/p99": p99,
        }

    def reset_failure_counts(self) -> None:
        """Forget earlier failures (after lowering the lr, or on resume)."""
        self.consecutive_failures = 0
        self.total_failures = 0

    def state_dict(self) -> dict[str, int]:
        """Failure counters as plain data."""
        return {
            "consecutive_failures": self.consecutive_failures,
            "total_failures": self.total_failures,
        }

    def load_state_dict(self, state: dict[str, int]) -> None:
        """Restore counters saved by :meth:`state_dict`."""
        self.consecutive_failures = int(state["consecutive_failures"])
        self.total_failures = int(state["total_failures"])

    # -- internals ---------------------------------------------------------------------

    def _measure(self, model: nn.Module) -> tuple[list[str], list[float], float]:
        """Names, per-parameter norms and the global norm (NaN/inf if any norm is), one sync."""
        names, values = self._norm_plan(model).norms()
        if values is None:
            self._last = ([], [], 0.0)
            return [], [], 0.0
        # a handful of Python floats is cheaper to look at than numpy arrays or device kernels
        total = math.hypot(*values)  # inf if any norm is, else NaN if any norm is
        self._last = (names, values, total)
        return names, values, total

    def _norm_plan(self, model: nn.Module) -> NormPlan:
        """How ``model``'s norms are read (worked out once per model object)."""
        plan = self._plan
        if plan is None or plan.model is not model:
            plan = self._plan = NormPlan(model)
        return plan

    def _assess(self, names: list[str], norms: list[float], total: float) -> GradientHealth:
        if not names:
            return GradientHealth(False, False, 0.0, 0.0, 0.0)
        if math.isfinite(total):  # no NaN or inf anywhere: nothing else to look for
            low, high = min(norms), max(norms)
            if low >= self.vanishing_threshold and high <= self.explosion_threshold:
                # the common, healthy step: no per-layer lists to build
                return GradientHealth(
                    has_nan=False,
                    has_inf=False,
                    max_norm=high,
                    min_norm=low,
                    global_norm=total,
                    num_parameters=len(names),
                )
        host = np.asarray(norms, dtype=np.float64)
        has_nan, has_inf = bool(np.isnan(host).any()), bool(np.isinf(host).any())
        affected = [
            f"{n} ({'NaN' if math.isnan(v) else 'inf'})"
            for n, v in zip(names, norms)
            if not math.isfinite(v)
        ]
        finite = host[np.isfinite(host)]
        return GradientHealth(
            has_nan=has_nan,
            has_inf=has_inf,
            max_norm=float(finite.max()) if finite.size else float("nan"),
            min_norm=float(finite.min()) if finite.size else float("nan"),
            global_norm=total,
            affected_layers=affected,
            vanishing_layers=_select(names, host < self.vanishing_threshold),
            exploding_layers=_select(names, host > self.explosion_threshold),
            num_parameters=len(names),
        )

    def _sample_gradients(self, model: nn.Module) -> Tensor | None:
        grads = [p.grad.detach().reshape(-1) for p in model.parameters() if p.grad is not None]
        if not grads:
            return None
        flat = torch.cat(grads).float().cpu()
        # a fixed stride, not a random draw: sampling must not consume the global RNG
        stride = max(1, flat.numel() // self.max_histogram_samples)
        return flat[::stride][: self.max_histogram_samples]


def _select(names: Sequence[str], mask: np.ndarray) -> list[str]:
    return [names[int(i)] for i in np.flatnonzero(mask)]
