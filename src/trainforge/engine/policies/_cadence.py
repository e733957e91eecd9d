"""``CheckpointCadence``: when a checkpoint is written, the same way on both drivers.

Every ``every_n_epochs``-th epoch end, every ``every_n_steps`` optimizer steps, and the
final state of the run (the last epoch, an early stop, a ``max_steps`` cut) - but never
while the latest step was unhealthy: if training goes on to diverge, the newest checkpoint
must be the last good one, and retention must not delete it for a broken one.
"""

from __future__ import annotations

__all__ = ["CheckpointCadence"]


class CheckpointCadence:
    """Decides whether the state after a step or an epoch is checkpointed.

    Args:
        every_n_epochs: Save at the end of every N-th epoch (epochs ``N-1, 2N-1, ...``).
        every_n_steps: Also save every N optimizer steps (None: epoch ends only).

    Examples:
        >>> cadence = CheckpointCadence(every_n_epochs=2, every_n_steps=5)
        >>> [cadence.epoch_due(e, final=False) for e in range(4)]
        [False, True, False, True]
        >>> cadence.step_due(10), cadence.step_due(10, healthy=False)
        (True, False)
        >>> cadence.saved(10)
        >>> cadence.step_due(10), cadence.final_due(10)
        (False, False)
    """

    def __init__(self, every_n_epochs: int = 1, every_n_steps: int | None = None) -> None:
        if every_n_epochs < 1:
            raise ValueError(f"every_n_epochs must be >= 1, got {every_n_epochs}")
        if every_n_steps is not None and every_n_steps < 1:
            raise ValueError(f"every_n_steps must be >= 1 or None, got {every_n_steps}")
        self.every_n_epochs = every_n_epochs
        self.every_n_steps = every_n_steps
        self.last_saved_step = -1

    def step_due(self, step: int, *, healthy: bool = True) -> bool:
        """True when the state after optimizer step ``step`` (1-based) is to be saved."""
        every = self.every_n_steps
        if every is None or not healthy:
            return False
        return step % every == 0 and step != self.last_saved_step

    def epoch_due(self, epoch: int, *, final: bool, healthy: bool = True) -> bool:
        """True at the end of every ``every_n_epochs``-th epoch, and of the final one."""
        return healthy and (final or (epoch + 1) % self.every_n_epochs == 0)

    def final_due(self, step: int, *, healthy: bool = True) -> bool:
        """True when the run's final state (at ``step``) has no checkpoint yet."""
        return healthy and step > 0 and step != self.last_saved_step

    def saved(self, step: int) -> None:
        """Record that the state after ``step`` was checkpointed."""
        self.last_saved_step = step
