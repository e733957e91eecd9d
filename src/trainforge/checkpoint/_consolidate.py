"""One ordinary checkpoint from a sharded one, for export, inspection and one process.

A sharded checkpoint needs ``torch.distributed.checkpoint`` and the shard index to read.
Consolidating verifies every shard, rebuilds the whole (unsharded) state in this process
and writes it as a new checkpoint with a single payload file that
``torch.load(weights_only=True)`` reads: the model's full state dict, the optimizer state
keyed by parameter name (as ``torch.distributed.checkpoint.state_dict`` gives it), the
schedule and the custom state, with the original manifest metadata.
"""

from __future__ import annotations

from pathlib import Path

from trainforge.checkpoint._lock import CheckpointLocks
from trainforge.checkpoint._reader import read_checkpoint
from trainforge.checkpoint._targets import locate_checkpoint
from trainforge.checkpoint._writer import write_checkpoint
from trainforge.errors import CheckpointError

__all__ = ["consolidate_checkpoint"]


def consolidate_checkpoint(
    target: str | Path, output: str | Path, *, compression: str | None = None
) -> Path:
    """Write the sharded checkpoint ``target`` as one ordinary checkpoint under ``output``.

    Args:
        target: A sharded checkpoint (or its pointer, or its checkpoint directory).
        output: The checkpoint directory to write into (created if missing).
        compression: Codec of the payload file (None: a plain ``state.pt``).

    Returns:
        The new checkpoint's directory (``output/ckpt-...``).

    Raises:
        CheckpointCorruptedError: A file of ``target`` fails verification (naming the
            shard and its rank); nothing is written.
        CheckpointError: ``target`` is not sharded (it already is one ordinary file).
    """
    directory = locate_checkpoint(target)
    manifest, state = read_checkpoint(directory, verify=True, map_location="cpu")
    if not manifest.metadata.get("sharding"):
        raise CheckpointError(
            f"checkpoint {directory} is not sharded: it already is an ordinary checkpoint",
            path=directory,
            hint="load or export it as it is",
        )
    metadata = {
        key: value
        for key, value in manifest.metadata.items()
        if key not in ("sharding", "migrated_from")
    }
    metadata["notes"] = metadata.get("notes") or f"consolidated from {directory}"
    root = Path(output)
    root.mkdir(parents=True, exist_ok=True)
    return write_checkpoint(
        root,
        state,
        metadata,
        storage="torch",
        compression=compression,
        locks=CheckpointLocks(root),
    )
