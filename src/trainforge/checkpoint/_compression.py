"""Per-file compression: gzip (standard library) and zstd (zstandard).

Compression is recorded per file in the manifest, and the reader also recognises the
codec from the file's magic bytes, so a file compressed by hand still loads. The hash in
the manifest is of the bytes on disk (compressed), so verification never decompresses.
"""

from __future__ import annotations

import gzip
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import IO, Any

from trainforge.registry import Registry

__all__ = ["COMPRESSIONS", "Compression", "compression_for", "detect_compression"]


@dataclass(frozen=True)
class Compression:
    """One codec: file suffix, magic bytes, a streaming writer and a decompressor."""

    name: str
    suffix: str
    magic: bytes
    open_writer: Callable[[IO[bytes]], Any]
    decompress: Callable[[Any], bytes]


def _gzip_writer(raw: IO[bytes]) -> Any:
    # mtime=0: identical state gives identical bytes (and hash)
    return gzip.GzipFile(fileobj=raw, mode="wb", compresslevel=3, mtime=0)


def _gzip_decompress(buffer: Any) -> bytes:
    # wbits=31: gzip container; zlib reads straight from the (mmap) buffer, no extra copy
    return zlib.decompress(buffer, wbits=31)


def _zstd_writer(raw: IO[bytes]) -> Any:
    import zstandard

    return zstandard.ZstdCompressor(level=3).stream_writer(raw, closefd=False)


def _zstd_decompress(buffer: Any) -> bytes:
    import zstandard

    # streaming frames carry no content size, so decompress through a decompressobj
    return zstandard.ZstdDecompressor().decompressobj().decompress(buffer)


COMPRESSIONS: Registry[Compression] = Registry("checkpoint compression")
"""Checkpoint compressions by name (``checkpoint.compression``): ``none``, ``zstd``."""
COMPRESSIONS.register(
    "gzip", Compression("gzip", ".gz", b"\x1f\x8b", _gzip_writer, _gzip_decompress)
)
COMPRESSIONS.register(
    "zstd", Compression("zstd", ".zst", b"\x28\xb5\x2f\xfd", _zstd_writer, _zstd_decompress)
)


def compression_for(name: str | None) -> Compression | None:
    """The codec registered as ``name`` (None for no compression); did-you-mean on typos."""
    return None if name is None else COMPRESSIONS.get(name)


def detect_compression(head: bytes) -> Compression | None:
    """The codec whose magic bytes start ``head``, or None for uncompressed data."""
    for name in COMPRESSIONS:
        codec = COMPRESSIONS.get(name)
        if head.startswith(codec.magic):
            return codec
    return None
