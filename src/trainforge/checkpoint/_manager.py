"""CheckpointManager: save, list, load, verify, retain and prune checkpoints.

The manager composes the parts that each live in their own module: the atomic writer,
the verifying reader, storage backends, the catalog (listing and ranking), the pruner
(retention, pruning, crash recovery), locks, the metadata cache, conversions and the
mirror. It holds no state that is not also on disk, so several processes can share a
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
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

from trainforge.checkpoint import _layout as L
from trainforge.checkpoint._catalog import CheckpointCatalog
from trainforge.checkpoint._compression import compression_for
from trainforge.checkpoint._conversion import (
    CheckpointConversions,
    plain_metrics,
    state_of,
)
from trainforge.checkpoint._loading import Loader
from trainforge.checkpoint._lock import CheckpointLocks
from trainforge.checkpoint._metadata import CheckpointMetadata, TTLCache
from trainforge.checkpoint._mirror import Mirror, MirrorFailure
from trainforge.checkpoint._pruning import Pruner
from trainforge.checkpoint._reader import VerifyReport, verify_checkpoint
from trainforge.checkpoint._resume import ResumeResult
from trainforge.checkpoint._retention import AnyOf, KeepBestK, KeepLastN, RetentionPolicy
from trainforge.checkpoint._sharded_io import ShardedCheckpoints
from trainforge.checkpoint._writer import config_fields, environment_info, write_checkpoint
from trainforge.checkpoint.storage import get_storage
from trainforge.errors import CheckpointError
from trainforge.hooks import HookEvent, HookManager
from trainforge.records import ConfigSource
from trainforge.seeding import capture_rng_state

__all__ = ["CheckpointManager"]

logger = logging.getLogger(__name__)


class CheckpointManager(ShardedCheckpoints, CheckpointConversions):
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

    Examples:
        >>> import torch
        >>> model = torch.nn.Linear(8, 2)
        >>> manager = CheckpointManager("ckpts", keep_best_k=1, monitor="val/loss")
        >>> for epoch in range(3):
        ...     path = manager.save(model=model, epoch=epoch, global_step=10 * (epoch + 1),
        ...                         metrics={"val/loss": 1.0 / (epoch + 1)})
        >>> manager.get_best().name
        'ckpt-000003-epoch0002-step000030'
        >>> state = manager.load("last")  # every file's SHA256 is checked first
        >>> state["epoch"], sorted(state["model_state_dict"])
        (2, ['bias', 'weight'])
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
        try:
            self.root.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise CheckpointError(
                f"cannot create the checkpoint folder {self.root}: {err.strerror or err}",
                path=self.root,
                hint="set checkpoint.dirpath (or run.output_dir) to a folder you can write",
            ) from None
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
        if self.pruner.has_interrupted():
            try:
                with self.locks.exclusive():
                    self.pruner.recover()
            except OSError as exc:  # a read-only directory: listing still works
                logger.warning("cannot recover interrupted migrations in %s: %s", self.root, exc)

    @property
    def pruner(self) -> Pruner:
        """Retention, pruning and recovery with this manager's current policy and hooks."""
        return Pruner(self.catalog, self.locks, self.policy, self.hooks)

    @property
    def loader(self) -> Loader:
        """Loading with this manager's current hooks and verification setting."""
        return Loader(self.catalog, self.locks, self.hooks, verify=self.verify_on_load)

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
            ValueError: ``monitor`` is missing from ``metrics``, or a value would not make
                a valid manifest (a negative epoch, non-text notes).
            CheckpointRankingError: The directory holds checkpoints ranked by another
                monitor or mode (retention would compare unlike values); nothing is written.
            CheckpointSaveError: Disk full, permission denied; earlier checkpoints intact.
        """
        self._check_writable(metrics)
        values = plain_metrics(metrics)
        self.hooks.fire(
            HookEvent.BEFORE_CHECKPOINT_SAVE, epoch=epoch, global_step=global_step, metrics=values
        )
        state = {
            L.MODEL_KEY: state_of(model),
            L.OPTIMIZER_KEY: state_of(optimizer),
            L.SCHEDULER_KEY: state_of(scheduler),
            L.CUSTOM_KEY: custom_state,
        }
        metadata = self._metadata(epoch, global_step, values, config, protected, notes)
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

    def _check_writable(self, metrics: Mapping[str, Any]) -> None:
        if self.monitor is not None and self.monitor not in metrics:
            raise ValueError(
                f"monitor metric '{self.monitor}' is missing from metrics; "
                f"got keys: {sorted(metrics)}; pass it, or build the manager with "
                "another monitor (monitor=None to rank nothing)"
            )
        self.catalog.check_ranking()

    def _metadata(
        self,
        epoch: int,
        global_step: int,
        values: dict[str, float],
        config: ConfigSource | None,
        protected: bool,
        notes: str | None,
    ) -> dict[str, Any]:
        return {
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

    def _after_write(self, path: Path, metrics: dict[str, float]) -> None:
        # entries are keyed by name and manifest mtime: only this name can be stale
        self.cache.invalidate_where(lambda key: key[0] == path.name)
        self.catalog.remember(path, True)  # hashed as it was written
        best = next((c for c in self.list_checkpoints() if c.is_best), None)
        if best is not None and best.path == path:
            self.hooks.fire(HookEvent.ON_BEST_CHECKPOINT, path=path, metric=best.metric)
        pruner = self.pruner
        pruner.apply_retention(just_written=path.name)
        if self.mirror is not None:
            self.mirror.submit(path, pruner.pointers)
        if self.tracker is not None:
            # the manifest lists every file's hash: logging it records the whole checkpoint
            self.tracker.log_artifact(path / L.MANIFEST_NAME)
            if best is not None and best.path == path:
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
            CheckpointRankingError: The checkpoints recorded another monitor or mode.
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

        ``last`` is the newest *complete* checkpoint; when newer checkpoint directories
        are passed over (no manifest, an unreadable one), a ``RuntimeWarning`` names each
        of them and why.

        Returns:
            ``epoch``, ``global_step``, ``model_state_dict``, ``optimizer_state_dict``,
            ``scheduler_state_dict``, ``custom_state``, ``metrics``, ``config``,
            ``config_hash``, ``config_provenance``, ``rng_state``, ``metadata``, ``path``.

        Raises:
            CheckpointCorruptedError: Naming the file, expected/actual hash and the newest
                valid alternative (loaded instead, with a warning, when ``fallback``);
                also for recorded RNG states that cannot be restored.
            UnsafeCheckpointError: The payload would run code when unpickled; naming the
                blocked type.
        """
        return self.loader.load(
            path, map_location=map_location, restore_rng=restore_rng, fallback=fallback
        )

    def newest_valid(self, *, exclude: Path | None = None) -> Path | None:
        """Newest checkpoint whose files all match the manifest (full hash check)."""
        return self.loader.newest_valid(exclude=exclude)

    # ---------------------------------------------------------- verify / prune
    def verify(self, target: str | Path | None = None, *, deep: bool = False) -> list[VerifyReport]:
        """Verify one checkpoint, or every ``ckpt-*`` directory when ``target`` is None.

        Args:
            target: A checkpoint (path, ``last`` or ``best``); None for all of them.
            deep: Also deserialise each payload through the safe loader, as ``load``
                would (catches what hashes cannot: a payload that is unsafe to unpickle).
        """
        dirs = [self.resolve(target)] if target is not None else self.catalog.directories()
        reports = [verify_checkpoint(d, deep=deep) for d in dirs]
        for bad in (r for r in reports if not r.ok):
            self.hooks.fire(HookEvent.ON_CHECKPOINT_CORRUPTED, path=bad.path, error=bad.problem)
        return reports

    def apply_retention(
        self, *, just_written: str | None = None, dry_run: bool = False
    ) -> list[CheckpointMetadata]:
        """Delete what no policy keeps (never one being read); return what was deleted.

        ``last`` and ``best`` are first pointed at checkpoints that stay.

        Raises:
            CheckpointRankingError: The checkpoints recorded another monitor or mode.
        """
        return self.pruner.apply_retention(just_written=just_written, dry_run=dry_run)

    def prune(self, *, dry_run: bool = False, remove_unreadable: bool = False) -> dict[str, Any]:
        """Verify every checkpoint, remove incomplete ones and leftovers, apply retention.

        Checkpoints that cannot be ranked (an unreadable or newer-format manifest, files
        that fail verification) are kept and reported unless ``remove_unreadable``; they
        never count as one of the checkpoints retention keeps.

        Returns:
            Names by outcome (see :meth:`Pruner.prune`), and ``reasons`` (name -> why).

        Raises:
            CheckpointRankingError: The checkpoints recorded another monitor or mode.
        """
        return self.pruner.prune(dry_run=dry_run, remove_unreadable=remove_unreadable)

    # ------------------------------------------------------------------ resume
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
                ``allow_changes``, model keys/shapes that differ, or an entry of
                ``allow_changes`` that names no config key (with a did-you-mean).
        """
        return self.loader.resume(
            path,
            config_fields(config),
            mode=mode,
            allow_changes=allow_changes,
            model_state=state_of(model) if model is not None else None,
            map_location=map_location,
            restore_rng=restore_rng,
        )

    # ------------------------------------------------------------------ mirror
    def wait_for_mirror(self, timeout: float | None = None) -> list[MirrorFailure]:
        """Block until queued mirror copies finish; return every failure so far."""
        return self.mirror.wait(timeout) if self.mirror is not None else []

    @property
    def mirror_failures(self) -> list[MirrorFailure]:
        """Copies to the mirror that failed (the local checkpoints are intact)."""
        return list(self.mirror.failures) if self.mirror is not None else []
