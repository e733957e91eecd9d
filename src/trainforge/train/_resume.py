"""Resume, written once for both drivers: find, validate and read the checkpoint to continue.

``--resume last|best|PATH`` names a checkpoint; :func:`open_resume` checks it against the
config and the model (the typed diff of ``safe`` / ``risky`` / ``breaking`` changes) and
returns a :class:`ResumePoint`: the model, optimizer and schedule states, where the run
continues (:class:`~trainforge.engine.RunPosition`) and the policies' state. Either driver
continues a checkpoint of either driver from it, or refuses with the reason.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from torch import nn

from trainforge.checkpoint import CheckpointManager, resolve_checkpoint
from trainforge.config import TrainingConfig
from trainforge.engine import RunPosition
from trainforge.errors import CheckpointNotFoundError, ResumeError
from trainforge.hooks import HookManager
from trainforge.train._build import data_parallel_size

__all__ = ["ResumePoint", "find_resume_checkpoint", "open_resume"]

logger = logging.getLogger(__name__)


@dataclass
class ResumePoint:
    """A validated checkpoint to continue from, in the form both drivers read.

    Attributes:
        path: The checkpoint directory.
        manager: A read-only manager of its folder (for Lightning's ``.ckpt`` export).
        checkpoint: What :meth:`CheckpointManager.load` returned.
        position: Where training continues.
        driver: ``plain`` or ``lightning``: which driver wrote it.
        policies: The policies' saved state.
        warm_start: The model changed (``resume_mode=warn``): only fitting weights were
            loaded; the optimizer, schedule, position and policies start fresh.
    """

    path: Path
    manager: CheckpointManager
    checkpoint: dict[str, Any]
    position: RunPosition
    driver: str
    policies: Mapping[str, Any] = field(default_factory=dict)
    warm_start: bool = False

    @property
    def custom(self) -> Mapping[str, Any]:
        """The checkpoint's ``custom_state``."""
        return self.checkpoint.get("custom_state") or {}

    def describe(self) -> str:
        """``<path> (epoch E, step S, written by the D driver)`` for messages."""
        return (
            f"{self.path} (epoch {self.checkpoint['epoch']}, step {self.position.global_step}, "
            f"written by the {self.driver} driver)"
        )

    def lightning_state(self) -> Mapping[str, Any] | None:
        """Lightning's loop and callback states, when the Lightning driver wrote it."""
        state = self.custom.get("lightning")
        return state if isinstance(state, Mapping) and state.get("loops") is not None else None


def find_resume_checkpoint(target: str | Path, output_dir: str | Path) -> tuple[Path, str]:
    """Where ``--resume`` points: (checkpoint directory of a manager, target inside it).

    ``last`` / ``best`` mean: of the most recent run under ``output_dir`` that has one.
    A path is resolved by :func:`~trainforge.checkpoint.resolve_checkpoint` (a directory
    of checkpoints, a pointer file, one checkpoint, its manifest or payload file).
    """
    target = str(target)
    if target in ("last", "best"):
        candidates = sorted(
            Path(output_dir).glob(f"*/checkpoints/{target}"),
            key=lambda p: p.stat().st_mtime,
            reverse=True,
        )
        if not candidates:
            raise CheckpointNotFoundError(
                f"no '{target}' checkpoint under {output_dir}/*/checkpoints",
                path=output_dir,
                hint="train once first, or pass --resume PATH to a checkpoint directory",
            )
        return candidates[0].parent, target
    return resolve_checkpoint(target)


def open_resume(
    config: TrainingConfig,
    target: str | Path,
    hooks: HookManager,
    *,
    allow_changes: Sequence[str],
    model: nn.Module,
) -> ResumePoint:
    """Validate and load the checkpoint ``--resume`` names, for either driver.

    Allowed breaking changes are tagged ``resume`` in the config's provenance. A changed
    model under ``checkpoint.resume_mode=warn`` is warm-started here (fitting tensors only).

    Raises:
        CheckpointNotFoundError: Nothing at ``target``.
        ResumeError: The checkpoint does not fit the config or the model, or records no
            position to continue from.
    """
    directory, name = find_resume_checkpoint(target, config.run.output_dir)
    ckpt = config.checkpoint
    # read-only use: retention never runs because nothing is saved through it
    manager = CheckpointManager(directory, monitor=ckpt.monitor, mode=ckpt.mode, hooks=hooks)
    result = manager.resume(
        name, config, mode=ckpt.resume_mode, allow_changes=allow_changes, model=model
    )
    for change in result.allowed_changes:
        config.tag(change.key, "resume", f"allowed change from {change.old!r}")
    checkpoint = result.checkpoint
    custom = checkpoint.get("custom_state") or {}
    path = Path(checkpoint["path"])
    if result.model_mismatches:
        _warm_start(model, checkpoint, result.model_mismatches)
        return ResumePoint(path, manager, checkpoint, RunPosition(), "none", warm_start=True)
    position = RunPosition.from_custom_state(custom)
    if position is None:
        raise ResumeError(
            f"{path} records no training position (it was not written by a trainforge "
            "training run, or by an older version): it can be loaded, not resumed",
            path=path,
            hint="start a new run from its weights with CheckpointManager.load, or resume "
            "a checkpoint written by 'trainforge train'",
        )
    _check_world_size(path, position, data_parallel_size(config))
    point = ResumePoint(
        path,
        manager,
        checkpoint,
        position,
        str(custom.get("driver", "plain")),
        policies=custom.get("policies") or {},
    )
    _check_epochs_left(config, point)
    logger.info("resuming from %s", point.describe())
    return point


def _check_epochs_left(config: TrainingConfig, point: ResumePoint) -> None:
    """Refuse a checkpoint ``trainer.max_epochs`` stops before (a drop to below it).

    Resuming a run that ended exactly at ``max_epochs`` trains nothing more, as before;
    a checkpoint past that epoch (or in the middle of it) cannot continue under it.
    """
    max_epochs = config.trainer.max_epochs
    position = point.position
    if max_epochs is None or position.epoch < max_epochs:
        return
    if position.epoch == max_epochs and position.batches_done == 0:
        return
    if position.batches_done:
        where = f"epoch {position.epoch} ({position.batches_done} batches into it)"
    else:
        where = f"the end of epoch {position.epoch - 1} ({position.epoch} epochs trained)"
    raise ResumeError(
        f"the checkpoint is at {where}, but trainer.max_epochs is {max_epochs}: a run of "
        f"{max_epochs} epochs ends after epoch {max_epochs - 1} (epochs count from 0), "
        f"before the checkpoint; checkpoint: {point.describe()}",
        key="trainer.max_epochs",
        path=point.path,
        hint=f"raise trainer.max_epochs to {position.epoch + 1} or more to continue it, or "
        "start a fresh run (without --resume)",
    )


def _check_world_size(path: Path, position: RunPosition, processes: int) -> None:
    """A mid-epoch position is per process: it continues only on as many processes.

    Raises:
        ResumeError: The checkpoint is inside an epoch and was written by another number
            of data-parallel processes than this run has.
    """
    sampler = position.sampler or {}
    written = int(sampler.get("num_replicas", 1))
    if written == processes or not int(sampler.get("position", 0)):
        return
    raise ResumeError(
        f"{path} was written inside epoch {position.epoch} (after {position.batches_done} "
        f"batches) by {written} data-parallel process{'es' if written > 1 else ''}, and this "
        f"run has {processes}: the position in the epoch is each process's own share of it, "
        "which does not carry over to another number of processes",
        path=path,
        hint=f"resume it with trainer.num_nodes x trainer.devices = {written}, or resume from "
        "a checkpoint written at an epoch end (trainforge ckpt list shows the epoch of each)",
    )


def _warm_start(model: nn.Module, checkpoint: dict[str, Any], mismatches: Sequence[str]) -> None:
    """Resume of a changed model (``resume_mode=warn``): load the tensors that still fit.

    The optimizer, the schedule and the loop position belong to the old shapes, so the
    run starts them fresh, as training from these weights.
    """
    current = model.state_dict()
    fitting = {
        k: v
        for k, v in checkpoint["model_state_dict"].items()
        if k in current and tuple(current[k].shape) == tuple(v.shape)
    }
    model.load_state_dict(fitting, strict=False)
    logger.warning(
        "resuming a different model: loaded %d of %d tensors; optimizer and schedule "
        "start fresh; mismatches: %s",
        len(fitting),
        len(current),
        "; ".join(mismatches),
    )
