"""What is inside a checkpoint: its manifest, and every tensor's name, shape and dtype.

Inspecting reads the payload through the same verifying, weights-only loader as
``load``, so it never unpickles anything outside the allow-list, for trainforge
checkpoints and Lightning ``.ckpt`` files alike. Tensors are named by their path in the
state: ``model_state_dict/0.weight``, ``optimizer_state_dict/state/0/exp_avg``.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from trainforge.checkpoint._lightning import inspect_lightning_checkpoint, read_lightning_checkpoint
from trainforge.checkpoint._reader import read_checkpoint
from trainforge.checkpoint._targets import locate_checkpoint, resolve_checkpoint
from trainforge.errors import CheckpointNotFoundError

__all__ = ["inspect_checkpoint", "tensor_table"]


def tensor_table(state: Any, prefix: str = "") -> list[dict[str, Any]]:
    """One row (name, shape, dtype, numel) per tensor in a nested state, in state order."""
    rows: list[dict[str, Any]] = []
    if hasattr(state, "shape") and hasattr(state, "dtype") and hasattr(state, "numel"):
        dtype = str(state.dtype).removeprefix("torch.")
        rows.append(
            {"name": prefix, "shape": list(state.shape), "dtype": dtype, "numel": state.numel()}
        )
    elif isinstance(state, Mapping):
        for key, value in state.items():
            rows += tensor_table(value, f"{prefix}/{key}" if prefix else str(key))
    elif isinstance(state, (list, tuple)):
        for i, value in enumerate(state):
            rows += tensor_table(value, f"{prefix}/{i}" if prefix else str(i))
    return rows


def inspect_checkpoint(target: str | Path) -> dict[str, Any]:
    """Manifest, files and tensors of a checkpoint, or a summary of a Lightning file.

    Args:
        target: Anything :func:`resolve_checkpoint` accepts (a ``best`` / ``last``
            pointer resolves to the checkpoint it names), or a Lightning ``.ckpt`` file.

    Returns:
        For a trainforge checkpoint: ``kind`` (``trainforge``), ``path``,
        ``format_version``, ``written_as_format``, ``storage``, ``files``, ``metadata``
        (without the RNG states) and ``tensors``. For a Lightning file: what
        :func:`inspect_lightning_checkpoint` reports, plus ``tensors``.

    Raises:
        CheckpointNotFoundError: Nothing is at ``target``.
        CheckpointCorruptedError: The checkpoint does not verify.
        UnsafeCheckpointError: The payload holds pickled objects outside the allow-list.
    """
    path = Path(target)
    if path.is_file():
        try:
            resolve_checkpoint(path)
        except CheckpointNotFoundError:
            info = inspect_lightning_checkpoint(path)
            data = read_lightning_checkpoint(path)
            info["tensors"] = tensor_table(data["state_dict"], "state_dict")
            return info
    checkpoint = locate_checkpoint(path)
    manifest, state = read_checkpoint(checkpoint, verify=True, map_location="cpu")
    return {
        "kind": "trainforge",
        "path": str(checkpoint),
        "format_version": manifest.format_version,
        "written_as_format": manifest.migrated_from or manifest.format_version,
        "storage": manifest.storage,
        "files": {n: entry.to_dict() for n, entry in sorted(manifest.files.items())},
        "metadata": {k: v for k, v in manifest.metadata.items() if k != "rng_state"},
        "tensors": tensor_table(state),
    }
