"""The JSON manifest: format version, storage backend, one entry per file, metadata.

The manifest is written last and atomically; a checkpoint directory without a readable
manifest does not exist for listing or loading. Older format versions are upgraded in
memory by the registered migrations as they are read (see ``_migration``), and every
field is then validated into a typed record (see ``_record``).
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from trainforge.checkpoint._integrity import FileEntry, fsync_dir, read_regular
from trainforge.checkpoint._layout import FORMAT_VERSION, MANIFEST_NAME
from trainforge.checkpoint._migration import manifest_version, upgrade_manifest
from trainforge.checkpoint._record import ManifestRecord, describe_validation_error
from trainforge.errors import CheckpointCorruptedError

__all__ = [
    "Manifest",
    "read_manifest",
    "validate_manifest",
    "write_bytes_atomic",
    "write_json_atomic",
    "write_manifest",
]

MANIFEST_LIMIT = 64 << 20
"""Largest manifest read (bytes): far above any real one, small enough to hold in memory."""


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
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "wb") as f:
        f.write(payload)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    fsync_dir(path.parent)
    return hashlib.sha256(payload).hexdigest()


def validate_manifest(data: dict[str, Any]) -> ManifestRecord:
    """The typed record of a current-format manifest.

    Raises:
        ValueError: A field is missing or has the wrong type or value (all named).
    """
    try:
        return ManifestRecord.model_validate(data)
    except ValidationError as exc:
        raise ValueError(describe_validation_error(exc)) from None


def write_manifest(directory: Path, manifest: Manifest) -> str:
    """Write ``manifest.json`` into ``directory`` atomically; return the manifest digest."""
    digest = write_json_atomic(directory / MANIFEST_NAME, manifest.to_dict())
    manifest.raw_digest = digest
    return digest


def read_manifest(directory: Path) -> Manifest:
    """Read, upgrade (if older) and validate the manifest of the checkpoint in ``directory``.

    Raises:
        CheckpointCorruptedError: The manifest is missing, not a regular file, not JSON, of
            a format newer than this trainforge reads, or a field is missing or invalid
            (the message names the file and every bad field).
    """
    path = directory / MANIFEST_NAME
    try:
        raw_bytes = read_regular(path, limit=MANIFEST_LIMIT, what="manifest")
    except CheckpointCorruptedError as exc:
        if "is missing" not in exc.message:
            raise
        raise CheckpointCorruptedError(
            f"checkpoint {directory} has no {MANIFEST_NAME} (incomplete or damaged)",
            path=path,
            hint="`trainforge ckpt prune DIR` removes incomplete checkpoints",
        ) from None
    try:
        raw = json.loads(raw_bytes)
        if not isinstance(raw, dict):
            raise ValueError("the manifest is not a JSON object")
        version = manifest_version(raw)
        if version > FORMAT_VERSION:
            raise CheckpointCorruptedError(
                f"checkpoint manifest {path} has format_version {version}, newer than this "
                f"trainforge supports ({FORMAT_VERSION})",
                path=path,
                hint="upgrade trainforge to read it; nothing prunes it unless asked to",
            )
        raw, migrated_from = upgrade_manifest(raw)
    except CheckpointCorruptedError:
        raise
    except (ValueError, KeyError, TypeError, AttributeError, RecursionError) as exc:
        problem = f"missing {exc.args[0]}" if isinstance(exc, KeyError) and exc.args else exc
        raise CheckpointCorruptedError(
            f"checkpoint manifest {path} is garbled: {problem}", path=path
        ) from None
    try:
        record = validate_manifest(raw)
    except ValueError as exc:
        raise CheckpointCorruptedError(
            f"checkpoint manifest {path} is invalid: {exc}", path=path
        ) from None
    files = {
        name: FileEntry(entry.sha256, entry.size, entry.compression)
        for name, entry in record.files.items()
    }
    manifest = Manifest(
        storage=record.storage,
        files=files,
        metadata=record.metadata.model_dump(),
        format_version=record.format_version,
        migrated_from=migrated_from,
    )
    manifest.raw_digest = hashlib.sha256(raw_bytes).hexdigest()
    return manifest
