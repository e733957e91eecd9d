"""What a path a user types names: a checkpoint, a directory of them, a pointer, a file.

Users pass whatever is at hand: ``outputs/run-1/checkpoints`` (a directory of
checkpoints), ``.../checkpoints/best`` or ``.../last`` (pointer files), one checkpoint
directory, its ``manifest.json`` or its payload file (``state.pt``). Every command and
``--resume`` resolve them the same way, with :func:`resolve_checkpoint`, into the
directory a :class:`~trainforge.checkpoint.CheckpointManager` manages and what to load
inside it. Rankings are resolved the same way for every command: by what the
checkpoints recorded (:func:`recorded_ranking`).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

from trainforge.checkpoint import _layout as L
from trainforge.checkpoint._catalog import CheckpointCatalog, describe_ranking
from trainforge.errors import CheckpointNotFoundError, CheckpointRankingError

__all__ = ["is_checkpoint_dir", "locate_checkpoint", "recorded_ranking", "resolve_checkpoint"]


def is_checkpoint_dir(path: Path) -> bool:
    """True for one checkpoint's directory (it has a manifest or a checkpoint's name)."""
    return path.is_dir() and (
        (path / L.MANIFEST_NAME).exists() or L.parse_checkpoint_name(path.name) is not None
    )


def _holds_checkpoints(path: Path) -> bool:
    if (path / L.LAST_POINTER).is_file() or (path / L.BEST_POINTER).is_file():
        return True
    with os.scandir(path) as entries:
        return any(L.parse_checkpoint_name(e.name) for e in entries)


def resolve_checkpoint(target: str | Path) -> tuple[Path, str]:
    """The checkpoint directory ``target`` lies in, and what to load there.

    Args:
        target: A directory of checkpoints (its ``last`` is meant), a ``last`` or ``best``
            pointer file, one checkpoint directory, or its manifest or payload file.

    Returns:
        ``(directory, name)``: ``name`` is ``"last"``, ``"best"`` or a checkpoint's
        directory name inside ``directory``.

    Raises:
        CheckpointNotFoundError: Nothing is at ``target``, or nothing there is a
            trainforge checkpoint (a Lightning ``.ckpt`` gets a hint to import it).

    Examples:
        >>> import tempfile
        >>> resolve_checkpoint(tempfile.mkdtemp() + "/nowhere")  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        trainforge.errors.CheckpointNotFoundError: checkpoint .../nowhere does not exist
    """
    path = Path(target)
    if not path.exists():
        raise CheckpointNotFoundError(f"checkpoint {path} does not exist", path=path)
    if path.is_dir():
        if is_checkpoint_dir(path):
            return path.parent, path.name
        if _holds_checkpoints(path):
            return path, L.LAST_POINTER
        raise CheckpointNotFoundError(
            f"{path} is neither a checkpoint nor a directory of checkpoints",
            path=path,
            hint="pass a run's checkpoints directory, one ckpt-* directory in it, or its "
            "'last' / 'best' pointer",
        )
    if path.name in (L.LAST_POINTER, L.BEST_POINTER) and _holds_checkpoints(path.parent):
        return path.parent, path.name
    if is_checkpoint_dir(path.parent):
        return path.parent.parent, path.parent.name
    raise CheckpointNotFoundError(
        f"{path} is a file, not a trainforge checkpoint",
        path=path,
        hint="a Lightning .ckpt file is imported with `trainforge ckpt migrate FILE --into DIR`",
    )


def recorded_ranking(
    directory: str | Path, monitor: str | None = None, mode: str | None = None
) -> tuple[str | None, Literal["min", "max"]]:
    """The monitor and mode to rank the checkpoints in ``directory`` by.

    What the checkpoints recorded decides; ``monitor`` and ``mode`` only fill in where
    they recorded nothing (older formats, imports), and must agree with what they did
    record.

    Returns:
        ``(monitor, mode)``: ``monitor`` is None when nothing ranks the checkpoints.

    Raises:
        CheckpointRankingError: ``mode`` is neither ``min`` nor ``max``, or ``monitor``
            or ``mode`` differ from the recorded ones, or the checkpoints recorded
            different ones.
    """
    if mode is not None and mode not in ("min", "max"):
        raise CheckpointRankingError(f"mode must be 'min' or 'max', got {mode!r}")
    root = Path(directory)
    catalog = CheckpointCatalog(root, monitor=None, mode="max" if mode == "max" else "min")
    recorded = catalog.recorded_rankings()
    if not recorded:
        return monitor, _mode(mode)
    if len(recorded) > 1:
        raise CheckpointRankingError(
            catalog.ranking_conflict(catalog.list_checkpoints()) or f"{root}: mixed rankings",
            path=root,
            hint="keep checkpoints of different metrics in different directories",
        )
    ((found_monitor, found_mode),) = recorded
    found_mode = found_mode or mode or "min"
    if (monitor is not None and monitor != found_monitor) or (
        mode is not None and mode != found_mode
    ):
        given = describe_ranking(monitor or found_monitor, mode or found_mode)
        if mode is None:
            given = repr(monitor)
        raise CheckpointRankingError(
            f"the checkpoints in {root} recorded {describe_ranking(found_monitor, found_mode)}, "
            f"not {given}",
            path=root,
            hint="leave out --monitor and --mode to rank them by what they recorded",
        )
    return found_monitor, _mode(found_mode)


def _mode(mode: str | None) -> Literal["min", "max"]:
    return "max" if mode == "max" else "min"


def locate_checkpoint(target: str | Path) -> Path:
    """The one checkpoint directory ``target`` names, pointers followed.

    ``best`` and ``last`` (and a directory of checkpoints, meaning its ``last``) are
    resolved as loading resolves them: from the manifests, ranked as they recorded.

    Raises:
        CheckpointNotFoundError: As :func:`resolve_checkpoint`, or nothing to point at.
        CheckpointRankingError: ``best`` of checkpoints that recorded different rankings.
    """
    directory, name = resolve_checkpoint(target)
    monitor, mode = recorded_ranking(directory)
    return CheckpointCatalog(directory, monitor=monitor, mode=mode).resolve(name)
