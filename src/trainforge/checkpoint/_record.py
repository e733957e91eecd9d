"""The manifest as a typed record: every field of ``manifest.json`` validated on read.

A manifest is data from disk, so nothing in it is trusted. File names must be plain names
of files inside the checkpoint directory (no ``..``, no ``/``, no absolute paths), hashes
must be SHA256 hex digests, sizes non-negative integers, and every metadata field must
have its type. Validation is strict (``"3"`` is not an epoch), so a manifest with bad
metadata is one :class:`~trainforge.errors.CheckpointCorruptedError` naming the file and
the fields, never a ``TypeError`` later in listing, ranking or loading. Metadata keys this
version does not know are kept as they are (a newer trainforge of the same format may add
some) and never used.

The same validation runs before a checkpoint is written, so trainforge never writes a
manifest it could not read back.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from trainforge.checkpoint._compression import COMPRESSIONS
from trainforge.checkpoint._layout import MANIFEST_NAME

__all__ = [
    "FileRecord",
    "ManifestRecord",
    "MetadataRecord",
    "ShardingRecord",
    "check_file_name",
    "describe_validation_error",
]

_FILE_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9._+-]{0,127}$")
NonNegative = Annotated[int, Field(ge=0)]


def check_file_name(name: str) -> str:
    """``name`` if it is a plain file name trainforge could have written, else ValueError."""
    if not isinstance(name, str) or not _FILE_NAME.match(name) or name == MANIFEST_NAME:
        raise ValueError(
            f"file name {name!r} is not a plain name inside the checkpoint directory "
            "(letters, digits and . _ + -, not starting with a dot; no paths)"
        )
    return name


class FileRecord(BaseModel):
    """One payload file: its SHA256, its size in bytes and its compression (if any)."""

    model_config = ConfigDict(strict=True, extra="forbid", frozen=True)

    sha256: Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]
    size: NonNegative
    compression: str | None = None

    @field_validator("compression")
    @classmethod
    def _known_codec(cls, value: str | None) -> str | None:
        if value is not None and value not in COMPRESSIONS:
            raise ValueError(f"unknown compression {value!r} (known: {', '.join(COMPRESSIONS)})")
        return value


class GitRecord(BaseModel):
    """The git commit of the working directory at save time, and whether it was dirty."""

    model_config = ConfigDict(strict=True, extra="allow")

    commit: str | None = None
    dirty: bool | None = None


class ShardingRecord(BaseModel):
    """A sharded checkpoint: how many processes wrote it, and which rank wrote which file."""

    model_config = ConfigDict(strict=True, extra="forbid")

    world_size: Annotated[int, Field(ge=1)]
    files: dict[str, NonNegative]

    @field_validator("files")
    @classmethod
    def _plain_names(cls, value: dict[str, int]) -> dict[str, int]:
        for name in value:
            check_file_name(name)
        return value


class MetadataRecord(BaseModel):
    """Everything a manifest says about its checkpoint besides the files."""

    model_config = ConfigDict(strict=True, extra="allow")

    epoch: NonNegative
    global_step: NonNegative
    metrics: dict[str, float] = Field(default_factory=dict)
    monitor: str | None = None
    monitor_value: float | None = None
    mode: Literal["min", "max"] | None = None
    protected: bool = False
    notes: str | None = None
    rng_state: dict[str, Any] | None = None
    config: dict[str, Any] | None = None
    config_hash: str | None = None
    config_provenance: dict[str, Any] | None = None
    git: GitRecord | None = None
    versions: dict[str, str | None] | None = None
    hostname: str | None = None
    timestamp: str | None = None
    migrated_from: NonNegative | None = None
    sharding: ShardingRecord | None = None

    @field_validator("monitor_value")
    @classmethod
    def _needs_monitor(cls, value: float | None, info: Any) -> float | None:
        if value is not None and info.data.get("monitor") is None:
            raise ValueError("a monitor_value needs the monitor it measures")
        return value


class ManifestRecord(BaseModel):
    """A whole manifest in the current format."""

    model_config = ConfigDict(strict=True, extra="ignore")

    format_version: int
    storage: str
    files: dict[str, FileRecord]
    metadata: MetadataRecord

    @field_validator("storage")
    @classmethod
    def _known_storage(cls, value: str) -> str:
        from trainforge.checkpoint.storage import STORAGE_BACKENDS

        if value not in STORAGE_BACKENDS:
            raise ValueError(f"unknown storage {value!r} (known: {', '.join(STORAGE_BACKENDS)})")
        return value

    @field_validator("files")
    @classmethod
    def _plain_names(cls, value: dict[str, FileRecord]) -> dict[str, FileRecord]:
        if not value:
            raise ValueError("a checkpoint lists at least one file")
        for name in value:
            check_file_name(name)
        return value


def describe_validation_error(error: ValidationError, *, limit: int = 4) -> str:
    """``field: problem (got value)`` for the first ``limit`` problems, joined by ``; ``."""
    parts = []
    for problem in error.errors()[:limit]:
        where = ".".join(str(p) for p in problem["loc"]) or "<root>"
        message = str(problem["msg"]).removeprefix("Value error, ")
        if problem["type"] == "missing":
            parts.append(f"{where}: missing")
        else:
            got = repr(problem.get("input"))
            got = got if len(got) <= 60 else got[:57] + "..."
            parts.append(f"{where}: {message} (got {got})")
    more = len(error.errors()) - limit
    return "; ".join(parts) + (f"; and {more} more" if more > 0 else "")
