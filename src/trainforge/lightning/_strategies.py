"""``trainer.strategy`` -> the Lightning strategy object, with the run's collective timeout.

Lightning accepts a strategy name, but a name cannot carry the timeout of its collectives:
with the default (30 minutes) a process whose peer died waits that long. Building the
object here gives every collective ``trainer.collective_timeout_s``.
"""

from __future__ import annotations

import datetime

from lightning.pytorch.strategies import DDPStrategy, ModelParallelStrategy, Strategy

__all__ = ["build_strategy"]


def build_strategy(name: str, *, processes: int, timeout_s: float) -> str | Strategy:
    """The strategy for ``trainer.strategy=name`` over ``processes`` (all nodes together).

    Args:
        name: ``auto``, ``ddp``, ``ddp_find_unused_parameters_true`` or ``model_parallel``
            (FSDP2 over every process, sharded checkpoints through
            ``torch.distributed.checkpoint``).
        processes: Processes of the run; ``auto`` over several is DDP, as in Lightning.
        timeout_s: Seconds each collective waits for the other processes.
    """
    timeout = datetime.timedelta(seconds=timeout_s)
    if name == "model_parallel":
        return ModelParallelStrategy(
            data_parallel_size=processes,
            tensor_parallel_size=1,
            save_distributed_checkpoint=True,
            timeout=timeout,
        )
    if name in ("ddp", "ddp_find_unused_parameters_true") or (name == "auto" and processes > 1):
        return DDPStrategy(
            timeout=timeout, find_unused_parameters=name == "ddp_find_unused_parameters_true"
        )
    return name
