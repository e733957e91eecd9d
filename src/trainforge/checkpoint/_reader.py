"""Read and verify checkpoint directories: manifest first, hashes next, payload last."""

from __future__ import annotations

import mmap
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from trainforge.checkpoint._integrity import open_payload
from trainforge.checkpoint._manifest import Manifest, read_manifest
from trainforge.checkpoint._migration import upgrade_state
from trainforge.checkpoint.storage import get_storage
from trainforge.errors import CheckpointCorruptedError, CheckpointError

__all__ = ["VerifyReport", "read_checkpoint", "verify_checkpoint"]


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
    directory: Path, *, verify: bool = True, map_location: Any = None
) -> tuple[Manifest, dict[str, Any]]:
    """Manifest and payload state of ``directory``, verified before deserialising.

    Raises:
        CheckpointCorruptedError: Manifest missing or garbled, a file missing, truncated
            or with the wrong hash.
        UnsafeCheckpointError: The payload holds pickled code.
    """
    manifest = read_manifest(directory)
    buffers: dict[str, Any] = {}
    try:
        for name, entry in manifest.files.items():
            buffers[name] = open_payload(directory / name, entry, verify=verify)
        backend = get_storage(manifest.storage)
        state = backend.read(directory, manifest.files, buffers, map_location=map_location)
    finally:
        for buffer in buffers.values():
            if isinstance(buffer, mmap.mmap):
                buffer.close()
    if not isinstance(state, dict):
        raise CheckpointCorruptedError(
            f"checkpoint {directory} holds a {type(state).__name__}, not a state dict",
            path=directory,
        )
    return manifest, upgrade_state(state, manifest.migrated_from)


def verify_checkpoint(directory: Path) -> VerifyReport:
    """Check the manifest and every file's size and SHA256 without deserialising."""
    try:
        manifest = read_manifest(directory)
        for name, entry in manifest.files.items():
            buffer = open_payload(directory / name, entry, verify=True)
            if isinstance(buffer, mmap.mmap):
                buffer.close()
    except CheckpointError as exc:
        bad = Path(exc.path).name if getattr(exc, "path", None) else None
        return VerifyReport(directory, False, exc.message, bad)
    return VerifyReport(directory, True)
