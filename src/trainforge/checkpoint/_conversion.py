"""What goes into a checkpoint from elsewhere: Stateful objects and metric values as plain
data, older formats rewritten, Lightning files imported.

The last two produce an ordinary checkpoint through the atomic writer. Migration replaces the
old directory under the same name (see ``_writer`` for how a kill between the two renames
is undone); an import is saved like any new checkpoint.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from trainforge.checkpoint import _layout as L
from trainforge.checkpoint._lightning import lightning_to_state, read_lightning_checkpoint
from trainforge.checkpoint._lock import CheckpointLocks
from trainforge.checkpoint._reader import read_checkpoint
from trainforge.checkpoint._writer import config_fields, environment_info, write_checkpoint
from trainforge.hooks import HookEvent, HookManager

if TYPE_CHECKING:
    from trainforge.checkpoint._manager import CheckpointManager

__all__ = [
    "CheckpointConversions",
    "import_lightning_file",
    "migrate_in_place",
    "plain_metrics",
    "state_of",
]


def state_of(obj: Any) -> Any:
    """``obj.state_dict()`` for anything Stateful; mappings and None pass through."""
    if obj is None or isinstance(obj, Mapping):
        return obj
    state_dict = getattr(obj, "state_dict", None)
    if not callable(state_dict):
        raise TypeError(
            f"expected an object with state_dict() or a mapping, got {type(obj).__name__}"
        )
    return state_dict()


def plain_metrics(metrics: Mapping[str, Any]) -> dict[str, float]:
    """Metric values as floats (tensors, numpy scalars); ``.item()`` on CUDA is a sync."""
    return {str(k): float(v.item() if hasattr(v, "item") else v) for k, v in metrics.items()}


def migrate_in_place(directory: Path, *, locks: CheckpointLocks, hooks: HookManager) -> bool:
    """Rewrite the older-format checkpoint in ``directory`` in the current format.

    Returns:
        True when it was rewritten, False when it already was current.

    Raises:
        CheckpointCorruptedError: The checkpoint does not verify; nothing is changed.
    """
    manifest, state = read_checkpoint(directory, verify=True)
    if manifest.migrated_from is None:
        return False
    metadata = {**manifest.metadata, "migrated_from": manifest.migrated_from}
    write_checkpoint(
        directory.parent,
        state,
        metadata,
        storage=manifest.storage,
        compression=None,
        locks=locks,
        replace=directory,
    )
    hooks.fire(
        HookEvent.ON_MIGRATION,
        path=directory,
        from_version=manifest.migrated_from,
        to_version=L.FORMAT_VERSION,
    )
    return True


def import_lightning_file(
    ckpt_path: str | Path,
    root: Path,
    *,
    storage: str,
    compression: str | None,
    locks: CheckpointLocks,
    monitor: str | None,
    mode: str,
    metrics: Mapping[str, Any] | None,
    strip_prefix: str,
    notes: str | None,
) -> tuple[Path, dict[str, float]]:
    """Write a Lightning ``.ckpt`` as a new checkpoint under ``root``.

    Returns:
        The new checkpoint directory and its metric values.
    """
    data = read_lightning_checkpoint(ckpt_path)
    values = plain_metrics(metrics or {})
    metadata = {
        "epoch": int(data["epoch"]),
        "global_step": int(data["global_step"]),
        "metrics": values,
        "monitor": monitor,
        "monitor_value": values.get(monitor) if monitor else None,
        "mode": mode,
        "protected": False,
        "notes": notes or f"imported from Lightning checkpoint {ckpt_path}",
        "rng_state": None,
        **config_fields(data.get("hyper_parameters") or None),
        **environment_info(),
    }
    state = lightning_to_state(data, strip_prefix=strip_prefix)
    path = write_checkpoint(
        root, state, metadata, storage=storage, compression=compression, locks=locks
    )
    return path, values


class CheckpointConversions:
    """Migrating and importing checkpoints: a base class of :class:`CheckpointManager`."""

    def migrate(self, path: str | Path) -> Path | None:
        """Rewrite an older-format checkpoint in the current format, in place.

        Safe to kill at any point: the checkpoint is afterwards in its old or its new
        format, never gone.

        Returns:
            The checkpoint directory, or None when it already was current.
        """
        manager = cast("CheckpointManager", self)
        directory = manager.resolve(path)
        locks = CheckpointLocks(directory.parent)
        migrated = migrate_in_place(directory, locks=locks, hooks=manager.hooks)
        manager.cache.invalidate()
        return directory if migrated else None

    def import_lightning(
        self,
        ckpt_path: str | Path,
        *,
        metrics: Mapping[str, Any] | None = None,
        strip_prefix: str = "",
        notes: str | None = None,
    ) -> Path:
        """Convert a Lightning ``.ckpt`` into a trainforge checkpoint in this directory."""
        manager = cast("CheckpointManager", self)
        manager.catalog.check_ranking()
        path, values = import_lightning_file(
            ckpt_path,
            manager.root,
            storage=manager.storage,
            compression=manager.compression,
            locks=manager.locks,
            monitor=manager.monitor,
            mode=manager.mode,
            metrics=metrics,
            strip_prefix=strip_prefix,
            notes=notes,
        )
        manager._after_write(path, values)
        return path
