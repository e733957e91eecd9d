"""What is in a checkpoint directory: complete checkpoints, pointers, leftovers.

Listing reads only manifests (through an LRU + TTL cache keyed by the manifest's
modification time); a directory without a valid manifest is not a checkpoint. The
catalog never writes: saving, deleting and pruning belong to the manager.
"""

from __future__ import annotations

import logging
import os
import shutil
import time
from dataclasses import replace
from pathlib import Path

from trainforge.checkpoint import _layout as L
from trainforge.checkpoint._lock import CheckpointLocks
from trainforge.checkpoint._manifest import read_manifest
from trainforge.checkpoint._metadata import CheckpointMetadata, TTLCache
from trainforge.checkpoint._retention import KeepBestK
from trainforge.errors import CheckpointCorruptedError, CheckpointNotFoundError

__all__ = ["CheckpointCatalog", "remove_path"]

logger = logging.getLogger(__name__)

_STALE_LOCK_S = 60.0


def remove_path(path: Path) -> None:
    """Remove a directory tree or a file; missing is fine."""
    if path.is_dir():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


class CheckpointCatalog:
    """Read-only view of the checkpoints under ``root``, ranked by ``monitor``/``mode``."""

    def __init__(
        self, root: Path, *, monitor: str | None, mode: str, cache_ttl: float = 30.0
    ) -> None:
        self.root = root
        self.monitor = monitor
        self.mode = mode
        self.cache: TTLCache[tuple[str, int], CheckpointMetadata] = TTLCache(ttl=cache_ttl)

    def list_checkpoints(self) -> list[CheckpointMetadata]:
        """Complete checkpoints, newest first; incomplete or garbled ones are left out."""
        found: list[CheckpointMetadata] = []
        for entry in os.scandir(self.root):
            parsed = L.parse_checkpoint_name(entry.name)
            if parsed is None or not entry.is_dir():
                continue
            meta = self._metadata(Path(entry.path), parsed[0])
            if meta is not None:
                found.append(meta)
        found.sort(key=lambda c: c.index, reverse=True)
        if not found:
            return found
        best_names = KeepBestK(1, self.mode).keep(found) if self.monitor else set()
        return [
            _with_flags(c, is_best=c.name in best_names, is_last=i == 0)
            for i, c in enumerate(found)
        ]

    def _metadata(self, path: Path, index: int) -> CheckpointMetadata | None:
        try:
            stamp = (path / L.MANIFEST_NAME).stat().st_mtime_ns
        except FileNotFoundError:
            return None
        key = (path.name, stamp)
        cached = self.cache.get(key)
        if cached is not None:
            return cached
        try:
            meta = CheckpointMetadata.from_manifest(path, index, read_manifest(path))
        except CheckpointCorruptedError as exc:
            logger.debug("ignoring %s: %s", path, exc.message)
            return None
        self.cache.put(key, meta)
        return meta

    def resolve(self, target: str | Path | None = None) -> Path:
        """Directory named by ``target``: None/``last``, ``best``, or a path."""
        if target is None or str(target) in (L.LAST_POINTER, L.BEST_POINTER):
            which = L.LAST_POINTER if target is None else str(target)
            checkpoints = self.list_checkpoints()
            flag = "is_last" if which == L.LAST_POINTER else "is_best"
            found = next((c for c in checkpoints if getattr(c, flag)), None)
            if found is None:
                raise CheckpointNotFoundError(
                    f"no {'complete' if which == L.LAST_POINTER else 'ranked'} checkpoint "
                    f"in {self.root} to load as '{which}'",
                    path=self.root,
                )
            return found.path
        path = Path(target)
        if path.name == L.MANIFEST_NAME:
            path = path.parent
        if not path.exists() and not path.is_absolute() and (self.root / path).exists():
            path = self.root / path
        if not path.exists():
            raise CheckpointNotFoundError(f"checkpoint {path} does not exist", path=path)
        return path

    def leftovers(self, locks: CheckpointLocks) -> list[Path]:
        """Trash of interrupted deletes; temporary dirs, locks and pointer files of dead writers."""
        found = []
        now = time.time()
        for entry in self.root.iterdir():
            name = entry.name
            if name.startswith(L.TRASH_PREFIX):
                found.append(entry)
            elif name.startswith(".") and name.endswith(".tmp") and entry.is_file():
                # a pointer update killed before its rename
                if now - entry.stat().st_mtime > _STALE_LOCK_S:
                    found.append(entry)
            elif name.startswith(L.TEMP_PREFIX) and entry.is_dir():
                if not locks.has_writer(name):
                    found.append(entry)
            elif name.startswith(L.TEMP_PREFIX) and name.endswith(".lock"):
                # an old, unheld lock whose directory is gone: its writer died before mkdir
                stale = now - entry.stat().st_mtime > _STALE_LOCK_S
                temp = name[: -len(".lock")]
                gone = not (self.root / temp).exists()
                if stale and gone and not locks.has_writer(temp):
                    found.append(entry)
        return found


def _with_flags(meta: CheckpointMetadata, *, is_best: bool, is_last: bool) -> CheckpointMetadata:
    return replace(meta, is_best=is_best, is_last=is_last)
