"""What is in a checkpoint directory: complete checkpoints, unreadable ones, leftovers.

Listing reads only manifests (through an LRU + TTL cache keyed by the manifest's
modification time); a directory without a valid manifest is not a checkpoint, but it is
remembered as *unreadable* with the reason, so that loading ``last`` can say what it
skipped and pruning can leave it alone. Checkpoints are ranked by the monitor and mode
their manifests recorded; the lister's own monitor and mode only fill in for checkpoints
that recorded none, and any disagreement is reported instead of guessed at. The catalog
never writes: saving, deleting and pruning belong to the manager.
"""

from __future__ import annotations

import logging
import os
import shutil
import threading
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Literal

from trainforge.checkpoint import _layout as L
from trainforge.checkpoint._lock import CheckpointLocks
from trainforge.checkpoint._manifest import read_manifest
from trainforge.checkpoint._metadata import CheckpointMetadata, TTLCache
from trainforge.checkpoint._reader import files_present, verify_checkpoint
from trainforge.checkpoint._retention import KeepBestK
from trainforge.errors import (
    CheckpointCorruptedError,
    CheckpointNotFoundError,
    CheckpointRankingError,
)

__all__ = ["CheckpointCatalog", "Unreadable", "describe_ranking", "remove_path"]

logger = logging.getLogger(__name__)

_STALE_LOCK_S = 60.0


def remove_path(path: Path) -> None:
    """Remove a directory tree or a file; missing is fine."""
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


def describe_ranking(monitor: str | None, mode: str | None) -> str:
    """``'val/acc' (max)`` for messages."""
    return f"{monitor!r} ({mode or 'mode not recorded'})"


@dataclass(frozen=True)
class Unreadable:
    """A ``ckpt-*`` directory that is not a readable checkpoint, and why.

    ``incomplete`` is True when it has no manifest at all (a checkpoint never finished or
    damaged); otherwise the manifest exists but cannot be read: garbled, invalid, or of a
    newer format.
    """

    path: Path
    index: int
    reason: str
    incomplete: bool

    @property
    def name(self) -> str:
        """Directory name."""
        return self.path.name


class CheckpointCatalog:
    """Read-only view of the checkpoints under ``root``.

    Args:
        root: The checkpoint directory.
        monitor: Metric ranking checkpoints that recorded no monitor; a checkpoint that
            recorded another one is a ranking conflict.
        mode: ``min`` or ``max``, with the same role for the mode.
        cache_ttl: Seconds a listed manifest may be served from the cache.
    """

    def __init__(
        self,
        root: Path,
        *,
        monitor: str | None,
        mode: Literal["min", "max"],
        cache_ttl: float = 30.0,
    ) -> None:
        self.root = root
        self.monitor = monitor
        self.mode = mode
        self.cache: TTLCache[tuple[str, int], CheckpointMetadata] = TTLCache(ttl=cache_ttl)
        self._verdicts: dict[str, tuple[tuple[object, ...], bool]] = {}
        self._verdicts_lock = threading.Lock()

    # ----------------------------------------------------------------- listing
    def scan(self) -> tuple[list[CheckpointMetadata], list[Unreadable]]:
        """Complete checkpoints (ranked, flagged, newest first) and unreadable ones."""
        found: list[CheckpointMetadata] = []
        unreadable: list[Unreadable] = []
        for entry in os.scandir(self.root):
            parsed = L.parse_checkpoint_name(entry.name)
            # a symlinked checkpoint directory would be read from outside this directory
            if parsed is None or not entry.is_dir(follow_symlinks=False):
                continue
            meta = self._metadata(Path(entry.path), parsed[0], unreadable)
            if meta is not None:
                found.append(self._ranked(meta))
        found.sort(key=lambda c: c.index, reverse=True)
        unreadable.sort(key=lambda u: u.index, reverse=True)
        if not found:
            return found, unreadable
        ranked = self.monitor is not None and self.ranking_conflict(found) is None
        best_names = KeepBestK(1, self.mode).keep(found) if ranked else set()
        listed = [
            replace(c, is_best=c.name in best_names, is_last=i == 0) for i, c in enumerate(found)
        ]
        return listed, unreadable

    def directories(self) -> list[Path]:
        """Every ``ckpt-*`` directory, readable or not, newest first (no symlinks)."""
        found = [
            (parsed[0], Path(e.path))
            for e in os.scandir(self.root)
            if (parsed := L.parse_checkpoint_name(e.name)) and e.is_dir(follow_symlinks=False)
        ]
        return [path for _, path in sorted(found, reverse=True)]

    def list_checkpoints(self) -> list[CheckpointMetadata]:
        """Complete checkpoints, newest first; incomplete or garbled ones are left out."""
        return self.scan()[0]

    def _metadata(
        self, path: Path, index: int, unreadable: list[Unreadable]
    ) -> CheckpointMetadata | None:
        try:
            stamp = (path / L.MANIFEST_NAME).lstat().st_mtime_ns
        except FileNotFoundError:
            reason = f"no {L.MANIFEST_NAME} (incomplete or damaged)"
            unreadable.append(Unreadable(path, index, reason, incomplete=True))
            return None
        key = (path.name, stamp)
        cached = self.cache.get(key)
        if cached is not None:
            return cached
        try:
            meta = CheckpointMetadata.from_manifest(path, index, read_manifest(path))
        except CheckpointCorruptedError as exc:
            logger.debug("ignoring %s: %s", path, exc.message)
            unreadable.append(Unreadable(path, index, exc.message, incomplete=False))
            return None
        self.cache.put(key, meta)
        return meta

    # ----------------------------------------------------------------- ranking
    def _ranked(self, meta: CheckpointMetadata) -> CheckpointMetadata:
        if meta.monitor is not None:
            return meta if meta.mode is not None else replace(meta, mode=self.mode)
        if self.monitor is None:
            return meta
        value = meta.metrics.get(self.monitor)
        return replace(meta, monitor=self.monitor, mode=self.mode, metric=value)

    def ranking_conflict(self, checkpoints: list[CheckpointMetadata]) -> str | None:
        """Why ``checkpoints`` cannot be ranked together by this catalog, or None."""
        recorded = sorted({(c.monitor, c.mode) for c in checkpoints if c.monitor is not None})
        if self.monitor is not None:
            others = [r for r in recorded if r != (self.monitor, self.mode)]
            if others:
                names = ", ".join(describe_ranking(*r) for r in others)
                return (
                    f"checkpoints in {self.root} are ranked by {names}, not by "
                    f"{describe_ranking(self.monitor, self.mode)}"
                )
        elif len(recorded) > 1:
            names = ", ".join(describe_ranking(*r) for r in recorded)
            return f"checkpoints in {self.root} are ranked by different metrics: {names}"
        return None

    def check_ranking(self, checkpoints: list[CheckpointMetadata] | None = None) -> None:
        """Raise unless every checkpoint ranks by this catalog's monitor and mode.

        Raises:
            CheckpointRankingError: Naming what the checkpoints recorded.
        """
        conflict = self.ranking_conflict(
            self.list_checkpoints() if checkpoints is None else checkpoints
        )
        if conflict is not None:
            raise CheckpointRankingError(
                conflict,
                path=self.root,
                hint="rank them by what they recorded (the CLI does so when --monitor and "
                "--mode are left out), or keep checkpoints of another metric in their "
                "own directory",
            )

    def recorded_rankings(self) -> list[tuple[str, str | None]]:
        """The distinct (monitor, mode) pairs the readable checkpoints recorded."""
        found = self.scan()[0]
        return sorted({(c.monitor, c.mode) for c in found if c.monitor is not None})

    # --------------------------------------------------------------- resolving
    def locate(self, target: str | Path | None = None) -> tuple[Path, list[Unreadable]]:
        """Directory named by ``target`` and, for ``last``, the newer ones passed over.

        Passed over are the unreadable checkpoint directories newer than the complete
        checkpoint chosen as ``last`` (for ``best`` and paths the list is empty).
        """
        if target is not None and str(target) not in (L.LAST_POINTER, L.BEST_POINTER):
            return self._path(target), []
        which = L.LAST_POINTER if target is None else str(target)
        checkpoints, unreadable = self.scan()
        if which == L.BEST_POINTER:
            self.check_ranking(checkpoints)
        flag = "is_last" if which == L.LAST_POINTER else "is_best"
        found = next((c for c in checkpoints if getattr(c, flag)), None)
        if found is None:
            what = "complete" if which == L.LAST_POINTER else "ranked"
            skipped = "".join(f"\n  skipped {u.name}: {u.reason}" for u in unreadable)
            raise CheckpointNotFoundError(
                f"no {what} checkpoint in {self.root} to load as '{which}'{skipped}",
                path=self.root,
            )
        if which == L.BEST_POINTER:
            return found.path, []
        return found.path, [u for u in unreadable if u.index > found.index]

    def resolve(self, target: str | Path | None = None) -> Path:
        """Directory named by ``target``: None/``last``, ``best``, or a path."""
        return self.locate(target)[0]

    def _path(self, target: str | Path) -> Path:
        path = Path(target)
        if path.name == L.MANIFEST_NAME:
            path = path.parent
        if not path.exists() and not path.is_absolute() and (self.root / path).exists():
            path = self.root / path
        if not path.exists():
            raise CheckpointNotFoundError(f"checkpoint {path} does not exist", path=path)
        return path

    # --------------------------------------------------------------- integrity
    def is_intact(self, meta: CheckpointMetadata, *, deep: bool = True) -> bool:
        """True when every file of the checkpoint matches its manifest.

        With ``deep`` the hashes are checked, and the verdict is remembered while the
        files keep their sizes and modification times (a checkpoint this process wrote or
        verified is not hashed again); otherwise only their presence and sizes.
        """
        if not deep:
            return files_present(meta.path)
        stamp = _stamp(meta.path)
        with self._verdicts_lock:
            known = self._verdicts.get(meta.name)
        if stamp is not None and known is not None and known[0] == stamp:
            return known[1]
        ok = verify_checkpoint(meta.path).ok
        self.remember(meta.path, ok, stamp)
        return ok

    def remember(self, path: Path, ok: bool, stamp: tuple[object, ...] | None = None) -> None:
        """Record that the checkpoint at ``path`` was just written or verified (``ok``)."""
        stamp = stamp if stamp is not None else _stamp(path)
        if stamp is not None:
            with self._verdicts_lock:
                self._verdicts[path.name] = (stamp, ok)

    # --------------------------------------------------------------- leftovers
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


def _stamp(path: Path) -> tuple[object, ...] | None:
    """What identifies a checkpoint's current bytes cheaply: its files' sizes and mtimes."""
    try:
        entries = sorted(os.scandir(path), key=lambda e: e.name)
        stats = [(e.name, e.stat(follow_symlinks=False)) for e in entries]
        return tuple((name, st.st_size, st.st_mtime_ns, st.st_ino) for name, st in stats)
    except OSError:
        return None
