"""ExperimentTracker: a run handle whose metric logging costs well under 2 microseconds.

``log_metric`` checks its arguments against the limits both stores share (a known key and
an in-range int step cost two comparisons) and appends a tuple to a ``collections.deque``
(atomic under the GIL, so no lock on the hot path): nothing a store would refuse is ever
buffered. A daemon writer thread drains the deque every ``flush_interval_s`` and writes the
values in large ``executemany`` batches, and updates the run's heartbeat. Values are also
flushed by ``flush()``, ``finish()``, at interpreter exit and on SIGTERM. Should the store
still refuse a batch, the batch is split until the refused rows are found: they are logged
and kept in :attr:`ExperimentTracker.rejected`, every other row is written. If the process
is SIGKILLed, everything flushed before the kill is in the database and the stopped
heartbeat lets ``ExperimentDB.mark_stale_runs`` mark the run ``stale``.
"""

from __future__ import annotations

import atexit
import collections
import functools
import hashlib
import logging
import os
import platform
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from types import FrameType
from typing import Any

from sqlalchemy import insert

from trainforge.errors import TrackingError, TrackingValueError
from trainforge.records import ConfigSource
from trainforge.tracking._experiment_db import ExperimentDB
from trainforge.tracking._limits import INT_MAX, INT_MIN, check_int, check_key
from trainforge.tracking._metric_writes import MetricItem, next_steps, write_metric_rows
from trainforge.tracking._schema import TERMINAL_STATUSES, artifacts
from trainforge.tracking._store import TrackingStore
from trainforge.tracking._url import resolve_database_url

__all__ = ["ExperimentTracker"]

log = logging.getLogger(__name__)
_now = time.time  # a module global: one lookup less on the hot path
_BATCH_ROWS = 20_000  # rows per write transaction: large, but short enough to share the lock
_KNOWN_KEYS = 100_000  # validated keys remembered per tracker (a set lookup on the hot path)


class ExperimentTracker:
    """One tracked run: metrics, params, tags, artifacts, status and heartbeat.

    Args:
        experiment_name: Experiment the run belongs to.
        project_name: Project the experiment belongs to.
        tags: Tags as a mapping, or a list of names (each set to ``"true"``).
        config: The run's config: a :class:`~trainforge.records.ConfigRecord`, a mapping,
            or a ``TrainingConfig`` (stored with its hash and provenance).
        database: URL or file path of the store; else ``TRAINFORGE_DB``, else
            ``outputs/trainforge.db``.
        store: An open :class:`TrackingStore` to share (wins over ``database``).
        run_name: Display name (default ``<experiment>-<time>``).
        notes: Free text kept with the run.
        flush_interval_s: How often the writer thread drains buffered metrics.
        heartbeat_interval_s: How often the writer thread records that the run is alive.
        handle_sigterm: Flush and mark the run ``killed`` on SIGTERM (main thread only).
        job_id: The job (of the job queue) that produced this run, if any.

    Examples:
        >>> tracker = ExperimentTracker("mnist", config={"optim": {"lr": 1e-3}})
        >>> tracker.log_metric("train/loss", 0.71, step=1)
        >>> tracker.finish()
        >>> tracker.run_id  # the first run of outputs/trainforge.db
        1
    """

    def __init__(
        self,
        experiment_name: str,
        project_name: str = "default",
        tags: Mapping[str, Any] | Iterable[str] | None = None,
        config: ConfigSource | None = None,
        *,
        database: str | os.PathLike[str] | None = None,
        store: TrackingStore | None = None,
        run_name: str | None = None,
        notes: str | None = None,
        flush_interval_s: float = 0.5,
        heartbeat_interval_s: float = 10.0,
        handle_sigterm: bool = True,
        job_id: int | None = None,
    ) -> None:
        self._owns_store = store is None
        if store is None:
            store = TrackingStore(resolve_database_url(database, "outputs"))
        self.store = store
        self.db = ExperimentDB(store)
        self.experiment_name = experiment_name
        self.project_name = project_name
        self.run_id = self.db.log_run(
            run_name or f"{experiment_name}-{time.strftime('%Y%m%d-%H%M%S')}",
            config,
            experiment=experiment_name,
            project=project_name,
            tags=tags,
            notes=notes,
            git_commit=_git_commit(),
            host=socket.gethostname(),
            system=system_info(),
            job_id=job_id,
        )
        self.status = "running"
        self._buffer: collections.deque[tuple[str, float, int | None, int | None, float]]
        self._buffer = collections.deque()
        self._append = self._buffer.append
        self._keys: set[str] = set()
        self._next_step: dict[str, int] = {}
        self.rejected: list[tuple[MetricItem, str]] = []
        """Rows the store refused at a flush, with the reason (each also logged)."""
        self._flush_lock = threading.RLock()
        self._flushed = 0
        self._error: BaseException | None = None
        self._stop = threading.Event()
        self._flush_interval_s = flush_interval_s
        self._heartbeat_interval_s = heartbeat_interval_s
        self._writer = threading.Thread(
            target=self._write_loop, name=f"trainforge-tracker-{self.run_id}", daemon=True
        )
        self._writer.start()
        atexit.register(self._at_exit)
        self._previous_sigterm: Any = None
        if handle_sigterm and threading.current_thread() is threading.main_thread():
            self._previous_sigterm = signal.signal(signal.SIGTERM, self._on_sigterm)

    def __repr__(self) -> str:
        return f"ExperimentTracker(run_id={self.run_id}, status={self.status!r})"

    def __enter__(self) -> ExperimentTracker:
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        self.finish("failed" if exc_type is not None else "completed")

    # -- hot path ----------------------------------------------------------------------

    def log_metric(
        self, key: str, value: float, step: int | None = None, epoch: int | None = None
    ) -> None:
        """Buffer one value (a tensor is converted here: that is a device sync).

        Raises:
            TrackingValueError: The key is empty, longer than 250 characters or holds a
                control character; the value is not a number; the step or epoch is not an
                integer in the 32-bit range. Nothing is buffered then.
        """
        if key.__class__ is not str or key not in self._keys:  # unhashable keys too
            self._check_key(key)
        if step is not None and not (step.__class__ is int and INT_MIN <= step <= INT_MAX):
            step = check_int(step, "step", key)
        if epoch is not None and not (epoch.__class__ is int and INT_MIN <= epoch <= INT_MAX):
            epoch = check_int(epoch, "epoch", key)
        try:
            number = float(value)
        except (TypeError, ValueError):
            raise TrackingValueError(
                f"value of metric {key!r} must be a number, got {type(value).__name__} {value!r}"
            ) from None
        self._append((key, number, step, epoch, _now()))

    def log_metrics(
        self, values: Mapping[str, float], step: int | None = None, epoch: int | None = None
    ) -> None:
        """Buffer several values logged at the same step (checked as :meth:`log_metric`)."""
        if step is not None:
            step = check_int(step, "step")
        if epoch is not None:
            epoch = check_int(epoch, "epoch")
        now = _now()
        rows = []
        for key, value in values.items():
            if key.__class__ is not str or key not in self._keys:
                self._check_key(key)
            try:
                rows.append((key, float(value), step, epoch, now))
            except (TypeError, ValueError):
                raise TrackingValueError(
                    f"value of metric {key!r} must be a number, got {type(value).__name__}"
                ) from None
        self._buffer.extend(rows)  # all or nothing: a bad value buffers none of them

    def _check_key(self, key: Any) -> None:
        check_key(key)
        if len(self._keys) < _KNOWN_KEYS:
            self._keys.add(key)

    # -- run metadata ------------------------------------------------------------------

    def log_params(self, params: Mapping[str, Any]) -> None:
        """Record params; nested mappings are flattened to dotted keys (``optim.lr``)."""
        self.db.log_params(self.run_id, params)

    def set_tags(self, tags: Mapping[str, Any] | Iterable[str]) -> None:
        """Set tags on the run."""
        self.db.set_tags(self.run_id, tags)

    def log_artifact(self, path: str | os.PathLike[str]) -> str:
        """Record a file's absolute path, sha256 and size; returns the sha256."""
        file = Path(path).resolve()
        if not file.is_file():
            raise TrackingError(f"artifact {file} is not a file", path=file)
        digest = hashlib.sha256()
        with file.open("rb") as handle:
            for chunk in iter(lambda: handle.read(1 << 20), b""):
                digest.update(chunk)
        sha256 = digest.hexdigest()
        row = {
            "run_id": self.run_id,
            "path": str(file),
            "sha256": sha256,
            "size_bytes": file.stat().st_size,
            "created_at": time.time(),
        }
        self.store.write(lambda c: c.execute(insert(artifacts).values(row)) and None)
        return sha256

    # -- flushing ----------------------------------------------------------------------

    @property
    def flushed_count(self) -> int:
        """How many metric values have been written to the store so far."""
        return self._flushed

    def flush(self) -> int:
        """Write every buffered value now; returns how many were written."""
        with self._flush_lock:
            if self._error is not None:
                error, self._error = self._error, None
                raise error
            written = 0
            while self._buffer:
                written += self._write_batch()
            return written

    def _write_batch(self) -> int:
        buffer, popleft = self._buffer, self._buffer.popleft
        taken = [popleft() for _ in range(min(len(buffer), _BATCH_ROWS))]
        run_id, steps = self.run_id, self._next_step
        items: list[MetricItem]
        if any(item[2] is None for item in taken):  # auto steps: continue each key's count
            missing = {item[0] for item in taken if item[2] is None and item[0] not in steps}
            if missing:
                steps.update(self.store.read(lambda c: next_steps(c, run_id, missing)))
            items = []
            for key, value, step, epoch, ts in taken:
                if step is None:
                    step = steps[key]
                steps[key] = max(steps.get(key, 0), step + 1)
                items.append((key, value, step, epoch, ts))
        else:  # explicit steps (the common case): the buffered tuples go as they are
            for key in {item[0] for item in taken} if steps else ():
                steps.pop(key, None)  # a later auto step re-reads the key's last step
            items = taken  # type: ignore[assignment]
        try:
            self.store.write(lambda c: write_metric_rows(c, run_id, items))
        except TrackingValueError:
            return self._write_isolating(items)
        except BaseException:
            self._buffer.extendleft(reversed(taken))  # keep them for the next attempt
            raise
        self._flushed += len(items)
        return len(items)

    def _write_isolating(self, items: list[MetricItem]) -> int:
        """Write what the store accepts of ``items``, halving refused batches down to the
        rows it refuses; those are logged and kept in :attr:`rejected`."""
        run_id, written = self.run_id, 0
        pending = [items]
        while pending:
            chunk = pending.pop()
            try:
                self.store.write(functools.partial(_write_rows, run_id=run_id, rows=chunk))
            except TrackingValueError as err:
                if len(chunk) > 1:
                    middle = len(chunk) // 2
                    pending += [chunk[middle:], chunk[:middle]]
                    continue
                self.rejected.append((chunk[0], err.message))
                log.error(
                    "run %s: the store refused metric %r at step %s (%s); the other values "
                    "are written",
                    run_id,
                    chunk[0][0],
                    chunk[0][2],
                    err.message,
                )
                continue
            except BaseException:
                rest = [row for part in (chunk, *reversed(pending)) for row in part]
                self._buffer.extendleft(reversed(rest))  # not lost: the next flush retries
                raise
            self._flushed += len(chunk)
            written += len(chunk)
        return written

    def _write_loop(self) -> None:
        last_beat = time.monotonic()
        while not self._stop.wait(self._flush_interval_s):
            try:
                with self._flush_lock:
                    while self._buffer:
                        self._write_batch()
                if time.monotonic() - last_beat >= self._heartbeat_interval_s:
                    self.db.heartbeat(self.run_id)
                    last_beat = time.monotonic()
            except Exception as err:  # reported by the next flush()/finish() on the caller
                log.warning("tracker for run %s could not write: %s", self.run_id, err)
                self._error = err

    # -- ending ------------------------------------------------------------------------

    def finish(self, status: str = "completed") -> None:
        """Flush everything, stop the writer and set the final status."""
        if status not in TERMINAL_STATUSES:
            raise TrackingError(
                f"finish() takes one of {', '.join(TERMINAL_STATUSES)}, got {status!r}"
            )
        if self.status != "running":
            return
        self._stop.set()
        if self._writer.is_alive() and self._writer is not threading.current_thread():
            self._writer.join()
        self._error = None  # the final flush retries whatever the writer could not write
        self.flush()
        self.db.update_run_status(self.run_id, status)
        self.status = status
        atexit.unregister(self._at_exit)
        if self._owns_store:
            self.store.dispose()
        if (
            self._previous_sigterm is not None
            and signal.getsignal(signal.SIGTERM) == self._on_sigterm
        ):
            signal.signal(signal.SIGTERM, self._previous_sigterm)

    def _at_exit(self) -> None:
        # An uncaught exception has been printed (and sys.last_value set) before atexit runs.
        failed = getattr(sys, "last_value", None) is not None
        try:
            self.finish("failed" if failed else "completed")
        except Exception as err:
            log.error("could not finish run %s at exit: %s", self.run_id, err)

    def _on_sigterm(self, signum: int, frame: FrameType | None) -> None:
        try:
            self.finish("killed")
        except Exception as err:
            log.error("could not finish run %s on SIGTERM: %s", self.run_id, err)
        previous = self._previous_sigterm
        if callable(previous):
            previous(signum, frame)
        elif previous == signal.SIG_DFL:
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            os.kill(os.getpid(), signal.SIGTERM)


def system_info() -> dict[str, Any]:
    """Python, platform, CPU count, pid, working directory, and torch's version if imported."""
    info: dict[str, Any] = {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpu_count": os.cpu_count(),
        "pid": os.getpid(),
        "cwd": os.getcwd(),  # relative output directories of the run resolve against it
    }
    torch = sys.modules.get("torch")  # never import torch here: the tracker must start fast
    if torch is not None:
        info["torch"] = getattr(torch, "__version__", None)
    return info


def _git_commit() -> str | None:
    try:
        result = subprocess.run(
            ["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=2, check=False
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return result.stdout.strip() or None if result.returncode == 0 else None


def _write_rows(conn: Any, *, run_id: int, rows: list[MetricItem]) -> None:
    write_metric_rows(conn, run_id, rows)
