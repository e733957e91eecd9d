"""The storage backend protocol and its registry.

A backend turns the payload part of a checkpoint (model, optimizer, scheduler state and
custom state) into one or more files and back. It hashes what it writes and fsyncs it;
the manager verifies hashes before calling :meth:`StorageBackend.read`. Backends import
torch, so they are registered as lazy factories: importing ``trainforge.checkpoint``
stays free of torch.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Protocol

from trainforge.checkpoint._compression import Compression
from trainforge.checkpoint._integrity import FileEntry
from trainforge.registry import Registry

__all__ = ["STORAGE_BACKENDS", "StorageBackend", "get_storage"]


class StorageBackend(Protocol):
    """Writes the payload of a checkpoint to files and reads it back."""

    name: str

    def write(
        self, state: dict[str, Any], directory: Path, *, compression: Compression | None
    ) -> dict[str, FileEntry]:
        """Write ``state`` into ``directory`` (fsynced); return one entry per file written."""
        ...

    def read(
        self,
        directory: Path,
        files: Mapping[str, FileEntry],
        buffers: Mapping[str, Any],
        *,
        map_location: Any,
    ) -> dict[str, Any]:
        """Rebuild the state from verified ``buffers`` (file name -> read-only bytes)."""
        ...


def _lazy(module: str, cls: str) -> Callable[[], StorageBackend]:
    def factory() -> StorageBackend:
        return getattr(importlib.import_module(module), cls)()

    factory.__qualname__ = f"{module}.{cls}"
    return factory


STORAGE_BACKENDS: Registry[Callable[[], StorageBackend]] = Registry("checkpoint storage backend")
"""Checkpoint storage backends by name (``checkpoint.storage``)."""
STORAGE_BACKENDS.register(
    "torch", _lazy("trainforge.checkpoint.storage.torch", "TorchStorage"), aliases=("pytorch",)
)
STORAGE_BACKENDS.register(
    "safetensors", _lazy("trainforge.checkpoint.storage.safetensors", "SafetensorsStorage")
)


def get_storage(name: str) -> StorageBackend:
    """A new backend instance for ``name`` (``torch`` or ``safetensors``)."""
    return STORAGE_BACKENDS.get(name)()
