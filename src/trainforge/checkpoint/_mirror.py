"""Copy each new checkpoint to an fsspec URL in the background.

The local checkpoint is complete before the copy starts and is never touched by it; a
failed copy is logged and kept in :attr:`Mirror.failures`. Payload files go first and
the manifest last, so a reader of the mirror never sees a manifest without its files.
"""

from __future__ import annotations

import logging
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from trainforge.checkpoint._layout import MANIFEST_NAME

__all__ = ["Mirror", "MirrorFailure"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class MirrorFailure:
    """A checkpoint that could not be copied to the mirror, and why."""

    checkpoint: Path
    url: str
    error: str


class Mirror:
    """Background copier of checkpoint directories to ``url`` (``s3://...``, ``file://...``)."""

    def __init__(self, url: str) -> None:
        import fsspec

        self.url = url.rstrip("/")
        self.fs, self.root = fsspec.core.url_to_fs(self.url)
        self.failures: list[MirrorFailure] = []
        self._pending: list[Future[None]] = []
        self._lock = threading.Lock()
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="trainforge-mirror")

    def submit(self, checkpoint: Path, pointers: dict[str, str]) -> Future[None]:
        """Queue a copy of ``checkpoint`` and the pointer files (name -> target)."""
        future = self._pool.submit(self._copy, checkpoint, dict(pointers))
        with self._lock:
            self._pending.append(future)
        return future

    def _copy(self, checkpoint: Path, pointers: dict[str, str]) -> None:
        target = f"{self.root}/{checkpoint.name}"
        try:
            self.fs.makedirs(target, exist_ok=True)
            files = sorted(p for p in checkpoint.iterdir() if p.is_file())
            for path in (
                *[p for p in files if p.name != MANIFEST_NAME],
                checkpoint / MANIFEST_NAME,
            ):
                self.fs.put_file(str(path), f"{target}/{path.name}")
            for name, value in pointers.items():
                self.fs.pipe_file(f"{self.root}/{name}", (value + "\n").encode())
        except Exception as exc:  # reported, never raised: the local checkpoint is intact
            failure = MirrorFailure(checkpoint, self.url, f"{type(exc).__name__}: {exc}")
            with self._lock:
                self.failures.append(failure)
            logger.error("mirroring %s to %s failed: %s", checkpoint, self.url, failure.error)

    def wait(self, timeout: float | None = None) -> list[MirrorFailure]:
        """Block until every queued copy finished; return all failures so far."""
        with self._lock:
            pending, self._pending = self._pending, []
        for future in pending:
            future.result(timeout=timeout)
        return list(self.failures)

    def close(self) -> None:
        """Finish queued copies and stop the worker thread."""
        self.wait()
        self._pool.shutdown(wait=True)
