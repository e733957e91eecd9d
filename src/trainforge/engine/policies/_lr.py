"""``LrReporter``: the learning rate each optimizer step used, logged as ``lr/pg<N>``.

Captured just before the step (after the schedule set it, before the schedule moves on),
so ``lr/pg1`` at step N is the rate step N trained with, on both drivers. Captured only on
the steps that are logged.
"""

from __future__ import annotations

from typing import Any, Literal

__all__ = ["LrReporter"]


class LrReporter:
    """Learning rates per parameter group, on logging steps or at epoch ends.

    Args:
        every_n_steps: Report every N optimizer steps (``interval="step"``).
        interval: ``step`` or ``epoch`` (once per epoch, the latest rate).

    Examples:
        >>> import torch
        >>> optimizer = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.1)
        >>> reporter = LrReporter(every_n_steps=2)
        >>> reporter.capture(2, optimizer)
        >>> reporter.take()
        {'lr/pg1': 0.1}
    """

    def __init__(self, every_n_steps: int = 1, interval: Literal["step", "epoch"] = "step") -> None:
        if every_n_steps < 1:
            raise ValueError(f"every_n_steps must be >= 1, got {every_n_steps}")
        if interval not in ("step", "epoch"):
            raise ValueError(f"interval must be 'step' or 'epoch', got {interval!r}")
        self.every_n_steps = every_n_steps
        self.interval = interval
        self._values: dict[str, float] = {}
        self._optimizer: Any = None

    @staticmethod
    def rates(optimizer: Any) -> dict[str, float]:
        """``{"lr/pg1": ..., "lr/pg2": ...}`` of ``optimizer`` now."""
        return {f"lr/pg{i + 1}": float(g["lr"]) for i, g in enumerate(optimizer.param_groups)}

    def capture(self, step: int, optimizer: Any) -> None:
        """Before optimizer step ``step`` (1-based): keep the rates if the step is logged."""
        if self.interval == "epoch":
            self._optimizer = optimizer  # read once, at the epoch's end
        elif step % self.every_n_steps == 0:
            self._values = self.rates(optimizer)

    def take(self) -> dict[str, float]:
        """The rates captured for the latest logged step, once (``step`` interval)."""
        values, self._values = self._values, {}
        return values

    def epoch_end(self) -> dict[str, float]:
        """The rates of the epoch's last step (``epoch`` interval; else empty)."""
        if self.interval != "epoch" or self._optimizer is None:
            return {}
        return self.rates(self._optimizer)
