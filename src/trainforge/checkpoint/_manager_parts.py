"""What the base classes of ``CheckpointManager`` use of it, declared once.

``CheckpointManager`` is composed of base classes, each with the operations of one kind
(collective save and load, migration and import); each reaches the manager's state only
through the names declared here, which the manager provides.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from trainforge.checkpoint._catalog import CheckpointCatalog
from trainforge.checkpoint._lock import CheckpointLocks
from trainforge.checkpoint._metadata import CheckpointMetadata, TTLCache
from trainforge.hooks import HookManager
from trainforge.records import ConfigSource

__all__ = ["ManagerParts"]


class ManagerParts:
    """The state and steps of a checkpoint manager that its operations build on."""

    root: Path
    monitor: str | None
    mode: Literal["min", "max"]
    storage: str
    compression: str | None
    hooks: HookManager
    locks: CheckpointLocks
    catalog: CheckpointCatalog

    @property
    def cache(self) -> TTLCache[tuple[str, int], CheckpointMetadata]:
        """The metadata cache (listing results)."""
        raise NotImplementedError

    def resolve(self, target: str | Path | None = None) -> Path:
        """A checkpoint directory from a name, path or ``best``/``last``."""
        raise NotImplementedError

    def newest_valid(self, *, exclude: Path | None = None) -> Path | None:
        """Newest checkpoint whose files all match the manifest."""
        raise NotImplementedError

    def _check_writable(self, metrics: Mapping[str, Any]) -> None:
        raise NotImplementedError

    def _metadata(
        self,
        epoch: int,
        global_step: int,
        values: dict[str, float],
        config: ConfigSource | None,
        protected: bool,
        notes: str | None,
    ) -> dict[str, Any]:
        raise NotImplementedError

    def _after_write(self, path: Path, metrics: dict[str, float]) -> None:
        raise NotImplementedError
