"""``RunPosition``: where a checkpointed run continues, written the same by both drivers.

A checkpoint's ``custom_state`` holds, whichever driver wrote it:

- ``driver``: ``plain`` or ``lightning``;
- ``position``: this record (the epoch to continue, the batches and samples of it already
  trained, the optimizer steps taken, the training sampler's state);
- ``policies``: :meth:`~trainforge.engine.policies.RunPolicies.state_dict`;
- the writing driver's own extras: ``accumulator`` (plain: a partial accumulation window)
  or ``lightning`` (Lightning's loop and callback states).

So a checkpoint of either driver resumes on the other: the shared part is enough for a
continuation at an optimizer-step boundary; the extras only make the writer's own resume
exact inside an accumulation window.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

__all__ = ["ClusterPosition", "RunPosition"]


@dataclass
class RunPosition:
    """Where training continues from a checkpoint.

    Attributes:
        epoch: The epoch to continue (the next one when the checkpoint ended an epoch).
        global_step: Optimizer steps taken so far.
        batches_done: Batches of ``epoch`` already trained (0 at an epoch's start).
        samples_done: Samples of ``epoch`` already trained (this process's share).
        epochs_completed: Epochs fully trained so far.
        sampler: The training sampler's state (``ResumableSampler.state_dict``), if any.
    """

    epoch: int = 0
    global_step: int = 0
    batches_done: int = 0
    samples_done: int = 0
    epochs_completed: int = 0
    sampler: dict[str, Any] | None = field(default=None)

    def to_dict(self) -> dict[str, Any]:
        """Plain data for ``custom_state["position"]``."""
        return asdict(self)

    @classmethod
    def from_custom_state(cls, custom: Mapping[str, Any]) -> RunPosition | None:
        """The position a checkpoint's ``custom_state`` records (None when it has none)."""
        stored = custom.get("position")
        if not isinstance(stored, Mapping):
            return None
        known = {k: stored[k] for k in cls.__dataclass_fields__ if k in stored}
        position = cls(**known)
        if position.sampler is not None:
            position.sampler = dict(position.sampler)
        return position


@dataclass(frozen=True)
class ClusterPosition:
    """This process's place in the run.

    Attributes:
        environment: ``local`` (Lightning's own variables), ``torchelastic``, ``slurm``,
            ``lsf`` or ``mpi``.
        global_rank: Rank among all processes (0 owns the run folder and the tracker).
        node_rank: The node (machine) this process runs on.
        local_rank: Rank among the processes of this node.
        world_size: Processes of the run, all nodes together.
        external: Every process was started by a launcher (not by Lightning): they meet
            through ``torch.distributed`` before the fit, at ``main_address:main_port``.
        main_address: Host of rank zero.
        main_port: Port rank zero listens on.
    """

    environment: str
    global_rank: int
    node_rank: int
    local_rank: int
    world_size: int
    external: bool
    main_address: str = "127.0.0.1"
    main_port: int = 0

    @property
    def label(self) -> str:
        """``node N rank R`` for log lines (empty for a single process)."""
        if self.world_size <= 1:
            return ""
        return f"node {self.node_rank} rank {self.global_rank}"
