"""Format migrations: upgrade checkpoints written by older versions of trainforge.

Each :class:`Migration` takes a manifest (and the loaded state) from one
``format_version`` to the next. Reading applies them in memory, in order, so old
checkpoints load unchanged on disk; ``trainforge ckpt migrate`` rewrites them.

Format 1 (trainforge 0.0.x) kept one pickle ``checkpoint.pt`` holding ``model``,
``optimizer``, ``scheduler`` and ``extra``, and a flat manifest::

    {"version": 1, "file": "checkpoint.pt", "sha256": "...", "size": 123,
     "epoch": 3, "step": 300, "metrics": {"val_loss": 0.5}, "created": 1764000000.0}

Format 2 (current) lists every file with its hash, size and compression, names the
storage backend, and keeps all metadata under ``metadata``; the payload uses the
``*_state_dict`` keys.
"""

from __future__ import annotations

import datetime as _dt
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from trainforge.registry import Registry

__all__ = ["MIGRATIONS", "Migration", "manifest_version", "upgrade_manifest", "upgrade_state"]


@dataclass(frozen=True)
class Migration:
    """Upgrade from ``from_version`` to ``from_version + 1``: manifest and state."""

    from_version: int
    description: str
    manifest: Callable[[dict[str, Any]], dict[str, Any]]
    state: Callable[[dict[str, Any]], dict[str, Any]]


MIGRATIONS: Registry[Migration] = Registry("checkpoint format migration")
"""Checkpoint format migrations, each from one format version to the next."""


def manifest_version(raw: dict[str, Any]) -> int:
    """The format version a raw manifest declares (format 1 called the field ``version``)."""
    version = raw.get("format_version", raw.get("version"))
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise ValueError(f"the manifest has no format_version >= 1 (got {version!r})")
    return version


def upgrade_manifest(raw: dict[str, Any]) -> tuple[dict[str, Any], int | None]:
    """Apply every registered migration to ``raw``; return it and the original version."""
    from trainforge.checkpoint._layout import FORMAT_VERSION

    version = manifest_version(raw)
    if version > FORMAT_VERSION:
        raise ValueError(
            f"format_version {version} is newer than this trainforge supports "
            f"({FORMAT_VERSION}); upgrade trainforge"
        )
    original = version
    while version < FORMAT_VERSION:
        raw = MIGRATIONS.get(str(version)).manifest(raw)
        version += 1
    return raw, (original if original != FORMAT_VERSION else None)


def upgrade_state(state: dict[str, Any], from_version: int | None) -> dict[str, Any]:
    """Apply the state half of the migrations from ``from_version`` to the current one."""
    from trainforge.checkpoint._layout import FORMAT_VERSION

    if from_version is None:
        return state
    for version in range(from_version, FORMAT_VERSION):
        state = MIGRATIONS.get(str(version)).state(state)
    return state


def _v1_manifest(raw: dict[str, Any]) -> dict[str, Any]:
    created = raw.get("created")
    timestamp = (
        _dt.datetime.fromtimestamp(float(created), tz=_dt.timezone.utc).isoformat()
        if created is not None
        else None
    )
    return {
        "format_version": 2,
        "storage": "torch",
        "files": {raw["file"]: {"sha256": raw["sha256"], "size": raw["size"], "compression": None}},
        "metadata": {
            "epoch": int(raw["epoch"]),
            "global_step": int(raw["step"]),
            "metrics": dict(raw.get("metrics") or {}),
            "monitor": None,
            "monitor_value": None,
            "timestamp": timestamp,
            "protected": False,
            "notes": "migrated from format 1",
        },
    }


_V1_KEYS = {
    "model": "model_state_dict",
    "optimizer": "optimizer_state_dict",
    "scheduler": "scheduler_state_dict",
    "extra": "custom_state",
}


def _v1_state(state: dict[str, Any]) -> dict[str, Any]:
    return {_V1_KEYS.get(key, key): value for key, value in state.items()}


MIGRATIONS.register(
    "1",
    Migration(
        1,
        "flat manifest with one checkpoint.pt -> per-file manifest, *_state_dict keys",
        _v1_manifest,
        _v1_state,
    ),
)
