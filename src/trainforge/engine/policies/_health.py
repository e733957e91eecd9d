"""``HealthPolicy``: what an unhealthy optimizer step does, decided once for both drivers.

The :class:`~trainforge.engine.GradientMonitor` measures (one fused norm kernel, one sync);
this policy decides. A step is unhealthy when a gradient is NaN or infinite, or a layer's
gradient norm is above the explosion threshold:

============  ===========================  ===========================  ==================
policy        NaN / inf step               finite exploding step        stops training
============  ===========================  ===========================  ==================
``stop``      skipped                      skipped                      after N in a row
``skip``      skipped                      skipped                      never
``warn``      skipped                      taken                        never
============  ===========================  ===========================  ==================

A non-finite step is never taken: it would turn every weight into NaN, with nothing to
learn from. "Skipped" means the optimizer does not move the weights (nor its moments);
the learning-rate schedule still advances, as it does for an fp16 overflow.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

from torch import nn

from trainforge.engine._gradient_monitor import GradientHealth, GradientMonitor

__all__ = ["HealthPolicy", "PolicyName"]

PolicyName = Literal["stop", "skip", "warn"]


class HealthPolicy:
    """Checks the gradients before each optimizer step and says whether to take it.

    Args:
        monitor: Measures the gradients. Under ``stop`` its ``max_consecutive_failures``
            ends training (it raises :class:`~trainforge.errors.GradientHealthError`);
            under ``skip`` and ``warn`` the policy lifts that limit.
        policy: ``stop``, ``skip`` or ``warn`` (the table in the module docstring).

    Examples:
        >>> import torch
        >>> model = nn.Linear(2, 1)
        >>> (model(torch.ones(1, 2)) * float("nan")).sum().backward()
        >>> policy = HealthPolicy(GradientMonitor(), "warn")
        >>> policy.check(model, step=1), policy.skipped_steps, policy.healthy
        (False, 1, False)
    """

    def __init__(self, monitor: GradientMonitor, policy: PolicyName = "stop") -> None:
        if policy not in ("stop", "skip", "warn"):
            raise ValueError(f"policy must be 'stop', 'skip' or 'warn', got {policy!r}")
        if policy != "stop":
            monitor.max_consecutive_failures = 2**62
        self.monitor = monitor
        self.policy: PolicyName = policy
        self.skipped_steps = 0
        self._checked = False

    @property
    def last(self) -> GradientHealth | None:
        """The report of the latest check (None before the first)."""
        return self.monitor.last_health() if self._checked else None

    @property
    def healthy(self) -> bool:
        """True when the latest step was healthy (or none was checked yet)."""
        return self.monitor.consecutive_failures == 0

    def check(self, model: nn.Module, *, step: int) -> bool:
        """Check the gradients of ``model`` before optimizer step ``step`` (1-based).

        Returns:
            True to take the step, False to skip it.

        Raises:
            GradientHealthError: ``stop`` policy, ``max_consecutive_failures`` unhealthy
                steps in a row (the message lists the layers and remediation steps).
        """
        self._checked = True
        if self.monitor.step_is_healthy(model, step=step):
            return True
        health = self.monitor.last_health()
        take = self.policy == "warn" and not (health.has_nan or health.has_inf)
        if not take:
            self.skipped_steps += 1
        return take

    def state_dict(self) -> dict[str, Any]:
        """The monitor's failure counters and the skipped-step count."""
        return {**self.monitor.state_dict(), "skipped_steps": self.skipped_steps}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore :meth:`state_dict`."""
        self.monitor.load_state_dict(dict(state))
        self.skipped_steps = int(state.get("skipped_steps", 0))
