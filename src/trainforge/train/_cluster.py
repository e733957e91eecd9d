"""Processes of one run meeting before the fit: who is rank zero, and what it decided.

Rank zero opens the run folder and the tracked run and resolves the checkpoint a resumed
run continues from; every other rank must use exactly those. Two ways to hear them:

- processes Lightning itself starts (``trainer.devices=N`` on one machine) inherit the
  environment of rank zero, which sets the values as variables before the fit launches
  them;
- processes a launcher starts (torchrun, SLURM's srun, or one ``trainforge train`` per node
  with ``MASTER_ADDR``/``MASTER_PORT``/``NODE_RANK``) all start at once: they join the
  ``torch.distributed`` process group first (Lightning then uses it as it is) and rank
  zero broadcasts each value.

Every collective waits at most ``trainer.collective_timeout_s``: a rank that dies makes
the others fail with an error instead of hanging.
"""

from __future__ import annotations

import datetime
import logging
import os
from collections.abc import Callable

import torch
import torch.distributed as dist

from trainforge.config import TrainingConfig
from trainforge.engine import ClusterPosition
from trainforge.errors import ConfigError, TrainforgeError

__all__ = ["SINGLE_PROCESS", "RankZeroChannel", "join_process_group", "locate_process"]

logger = logging.getLogger(__name__)

SINGLE_PROCESS = ClusterPosition("local", 0, 0, 0, 1, external=False)
"""The position of a run of one process (the plain driver, one device)."""


def locate_process(config: TrainingConfig, devices: int, *, spawned: bool) -> ClusterPosition:
    """This process's place in the run ``config`` describes (one process for ``plain``).

    Raises:
        ConfigError: ``trainer.num_nodes`` without the variables a launcher sets, or a
            launcher that started another number of processes than the config asks for.
    """
    trainer = config.trainer
    if trainer.engine != "lightning":
        return SINGLE_PROCESS
    from trainforge.lightning import cluster_position  # the launchers Lightning knows

    position, issues = cluster_position(trainer.num_nodes, devices, spawned=spawned)
    if issues or position is None:
        raise ConfigError(
            "this process cannot find its place in the run; nothing was trained",
            issues=issues,
        )
    return position


def _backend(config: TrainingConfig, position: ClusterPosition) -> str:
    accelerator = config.trainer.accelerator
    if accelerator in ("gpu", "cuda", "auto") and torch.cuda.is_available():
        torch.cuda.set_device(position.local_rank)
        # tensors on the GPU go through NCCL, CPU tensors (object broadcasts) through gloo
        return "cpu:gloo,cuda:nccl"
    return "gloo"


def join_process_group(config: TrainingConfig, position: ClusterPosition) -> None:
    """Join the run's process group now, for processes a launcher started.

    Lightning's strategies find the group initialised and use it as it is.

    Raises:
        TrainforgeError: Rank zero cannot be reached within ``trainer.collective_timeout_s``.
    """
    if not position.external or dist.is_initialized():
        return
    timeout = datetime.timedelta(seconds=config.trainer.collective_timeout_s)
    where = f"{position.main_address}:{position.main_port}"
    logger.info(
        "joining the run at %s as %s of %d processes", where, position.label, position.world_size
    )
    try:
        dist.init_process_group(
            _backend(config, position),
            init_method=f"tcp://{where}",
            rank=position.global_rank,
            world_size=position.world_size,
            timeout=timeout,
        )
    except (RuntimeError, ValueError) as exc:  # DistNetworkError, DistStoreError: RuntimeErrors
        raise TrainforgeError(
            f"{position.label} could not join the run at {where}: {exc}",
            hint="check MASTER_ADDR/MASTER_PORT point at rank zero's machine, that every node "
            "was started, and trainer.collective_timeout_s",
        ) from None


class RankZeroChannel:
    """Values rank zero decides (run folder, resume checkpoint), heard by every rank."""

    def __init__(self, position: ClusterPosition) -> None:
        self.position = position

    def share(self, variable: str, decide: Callable[[], str | None]) -> str | None:
        """Rank zero runs ``decide``; every rank returns its value.

        Processes Lightning starts read ``variable`` (rank zero sets it before the fit);
        processes a launcher started receive it through the process group.
        """
        position = self.position
        if position.world_size <= 1 or (position.global_rank == 0 and not position.external):
            return decide()
        if position.external:
            value = [decide() if position.global_rank == 0 else None]
            try:
                dist.broadcast_object_list(value, src=0)
            except RuntimeError as exc:
                raise TrainforgeError(
                    f"{position.label} did not hear {variable} from rank zero: {exc}",
                    hint="rank zero failed or stopped first: see its log",
                ) from None
            return value[0]
        return announced(variable, position)


def announced(variable: str, position: ClusterPosition) -> str:
    """What rank zero announced to the processes Lightning started for the other ranks."""
    value = os.environ.get(variable)
    if not value:
        raise TrainforgeError(
            f"this process is rank {position.global_rank} of a data-parallel run, but rank "
            f"zero did not announce {variable}",
            hint="start data-parallel training with 'trainforge train trainer.strategy=ddp "
            "trainer.devices=N' and let it start the other processes, or start every process "
            "with a launcher (torchrun, srun) that sets MASTER_ADDR, MASTER_PORT and RANK",
        )
    return value
