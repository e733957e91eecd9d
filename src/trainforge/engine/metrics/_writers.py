"""The run's CSV and TensorBoard files, written without a training framework.

Both loop drivers send their metrics through :class:`~trainforge.engine.metrics.MetricsEngine`
to these two writers; they write the files Lightning's ``CSVLogger`` and
``TensorBoardLogger`` write (``metrics.csv`` and ``hparams.yaml``; an
``events.out.tfevents.*`` file and ``hparams.yaml``), so readers of either (pandas,
TensorBoard's own reader, the run browser) see the same thing.

A call of ``log_metrics`` is an append to a list. The CSV rows and the TensorBoard events
are written in batches: every ``flush_every`` values, at least every ``flush_secs``
seconds, and on ``save()`` / ``finalize()``. TensorBoard's ``SummaryWriter`` costs about
150 us per scalar on a busy 2-core machine (a thread hand-off per event and a
pure-Python CRC32C); here an event costs a few microseconds, written on the caller's
thread at flush time.
"""

from __future__ import annotations

import copy
import csv
import logging
import os
import socket
import struct
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

__all__ = ["CSVWriter", "TensorBoardWriter", "logger_dir"]

logger = logging.getLogger(__name__)

HPARAMS_FILE = "hparams.yaml"


def logger_dir(save_dir: str | Path, run_id: str, kind: str) -> Path:
    """Where logger ``kind`` of run ``run_id`` writes: ``<save_dir>/<run_id>/<kind>``."""
    return Path(save_dir) / run_id / kind


def _save_hparams(directory: Path, params: Mapping[str, Any]) -> None:
    from trainforge.config import save_yaml  # the YAML OmegaConf writes, as Lightning does

    save_yaml(copy.deepcopy(dict(params)), directory / HPARAMS_FILE)


class CSVWriter:
    """``metrics.csv`` (one row per logged step, columns sorted) and ``hparams.yaml``.

    Args:
        log_dir: The folder (created now).
        flush_every: Write the buffered rows after this many ``log_metrics`` calls.
        flush_secs: ... or when this many seconds passed since the last write.

    Examples:
        >>> import tempfile
        >>> writer = CSVWriter(tempfile.mkdtemp())
        >>> writer.log_metrics({"train/loss": 0.5}, step=10)
        >>> writer.finalize("success")
        >>> (writer.log_dir / "metrics.csv").read_text().splitlines()
        ['step,train/loss', '10,0.5']
    """

    def __init__(self, log_dir: str | Path, flush_every: int = 100, flush_secs: float = 10.0):
        self.log_dir = Path(log_dir)
        self.metrics_file = self.log_dir / "metrics.csv"
        if self.log_dir.is_dir() and any(self.log_dir.iterdir()):
            logger.warning(
                "logs folder %s exists and is not empty: its metrics.csv is replaced", self.log_dir
            )
            self.metrics_file.unlink(missing_ok=True)
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self.flush_every = flush_every
        self.flush_secs = flush_secs
        self.hparams: dict[str, Any] = {}
        self._rows: list[dict[str, Any]] = []
        self._keys: list[str] = []
        self._next_flush = time.monotonic() + flush_secs

    def log_hyperparams(self, params: Mapping[str, Any]) -> None:
        """Keep ``params`` and write ``hparams.yaml`` now."""
        self.hparams.update(params)
        _save_hparams(self.log_dir, self.hparams)

    def log_metrics(self, metrics: Mapping[str, float], step: int | None = None) -> None:
        """Buffer one row: the values and ``step``."""
        row = dict(metrics)
        row["step"] = len(self._rows) if step is None else step
        self._rows.append(row)
        if len(self._rows) >= self.flush_every or time.monotonic() >= self._next_flush:
            self.save()

    def save(self) -> None:
        """Write the buffered rows (rewriting the file when new columns appeared)."""
        self._next_flush = time.monotonic() + self.flush_secs
        if not self._rows:
            return
        seen = set(self._keys)
        new = {key for row in self._rows for key in row if key not in seen}
        exists = self.metrics_file.is_file()
        if new:
            self._keys = sorted(seen | new)
            if exists:  # the header changes: rewrite what is there under the new one
                with self.metrics_file.open(newline="") as file:
                    old = list(csv.DictReader(file))
                self._write("w", old)
        self._write("a" if self.metrics_file.is_file() else "w", self._rows)
        self._rows = []

    def _write(self, mode: str, rows: list[dict[str, Any]]) -> None:
        with self.metrics_file.open(mode, newline="") as file:
            writer = csv.DictWriter(file, fieldnames=self._keys)
            if mode == "w":
                writer.writeheader()
            writer.writerows(rows)

    def finalize(self, status: str) -> None:
        """Write what is buffered."""
        self.save()


def _crc_functions() -> Any:
    import google_crc32c

    def masked(data: bytes) -> int:
        crc = google_crc32c.value(data)
        return (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF

    return masked


_BINS: list[float] = []


def _tensorflow_bins() -> list[float]:
    """The bucket edges of TensorBoard's ``tensorflow`` binning (``SummaryWriter``'s default)."""
    if not _BINS:
        edge, positive = 1e-12, []
        while edge < 1e20:
            positive.append(edge)
            edge *= 1.1
        _BINS.extend([-e for e in reversed(positive)] + [0] + positive)
    return _BINS


class TensorBoardWriter:
    """A TensorBoard event file (scalars, histograms) and ``hparams.yaml``.

    Args:
        log_dir: The folder (created now); the file is
            ``events.out.tfevents.<time>.<host>.<pid>.<n>``, as TensorBoard names it.
        flush_every: Write the buffered events after this many values.
        flush_secs: ... or when this many seconds passed since the last write.
    """

    _files = 0

    def __init__(self, log_dir: str | Path, flush_every: int = 1000, flush_secs: float = 10.0):
        from tensorboard.compat.proto import event_pb2, summary_pb2

        self._event = event_pb2.Event
        self._summary = summary_pb2.Summary
        self._masked_crc = _crc_functions()
        self.log_dir = Path(log_dir)
        self.log_dir.mkdir(parents=True, exist_ok=True)
        TensorBoardWriter._files += 1
        name = "events.out.tfevents.%010d.%s.%s.%s" % (  # noqa: UP031 (TensorBoard's pattern)
            time.time(),
            socket.gethostname(),
            os.getpid(),
            TensorBoardWriter._files,
        )
        self.path = self.log_dir / name
        self.flush_every = flush_every
        self.flush_secs = flush_secs
        self.hparams: dict[str, Any] = {}
        self._pending: list[tuple[float, int, str, float]] = []
        self._records: list[bytes] = []
        self._headers: dict[int, bytes] = {}
        self._next_flush = time.monotonic() + flush_secs
        self._closed = False
        first = event_pb2.Event(
            wall_time=time.time(),
            file_version="brain.Event:2",
            source_metadata=event_pb2.SourceMetadata(writer="trainforge"),
        )
        self._records.append(first.SerializeToString())
        self._write_records()

    @property
    def experiment(self) -> TensorBoardWriter:
        """This writer (what code written for Lightning's logger calls ``add_histogram`` on)."""
        return self

    def log_hyperparams(self, params: Mapping[str, Any]) -> None:
        """Keep ``params``; ``hparams.yaml`` is written at the first ``save()``."""
        self.hparams.update(params)

    def log_metrics(self, metrics: Mapping[str, float], step: int | None = None) -> None:
        """Buffer one scalar event per value, at ``step``."""
        now = time.time()
        at = 0 if step is None else int(step)
        pending = self._pending
        for name, value in metrics.items():
            pending.append((now, at, name, float(value)))
        if len(pending) >= self.flush_every or time.monotonic() >= self._next_flush:
            self.save()

    def add_histogram(self, tag: str, values: Any, global_step: int | None = None) -> None:
        """One histogram event of ``values`` (TensorBoard's ``tensorflow`` binning)."""
        from torch.utils.tensorboard.summary import histogram

        summary = histogram(tag, values, _tensorflow_bins())
        event = self._event(wall_time=time.time(), step=global_step or 0, summary=summary)
        self._encode_pending()
        self._records.append(event.SerializeToString())

    def _encode_pending(self) -> None:
        event, summary, value = self._event, self._summary, self._summary.Value
        self._records.extend(
            event(
                wall_time=wall_time,
                step=step,
                summary=summary(value=[value(tag=tag, simple_value=scalar)]),
            ).SerializeToString()
            for wall_time, step, tag, scalar in self._pending
        )
        self._pending = []

    def save(self) -> None:
        """Write the buffered events (and ``hparams.yaml`` once); flush the file."""
        self._next_flush = time.monotonic() + self.flush_secs
        self._encode_pending()
        self._write_records()
        if not (self.log_dir / HPARAMS_FILE).is_file():
            _save_hparams(self.log_dir, self.hparams)

    def _write_records(self) -> None:
        if self._records:
            crc = self._masked_crc
            headers = self._headers
            chunks = []
            for data in self._records:
                header = headers.get(len(data))
                if header is None:
                    length = struct.pack("<Q", len(data))
                    header = headers[len(data)] = length + struct.pack("<I", crc(length))
                chunks.append(header + data + struct.pack("<I", crc(data)))
            with self.path.open("ab") as file:  # no handle stays open between writes
                file.write(b"".join(chunks))
            self._records = []

    def finalize(self, status: str) -> None:
        """Write what is buffered; the run's last write."""
        if self._closed:
            return
        self.save()
        self._closed = True
