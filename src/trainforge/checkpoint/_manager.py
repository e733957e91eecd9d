"""CheckpointManager: save, list, load, verify, retain and prune checkpoints.

The manager composes the parts that each live in their own module: the atomic writer,
the verifying reader, storage backends, retention policies, locks, the metadata cache and
the mirror. It holds no state that is not also on disk, so several processes can share a
checkpoint directory.

Examples:
    >>> import torch, tempfile
    >>> manager = CheckpointManager(tempfile.mkdtemp(), keep_last_n=2)
    >>> model = torch.nn.Linear(2, 1)
    >>> path = manager.save(model=model, epoch=0, global_step=10, metrics={"val_loss": 0.5})
    >>> manager.load("last")["global_step"]
    10
"""

from __future__ import annotations

import logging
import os
import uuid
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

from trainforge.checkpoint import _layout as L
from trainforge.checkpoint._catalog import CheckpointCatalog, remove_path
from trainforge.checkpoint._compression import compression_for
from trainforge.checkpoint._integrity import fsync_dir
from trainforge.checkpoint._lightning import lightning_to_state, read_lightning_checkpoint
from trainforge.checkpoint._lock import CheckpointLocks
from trainforge.checkpoint._manifest import read_manifest, write_bytes_atomic
from trainforge.checkpoint._metadata import CheckpointMetadata, TTLCache
from trainforge.checkpoint._mirror import Mirror, MirrorFailure
from trainforge.checkpoint._reader import VerifyReport, read_checkpoint, verify_checkpoint
from trainforge.checkpoint._resume import ResumeResult, validate_resume
from trainforge.checkpoint._retention import (
    AnyOf,
    KeepBestK,
    KeepLastN,
    RetentionPolicy,
    plan_retention,
)
from trainforge.checkpoint._writer import config_fields, environment_info, write_checkpoint
from trainforge.checkpoint.storage import get_storage
from trainforge.errors import CheckpointCorruptedError
from trainforge.hooks import HookEvent, HookManager
from trainforge.records import ConfigSource
from trainforge.seeding import capture_rng_state, restore_rng_state

__all__ = ["CheckpointManager"]

logger = logging.getLogger(__name__)


def _state_of(obj: Any) -> Any:
    """``obj.state_dict()`` for anything Stateful; mappings and None pass through."""
    if obj is None or isinstance(obj, Mapping):
        return obj
    state_dict = getattr(obj, "state_dict", None)
    if not callable(state_dict):
        raise TypeError(
            f"expected an object with state_dict() or a mapping, got {type(obj).__name__}"
        )
    return state_dict()


def _plain_metrics(metrics: Mapping[str, Any]) -> dict[str, float]:
    # tensors / numpy scalars -> float; .item() on a CUDA tensor is a device sync
    return {str(k): float(v.item() if hasattr(v, "item") else v) for k, v in metrics.items()}


class CheckpointManager:
    """Atomic, verified, versioned checkpoints in one directory.

    Args:
        checkpoint_dir: Directory holding one sub-directory per checkpoint.
        keep_best_k: Keep the k best checkpoints by ``monitor``.
        keep_last_n: Keep the n newest checkpoints.
        monitor: Metric ranking checkpoints; ``save`` requires it in ``metrics``
            (None disables best-k and the requirement).
        mode: ``min`` or ``max``: which direction of ``monitor`` is better.
        save_interval_epochs: Used by :meth:`should_save` to pick epochs to save.
        storage: ``torch`` or ``safetensors``.
        compression: None, ``gzip`` or ``zstd`` (per payload file).
        verify_on_load: Check SHA256 of every file before deserialising.
        mirror: fsspec URL to copy each new checkpoint to, in the background.
        hooks: HookManager receiving the checkpoint events.
        tracker: Optional run tracker (``log_artifact(path)``, ``set_tags(mapping)``, as
            ``ExperimentTracker``): each manifest is logged, a new best is tagged.
        policies: Retention policies replacing best-k/last-n (protected always kept).
    """

    def __init__(
        self,
        checkpoint_dir: str | Path,
        *,
        keep_best_k: int = 3,
        keep_last_n: int = 5,
        monitor: str | None = "val_loss",
        mode: Literal["min", "max"] = "min",
        save_interval_epochs: int = 1,
        storage: str = "torch",
        compression: str | None = None,
        verify_on_load: bool = True,
        mirror: str | None = None,
        hooks: HookManager | None = None,
        tracker: Any = None,
        policies: Sequence[RetentionPolicy] | None = None,
        cache_ttl: float = 30.0,
    ) -> None:
        if mode not in ("min", "max"):
            raise ValueError(f"mode must be 'min' or 'max', got {mode!r}")
        if save_interval_epochs < 1:
            raise ValueError(f"save_interval_epochs must be >= 1, got {save_interval_epochs}")
        get_storage(storage)  # unknown names fail here, with did-you-mean
        compression_for(compression)
        self.root = Path(checkpoint_dir)
        self.root.mkdir(parents=True, exist_ok=True)
        self.monitor, self.mode = monitor, mode
        self.save_interval_epochs = save_interval_epochs
        self.storage, self.compression = storage, compression
        self.verify_on_load = verify_on_load
        self.hooks = hooks if hooks is not None else HookManager()
        self.tracker = tracker
        if policies is None:
            best = [KeepBestK(keep_best_k, mode)] if monitor else []
            policies = [*best, KeepLastN(keep_last_n)]
        self.policy: RetentionPolicy = AnyOf(*policies)
        self.locks = CheckpointLocks(self.root)
        self.catalog = CheckpointCatalog(self.root, monitor=monitor, mode=mode, cache_ttl=cache_ttl)
        self.mirror = Mirror(mirror) if mirror else None

    # ------------------------------------------------------------------ saving
    def should_save(self, epoch: int) -> bool:
        """True at the end of every ``save_interval_epochs``-th epoch (0-based epochs)."""
        return (epoch + 1) % self.save_interval_epochs == 0

    def save(
        self,
        *,
        model: Any,
        optimizer: Any = None,
        scheduler: Any = None,
        epoch: int,
        metrics: Mapping[str, Any],
        global_step: int,
        custom_state: Any = None,
        config: ConfigSource | None = None,
        protected: bool = False,
        notes: str | None = None,
    ) -> Path:
        """Save a checkpoint, update pointers, apply retention and queue the mirror copy.

        Returns:
            The checkpoint directory.

        Raises:
            ValueError: ``monitor`` is missing from ``metrics``.
            CheckpointSaveError: Disk full, permission denied; earlier checkpoints intact.
        """
        if self.monitor is not None and self.monitor not in metrics:
            raise ValueError(
                f"monitor metric '{self.monitor}' is missing from metrics; "
                f"got keys: {sorted(metrics)}; pass it, or build the manager with "
                "another monitor (monitor=None to rank nothing)"
            )
        values = _plain_metrics(metrics)
        self.hooks.fire(
            HookEvent.BEFORE_CHECKPOINT_SAVE, epoch=epoch, global_step=global_step, metrics=values
        )
        state = {
            L.MODEL_KEY: _state_of(model),
            L.OPTIMIZER_KEY: _state_of(optimizer),
            L.SCHEDULER_KEY: _state_of(scheduler),
            L.CUSTOM_KEY: custom_state,
        }
        metadata = {
            "epoch": int(epoch),
            "global_step": int(global_step),
            "metrics": values,
            "monitor": self.monitor,
            "monitor_value": values.get(self.monitor) if self.monitor else None,
            "mode": self.mode,
            "protected": bool(protected),
            "notes": notes,
            "rng_state": capture_rng_state(),
            **config_fields(config),
            **environment_info(),
        }
        path = write_checkpoint(
            self.root,
            state,
            metadata,
            storage=self.storage,
            compression=self.compression,
            locks=self.locks,
        )
        self._after_write(path, values)
        return path

    def _after_write(self, path: Path, metrics: dict[str, float]) -> None:
        self.cache.invalidate()
        checkpoints = self.list_checkpoints()
        best = next((c for c in checkpoints if c.is_best), None)
        pointers = {L.LAST_POINTER: path.name}
        if best is not None:
            pointers[L.BEST_POINTER] = best.name
        with self.locks.exclusive():
            for name, target in pointers.items():
                write_bytes_atomic(self.root / name, f"{target}\n".encode())
        is_best = best is not None and best.path == path
        if is_best:
            self.hooks.fire(HookEvent.ON_BEST_CHECKPOINT, path=path, metric=best.metric)
        self.apply_retention(just_written=path.name)
        if self.mirror is not None:
            self.mirror.submit(path, pointers)
        if self.tracker is not None:
            # the manifest lists every file's hash: logging it records the whole checkpoint
            self.tracker.log_artifact(path / L.MANIFEST_NAME)
            if is_best:
                self.tracker.set_tags({"best_checkpoint": path.name})
        self.hooks.fire(HookEvent.AFTER_CHECKPOINT_SAVE, path=path, metrics=metrics)

    # ----------------------------------------------------------------- listing
    def list_checkpoints(self) -> list[CheckpointMetadata]:
        """Complete checkpoints, newest first; incomplete or garbled ones are left out."""
        return self.catalog.list_checkpoints()

    def resolve(self, target: str | Path | None = None) -> Path:
        """Directory named by ``target``: None/``last``, ``best``, or a path."""
        return self.catalog.resolve(target)

    @property
    def cache(self) -> TTLCache[tuple[str, int], CheckpointMetadata]:
        """The metadata cache behind :meth:`list_checkpoints`."""
        return self.catalog.cache

    def get_best(self) -> Path:
        """Directory of the best checkpoint by the monitor.

        Raises:
            CheckpointNotFoundError: No complete checkpoint has a monitor value.
        """
        return self.resolve("best")

    # ----------------------------------------------------------------- loading
    def load(
        self,
        path: str | Path | None = None,
        *,
        map_location: Any = None,
        restore_rng: bool = True,
        fallback: bool = False,
    ) -> dict[str, Any]:
        """Verify and load a checkpoint (``last`` by default).

        Returns:
            ``epoch``, ``global_step``, ``model_state_dict``, ``optimizer_state_dict``,
            ``scheduler_state_dict``, ``custom_state``, ``metrics``, ``config``,
            ``config_hash``, ``config_provenance``, ``rng_state``, ``metadata``, ``path``.

        Raises:
            CheckpointCorruptedError: Naming the file, expected/actual hash and the newest
                valid alternative (loaded instead, with a warning, when ``fallback``).
            UnsafeCheckpointError: The payload would run code when unpickled.
        """
        directory = self.resolve(path)
        self.hooks.fire(HookEvent.BEFORE_CHECKPOINT_LOAD, path=directory)
        try:
            manifest, state = self._read(directory, map_location)
        except CheckpointCorruptedError as exc:
            self.hooks.fire(HookEvent.ON_CHECKPOINT_CORRUPTED, path=directory, error=exc)
            alternative = self.newest_valid(exclude=directory)
            error = CheckpointCorruptedError(
                exc.message,
                path=exc.path,
                expected=exc.expected,
                actual=exc.actual,
                alternative=alternative,
            )
            if not fallback or alternative is None:
                raise error from None
            message = f"{error.message}; loading the newest valid checkpoint {alternative}"
            logger.warning(message)
            warnings.warn(message, RuntimeWarning, stacklevel=2)
            directory = alternative
            manifest, state = self._read(directory, map_location)
        meta = manifest.metadata
        result = {
            **state,
            "epoch": meta.get("epoch"),
            "global_step": meta.get("global_step"),
            "metrics": meta.get("metrics", {}),
            "config": meta.get("config"),
            "config_hash": meta.get("config_hash"),
            "config_provenance": meta.get("config_provenance"),
            "rng_state": meta.get("rng_state"),
            "metadata": meta,
            "path": directory,
        }
        for key in L.STATE_KEYS:
            result.setdefault(key, None)
        if restore_rng and result["rng_state"]:
            restore_rng_state(result["rng_state"])
        self.hooks.fire(HookEvent.AFTER_CHECKPOINT_LOAD, path=directory, epoch=result["epoch"])
        return result

    def _read(self, directory: Path, map_location: Any) -> tuple[Any, dict[str, Any]]:
        with self.locks.reading(directory.name):
            self.hooks.fire(HookEvent.BEFORE_INTEGRITY_CHECK, path=directory)
            manifest, state = read_checkpoint(
                directory, verify=self.verify_on_load, map_location=map_location
            )
            self.hooks.fire(HookEvent.AFTER_INTEGRITY_CHECK, path=directory, ok=True)
        return manifest, state

    def newest_valid(self, *, exclude: Path | None = None) -> Path | None:
        """Newest checkpoint whose files all match the manifest (full hash check)."""
        for meta in self.list_checkpoints():
            if exclude is not None and meta.path.resolve() == exclude.resolve():
                continue
            if verify_checkpoint(meta.path).ok:
                return meta.path
        return None

    # ---------------------------------------------------------- verify / prune
    def verify(self, target: str | Path | None = None) -> list[VerifyReport]:
        """Verify one checkpoint, or every ``ckpt-*`` directory when ``target`` is None."""
        if target is not None:
            directory = self.resolve(target)
            reports = [verify_checkpoint(directory)]
        else:
            dirs = sorted(
                (p for p in self.root.iterdir() if L.parse_checkpoint_name(p.name) and p.is_dir()),
                reverse=True,
            )
            reports = [verify_checkpoint(d) for d in dirs]
        for report in reports:
            if not report.ok:
                self.hooks.fire(
                    HookEvent.ON_CHECKPOINT_CORRUPTED, path=report.path, error=report.problem
                )
        return reports

    def apply_retention(
        self, *, just_written: str | None = None, dry_run: bool = False
    ) -> list[CheckpointMetadata]:
        """Delete what no policy keeps (never one being read); return what was deleted."""
        with self.locks.exclusive():
            checkpoints = self.list_checkpoints()
            _, doomed = plan_retention(checkpoints, self.policy, just_written=just_written)
            deleted, trash = [], []
            for meta in doomed:
                if self.locks.readers_of(meta.name):
                    logger.info("keeping %s for now: another process is reading it", meta.name)
                    continue
                deleted.append(meta)
                if not dry_run:
                    trash.append(self._to_trash(meta.path))
            if trash:
                fsync_dir(self.root)
            if not dry_run:
                trash.extend(self.catalog.leftovers(self.locks))
        for path in trash:
            remove_path(path)
        if not dry_run:
            self.cache.invalidate()
            for meta in deleted:
                self.hooks.fire(HookEvent.ON_CHECKPOINT_DELETED, path=meta.path, epoch=meta.epoch)
            self.hooks.fire(
                HookEvent.ON_RETENTION_APPLIED,
                kept=[c.path for c in checkpoints if c not in deleted],
                deleted=[c.path for c in deleted],
            )
        return deleted

    def _to_trash(self, path: Path) -> Path:
        # rename first: the checkpoint disappears atomically, rmtree may then be killed
        trash = self.root / f"{L.TRASH_PREFIX}{path.name}-{uuid.uuid4().hex[:8]}"
        os.rename(path, trash)
        return trash

    def prune(self, *, dry_run: bool = False) -> dict[str, list[str]]:
        """Remove incomplete checkpoints and leftovers, then apply retention.

        Returns:
            ``{"incomplete": [...], "leftovers": [...], "retention": [...]}`` (names).
        """
        incomplete: list[str] = []
        with self.locks.exclusive():
            trash = self.catalog.leftovers(self.locks)
            leftovers = sorted(p.name for p in trash)
            if dry_run:
                trash = []
            for entry in sorted(self.root.iterdir()):
                name = entry.name
                if L.parse_checkpoint_name(name) and entry.is_dir():
                    try:
                        read_manifest(entry)
                    except CheckpointCorruptedError:
                        incomplete.append(name)
                        if not dry_run:
                            trash.append(self._to_trash(entry))
        for path in trash:
            remove_path(path)
        self.cache.invalidate()
        deleted = self.apply_retention(dry_run=dry_run)
        return {
            "incomplete": incomplete,
            "leftovers": leftovers,
            "retention": [m.name for m in deleted],
        }

    # --------------------------------------------------- resume / migrate / import
    def resume(
        self,
        path: str | Path | None,
        config: ConfigSource,
        *,
        mode: Literal["strict", "warn"] = "strict",
        allow_changes: Sequence[str] = (),
        model: Any = None,
        map_location: Any = None,
        restore_rng: bool = True,
    ) -> ResumeResult:
        """Load a checkpoint after checking it against ``config`` and ``model``.

        RNG states are restored only once validation passed.

        Raises:
            ResumeError: ``strict`` mode and a breaking config change that is not in
                ``allow_changes``, or model keys/shapes that differ.
        """
        checkpoint = self.load(path, map_location=map_location, restore_rng=False)
        current = config_fields(config)
        result = validate_resume(
            checkpoint,
            current["config"],
            current["config_hash"],
            mode=mode,
            allow_changes=allow_changes,
            model_state=_state_of(model) if model is not None else None,
        )
        if restore_rng and checkpoint["rng_state"]:
            restore_rng_state(checkpoint["rng_state"])
        self.hooks.fire(
            HookEvent.ON_RESUME,
            path=checkpoint["path"],
            changes=result.changes,
            allowed_changes=result.allowed_changes,
        )
        return result

    def migrate(self, path: str | Path) -> Path | None:
        """Rewrite an older-format checkpoint in the current format, in place.

        Returns:
            The checkpoint directory, or None when it already was current.
        """
        directory = self.resolve(path)
        manifest, state = read_checkpoint(directory, verify=True)
        if manifest.migrated_from is None:
            return None
        metadata = {**manifest.metadata, "migrated_from": manifest.migrated_from}
        write_checkpoint(
            directory.parent,
            state,
            metadata,
            storage=manifest.storage,
            compression=None,
            locks=CheckpointLocks(directory.parent),
            replace=directory,
        )
        self.cache.invalidate()
        self.hooks.fire(
            HookEvent.ON_MIGRATION,
            path=directory,
            from_version=manifest.migrated_from,
            to_version=L.FORMAT_VERSION,
        )
        return directory

    def import_lightning(
        self,
        ckpt_path: str | Path,
        *,
        metrics: Mapping[str, Any] | None = None,
        strip_prefix: str = "",
        notes: str | None = None,
    ) -> Path:
        """Convert a Lightning ``.ckpt`` into a trainforge checkpoint in this directory."""
        data = read_lightning_checkpoint(ckpt_path)
        values = _plain_metrics(metrics or {})
        metadata = {
            "epoch": int(data["epoch"]),
            "global_step": int(data["global_step"]),
            "metrics": values,
            "monitor": self.monitor,
            "monitor_value": values.get(self.monitor) if self.monitor else None,
            "mode": self.mode,
            "protected": False,
            "notes": notes or f"imported from Lightning checkpoint {ckpt_path}",
            "rng_state": None,
            **config_fields(data.get("hyper_parameters") or None),
            **environment_info(),
        }
        path = write_checkpoint(
            self.root,
            lightning_to_state(data, strip_prefix=strip_prefix),
            metadata,
            storage=self.storage,
            compression=self.compression,
            locks=self.locks,
        )
        self._after_write(path, values)
        return path

    # ------------------------------------------------------------------ mirror
    def wait_for_mirror(self, timeout: float | None = None) -> list[MirrorFailure]:
        """Block until queued mirror copies finish; return every failure so far."""
        return self.mirror.wait(timeout) if self.mirror is not None else []

    @property
    def mirror_failures(self) -> list[MirrorFailure]:
        """Copies to the mirror that failed (the local checkpoints are intact)."""
        return list(self.mirror.failures) if self.mirror is not None else []
