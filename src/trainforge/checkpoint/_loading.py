"""Reading checkpoints back: resolve, verify, deserialise, fall back, validate a resume.

``last`` is the newest *complete* checkpoint. When a newer checkpoint directory cannot be
read (no manifest, a garbled or newer-format one), loading goes on with the newest one that
can, and says so in a warning that names what it passed over and why. A damaged checkpoint
is never loaded silently in place of another either: without ``fallback=True`` the error
names the newest valid alternative; with it, that alternative is loaded with a warning.
"""

from __future__ import annotations

import binascii
import logging
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

from trainforge.checkpoint import _layout as L
from trainforge.checkpoint._catalog import CheckpointCatalog
from trainforge.checkpoint._lock import CheckpointLocks
from trainforge.checkpoint._manifest import Manifest
from trainforge.checkpoint._reader import read_checkpoint
from trainforge.checkpoint._resume import ResumeResult, validate_resume
from trainforge.errors import CheckpointCorruptedError
from trainforge.hooks import HookEvent, HookManager
from trainforge.seeding import restore_rng_state

__all__ = ["Loader", "loaded_result", "restore_recorded_rng"]

logger = logging.getLogger(__name__)


def _warn(message: str) -> None:
    logger.warning(message)
    warnings.warn(message, RuntimeWarning, stacklevel=4)


def restore_recorded_rng(checkpoint: Mapping[str, Any]) -> None:
    """Restore the RNG states a loaded checkpoint recorded.

    Raises:
        CheckpointCorruptedError: The recorded states cannot be restored.
    """
    try:
        restore_rng_state(checkpoint["rng_state"])
    except (ValueError, TypeError, KeyError, IndexError, RuntimeError, binascii.Error) as exc:
        where = Path(checkpoint["path"]) / L.MANIFEST_NAME
        raise CheckpointCorruptedError(
            f"checkpoint manifest {where}: metadata.rng_state cannot be restored "
            f"({type(exc).__name__}: {exc})",
            path=where,
            hint="load it with restore_rng=False to skip the RNG states",
        ) from None


class Loader:
    """Loads the checkpoints of one directory, firing the load and integrity hooks."""

    def __init__(
        self,
        catalog: CheckpointCatalog,
        locks: CheckpointLocks,
        hooks: HookManager,
        *,
        verify: bool = True,
    ) -> None:
        self.catalog = catalog
        self.locks = locks
        self.hooks = hooks
        self.verify = verify

    def load(
        self,
        target: str | Path | None = None,
        *,
        map_location: Any = None,
        restore_rng: bool = True,
        fallback: bool = False,
    ) -> dict[str, Any]:
        """Verify and load a checkpoint (see :meth:`CheckpointManager.load`)."""
        directory, skipped = self.catalog.locate(target)
        if skipped:
            _warn(
                f"loading {directory.name} as 'last' in {self.catalog.root}, passing over "
                "newer " + "; ".join(f"{u.name} ({u.reason})" for u in skipped)
            )
        self.hooks.fire(HookEvent.BEFORE_CHECKPOINT_LOAD, path=directory)
        try:
            manifest, state = self.read(directory, map_location)
        except CheckpointCorruptedError as exc:
            self.hooks.fire(HookEvent.ON_CHECKPOINT_CORRUPTED, path=directory, error=exc)
            alternative = self.newest_valid(exclude=directory)
            error = CheckpointCorruptedError(
                exc.message,
                path=exc.path,
                expected=exc.expected,
                actual=exc.actual,
                alternative=alternative,
                searched=True,
                hint=exc.hint,
            )
            if not fallback or alternative is None:
                raise error from None
            _warn(f"{error.message}; loading the newest valid checkpoint {alternative}")
            directory = alternative
            manifest, state = self.read(directory, map_location)
        result = loaded_result(directory, manifest, state)
        if restore_rng and result["rng_state"]:
            restore_recorded_rng(result)
        self.hooks.fire(HookEvent.AFTER_CHECKPOINT_LOAD, path=directory, epoch=result["epoch"])
        return result

    def read(self, directory: Path, map_location: Any) -> tuple[Manifest, dict[str, Any]]:
        """Manifest and payload of ``directory``, verified under a reader lock."""
        with self.locks.reading(directory.name):
            self.hooks.fire(HookEvent.BEFORE_INTEGRITY_CHECK, path=directory)
            manifest, state = read_checkpoint(
                directory, verify=self.verify, map_location=map_location
            )
            self.hooks.fire(HookEvent.AFTER_INTEGRITY_CHECK, path=directory, ok=True)
        if self.verify:
            self.catalog.remember(directory, True)
        return manifest, state

    def newest_valid(self, *, exclude: Path | None = None) -> Path | None:
        """Newest checkpoint whose files all match the manifest (full hash check)."""
        for meta in self.catalog.list_checkpoints():
            if exclude is not None and meta.path.resolve() == exclude.resolve():
                continue
            if self.catalog.is_intact(meta):
                return meta.path
        return None

    def resume(
        self,
        target: str | Path | None,
        current: Mapping[str, Any],
        *,
        mode: Literal["strict", "warn"],
        allow_changes: Sequence[str],
        model_state: Mapping[str, Any] | None,
        map_location: Any,
        restore_rng: bool,
    ) -> ResumeResult:
        """Load ``target`` and validate it against ``current`` config fields and model."""
        checkpoint = self.load(target, map_location=map_location, restore_rng=False)
        result = validate_resume(
            checkpoint,
            current["config"],
            current["config_hash"],
            mode=mode,
            allow_changes=allow_changes,
            model_state=model_state,
        )
        if restore_rng and checkpoint["rng_state"]:
            restore_recorded_rng(checkpoint)
        self.hooks.fire(
            HookEvent.ON_RESUME,
            path=checkpoint["path"],
            changes=result.changes,
            allowed_changes=result.allowed_changes,
        )
        return result


def loaded_result(directory: Path, manifest: Manifest, state: dict[str, Any]) -> dict[str, Any]:
    """What :meth:`CheckpointManager.load` returns for a read checkpoint."""
    meta = manifest.metadata  # validated: every field is there, with its type
    result = {
        **state,
        "epoch": meta["epoch"],
        "global_step": meta["global_step"],
        "metrics": meta["metrics"],
        "config": meta["config"],
        "config_hash": meta["config_hash"],
        "config_provenance": meta["config_provenance"],
        "rng_state": meta["rng_state"],
        "metadata": meta,
        "path": directory,
    }
    for key in L.STATE_KEYS:
        result.setdefault(key, None)
    return result
