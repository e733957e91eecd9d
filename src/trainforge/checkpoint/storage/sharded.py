"""Shards of a sharded model through ``torch.distributed.checkpoint`` (DCP), verifiable.

Each rank writes the shards it holds as ``__<rank>_<n>.distcp`` into the checkpoint's
temporary directory; DCP gathers every rank's plan and the coordinator writes the global
index, here named ``dcp.metadata`` (DCP's own ``.metadata`` is a hidden name a manifest
cannot list). Every one of these files is then listed in the manifest with its size and
SHA256 like any payload file.

The index is a pickle of DCP's own record types. It is read only after its hash matched
the manifest, and then through an unpickler that accepts DCP's metadata classes, torch
dtypes and sizes, and plain containers, nothing else: a checkpoint never runs code.

Reading has two forms: :func:`load_shards` fills a sharded state dict in place on every
rank (DCP reshards when the world size changed), :func:`read_full` rebuilds the whole
unsharded state in one process (consolidation, inspection, a single-process resume).
"""

from __future__ import annotations

import io
import os
import pickle
from collections.abc import Mapping
from pathlib import Path
from typing import Any, cast

import torch
import torch.distributed as dist
import torch.distributed.checkpoint as dcp
from torch.distributed.checkpoint.default_planner import _EmptyStateDictLoadPlanner
from torch.distributed.checkpoint.metadata import Metadata, StorageMeta
from torch.distributed.checkpoint.state_dict_loader import _load_state_dict

from trainforge.checkpoint._integrity import FileEntry, hash_file
from trainforge.checkpoint._layout import SHARD_INDEX, shard_rank
from trainforge.errors import UnsafeCheckpointError

__all__ = ["ShardReader", "ShardWriter", "load_shards", "read_full", "write_shards"]

_ALLOWED_MODULES = (
    "torch.distributed.checkpoint.metadata",
    "torch.distributed.checkpoint.filesystem",
    "torch.distributed.checkpoint.planner",
)
_ALLOWED = {
    ("torch", "Size"),
    ("torch", "device"),
    ("collections", "OrderedDict"),
    ("builtins", "set"),
    ("builtins", "frozenset"),
    ("builtins", "slice"),
    ("builtins", "getattr"),
    ("torch.serialization", "_get_layout"),  # looks a layout up by name (torch.strided)
    ("pathlib", "PosixPath"),  # the checkpoint id DCP records
    ("pathlib", "PurePosixPath"),
}


class _IndexUnpickler(pickle.Unpickler):
    """Unpickles DCP's index: its record types, dtypes, sizes and containers only."""

    def find_class(self, module: str, name: str) -> Any:
        allowed = (
            module in _ALLOWED_MODULES
            or (module, name) in _ALLOWED
            or (module == "torch" and isinstance(getattr(torch, name, None), torch.dtype))
        )
        if not allowed:
            raise UnsafeCheckpointError(
                f"refusing to load the shard index: it would unpickle the global "
                f"{module}.{name}, which a DCP index never holds",
                hint="nothing was run; the file was not written by torch.distributed.checkpoint",
            )
        return super().find_class(module, name)


class ShardWriter(dcp.FileSystemWriter):
    """DCP's file writer, with the index under a name a manifest can list."""

    def _get_metadata_path(self, rank: int | None = None) -> os.PathLike:
        name = SHARD_INDEX if rank is None else f"__{rank}_{SHARD_INDEX}"
        return cast(os.PathLike, Path(self.path) / name)


class ShardReader(dcp.FileSystemReader):
    """DCP's file reader: the renamed index, read through the restricted unpickler."""

    def _get_metadata_path(self, rank: int | None = None) -> os.PathLike:
        name = SHARD_INDEX if rank is None else f"__{rank}_{SHARD_INDEX}"
        return cast(os.PathLike, Path(self.path) / name)

    def read_metadata(self, *args: Any, **kwargs: Any) -> Metadata:
        """The index, unpickled with DCP's record types only."""
        data = Path(self._get_metadata_path(kwargs.get("rank"))).read_bytes()
        metadata = _IndexUnpickler(io.BytesIO(data)).load()
        if not isinstance(metadata, Metadata):
            raise UnsafeCheckpointError(
                f"the shard index {self.path} holds a {type(metadata).__name__}, not DCP metadata"
            )
        storage_meta = getattr(metadata, "storage_meta", None) or StorageMeta()
        storage_meta.load_id = self.load_id
        metadata.storage_meta = storage_meta
        return metadata


def write_shards(state: Mapping[str, Any], directory: Path) -> dict[str, FileEntry]:
    """Write this rank's shards of ``state`` (a collective); return the files it wrote.

    Every rank of the default process group calls it with its own part; when it
    returns, every rank's shards and the index are on disk (DCP's final step gathers
    all ranks' results before the coordinator writes the index). The coordinator's
    entries include the index.
    """
    dcp.save(dict(state), storage_writer=ShardWriter(directory, sync_files=True))
    rank = dist.get_rank() if dist.is_initialized() else 0
    entries = {}
    for name in sorted(os.listdir(directory)):
        if shard_rank(name) == rank or (rank == 0 and name == SHARD_INDEX):
            digest, size = hash_file(directory / name)
            entries[name] = FileEntry(digest, size, None)
    return entries


def load_shards(state: dict[str, Any], directory: Path) -> None:
    """Fill the sharded ``state`` in place from ``directory`` (a collective; reshards)."""
    dcp.load(state, storage_reader=ShardReader(directory))


def read_full(directory: Path) -> dict[str, Any]:
    """The whole state of the shards in ``directory``, unsharded, in this one process."""
    state: dict[str, Any] = {}
    _load_state_dict(
        state,
        storage_reader=ShardReader(directory),
        planner=_EmptyStateDictLoadPlanner(),
        no_dist=True,
    )
    return state
