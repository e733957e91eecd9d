"""Deleting checkpoints: retention after each save, ``prune`` on demand, crash recovery.

Every step is safe to interrupt with SIGKILL:

- the ``last``/``best`` pointers are rewritten *first*, to checkpoints that stay, so a
  pointer never names a deleted directory;
- a doomed checkpoint is renamed to ``.trash-...`` (atomic: it is gone for listing and
  loading at once), and only then removed; leftover trash goes at the next retention;
- ``migrate`` parks the old copy as ``.replaced-<name>-...`` while it swaps the new one
  in; :meth:`Pruner.recover` puts the old copy back if the swap never completed, and
  removes it if it did.

What cannot be ranked is never deleted unless asked: unreadable manifests (garbled,
invalid, newer format) and checkpoints whose files fail verification are left in place
and reported, and a damaged checkpoint never counts towards "the n newest" or "the k
best" in place of an intact one. Retention after a save checks that the checkpoints it
keeps have all their files at the recorded sizes (a ``stat`` each: saving stays as fast
for 100 GB as for 1 MB); ``prune`` checks every hash.
"""

from __future__ import annotations

import logging
import os
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from trainforge.checkpoint import _layout as L
from trainforge.checkpoint._catalog import CheckpointCatalog, Unreadable, remove_path
from trainforge.checkpoint._integrity import fsync_dir
from trainforge.checkpoint._lock import CheckpointLocks
from trainforge.checkpoint._manifest import write_bytes_atomic
from trainforge.checkpoint._metadata import CheckpointMetadata
from trainforge.checkpoint._retention import KeepBestK, RetentionPolicy, plan_retention
from trainforge.hooks import HookEvent, HookManager

__all__ = ["Pruner"]

logger = logging.getLogger(__name__)


class Pruner:
    """Applies retention and prunes one checkpoint directory, under its directory lock."""

    def __init__(
        self,
        catalog: CheckpointCatalog,
        locks: CheckpointLocks,
        policy: RetentionPolicy,
        hooks: HookManager,
    ) -> None:
        self.catalog = catalog
        self.root = catalog.root
        self.locks = locks
        self.policy = policy
        self.hooks = hooks
        self.pointers: dict[str, str] = {}

    # ---------------------------------------------------------------- recovery
    def has_interrupted(self) -> bool:
        """True when a ``migrate`` was interrupted here (cheap: one directory scan)."""
        with os.scandir(self.root) as entries:
            return any(e.name.startswith(L.REPLACED_PREFIX) for e in entries)

    def recover(self) -> list[str]:
        """Finish what interrupted migrations left: restore or drop each parked old copy.

        Call while holding the directory lock. Returns the names restored.
        """
        restored = []
        for entry in sorted(self.root.iterdir()):
            if not entry.name.startswith(L.REPLACED_PREFIX):
                continue
            name = entry.name[len(L.REPLACED_PREFIX) :].rsplit("-", 1)[0]
            if L.parse_checkpoint_name(name) is None:
                logger.warning("leaving %s alone: not a parked checkpoint", entry)
                continue
            if (self.root / name).exists():
                remove_path(entry)  # the swap completed; the old copy was being removed
            else:
                os.rename(entry, self.root / name)  # killed between the two renames
                restored.append(name)
                logger.warning("restored %s after an interrupted migration", name)
        if restored:
            fsync_dir(self.root)
            self.catalog.cache.invalidate()
        return restored

    # --------------------------------------------------------------- retention
    def apply_retention(
        self, *, just_written: str | None = None, dry_run: bool = False
    ) -> list[CheckpointMetadata]:
        """Delete what no policy keeps (never one being read); return what was deleted.

        Raises:
            CheckpointRankingError: The checkpoints recorded another monitor or mode.
        """
        deleted, _ = self._retain(
            just_written=just_written, dry_run=dry_run, damaged=set(), deep=False
        )
        return deleted

    def _retain(
        self, *, just_written: str | None, dry_run: bool, damaged: set[str], deep: bool
    ) -> tuple[list[CheckpointMetadata], list[CheckpointMetadata]]:
        if deep:  # hash before taking the lock; the plan under it finds the verdicts cached
            self._plan(self.catalog.list_checkpoints(), just_written, set(damaged), deep)
        with self.locks.exclusive():
            if not dry_run:
                self.recover()
            checkpoints = self.catalog.list_checkpoints()
            self.catalog.check_ranking(checkpoints)
            doomed = self._plan(checkpoints, just_written, damaged, deep)
            deleted = []
            for meta in doomed:
                if self.locks.readers_of(meta.name):
                    logger.info("keeping %s for now: another process is reading it", meta.name)
                else:
                    deleted.append(meta)
            survivors = [c for c in checkpoints if c not in deleted and c.name not in damaged]
            trash: list[Path] = []
            if not dry_run:
                self.write_pointers(survivors)
                trash = [self._to_trash(meta.path) for meta in deleted]
                if trash:
                    fsync_dir(self.root)
                trash.extend(self.catalog.leftovers(self.locks))
        for path in trash:
            remove_path(path)
        if not dry_run:
            gone = {meta.name for meta in deleted}
            self.catalog.cache.invalidate_where(lambda key: key[0] in gone)
            for meta in deleted:
                self.hooks.fire(HookEvent.ON_CHECKPOINT_DELETED, path=meta.path, epoch=meta.epoch)
            self.hooks.fire(
                HookEvent.ON_RETENTION_APPLIED,
                kept=[c.path for c in checkpoints if c not in deleted],
                deleted=[c.path for c in deleted],
            )
        return deleted, checkpoints

    def _plan(
        self,
        checkpoints: Sequence[CheckpointMetadata],
        just_written: str | None,
        damaged: set[str],
        deep: bool,
    ) -> list[CheckpointMetadata]:
        """What to delete; damaged checkpoints found on the way are added to ``damaged``.

        Checkpoints a policy keeps are checked (``deep``: hashed) only when something
        would be deleted in their favour; a damaged one is taken out of the ranking and
        the plan redone.
        """
        while True:
            candidates = [c for c in checkpoints if c.name not in damaged]
            kept, doomed = plan_retention(candidates, self.policy, just_written=just_written)
            if not doomed:
                return doomed
            bad = [
                c
                for c in kept
                if c.name != just_written and not self.catalog.is_intact(c, deep=deep)
            ]
            if not bad:
                return doomed
            for meta in bad:
                logger.warning("%s is damaged: it does not count as a kept checkpoint", meta.name)
            damaged.update(c.name for c in bad)

    def write_pointers(self, survivors: Sequence[CheckpointMetadata]) -> dict[str, str]:
        """Point ``last`` and ``best`` at checkpoints in ``survivors`` (newest first).

        A pointer with nothing to name is removed. Call while holding the directory lock.
        """
        pointers = {}
        if survivors:
            pointers[L.LAST_POINTER] = survivors[0].name
            best = KeepBestK(1, self.catalog.mode).keep(survivors)
            if best and self.catalog.monitor is not None:
                pointers[L.BEST_POINTER] = next(c.name for c in survivors if c.name in best)
        names = {c.name for c in survivors}
        for name in (L.LAST_POINTER, L.BEST_POINTER):
            path = self.root / name
            if name in pointers:
                write_bytes_atomic(path, f"{pointers[name]}\n".encode())
            elif path.is_file() and _pointer_target(path) not in names:
                path.unlink()  # it would name a checkpoint that is about to go
        self.pointers = pointers
        return pointers

    def _to_trash(self, path: Path) -> Path:
        # rename first: the checkpoint disappears atomically, rmtree may then be killed
        trash = self.root / f"{L.TRASH_PREFIX}{path.name}-{uuid.uuid4().hex[:8]}"
        os.rename(path, trash)
        return trash

    # ------------------------------------------------------------------- prune
    def prune(self, *, dry_run: bool = False, remove_unreadable: bool = False) -> dict[str, Any]:
        """Verify everything, remove incomplete checkpoints and leftovers, apply retention.

        Returns:
            Names by what happened to them: ``incomplete`` (no manifest: removed),
            ``leftovers`` (removed), ``restored`` (interrupted migrations undone),
            ``unreadable`` (unreadable manifest or damaged files: kept, unless
            ``remove_unreadable``), ``removed_unreadable``, ``retention`` (deleted by
            policy), and ``reasons`` (name -> why it is unreadable).
        """
        checkpoints, unreadable = self.catalog.scan()
        damaged = {c.name for c in checkpoints if not self.catalog.is_intact(c)}
        with self.locks.exclusive():
            restored = [] if dry_run else self.recover()
            checkpoints, unreadable = self.catalog.scan()
            leftovers = self.catalog.leftovers(self.locks)
            report: dict[str, Any] = {
                "incomplete": [u.name for u in unreadable if u.incomplete],
                "leftovers": sorted(p.name for p in leftovers),
                "restored": restored,
                "unreadable": [],
                "removed_unreadable": [],
                "reasons": {},
            }
            problems = [u for u in unreadable if not u.incomplete]
            problems += [
                Unreadable(c.path, c.index, "its files do not match the manifest", False)
                for c in checkpoints
                if c.name in damaged
            ]
            for item in sorted(problems, key=lambda u: u.index, reverse=True):
                report["unreadable"].append(item.name)
                report["reasons"][item.name] = item.reason
            doomed = [u.path for u in unreadable if u.incomplete]
            if remove_unreadable:
                report["removed_unreadable"] = list(report["unreadable"])
                doomed += [u.path for u in problems]
            trash = [] if dry_run else [self._to_trash(p) for p in doomed] + leftovers
        for path in trash:
            remove_path(path)
        self.catalog.cache.invalidate()
        deleted, _ = self._retain(just_written=None, dry_run=dry_run, damaged=damaged, deep=True)
        report["retention"] = [m.name for m in deleted]
        return report


def _pointer_target(path: Path) -> str | None:
    try:
        return path.read_text(encoding="utf-8", errors="replace").strip()
    except OSError:
        return None
