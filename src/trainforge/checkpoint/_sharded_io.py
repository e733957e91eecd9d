"""The checkpoint manager's collective save and load of sharded checkpoints.

Every rank of the process group calls these together (through
:meth:`CheckpointManager.save_sharded` / :meth:`CheckpointManager.load_sharded`): rank zero
decides (can the checkpoint be written, which verified checkpoint to load), every rank
agrees on it, and only then does any rank write or read a shard.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from trainforge.checkpoint import _layout as L
from trainforge.checkpoint._collective import agree, rank_and_world, write_sharded_checkpoint
from trainforge.checkpoint._conversion import plain_metrics, state_of
from trainforge.checkpoint._loading import loaded_result, restore_recorded_rng
from trainforge.checkpoint._manager_parts import ManagerParts
from trainforge.checkpoint._reader import read_checkpoint, verify_checkpoint
from trainforge.errors import CheckpointCorruptedError, CheckpointError
from trainforge.hooks import HookEvent
from trainforge.records import ConfigSource

__all__ = ["ShardedCheckpoints", "read_sharded", "write_sharded"]

logger = logging.getLogger("trainforge.checkpoint._manager")


def write_sharded(
    manager: ManagerParts,
    sharded: Mapping[str, Any],
    *,
    scheduler: Any,
    epoch: int,
    metrics: Mapping[str, Any],
    global_step: int,
    custom_state: Any,
    config: ConfigSource | None,
    protected: bool,
    notes: str | None,
) -> Path:
    """Write one sharded checkpoint with every rank (see ``CheckpointManager.save_sharded``)."""
    rank, _ = rank_and_world()
    problem: Exception | None = None
    if rank == 0:
        try:
            manager._check_writable(metrics)
        except (ValueError, CheckpointError) as exc:
            problem = exc
    agree(problem, "whether the checkpoint can be written")
    values = plain_metrics(metrics)
    if rank == 0:
        manager.hooks.fire(
            HookEvent.BEFORE_CHECKPOINT_SAVE,
            epoch=epoch,
            global_step=global_step,
            metrics=values,
        )
    state = {
        L.MODEL_KEY: None,
        L.OPTIMIZER_KEY: None,
        L.SCHEDULER_KEY: state_of(scheduler),
        L.CUSTOM_KEY: custom_state,
    }
    metadata = manager._metadata(epoch, global_step, values, config, protected, notes)
    path = write_sharded_checkpoint(
        manager.root,
        dict(sharded),
        state,
        metadata,
        storage=manager.storage,
        compression=manager.compression,
        locks=manager.locks,
    )
    if rank == 0:
        manager._after_write(path, values)
    return path


def read_sharded(
    manager: ManagerParts,
    sharded: dict[str, Any],
    path: str | Path | None,
    *,
    map_location: Any,
    restore_rng: bool,
    fallback: bool,
) -> dict[str, Any]:
    """Load a verified sharded checkpoint into ``sharded`` on every rank (see ``load_sharded``)."""
    from trainforge.checkpoint.storage.sharded import load_shards

    rank, _ = rank_and_world()
    chosen: Any = None
    if rank == 0:
        try:
            directory = manager.resolve(path)
            report = verify_checkpoint(directory)
            if not report.ok:
                manager.hooks.fire(
                    HookEvent.ON_CHECKPOINT_CORRUPTED, path=directory, error=report.problem
                )
                alternative = manager.newest_valid(exclude=directory)
                if not fallback or alternative is None:
                    raise CheckpointCorruptedError(
                        report.problem or f"{directory} failed verification",
                        path=directory / (report.bad_file or ""),
                        alternative=alternative,
                        searched=True,
                    )
                logger.warning("%s; loading %s instead", report.problem, alternative)
                directory = alternative
            chosen = str(directory)
        except CheckpointError as exc:
            chosen = exc
    directory = Path(agree(chosen, "the verified checkpoint to load"))
    manager.hooks.fire(HookEvent.BEFORE_CHECKPOINT_LOAD, path=directory)
    with manager.locks.reading(directory.name):
        # verified above by rank zero: the payload is read without hashing it again
        manifest, state = read_checkpoint(
            directory, verify=False, map_location=map_location, full_shards=False
        )
        load_shards(sharded, directory)
    result = loaded_result(directory, manifest, state)
    if restore_rng and result["rng_state"]:
        restore_recorded_rng(result)
    manager.hooks.fire(HookEvent.AFTER_CHECKPOINT_LOAD, path=directory, epoch=result["epoch"])
    return result


class ShardedCheckpoints(ManagerParts):
    """The collective save and load of :class:`CheckpointManager` (a base class of it)."""

    def save_sharded(
        self,
        *,
        sharded: Mapping[str, Any],
        scheduler: Any = None,
        epoch: int,
        metrics: Mapping[str, Any],
        global_step: int,
        custom_state: Any = None,
        config: ConfigSource | None = None,
        protected: bool = False,
        notes: str | None = None,
    ) -> Path:
        """Save a sharded checkpoint: every rank of the process group calls this together.

        Each rank writes its shards of ``sharded`` (e.g. ``{"model": ..., "optimizer":
        ...}`` from ``torch.distributed.checkpoint.state_dict.get_state_dict``) through
        ``torch.distributed.checkpoint`` into the checkpoint's temporary directory; rank
        zero then writes ``scheduler`` and ``custom_state``, the manifest listing every
        shard with its size and SHA256, renames the directory into place, and applies
        retention, pointers, the mirror and the tracker. Values other than ``sharded`` are
        rank zero's.

        Returns:
            The checkpoint directory, on every rank.

        Raises:
            ValueError: ``monitor`` is missing from ``metrics`` (on every rank).
            CheckpointSaveError: A rank failed, died or timed out; nothing was published.
        """
        return write_sharded(
            self,
            sharded,
            scheduler=scheduler,
            epoch=epoch,
            metrics=metrics,
            global_step=global_step,
            custom_state=custom_state,
            config=config,
            protected=protected,
            notes=notes,
        )

    def load_sharded(
        self,
        sharded: dict[str, Any],
        path: str | Path | None = None,
        *,
        map_location: Any = None,
        restore_rng: bool = True,
        fallback: bool = False,
    ) -> dict[str, Any]:
        """Load a sharded checkpoint into ``sharded`` in place: every rank calls this together.

        Rank zero resolves ``path`` (``last`` by default) and verifies every file of it,
        every rank's shards included, before any rank deserialises; with ``fallback`` a
        damaged checkpoint gives way to the newest complete one. Every rank then fills its
        own ``sharded`` state dicts (same keys as saved) through
        ``torch.distributed.checkpoint``, which reshards when the world size changed.

        Returns:
            As :meth:`load`, with ``model_state_dict`` and ``optimizer_state_dict`` None
            (they are in ``sharded``).

        Raises:
            CheckpointCorruptedError: A file fails verification (naming the shard and its
                rank), raised on every rank; nothing was deserialised.
        """
        return read_sharded(
            self,
            sharded,
            path,
            map_location=map_location,
            restore_rng=restore_rng,
            fallback=fallback,
        )
