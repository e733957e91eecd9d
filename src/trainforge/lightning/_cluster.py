"""Where this process sits in a run of several processes and nodes, as Lightning sees it.

Lightning picks a cluster environment from the variables a launcher sets (torchrun's
``TORCHELASTIC_RUN_ID``, SLURM's ``SLURM_NTASKS``, LSF, MPI; otherwise its own
``MASTER_ADDR`` / ``MASTER_PORT`` / ``NODE_RANK`` / ``LOCAL_RANK`` scheme). trainforge has
to know the answer before the fit starts: rank zero alone opens the run folder and the
tracked run, and the other ranks must wait for it. :func:`cluster_position` asks the same
environment classes, in the same order, so both agree.
"""

from __future__ import annotations

import os

from lightning.fabric.plugins.environments import (
    ClusterEnvironment,
    LightningEnvironment,
    LSFEnvironment,
    MPIEnvironment,
    SLURMEnvironment,
    TorchElasticEnvironment,
)

from trainforge.engine import ClusterPosition
from trainforge.errors import ConfigIssue

__all__ = ["ClusterPosition", "cluster_position"]

# Lightning's own order (TorchElastic first: it can run inside a SLURM allocation)
_ENVIRONMENTS: tuple[type[ClusterEnvironment], ...] = (
    TorchElasticEnvironment,
    SLURMEnvironment,
    LSFEnvironment,
    MPIEnvironment,
)
_NAMES = {
    TorchElasticEnvironment: "torchelastic",
    SLURMEnvironment: "slurm",
    LSFEnvironment: "lsf",
    MPIEnvironment: "mpi",
}


def _local(
    num_nodes: int, devices: int, spawned: bool
) -> tuple[ClusterPosition | None, list[ConfigIssue]]:
    """Lightning's own scheme: one process per node started by hand, or LOCAL_RANK set."""
    world = num_nodes * devices
    env = LightningEnvironment()
    given_local = "LOCAL_RANK" in os.environ
    external = world > 1 and not spawned and (given_local or num_nodes > 1)
    issues = []
    if external:
        missing = [name for name in ("MASTER_ADDR", "MASTER_PORT") if name not in os.environ]
        if num_nodes > 1 and "NODE_RANK" not in os.environ and "GROUP_RANK" not in os.environ:
            missing.append("NODE_RANK")
        if devices > 1 and not given_local:  # Lightning cannot start a later node's processes
            missing.append("LOCAL_RANK")
        if missing:
            issues.append(
                ConfigIssue(
                    "trainer.num_nodes",
                    f"a run of {world} processes on {num_nodes} node(s) needs the variables a "
                    f"launcher sets, and {', '.join(missing)} "
                    f"{'is' if len(missing) == 1 else 'are'} not set: start each node with "
                    "MASTER_ADDR (rank zero's host), MASTER_PORT and NODE_RANK (0, 1, ...) and, "
                    "with several devices per node, one process per device with LOCAL_RANK; or "
                    "use torchrun or SLURM's srun",
                )
            )
    given_world = os.environ.get("WORLD_SIZE")
    if external and given_world is not None and given_world.isdigit() and int(given_world) != world:
        issues.append(
            ConfigIssue(
                "trainer.num_nodes",
                f"WORLD_SIZE={given_world} but trainer.num_nodes={num_nodes} x trainer.devices="
                f"{devices} makes {world} processes: make them agree",
            )
        )
    if issues:
        return None, issues
    rank = env.node_rank() * devices + env.local_rank()
    position = ClusterPosition(
        environment="local",
        global_rank=rank if world > 1 else 0,
        node_rank=env.node_rank() if world > 1 else 0,
        local_rank=env.local_rank() if world > 1 else 0,
        world_size=world,
        external=external,
        main_address=env.main_address,
        main_port=int(os.environ.get("MASTER_PORT", 0) or 0),
    )
    return position, []


def cluster_position(
    num_nodes: int, devices: int, *, spawned: bool = False
) -> tuple[ClusterPosition | None, list[ConfigIssue]]:
    """This process's place in a run of ``num_nodes`` x ``devices`` processes.

    Args:
        num_nodes: ``trainer.num_nodes``.
        devices: Processes per node.
        spawned: Lightning started this process for rank zero of its node (rank zero
            announced the run to it), so it is not one a launcher started.

    Returns:
        The position, or None and every problem with the launcher's variables (each
        naming the variable and how to set it).
    """
    world = num_nodes * devices
    for kind in _ENVIRONMENTS:
        if not kind.detect():
            continue
        try:
            env = kind()
        except RuntimeError as exc:  # e.g. SLURM's --ntasks without --ntasks-per-node
            return None, [ConfigIssue("trainer.num_nodes", f"{_NAMES[kind]}: {exc}")]
        reported = env.world_size()
        if reported != world:
            return None, [
                ConfigIssue(
                    "trainer.num_nodes",
                    f"the {_NAMES[kind]} launcher started {reported} processes but "
                    f"trainer.num_nodes={num_nodes} x trainer.devices={devices} makes {world}: "
                    "set trainer.num_nodes and trainer.devices to the launcher's nodes and "
                    "processes per node",
                )
            ]
        return (
            ClusterPosition(
                environment=_NAMES[kind],
                global_rank=env.global_rank(),
                node_rank=env.node_rank(),
                local_rank=env.local_rank(),
                world_size=world,
                external=world > 1,
                main_address=env.main_address,
                main_port=env.main_port,
            ),
            [],
        )
    return _local(num_nodes, devices, spawned)
