"""What a listing shows about one checkpoint, and the LRU + TTL cache behind listings."""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Generic, TypeVar

from trainforge.checkpoint._manifest import Manifest

__all__ = ["CheckpointMetadata", "TTLCache"]


@dataclass(frozen=True)
class CheckpointMetadata:
    """One complete checkpoint as listed: where it is, what it scored, its flags.

    ``monitor``, ``mode`` and ``metric`` are what the checkpoint is ranked by: the monitor,
    mode and monitor value its manifest recorded, or, for a checkpoint that recorded none
    (an older format, an import), the lister's monitor and mode and that metric's value.
    ``sha256`` is the digest of the manifest, which itself lists the hash of every file,
    so it identifies the whole checkpoint.
    """

    path: Path
    index: int
    epoch: int
    global_step: int
    metric: float | None
    monitor: str | None
    mode: str | None = None
    metrics: dict[str, float] = field(default_factory=dict)
    timestamp: str | None = None
    git_commit: str | None = None
    config_hash: str | None = None
    size: int = 0
    sha256: str = ""
    storage: str = "torch"
    format_version: int = 0
    protected: bool = False
    notes: str | None = None
    is_best: bool = False
    is_last: bool = False

    @property
    def name(self) -> str:
        """Directory name (``ckpt-000012-epoch0005-step001000``)."""
        return self.path.name

    def to_dict(self) -> dict[str, Any]:
        """Plain data (for ``--json``)."""
        data = asdict(self)
        data["path"] = str(self.path)
        data["name"] = self.name
        return data

    @classmethod
    def from_manifest(cls, path: Path, index: int, manifest: Manifest) -> CheckpointMetadata:
        """Build from a parsed manifest; flags best/last are set by the manager."""
        meta = manifest.metadata  # validated: every field has its type
        return cls(
            path=path,
            index=index,
            epoch=meta["epoch"],
            global_step=meta["global_step"],
            metric=meta["monitor_value"],
            monitor=meta["monitor"],
            mode=meta["mode"],
            metrics=dict(meta["metrics"]),
            timestamp=meta.get("timestamp"),
            git_commit=(meta.get("git") or {}).get("commit"),
            config_hash=meta.get("config_hash"),
            size=manifest.total_size,
            sha256=manifest.raw_digest,
            storage=manifest.storage,
            format_version=manifest.migrated_from or manifest.format_version,
            protected=meta["protected"],
            notes=meta["notes"],
        )


K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class TTLCache(Generic[K, V]):
    """A thread-safe LRU cache whose entries also expire ``ttl`` seconds after insertion.

    The TTL bounds how stale a listing can be when another process changes the
    directory; writes through the owning manager invalidate entries immediately.
    """

    def __init__(self, maxsize: int = 256, ttl: float = 30.0) -> None:
        self.maxsize = maxsize
        self.ttl = ttl
        self._data: OrderedDict[K, tuple[float, V]] = OrderedDict()
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def get(self, key: K) -> V | None:
        """The cached value, or None when absent or expired."""
        with self._lock:
            item = self._data.get(key)
            if item is None or time.monotonic() - item[0] > self.ttl:
                if item is not None:
                    del self._data[key]
                self.misses += 1
                return None
            self._data.move_to_end(key)
            self.hits += 1
            return item[1]

    def put(self, key: K, value: V) -> None:
        """Insert or refresh ``key``; evict the least recently used beyond ``maxsize``."""
        with self._lock:
            self._data[key] = (time.monotonic(), value)
            self._data.move_to_end(key)
            while len(self._data) > self.maxsize:
                self._data.popitem(last=False)

    def invalidate(self, key: K | None = None) -> None:
        """Drop one entry, or all of them when ``key`` is None."""
        with self._lock:
            if key is None:
                self._data.clear()
            else:
                self._data.pop(key, None)

    def invalidate_where(self, stale: Callable[[K], bool]) -> None:
        """Drop every entry whose key ``stale`` returns True for."""
        with self._lock:
            for key in [k for k in self._data if stale(k)]:
                del self._data[key]

    def __len__(self) -> int:
        return len(self._data)
