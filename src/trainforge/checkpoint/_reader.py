"""Read and verify checkpoint directories: manifest first, hashes next, payload last."""

from __future__ import annotations

import mmap
import os
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from trainforge.checkpoint import _layout as L
from trainforge.checkpoint._integrity import FileEntry, open_payload
from trainforge.checkpoint._layout import is_shard_file
from trainforge.checkpoint._manifest import Manifest, read_manifest
from trainforge.checkpoint._migration import upgrade_state
from trainforge.checkpoint.storage import get_storage
from trainforge.errors import CheckpointCorruptedError, CheckpointError

__all__ = ["VerifyReport", "files_present", "read_checkpoint", "verify_checkpoint"]


@dataclass(frozen=True)
class VerifyReport:
    """Outcome of verifying one checkpoint directory."""

    path: Path
    ok: bool
    problem: str | None = None
    bad_file: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """Plain data (for ``--json``)."""
        return {
            "path": str(self.path),
            "ok": self.ok,
            "problem": self.problem,
            "bad_file": self.bad_file,
        }


def read_checkpoint(
    directory: Path, *, verify: bool = True, map_location: Any = None, full_shards: bool = True
) -> tuple[Manifest, dict[str, Any]]:
    """Manifest and payload state of ``directory``, verified before deserialising.

    Every file is verified first. A sharded checkpoint's shards are unsharded into
    ``model_state_dict`` / ``optimizer_state_dict`` in this process (``full_shards``);
    without it they are left for :func:`~trainforge.checkpoint.storage.sharded.load_shards`.

    Raises:
        CheckpointCorruptedError: Manifest missing or garbled, a file missing, truncated
            or with the wrong hash.
        UnsafeCheckpointError: The payload holds pickled code.
    """
    manifest = read_manifest(directory)
    buffers: dict[str, Any] = {}
    payload = {name: e for name, e in manifest.files.items() if not is_shard_file(name)}
    try:
        for name, entry in manifest.files.items():
            buffer = _open(directory, name, entry, manifest, verify=verify)
            if name in payload:
                buffers[name] = buffer
            elif isinstance(buffer, mmap.mmap):  # a shard: verified here, read by DCP
                buffer.close()
        backend = get_storage(manifest.storage)
        state = backend.read(directory, payload, buffers, map_location=map_location)
    finally:
        for buffer in buffers.values():
            if isinstance(buffer, mmap.mmap):
                buffer.close()
    if not isinstance(state, dict):
        raise CheckpointCorruptedError(
            f"checkpoint {directory} holds a {type(state).__name__}, not a state dict",
            path=directory,
        )
    if manifest.metadata.get("sharding") and full_shards:
        from trainforge.checkpoint.storage.sharded import read_full

        unsharded = read_full(directory)
        state[L.MODEL_KEY] = unsharded.get("model")
        state[L.OPTIMIZER_KEY] = unsharded.get("optimizer")
    return manifest, upgrade_state(state, manifest.migrated_from)


def _open(directory: Path, name: str, entry: FileEntry, manifest: Manifest, *, verify: bool) -> Any:
    """``open_payload``; a bad shard's error names the rank that wrote it."""
    try:
        return open_payload(directory / name, entry, verify=verify)
    except CheckpointCorruptedError as exc:
        sharding = manifest.metadata.get("sharding") or {}
        rank = (sharding.get("files") or {}).get(name)
        if rank is None and name != L.SHARD_INDEX:
            raise
        whose = f"rank {rank}'s shard" if rank is not None else "the shard index (rank 0)"
        raise CheckpointCorruptedError(
            f"{exc.message} [{whose} of {sharding.get('world_size', '?')}]",
            path=exc.path,
            expected=exc.expected,
            actual=exc.actual,
            hint=exc.hint,
        ) from None


def verify_checkpoint(directory: Path, *, deep: bool = False) -> VerifyReport:
    """Check the manifest and every file's size and SHA256 without deserialising.

    Args:
        directory: The checkpoint directory.
        deep: Also deserialise the payload through the same safe loader as ``load``
            (a payload can match its hashes and still be refused as unsafe).
    """
    try:
        if deep:
            read_checkpoint(directory, verify=True, map_location="cpu")
            return VerifyReport(directory, True)
        manifest = read_manifest(directory)
        for name, entry in manifest.files.items():
            buffer = _open(directory, name, entry, manifest, verify=True)
            if isinstance(buffer, mmap.mmap):
                buffer.close()
    except CheckpointError as exc:
        bad = Path(exc.path).name if exc.path else None
        return VerifyReport(directory, False, exc.message, bad)
    return VerifyReport(directory, True)


def files_present(directory: Path) -> bool:
    """True when the manifest reads and lists regular files of the recorded sizes.

    A ``stat`` per file, no hashing: what retention checks after every save, cheap enough
    for checkpoints of any size (``verify_checkpoint`` also compares the hashes).
    """
    try:
        manifest = read_manifest(directory)
        for name, entry in manifest.files.items():
            info = os.lstat(directory / name)
            if not stat.S_ISREG(info.st_mode) or info.st_size != entry.size:
                return False
    except (CheckpointError, OSError):
        return False
    return True
