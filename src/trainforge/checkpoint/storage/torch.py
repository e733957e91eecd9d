"""The ``torch`` storage backend: one ``torch.save`` file loaded with ``weights_only=True``.

Saving streams ``torch.save`` through a hashing writer (and a compressor when asked), so
the SHA256 is known when the last byte is written. Loading an uncompressed file maps it
(``mmap=True``): the bytes the manager just hashed from the page cache become the tensors'
storage without another copy.
"""

from __future__ import annotations

import io
import pickle
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from trainforge.checkpoint._compression import Compression, detect_compression
from trainforge.checkpoint._integrity import FileEntry, HashingWriter
from trainforge.errors import CheckpointCorruptedError, UnsafeCheckpointError

__all__ = ["ALLOWED_GLOBALS", "STATE_FILE", "TorchStorage", "safe_torch_load"]

STATE_FILE = "state.pt"

ALLOWED_GLOBALS: list[Any] = []
"""Types beyond torch's weights-only defaults that trainforge itself may save.

Everything trainforge writes is tensors, containers and scalars, which the weights-only
unpickler already accepts; extend this list (never with code-running types) if a
trainforge type ever has to go into a payload.
"""


def safe_torch_load(source: Any, *, map_location: Any = None, mmap: bool = False) -> Any:
    """``torch.load`` restricted to weights (tensors, containers, scalars).

    Raises:
        UnsafeCheckpointError: The pickle references a global outside the allow-list
            (such as a ``__reduce__`` that would run code); nothing was executed.
    """
    where = source if isinstance(source, (str, Path)) else "checkpoint data"
    try:
        with torch.serialization.safe_globals(ALLOWED_GLOBALS):
            return torch.load(source, map_location=map_location, weights_only=True, mmap=mmap)
    except pickle.UnpicklingError as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise UnsafeCheckpointError(
            f"refusing to load {where}: it contains pickled objects outside the allow-list "
            f"({first})",
            path=where if isinstance(where, (str, Path)) else None,
            hint="only load checkpoints you trust; trainforge never unpickles arbitrary code",
        ) from None
    except RuntimeError as exc:
        raise CheckpointCorruptedError(
            f"cannot deserialise {where}: {exc}",
            path=where if isinstance(where, (str, Path)) else None,
        ) from None


class TorchStorage:
    """Payload as one ``state.pt`` (``state.pt.gz`` / ``state.pt.zst`` when compressed)."""

    name = "torch"

    def write(
        self, state: dict[str, Any], directory: Path, *, compression: Compression | None
    ) -> dict[str, FileEntry]:
        """``torch.save`` the state through a hashing (and compressing) writer, fsynced."""
        name = STATE_FILE + (compression.suffix if compression else "")
        with open(directory / name, "wb") as raw, HashingWriter(raw) as writer:
            if compression is None:
                torch.save(state, writer)
            else:
                with compression.open_writer(writer) as stream:
                    torch.save(state, stream)
            writer.finish()  # the disk flush: most of the save time for large states
        codec = compression.name if compression else None
        return {name: FileEntry(writer.hexdigest(), writer.size, codec)}

    def read(
        self,
        directory: Path,
        files: Mapping[str, FileEntry],
        buffers: Mapping[str, Any],
        *,
        map_location: Any,
    ) -> dict[str, Any]:
        """Deserialise the single payload file with the weights-only unpickler."""
        if len(files) != 1:
            raise CheckpointCorruptedError(
                f"torch checkpoint {directory} must have exactly one payload file, "
                f"the manifest lists {sorted(files)}",
                path=directory,
            )
        name = next(iter(files))
        buffer = buffers[name]
        codec = detect_compression(bytes(buffer[:4]))
        if codec is not None:
            return safe_torch_load(io.BytesIO(codec.decompress(buffer)), map_location=map_location)
        if bytes(buffer[:2]) == b"PK":  # zip container: map it instead of copying it
            return safe_torch_load(str(directory / name), map_location=map_location, mmap=True)
        return safe_torch_load(io.BytesIO(buffer), map_location=map_location)
