"""The ``safetensors`` storage backend: no pickle anywhere.

Tensors go to ``state.safetensors``; the structure around them (optimizer param groups,
scheduler state, step counters, custom state) goes to ``state.json`` with each tensor
replaced by a reference. JSON has only string keys and no tuples, so those are tagged
(``{"__tf_items__": [[key, value], ...]}``, ``{"__tf_tuple__": [...]}``) and restored
exactly on load.

The tensors file is written with ``safetensors.torch.save_file`` and hashed from the page
cache while it is fsynced; compressed, it is built with ``safetensors.torch.save`` and
streamed through the compressor and a hashing writer.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import IO, Any, cast

import torch
from safetensors.torch import load as load_bytes
from safetensors.torch import load_file, save, save_file

from trainforge.checkpoint._compression import Compression, detect_compression
from trainforge.checkpoint._integrity import FileEntry, HashingWriter, hash_file_and_fsync
from trainforge.errors import CheckpointCorruptedError

__all__ = ["TENSORS_FILE", "TREE_FILE", "SafetensorsStorage", "decode_tree", "encode_tree"]

TENSORS_FILE = "state.safetensors"
TREE_FILE = "state.json"

_TENSOR = "__tf_tensor__"
_ITEMS = "__tf_items__"
_TUPLE = "__tf_tuple__"
_TAGS = (_TENSOR, _ITEMS, _TUPLE)


def encode_tree(
    obj: Any, tensors: dict[str, torch.Tensor], path: str = "", seen: set[int] | None = None
) -> Any:
    """JSON-able copy of ``obj`` with every tensor moved into ``tensors`` (key = its path)."""
    seen = set() if seen is None else seen
    if isinstance(obj, torch.Tensor):
        tensor = obj.detach()
        # safetensors refuses views and shared storage: store such tensors as their own copy
        whole = tensor.untyped_storage().nbytes() == tensor.numel() * tensor.element_size()
        ptr = tensor.untyped_storage().data_ptr()
        if not (whole and tensor.is_contiguous()) or (ptr and ptr in seen):
            tensor = tensor.contiguous().clone()
        seen.add(ptr)
        tensors[path] = tensor
        return {_TENSOR: path}
    if isinstance(obj, Mapping):
        if all(isinstance(k, str) for k in obj) and not any(k in _TAGS for k in obj):
            return {k: encode_tree(v, tensors, f"{path}/{k}", seen) for k, v in obj.items()}
        return {_ITEMS: [[k, encode_tree(v, tensors, f"{path}/{k}", seen)] for k, v in obj.items()]}
    if isinstance(obj, tuple):
        return {_TUPLE: [encode_tree(v, tensors, f"{path}/{i}", seen) for i, v in enumerate(obj)]}
    if isinstance(obj, list):
        return [encode_tree(v, tensors, f"{path}/{i}", seen) for i, v in enumerate(obj)]
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    if hasattr(obj, "item") and callable(obj.item):  # numpy scalars
        return obj.item()
    raise TypeError(
        f"the safetensors backend stores tensors, containers and scalars only; "
        f"{path or '<root>'} is a {type(obj).__name__} (use storage='torch' for other types)"
    )


def decode_tree(obj: Any, tensors: Mapping[str, torch.Tensor]) -> Any:
    """Inverse of :func:`encode_tree`."""
    if isinstance(obj, dict):
        if _TENSOR in obj:
            return tensors[obj[_TENSOR]]
        if _ITEMS in obj:
            return {_key(k): decode_tree(v, tensors) for k, v in obj[_ITEMS]}
        if _TUPLE in obj:
            return tuple(decode_tree(v, tensors) for v in obj[_TUPLE])
        return {k: decode_tree(v, tensors) for k, v in obj.items()}
    if isinstance(obj, list):
        return [decode_tree(v, tensors) for v in obj]
    return obj


def _key(key: Any) -> Any:
    return tuple(key) if isinstance(key, list) else key


class SafetensorsStorage:
    """Payload as ``state.safetensors`` (+ ``.gz``/``.zst``) and ``state.json``."""

    name = "safetensors"

    def write(
        self, state: dict[str, Any], directory: Path, *, compression: Compression | None
    ) -> dict[str, FileEntry]:
        """Write tensors and the JSON tree; both fsynced, both hashed."""
        tensors: dict[str, torch.Tensor] = {}
        tree = encode_tree(state, tensors)
        entries: dict[str, FileEntry] = {}
        if compression is None:
            path = directory / TENSORS_FILE
            save_file(tensors, str(path))
            digest, size = hash_file_and_fsync(path)  # the hash hides behind the disk flush
            entries[TENSORS_FILE] = FileEntry(digest, size, None)
        else:
            name = TENSORS_FILE + compression.suffix
            entries[name] = _write_stream(directory / name, save(tensors), compression)
        tree_bytes = json.dumps(tree, allow_nan=True).encode("utf-8")
        entries[TREE_FILE] = _write_stream(directory / TREE_FILE, tree_bytes, None)
        return entries

    def read(
        self,
        directory: Path,
        files: Mapping[str, FileEntry],
        buffers: Mapping[str, Any],
        *,
        map_location: Any,
    ) -> dict[str, Any]:
        """Load tensors (mapped when uncompressed) and rebuild the JSON tree around them."""
        tensor_files = [name for name in files if name.startswith(TENSORS_FILE)]
        if len(tensor_files) != 1 or TREE_FILE not in files:
            raise CheckpointCorruptedError(
                f"safetensors checkpoint {directory} needs {TENSORS_FILE} and {TREE_FILE}; "
                f"the manifest lists {sorted(files)}",
                path=directory,
            )
        name = tensor_files[0]
        device = _device(map_location)
        try:
            codec = detect_compression(bytes(buffers[name][:4]))
            if codec is None:
                tensors = load_file(str(directory / name), device=device)
            else:
                tensors = {
                    k: v.to(device) for k, v in load_bytes(codec.decompress(buffers[name])).items()
                }
            tree = json.loads(bytes(buffers[TREE_FILE]))
            return decode_tree(tree, tensors)
        except Exception as exc:  # untrusted bytes: any failure to parse them is damage
            raise CheckpointCorruptedError(
                f"cannot read safetensors checkpoint {directory}: {type(exc).__name__}: {exc}",
                path=directory,
            ) from None


def _device(map_location: Any) -> str:
    if map_location is None or callable(map_location) or isinstance(map_location, dict):
        return "cpu"
    return str(map_location)


def _write_stream(path: Path, data: bytes, compression: Compression | None) -> FileEntry:
    with open(path, "wb") as raw, HashingWriter(raw) as writer:
        if compression is None:
            writer.write(data)
        else:
            # the hashing writer is a binary file for the codec
            with compression.open_writer(cast(IO[bytes], writer)) as stream:
                stream.write(data)
        writer.finish()
    return FileEntry(writer.hexdigest(), writer.size, compression.name if compression else None)
