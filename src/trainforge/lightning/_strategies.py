"""``trainer.strategy`` -> the Lightning strategy object, with the run's collective timeout.

Lightning accepts a strategy name, but a name cannot carry the timeout of its collectives:
with the default (30 minutes) a process whose peer died waits that long. Building the
object here gives every collective ``trainer.collective_timeout_s``.
"""

from __future__ import annotations

import datetime
from collections.abc import Sequence

from lightning.pytorch.strategies import (
    DDPStrategy,
    FSDPStrategy,
    ModelParallelStrategy,
    Strategy,
)
from torch import nn

from trainforge.engine import ShardPlan
from trainforge.engine._sharding import DTYPES

__all__ = ["build_strategy"]


def build_strategy(
    name: str,
    *,
    processes: int,
    timeout_s: float,
    plan: ShardPlan | None = None,
    units: Sequence[nn.Module] = (),
) -> str | Strategy:
    """The strategy for ``trainer.strategy=name`` over ``processes`` (all nodes together).

    Args:
        name: ``auto``, ``ddp``, ``ddp_find_unused_parameters_true``, ``model_parallel``
            (FSDP2 over every process; the module shards itself by ``plan``) or ``fsdp``
            (Lightning's FSDP, CUDA only: every class of ``units`` wrapped, ``plan``'s mixed
            precision and activation checkpointing).
        processes: Processes of the run; ``auto`` over several is DDP, as in Lightning.
        timeout_s: Seconds each collective waits for the other processes.
        plan: The sharding options of ``fsdp``.
        units: The submodules ``fsdp`` wraps as units (their classes are its wrap policy).
    """
    timeout = datetime.timedelta(seconds=timeout_s)
    if name == "fsdp":
        return _fsdp(plan or ShardPlan(), units, timeout)
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


def _fsdp(plan: ShardPlan, units: Sequence[nn.Module], timeout: datetime.timedelta) -> Strategy:
    """Lightning's ``FSDPStrategy`` for ``plan``: the unit classes wrapped (and checkpointed)."""
    from torch.distributed.fsdp import MixedPrecision

    classes = {type(unit) for unit in units}
    mixed = None
    if plan.param_dtype or plan.reduce_dtype:
        param = DTYPES[plan.param_dtype] if plan.param_dtype else None
        reduce = DTYPES[plan.reduce_dtype] if plan.reduce_dtype else param
        mixed = MixedPrecision(param_dtype=param, reduce_dtype=reduce)
    return FSDPStrategy(
        auto_wrap_policy=classes or None,
        activation_checkpointing_policy=classes if plan.activation_checkpointing else None,
        mixed_precision=mixed,
        timeout=timeout,
    )
