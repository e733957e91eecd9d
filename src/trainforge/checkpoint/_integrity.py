"""Integrity: hashes computed while the disk works, verified before deserialising.

Large uncompressed payloads are written by the library's own fast path (``torch.save``
or ``safetensors.save_file`` to a path) and then hashed from the page cache *while* the
fsync flushes them to disk (:func:`hash_file_and_fsync`): the hash costs memory
bandwidth that overlaps the disk flush, so a save takes about as long as the write and
fsync alone. Measured on a 2-core machine this beat hashing inside the write path, where
Python-level writes and the hash add up in front of the fsync. Compressed streams and
small files go through :class:`HashingWriter`, which hashes bytes as they pass.

Loading maps the file once, checks size and SHA256 over the mapping, and hands the same
pages to the deserialiser, so verification costs one pass of hashing and no extra copy.
Every file is opened without following symbolic links and without blocking, and must be
a regular file: a manifest cannot make a load read a link's target, a FIFO or a device.
"""

from __future__ import annotations

import errno
import hashlib
import mmap
import os
import stat
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from trainforge.errors import CheckpointCorruptedError

__all__ = [
    "FileEntry",
    "HashingWriter",
    "fsync_dir",
    "hash_file",
    "hash_file_and_fsync",
    "open_payload",
    "open_regular",
    "read_regular",
]

_CHUNK = 8 << 20
# no symlink is followed, and opening a FIFO or a device neither blocks nor reads it
_OPEN_FLAGS = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0)


@dataclass(frozen=True)
class FileEntry:
    """What the manifest records for one payload file."""

    sha256: str
    size: int
    compression: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """Plain data for the JSON manifest."""
        return {"sha256": self.sha256, "size": self.size, "compression": self.compression}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> FileEntry:
        """Inverse of :meth:`to_dict`."""
        return cls(str(data["sha256"]), int(data["size"]), data.get("compression"))


class HashingWriter:
    """A write-only file wrapper that hashes bytes as they pass and flushes early.

    Every ``writeback_every`` bytes it starts an ``fdatasync`` on a background thread, so
    the disk writes the first part of the file while later parts are still serialised
    and hashed; :meth:`finish` then only waits for the tail. Without this the hash (CPU)
    and the final fsync (disk) would add up instead of overlapping.
    """

    def __init__(self, raw: IO[bytes], *, writeback_every: int = 256 << 20) -> None:
        self.raw = raw
        self.size = 0
        self._hash = hashlib.sha256()
        self._writeback_every = writeback_every
        self._unsynced = 0
        self._syncer: threading.Thread | None = None
        self._sync_error: list[BaseException] = []

    def write(self, data: Any) -> int:
        """Write ``data`` to the file and feed it to the hash."""
        view = memoryview(data).cast("B")
        self._hash.update(view)
        self.raw.write(view)
        self.size += view.nbytes
        self._unsynced += view.nbytes
        if self._unsynced >= self._writeback_every and not self._syncing():
            self.raw.flush()
            self._unsynced = 0
            self._syncer = threading.Thread(
                target=self._background_sync, name="trainforge-writeback", daemon=True
            )
            self._syncer.start()
        return view.nbytes

    def _syncing(self) -> bool:
        return self._syncer is not None and self._syncer.is_alive()

    def _background_sync(self) -> None:
        try:
            _datasync(self.raw.fileno())
        except BaseException as exc:  # re-raised by finish(): a write error must not vanish
            self._sync_error.append(exc)

    def flush(self) -> None:
        """Flush the underlying file."""
        self.raw.flush()

    def finish(self) -> None:
        """Wait for background writeback, then fsync: every byte is on disk afterwards.

        Raises:
            OSError: A background or the final sync failed (disk full, I/O error).
        """
        self._stop_helpers()
        if self._sync_error:
            raise self._sync_error[0]
        self.raw.flush()
        os.fsync(self.raw.fileno())

    def _stop_helpers(self) -> None:
        if self._syncer is not None:
            self._syncer.join()

    def __enter__(self) -> HashingWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop_helpers()  # also on errors: no helper thread outlives the write

    def hexdigest(self) -> str:
        """SHA256 of everything written so far."""
        return self._hash.hexdigest()


def _datasync(fd: int) -> None:
    getattr(os, "fdatasync", os.fsync)(fd)


def fsync_dir(path: Path) -> None:
    """Make a rename or unlink inside ``path`` durable (no-op where unsupported)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass  # some filesystems refuse fsync on directories; the rename is still atomic
    finally:
        os.close(fd)


def hash_file(path: Path) -> tuple[str, int]:
    """SHA256 and size of a file, read in chunks."""
    digest = hashlib.sha256()
    size = 0
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            digest.update(chunk)
            size += len(chunk)
    return digest.hexdigest(), size


def hash_file_and_fsync(path: Path) -> tuple[str, int]:
    """SHA256 and size of a just-written file, hashed while its fsync runs.

    The bytes are still in the page cache, so the hash reads memory while a helper
    thread waits for the disk; both release the GIL.

    Raises:
        OSError: The fsync failed (disk full, I/O error).
    """
    errors: list[BaseException] = []

    def sync() -> None:
        try:
            fd = os.open(path, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=sync, name="trainforge-fsync")
    thread.start()
    try:
        with open(path, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            if size == 0:
                digest = hashlib.sha256().hexdigest()
            else:
                with mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as mapped:
                    digest = hashlib.sha256(mapped).hexdigest()
    finally:
        thread.join()
    if errors:
        raise errors[0]
    return digest, size


def open_regular(path: Path, *, what: str = "checkpoint file", listed: bool = False) -> int:
    """Open ``path`` for reading if it is a regular file that is not a symbolic link.

    Returns:
        The file descriptor; the caller closes it.

    Raises:
        CheckpointCorruptedError: Missing, a symbolic link, or not a regular file.
    """
    try:
        fd = os.open(path, _OPEN_FLAGS)
    except FileNotFoundError:
        where = " (listed in the manifest)" if listed else ""
        raise CheckpointCorruptedError(f"{what} {path} is missing{where}", path=path) from None
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise CheckpointCorruptedError(
                f"{what} {path} is a symbolic link; checkpoints hold regular files only",
                path=path,
            ) from None
        raise CheckpointCorruptedError(
            f"cannot open {what} {path}: {exc.strerror or exc}", path=path
        ) from None
    mode = os.fstat(fd).st_mode
    if not stat.S_ISREG(mode):
        os.close(fd)
        kind = "a directory" if stat.S_ISDIR(mode) else "not a regular file"
        raise CheckpointCorruptedError(
            f"{what} {path} is {kind}; checkpoints hold regular files only", path=path
        )
    return fd


def read_regular(path: Path, *, limit: int, what: str) -> bytes:
    """The bytes of a small regular file (see :func:`open_regular`), at most ``limit``.

    Raises:
        CheckpointCorruptedError: Missing, not a regular file, or larger than ``limit``.
    """
    fd = open_regular(path, what=what)
    try:
        size = os.fstat(fd).st_size
        if size > limit:
            raise CheckpointCorruptedError(
                f"{what} {path} has {size} bytes, more than a {what} can hold ({limit})",
                path=path,
            )
        chunks = []
        while chunk := os.read(fd, _CHUNK):
            chunks.append(chunk)
        return b"".join(chunks)
    finally:
        os.close(fd)


def open_payload(path: Path, entry: FileEntry, *, verify: bool) -> Any:
    """Map ``path`` read-only after checking its size and (with ``verify``) its SHA256.

    Returns:
        A read-only buffer (``mmap`` or ``b""``); the caller closes it when done.

    Raises:
        CheckpointCorruptedError: The file is missing, a symbolic link or not a regular
            file, or has the wrong size or hash.
    """
    fd = open_regular(path, listed=True)
    try:
        size = os.fstat(fd).st_size
        if size != entry.size:
            raise CheckpointCorruptedError(
                f"checkpoint file {path} has {size} bytes, the manifest says {entry.size} "
                "(truncated or overwritten)",
                path=path,
                expected=entry.sha256,
                actual=_digest_fd(fd) if size < (1 << 30) else "(not computed: size differs)",
            )
        buffer: Any = mmap.mmap(fd, 0, access=mmap.ACCESS_READ) if size else b""
    finally:
        os.close(fd)
    if verify:
        actual = hashlib.sha256(buffer).hexdigest()
        if actual != entry.sha256:
            if isinstance(buffer, mmap.mmap):
                buffer.close()
            raise CheckpointCorruptedError(
                f"checkpoint file {path} does not match its manifest (sha256 differs)",
                path=path,
                expected=entry.sha256,
                actual=actual,
            )
    return buffer


def _digest_fd(fd: int) -> str:
    digest = hashlib.sha256()
    os.lseek(fd, 0, os.SEEK_SET)
    while chunk := os.read(fd, _CHUNK):
        digest.update(chunk)
    return digest.hexdigest()
