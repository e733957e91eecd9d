"""Write one checkpoint directory atomically and describe it in its manifest.

The payload and the manifest are written into ``.tmp-<name>-<token>/``, fsynced, and the
directory is renamed to its final name under the directory lock, then the parent is
fsynced. A process killed at any moment leaves either a complete checkpoint or a hidden
temporary directory that listing ignores and pruning removes.

Replacing a checkpoint in place (format migration) takes two renames under the lock: the
old directory is parked as ``.replaced-<name>-<token>``, then the new one takes its name.
A process killed between them leaves the old copy parked and no checkpoint under the
name; the next manager to open the directory renames it back (see ``_pruning``).
"""

from __future__ import annotations

import datetime as _dt
import functools
import os
import platform
import shutil
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from trainforge._version import __version__
from trainforge.checkpoint._compression import compression_for
from trainforge.checkpoint._integrity import fsync_dir
from trainforge.checkpoint._layout import (
    REPLACED_PREFIX,
    TEMP_PREFIX,
    checkpoint_name,
    parse_checkpoint_name,
)
from trainforge.checkpoint._lock import CheckpointLocks
from trainforge.checkpoint._manifest import Manifest, write_manifest
from trainforge.checkpoint._record import MetadataRecord, describe_validation_error
from trainforge.checkpoint.storage import get_storage
from trainforge.errors import CheckpointSaveError
from trainforge.records import ConfigRecord, ConfigSource

__all__ = ["config_fields", "environment_info", "next_index", "write_checkpoint"]


def config_fields(config: ConfigSource | None) -> dict[str, Any]:
    """Config, its hash and its provenance as the manifest stores them (all None if absent)."""
    record = ConfigRecord.optional(config)
    if record is None:
        return {"config": None, "config_hash": None, "config_provenance": None}
    return record.plain()


def _git(*args: str) -> str | None:
    try:
        out = subprocess.run(["git", *args], capture_output=True, text=True, timeout=5, check=True)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip()


@functools.lru_cache(maxsize=8)
def _git_state(cwd: str) -> dict[str, Any]:
    """Commit and dirty flag of the repository at ``cwd``, read once per process.

    The code a process runs is the code it imported: a commit made or a file edited
    while it trains does not change that, so every checkpoint of the process records
    the state its first checkpoint found (and saves two ``git`` processes per save).
    """
    commit = _git("rev-parse", "HEAD")
    dirty = None
    if commit:
        status = _git("status", "--porcelain", "--untracked-files=no")
        dirty = bool(status) if status is not None else None
    return {"commit": commit, "dirty": dirty}


def environment_info() -> dict[str, Any]:
    """Git commit + dirty flag of the working directory and library versions."""
    torch = sys.modules.get("torch")
    return {
        "git": dict(_git_state(os.getcwd())),
        "versions": {
            "trainforge": __version__,
            "torch": getattr(torch, "__version__", None),
            "python": platform.python_version(),
        },
        "hostname": platform.node(),
        "timestamp": _dt.datetime.now(_dt.timezone.utc).isoformat(),
    }


def next_index(root: Path) -> int:
    """One more than the highest checkpoint number in ``root`` (complete or not)."""
    highest = 0
    for entry in os.scandir(root):
        parsed = parse_checkpoint_name(entry.name)
        if parsed is not None:
            highest = max(highest, parsed[0])
    return highest + 1


def write_checkpoint(
    root: Path,
    state: dict[str, Any],
    metadata: dict[str, Any],
    *,
    storage: str,
    compression: str | None,
    locks: CheckpointLocks,
    replace: Path | None = None,
) -> Path:
    """Write ``state`` + manifest atomically under ``root``; return the final directory.

    With ``replace``, the new checkpoint takes that directory's name and the old one is
    removed (used by format migration); otherwise it gets the next free number.

    Raises:
        ValueError: ``metadata`` would not make a valid manifest (a negative epoch, ...).
        CheckpointSaveError: The disk is full, a permission is missing, or another OS
            error; the temporary directory is removed and existing checkpoints are intact.
    """
    try:  # never write a manifest this version could not read back
        MetadataRecord.model_validate(metadata)
    except ValidationError as exc:
        raise ValueError(f"cannot save this checkpoint: {describe_validation_error(exc)}") from None
    backend = get_storage(storage)
    codec = compression_for(compression)
    epoch, step = int(metadata["epoch"]), int(metadata["global_step"])
    temp = root / f"{TEMP_PREFIX}epoch{epoch:04d}-step{step:06d}-{uuid.uuid4().hex[:12]}"
    try:
        with locks.writing(temp.name):
            temp.mkdir()
            files = backend.write(state, temp, compression=codec)
            manifest = Manifest(storage=backend.name, files=files, metadata=metadata)
            write_manifest(temp, manifest)
            fsync_dir(temp)
            with locks.exclusive():
                if replace is None:
                    final = root / checkpoint_name(next_index(root), epoch, step)
                else:
                    final = replace
                    old = root / f"{REPLACED_PREFIX}{replace.name}-{temp.name[-12:]}"
                    os.rename(replace, old)
                    fsync_dir(root)
                os.rename(temp, final)
                fsync_dir(root)
            if replace is not None:
                shutil.rmtree(old, ignore_errors=True)
    except (OSError, RuntimeError) as exc:
        shutil.rmtree(temp, ignore_errors=True)
        os_error = _os_error(exc)
        if os_error is None:
            raise
        reason = os.strerror(os_error.errno) if os_error.errno else str(os_error)
        raise CheckpointSaveError(
            f"could not write checkpoint epoch {epoch} step {step} to {root}: {reason}",
            path=root,
            hint="free disk space or fix permissions; earlier checkpoints are untouched",
        ) from exc
    except BaseException:
        shutil.rmtree(temp, ignore_errors=True)
        raise
    return final


def _os_error(exc: BaseException | None) -> OSError | None:
    """The OSError behind ``exc`` (torch wraps write errors in a RuntimeError)."""
    seen = 0
    while exc is not None and seen < 10:
        if isinstance(exc, OSError):
            return exc
        exc = exc.__cause__ or exc.__context__
        seen += 1
    return None
