"""The JSON manifest: format version, storage backend, one entry per file, metadata.

The manifest is written last and atomically; a checkpoint directory without a readable
manifest does not exist for listing or loading. Older format versions are upgraded in
memory by the registered migrations as they are read (see ``_migration``).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from trainforge.checkpoint._integrity import FileEntry, fsync_dir
from trainforge.checkpoint._layout import FORMAT_VERSION, MANIFEST_NAME
from trainforge.checkpoint._migration import upgrade_manifest
from trainforge.errors import CheckpointCorruptedError

__all__ = [
    "Manifest",
    "read_manifest",
    "write_bytes_atomic",
    "write_json_atomic",
    "write_manifest",
]


@dataclass
class Manifest:
    """Parsed manifest of one checkpoint (always in the current format)."""

    storage: str
    files: dict[str, FileEntry]
    metadata: dict[str, Any]
    format_version: int = FORMAT_VERSION
    migrated_from: int | None = None
    raw_digest: str = field(default="", compare=False)

    def to_dict(self) -> dict[str, Any]:
        """Plain data as written to ``manifest.json``."""
        return {
            "format_version": self.format_version,
            "storage": self.storage,
            "files": {name: entry.to_dict() for name, entry in sorted(self.files.items())},
            "metadata": self.metadata,
        }

    @property
    def total_size(self) -> int:
        """Bytes of all payload files together."""
        return sum(entry.size for entry in self.files.values())


def write_json_atomic(path: Path, data: Any) -> str:
    """Write JSON to ``path`` via a temporary name + fsync + rename; return its sha256."""
    payload = json.dumps(data, indent=2, sort_keys=True, allow_nan=True).encode("utf-8")
    return write_bytes_atomic(path, payload)


def write_bytes_atomic(path: Path, payload: bytes) -> str:
    """Write ``payload`` to ``path`` via a temporary name + fsync + rename; return its sha256."""
    import hashlib

    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "wb") as f:
        f.write(payload)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    fsync_dir(path.parent)
    return hashlib.sha256(payload).hexdigest()


def write_manifest(directory: Path, manifest: Manifest) -> str:
    """Write ``manifest.json`` into ``directory`` atomically; return the manifest digest."""
    digest = write_json_atomic(directory / MANIFEST_NAME, manifest.to_dict())
    manifest.raw_digest = digest
    return digest


def read_manifest(directory: Path) -> Manifest:
    """Read and (if older) upgrade the manifest of the checkpoint in ``directory``.

    Raises:
        CheckpointCorruptedError: The manifest is missing, not JSON, or lacks fields.
    """
    import hashlib

    path = directory / MANIFEST_NAME
    try:
        raw_bytes = path.read_bytes()
    except FileNotFoundError:
        raise CheckpointCorruptedError(
            f"checkpoint {directory} has no {MANIFEST_NAME} (incomplete or damaged)",
            path=path,
            hint="`trainforge ckpt prune DIR` removes incomplete checkpoints",
        ) from None
    try:
        raw = json.loads(raw_bytes)
        if not isinstance(raw, dict):
            raise ValueError("the manifest is not a JSON object")
        raw, migrated_from = upgrade_manifest(raw)
        files = {name: FileEntry.from_dict(entry) for name, entry in raw["files"].items()}
        manifest = Manifest(
            storage=str(raw["storage"]),
            files=files,
            metadata=dict(raw["metadata"]),
            format_version=int(raw["format_version"]),
            migrated_from=migrated_from,
        )
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise CheckpointCorruptedError(
            f"checkpoint manifest {path} is garbled: {exc}", path=path
        ) from None
    manifest.raw_digest = hashlib.sha256(raw_bytes).hexdigest()
    return manifest
