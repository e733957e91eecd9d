"""Sharded checkpoints: written and read by every rank together, published by rank zero.

A sharded model has no rank holding all of its state, so every rank writes its part:

1. rank zero checks the metadata and names the temporary directory; every rank hears it;
2. every rank writes its shards there through ``torch.distributed.checkpoint``, which
   gathers all ranks' results before its coordinator writes the shard index: when it
   returns, every shard is on disk (fsynced);
3. every rank hashes the shard files it wrote; rank zero gathers the entries, writes the
   replicated part (schedule, position, policies) through the storage backend, then the
   manifest listing every file with its size and SHA256, and renames the directory into
   place under the directory lock, exactly as a single-process save does;
4. every rank hears the final name (or rank zero's error).

So a checkpoint whose manifest is not complete does not exist, whichever rank dies when.
A rank that dies makes the others' collectives fail within the process group's timeout;
rank zero then removes the temporary directory. Loading is collective too: rank zero
verifies every file before any rank deserialises a byte.

``torch`` is imported when these functions run, never when ``trainforge.checkpoint`` is.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import uuid
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from trainforge.checkpoint._integrity import FileEntry, fsync_dir
from trainforge.checkpoint._layout import TEMP_PREFIX, checkpoint_name, shard_rank
from trainforge.checkpoint._lock import CheckpointLocks
from trainforge.checkpoint._manifest import Manifest, write_manifest
from trainforge.checkpoint._record import MetadataRecord, describe_validation_error
from trainforge.checkpoint._writer import next_index
from trainforge.checkpoint.storage import get_storage
from trainforge.errors import CheckpointError, CheckpointSaveError

__all__ = ["agree", "rank_and_world", "write_sharded_checkpoint"]

logger = logging.getLogger(__name__)


def rank_and_world() -> tuple[int, int]:
    """This process's rank and the world size of the default process group (0, 1 without)."""
    import torch.distributed as dist

    if not dist.is_available() or not dist.is_initialized():
        return 0, 1
    return dist.get_rank(), dist.get_world_size()


def agree(value: Any, what: str) -> Any:
    """Rank zero's ``value`` on every rank (a collective); an exception is re-raised on all.

    Rank zero passes what it computed or the exception it caught; every other rank
    passes None and receives it.
    """
    import torch.distributed as dist

    rank, world = rank_and_world()
    if world == 1:
        if isinstance(value, BaseException):
            raise value
        return value
    box = [value if rank == 0 else None]
    try:
        dist.broadcast_object_list(box, src=0)
    except RuntimeError as exc:  # a peer died or the timeout passed
        raise CheckpointSaveError(
            f"rank {rank}: the ranks could not agree on {what}: {exc}",
            hint="another rank failed first: see its log; earlier checkpoints are intact",
        ) from None
    if isinstance(box[0], BaseException):
        raise box[0]
    return box[0]


def _name_temp(root: Path, metadata: dict[str, Any]) -> str:
    try:  # never write a manifest this version could not read back
        MetadataRecord.model_validate(metadata)
    except ValidationError as exc:
        raise ValueError(f"cannot save this checkpoint: {describe_validation_error(exc)}") from None
    epoch, step = int(metadata["epoch"]), int(metadata["global_step"])
    return f"{TEMP_PREFIX}epoch{epoch:04d}-step{step:06d}-{uuid.uuid4().hex[:12]}"


def _publish(
    root: Path,
    temp: Path,
    shards: dict[str, FileEntry],
    state: dict[str, Any],
    metadata: dict[str, Any],
    *,
    storage: str,
    compression: str | None,
    locks: CheckpointLocks,
    world: int,
) -> Path:
    """Rank zero: the replicated payload, the manifest of every file, the atomic rename."""
    from trainforge.checkpoint._compression import compression_for

    backend = get_storage(storage)
    files = backend.write(state, temp, compression=compression_for(compression))
    files.update(shards)
    owners = {name: shard_rank(name) for name in shards}
    metadata = {
        **metadata,
        "sharding": {
            "world_size": world,
            "files": {name: rank for name, rank in owners.items() if rank is not None},
        },
    }
    write_manifest(temp, Manifest(storage=backend.name, files=files, metadata=metadata))
    fsync_dir(temp)
    epoch, step = int(metadata["epoch"]), int(metadata["global_step"])
    with locks.exclusive():
        final = root / checkpoint_name(next_index(root), epoch, step)
        os.rename(temp, final)
        fsync_dir(root)
    return final


def write_sharded_checkpoint(
    root: Path,
    sharded: dict[str, Any],
    state: dict[str, Any],
    metadata: dict[str, Any],
    *,
    storage: str,
    compression: str | None,
    locks: CheckpointLocks,
) -> Path:
    """Every rank writes its shards of ``sharded``; rank zero publishes (a collective).

    Args:
        root: The checkpoint directory (shared by every rank's machine).
        sharded: This rank's state dicts of sharded objects (DTensors, Stateful objects).
        state: The replicated part, written by rank zero through the storage backend.
        metadata: The manifest metadata (rank zero's is used).
        storage: Backend of the replicated part.
        compression: Codec of the replicated part (shards are stored as DCP writes them).
        locks: The directory's locks.

    Returns:
        The checkpoint directory, on every rank.

    Raises:
        ValueError: ``metadata`` would not make a valid manifest (on every rank).
        CheckpointSaveError: A rank failed or died while writing; the temporary directory
            is removed and earlier checkpoints are intact.
    """
    import torch.distributed as dist

    from trainforge.checkpoint.storage.sharded import write_shards

    rank, world = rank_and_world()
    with contextlib.ExitStack() as stack:
        proposal: Any = None
        if rank == 0:  # the directory exists before any rank hears its name
            try:
                name = _name_temp(root, metadata)
                stack.enter_context(locks.writing(name))
                (root / name).mkdir()
                proposal = name
            except ValueError as exc:
                proposal = exc
            except OSError as exc:
                proposal = _save_error(exc, rank, metadata)
        temp = root / agree(proposal, "the checkpoint's temporary directory")
        written: Any = None
        try:
            if rank == 0:
                written = _write_on_rank_zero(
                    root, temp, sharded, state, metadata, storage, compression, locks, world
                )
            else:
                dist.gather_object(write_shards(sharded, temp), None, dst=0)
        except (OSError, RuntimeError, CheckpointError) as exc:
            logger.error("rank %d could not write its part of %s: %s", rank, temp.name, exc)
            written = exc if isinstance(exc, CheckpointError) else _save_error(exc, rank, metadata)
            if rank != 0:
                raise written from exc
        except BaseException:
            if rank == 0:
                shutil.rmtree(temp, ignore_errors=True)
            raise
        if rank == 0 and isinstance(written, BaseException):
            shutil.rmtree(temp, ignore_errors=True)
    return Path(agree(str(written) if isinstance(written, Path) else written, "the checkpoint"))


def _write_on_rank_zero(
    root: Path,
    temp: Path,
    sharded: dict[str, Any],
    state: dict[str, Any],
    metadata: dict[str, Any],
    storage: str,
    compression: str | None,
    locks: CheckpointLocks,
    world: int,
) -> Path:
    import torch.distributed as dist

    from trainforge.checkpoint.storage.sharded import write_shards

    mine = write_shards(sharded, temp)
    gathered: list[Any] = [None] * world
    if world > 1:
        dist.gather_object(mine, gathered, dst=0)
    else:
        gathered = [mine]
    shards: dict[str, FileEntry] = {}
    for entries in gathered:
        shards.update(entries)
    return _publish(
        root,
        temp,
        shards,
        state,
        metadata,
        storage=storage,
        compression=compression,
        locks=locks,
        world=world,
    )


def _save_error(exc: BaseException, rank: int, metadata: dict[str, Any]) -> CheckpointSaveError:
    epoch, step = metadata.get("epoch"), metadata.get("global_step")
    error = CheckpointSaveError(
        f"sharded checkpoint epoch {epoch} step {step} failed on rank {rank}: "
        f"{type(exc).__name__}: {exc}",
        hint="a rank died, timed out or could not write (disk full, permissions); nothing "
        "was published and earlier checkpoints are intact",
    )
    error.__cause__ = exc
    return error
