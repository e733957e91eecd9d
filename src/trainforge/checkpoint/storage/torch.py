"""The ``torch`` storage backend: one ``torch.save`` file loaded with ``weights_only=True``.

Saving uses ``torch.save``'s own file writer and hashes the file from the page cache while
it is fsynced; a compressed payload streams through the compressor and a hashing writer.
Loading an uncompressed file maps it (``mmap=True``): the bytes the manager just hashed
from the page cache become the tensors' storage without another copy.
"""

from __future__ import annotations

import errno
import io
import os
import pickle
import re
from collections.abc import Mapping
from pathlib import Path
from typing import IO, Any, cast

import torch

from trainforge.checkpoint._compression import Compression, detect_compression
from trainforge.checkpoint._integrity import FileEntry, HashingWriter, hash_file_and_fsync
from trainforge.errors import CheckpointCorruptedError, UnsafeCheckpointError

__all__ = ["ALLOWED_GLOBALS", "STATE_FILE", "TorchStorage", "safe_torch_load"]

STATE_FILE = "state.pt"

ALLOWED_GLOBALS: list[Any] = []
"""Types beyond torch's weights-only defaults that trainforge itself may save.

Everything trainforge writes is tensors, containers and scalars, which the weights-only
unpickler already accepts; extend this list (never with code-running types) if a
trainforge type ever has to go into a payload.
"""


_BLOCKED = re.compile(r"GLOBAL ([\w.]+)")


def _refusal(exc: pickle.UnpicklingError, where: Any) -> UnsafeCheckpointError:
    """The refusal of a weights-only load, naming the blocked global (not torch's advice)."""
    text = str(exc)
    blocked = _BLOCKED.search(text)
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    # torch's first line suggests weights_only=False (running the pickle): never repeat it
    detail = next((ln for ln in lines if "GLOBAL" in ln), lines[-1] if lines else "")
    if blocked is not None:
        name = blocked.group(1)
        what = f"it would unpickle the global {name}, which is not on the allow-list"
        hint = (
            f"nothing was run. If you trust this file and {name} is a plain data type, allow "
            "that one type deliberately: trainforge.checkpoint.storage.torch.ALLOWED_GLOBALS"
            f".append({name.rsplit('.', 1)[-1]}); never allow a function"
        )
    else:
        what = f"its pickle is not plain weights ({detail or type(exc).__name__})"
        hint = "nothing was run; trainforge never unpickles arbitrary code"
    path = where if isinstance(where, (str, Path)) else None
    return UnsafeCheckpointError(f"refusing to load {where}: {what}", path=path, hint=hint)


def safe_torch_load(source: Any, *, map_location: Any = None, mmap: bool = False) -> Any:
    """``torch.load`` restricted to weights (tensors, containers, scalars).

    Raises:
        UnsafeCheckpointError: The pickle references a global outside the allow-list
            (such as a ``__reduce__`` that would run code); nothing was executed. The
            message names the global.
        CheckpointCorruptedError: The bytes are not a torch checkpoint at all.
    """
    where = source if isinstance(source, (str, Path)) else "checkpoint data"
    try:
        with torch.serialization.safe_globals(ALLOWED_GLOBALS):
            return torch.load(source, map_location=map_location, weights_only=True, mmap=mmap)
    except pickle.UnpicklingError as exc:
        raise _refusal(exc, where) from None
    except Exception as exc:  # any other failure to parse untrusted bytes is damage
        raise CheckpointCorruptedError(
            f"cannot deserialise {where}: {type(exc).__name__}: {exc}",
            path=where if isinstance(where, (str, Path)) else None,
            hint="is it a checkpoint? trainforge reads its checkpoint directories and files "
            "written by torch.save (a Lightning .ckpt); this one is damaged or of another kind",
        ) from None


def _as_os_error(exc: RuntimeError, directory: Path) -> OSError:
    """The likely OSError behind a failed ``torch.save``: disk full when no space is left."""
    stats = os.statvfs(directory)
    if stats.f_bavail * stats.f_frsize < (1 << 20):
        return OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    return OSError(errno.EIO, f"{os.strerror(errno.EIO)} ({exc})")


class TorchStorage:
    """Payload as one ``state.pt`` (``state.pt.gz`` / ``state.pt.zst`` when compressed)."""

    name = "torch"

    def write(
        self, state: dict[str, Any], directory: Path, *, compression: Compression | None
    ) -> dict[str, FileEntry]:
        """``torch.save`` the state through a hashing (and compressing) writer, fsynced."""
        name = STATE_FILE + (compression.suffix if compression else "")
        path = directory / name
        if compression is None:
            try:
                torch.save(state, path)
            except RuntimeError as exc:  # torch's C++ writer reports I/O errors without errno
                raise _as_os_error(exc, directory) from exc
            digest, size = hash_file_and_fsync(path)  # the hash hides behind the disk flush
            return {name: FileEntry(digest, size, None)}
        with open(path, "wb") as raw, HashingWriter(raw) as writer:
            # the hashing writer is a binary file for the codec
            with compression.open_writer(cast(IO[bytes], writer)) as stream:
                torch.save(state, stream)
            writer.finish()
        return {name: FileEntry(writer.hexdigest(), writer.size, compression.name)}

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
        if len(buffer) == 0:
            raise CheckpointCorruptedError(
                f"checkpoint file {directory / name} is empty", path=directory / name
            )
        codec = detect_compression(bytes(buffer[:4]))
        if codec is not None:
            try:
                data = codec.decompress(buffer)
            except Exception as exc:  # zlib.error, zstd.ZstdError: damaged compressed bytes
                raise CheckpointCorruptedError(
                    f"cannot decompress {directory / name} ({codec.name}): {exc}",
                    path=directory / name,
                ) from None
            return safe_torch_load(io.BytesIO(data), map_location=map_location)
        if bytes(buffer[:2]) == b"PK":  # zip container: map it instead of copying it
            return safe_torch_load(str(directory / name), map_location=map_location, mmap=True)
        return safe_torch_load(io.BytesIO(buffer), map_location=map_location)
