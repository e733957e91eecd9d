"""Cross-process locks so retention never deletes a checkpoint another process reads.

Three kinds of lock files, all through ``filelock`` (``flock`` on POSIX, released by the
kernel when a process dies, so a killed process never leaves a lock behind):

- ``.lock``: a short exclusive lock around publishing, deleting and pruning;
- ``.readers/<checkpoint>.<token>.lock``: one per load in progress. A reader registers it
  while holding ``.lock``, so a deleter that holds ``.lock`` sees every reader;
- ``.tmp-<checkpoint>....lock``: held by a writer while its temporary directory fills, so
  pruning removes only temporary directories whose writer is gone.
"""

from __future__ import annotations

import logging
import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

from filelock import FileLock, Timeout

from trainforge.checkpoint._layout import LOCK_NAME, READERS_DIR
from trainforge.errors import CheckpointError

__all__ = ["CheckpointLocks"]

logger = logging.getLogger(__name__)


class CheckpointLocks:
    """The lock files of one checkpoint directory."""

    def __init__(self, root: Path, *, timeout: float = 120.0) -> None:
        self.root = root
        self.timeout = timeout

    @contextmanager
    def exclusive(self) -> Iterator[None]:
        """Hold the directory lock (publish, delete, prune)."""
        lock = FileLock(self.root / LOCK_NAME, timeout=self.timeout, preserve_lock_file=True)
        try:
            lock.acquire()
        except Timeout:
            raise CheckpointError(
                f"could not lock {self.root / LOCK_NAME} within {self.timeout:.0f} s",
                path=self.root,
                hint="another process holds it; if none does, delete the .lock file",
            ) from None
        except OSError as err:  # a read-only directory or file system
            raise CheckpointError(
                f"cannot lock {self.root / LOCK_NAME}: {err.strerror or err}",
                path=self.root,
                hint="saving, pruning and migrating need a checkpoint directory you can write",
            ) from None
        try:
            yield
        finally:
            lock.release()

    @contextmanager
    def reading(self, name: str) -> Iterator[None]:
        """Mark checkpoint ``name`` as being read for the duration of the block."""
        readers = self.root / READERS_DIR
        try:
            readers.mkdir(exist_ok=True)
            marker = FileLock(readers / f"{name}.{os.getpid()}-{uuid.uuid4().hex[:8]}.lock")
            with self.exclusive():
                marker.acquire(timeout=0)
        except OSError as exc:  # a read-only checkpoint directory: nobody can delete anyway
            logger.debug("cannot register reader of %s: %s", name, exc)
            yield
            return
        try:
            yield
        finally:
            marker.release()
            _unlink(Path(marker.lock_file))

    def readers_of(self, name: str) -> int:
        """How many live processes are reading ``name``; removes markers of dead ones.

        Call while holding :meth:`exclusive`, so no new reader can register meanwhile.
        """
        readers = self.root / READERS_DIR
        if not readers.is_dir():
            return 0
        alive = 0
        for marker in readers.glob(f"{name}.*.lock"):
            if is_held(marker):
                alive += 1
            else:
                _unlink(marker)
        return alive

    @contextmanager
    def writing(self, temp_name: str) -> Iterator[None]:
        """Hold the lock that says temporary directory ``temp_name`` has a live writer."""
        lock = FileLock(self.root / f"{temp_name}.lock")
        lock.acquire(timeout=10)  # only a pruner probing it can hold it, and only briefly
        try:
            yield
        finally:
            lock.release()
            _unlink(self.root / f"{temp_name}.lock")

    def has_writer(self, temp_name: str) -> bool:
        """True when a live process is still writing temporary directory ``temp_name``."""
        return is_held(self.root / f"{temp_name}.lock")


def is_held(path: Path) -> bool:
    """True when another file descriptor holds the lock file ``path``."""
    if not path.exists():
        return False
    probe = FileLock(path, preserve_lock_file=True)
    try:
        probe.acquire(timeout=0)
    except Timeout:
        return True
    probe.release()
    return False


def _unlink(path: Path) -> None:
    with suppress(FileNotFoundError):
        path.unlink()
