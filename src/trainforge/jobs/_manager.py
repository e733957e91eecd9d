"""JobManager: a job queue in the tracking store, safe for many workers on many machines.

A job is a row of ``jobs``: ``queued`` -> ``running`` (claimed by one worker, which
heartbeats) -> ``completed`` / ``failed`` / ``cancelled``. A failed attempt goes back to
``queued`` with an exponential backoff (``not_before``) until ``max_attempts``; a job whose
worker stopped heartbeating is put back by :meth:`JobManager.requeue_stale` and the runs it
left ``running`` are marked ``stale``. Every state change is one conditional UPDATE, so a
late worker can never complete a job that another worker took over, and a job completes at
most once. Claims are atomic on every backend (see ``_sql``).
"""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from sqlalchemy import func, insert, select, update
from sqlalchemy.engine import Connection

from trainforge.errors import JobNotFoundError, JobStateError, TrackingValueError
from trainforge.jobs._job import JOB_STATUSES, Job, check_status
from trainforge.jobs._sql import claim_next, job_exists, lock_rows, transition
from trainforge.jobs._types import JOB_TYPES, JobType
from trainforge.registry import Registry
from trainforge.tracking import TrackingStore
from trainforge.tracking._schema import jobs, runs

__all__ = ["JobManager"]


class JobManager:
    """Submit, claim, finish, retry and cancel jobs in one tracking store.

    Args:
        store: An open :class:`~trainforge.tracking.TrackingStore`, or its URL / file path.
        job_types: Where job type names are looked up (the project's job type registry).
        backoff_s: Delay before the first retry of a failed attempt; doubles each attempt.
        max_backoff_s: Longest delay between two attempts.
        clock: Seconds since the epoch (tests inject a fake one).

    Examples:
        >>> manager = JobManager("sqlite:///jobs.db")
        >>> spec = {"overrides": ["trainer.max_epochs=3"]}  # validated now, run by a worker
        >>> job_id = manager.submit_job("train", spec, priority=5)
        >>> job = manager.claim_job("worker-1")
        >>> job.id == job_id, job.status
        (True, 'running')
        >>> manager.mark_completed(job.id, worker_id="worker-1")
        True
    """

    def __init__(
        self,
        store: TrackingStore | str | os.PathLike[str] | None = None,
        *,
        job_types: Registry[JobType] = JOB_TYPES,
        backoff_s: float = 30.0,
        max_backoff_s: float = 3600.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if not isinstance(store, TrackingStore):
            store = TrackingStore(None if store is None else os.fspath(store))
        self.store = store
        self.job_types = job_types
        self.backoff_s = backoff_s
        self.max_backoff_s = max_backoff_s
        self.clock = clock

    def __repr__(self) -> str:
        return f"JobManager({self.store.display_url!r})"

    # -- submitting --------------------------------------------------------------------

    def submit_job(
        self,
        job_type: str,
        config: Mapping[str, Any] | None = None,
        priority: int = 0,
        max_attempts: int = 3,
        not_before: float | None = None,
        *,
        reasons: Iterable[str] = (),
        dedupe_key: str | None = None,
    ) -> int:
        """Validate and enqueue a job; returns its id (higher ``priority`` runs first).

        The config is checked here, by the job type, so a bad one never reaches a worker.

        Raises:
            RegistryError: Unknown job type (with the closest name).
            ConfigError: The job type refused the config (a train config that does not
                validate, every problem listed).
            JobStateError: ``dedupe_key`` names a job that exists already.
            TrackingValueError: ``max_attempts`` below 1.
        """
        job_id = self.submit_once(
            job_type,
            config,
            priority,
            max_attempts,
            not_before,
            reasons=reasons,
            dedupe_key=dedupe_key,
        )
        if job_id is None:
            raise JobStateError(
                f"a job with dedupe key {dedupe_key!r} was submitted already",
                hint="trainforge jobs list shows it; pick another key to submit a new one",
            )
        return job_id

    def submit_once(
        self,
        job_type: str,
        config: Mapping[str, Any] | None = None,
        priority: int = 0,
        max_attempts: int = 3,
        not_before: float | None = None,
        *,
        reasons: Iterable[str] = (),
        dedupe_key: str | None = None,
        schedule_id: int | None = None,
        scheduled_for: float | None = None,
        validated: bool = False,
    ) -> int | None:
        """As :meth:`submit_job`, but ``None`` when the job exists already.

        A job exists already when another one has the same ``dedupe_key``, or the same
        ``(schedule_id, scheduled_for)`` slot: the database's unique indexes decide, so
        concurrent submitters (two schedulers) enqueue one job between them.
        """
        name = self.job_types.canonical(job_type)
        if max_attempts < 1:
            raise TrackingValueError(f"max_attempts must be at least 1, got {max_attempts}")
        data = dict(config or {})
        if not validated:
            data = self.job_types.get(name).validate(data, store_url=self.store.url)
        row = {
            "job_type": name,
            "config": json.dumps(data, sort_keys=True),
            "priority": int(priority),
            "status": "queued",
            "attempts": 0,
            "max_attempts": int(max_attempts),
            "not_before": not_before,
            "schedule_id": schedule_id,
            "scheduled_for": scheduled_for,
            "created_at": self.clock(),
            "reasons": json.dumps(list(reasons)) if reasons else None,
            "dedupe_key": dedupe_key,
        }
        unique = dedupe_key is not None or schedule_id is not None

        def write(conn: Connection) -> int | None:
            if unique and job_exists(conn, dedupe_key, schedule_id, scheduled_for):
                return None
            return int(conn.execute(insert(jobs).values(row)).inserted_primary_key[0])  # type: ignore[index]

        try:
            return self.store.write(write)
        except TrackingValueError:
            # a concurrent submitter inserted the same slot between our check and insert
            if unique and self.store.read(
                lambda conn: job_exists(conn, dedupe_key, schedule_id, scheduled_for)
            ):
                return None
            raise

    # -- the worker's side -------------------------------------------------------------

    def claim_job(self, worker_id: str) -> Job | None:
        """Atomically take the next due job for ``worker_id``; ``None`` when none is due."""
        now = self.clock()
        values = {
            "status": "running",
            "worker_id": worker_id,
            "started_at": now,
            "heartbeat_at": now,
            "finished_at": None,
        }
        row = self.store.write_one(lambda conn: claim_next(conn, values, now))
        return None if row is None else Job.from_row(row)

    def heartbeat(self, job_id: int, worker_id: str) -> bool:
        """Record that ``worker_id`` still runs the job; False: stop, it is no longer ours.

        False means the job was cancelled, or taken over after this worker was presumed
        dead: the worker must stop its work and not report a result.
        """
        return self._transition(
            job_id, {"heartbeat_at": self.clock()}, status="running", worker_id=worker_id
        )

    def mark_completed(
        self, job_id: int, result: Mapping[str, Any] | None = None, *, worker_id: str | None = None
    ) -> bool:
        """Mark a running job completed; False when it is not running (for this worker)."""
        values = {
            "status": "completed",
            "finished_at": self.clock(),
            "result": json.dumps(dict(result), default=str) if result is not None else None,
            "error": None,
        }
        return self._transition(job_id, values, status="running", worker_id=worker_id)

    def mark_failed(self, job_id: int, error: str, *, worker_id: str | None = None) -> bool:
        """Record a failed attempt: retried after a backoff, or ``failed`` after the last one.

        Returns False when the job was not running (for this worker).
        """
        now = self.clock()

        def write(conn: Connection) -> bool:
            query = select(jobs.c.attempts, jobs.c.max_attempts).where(
                jobs.c.id == job_id, jobs.c.status == "running"
            )
            if worker_id is not None:
                query = query.where(jobs.c.worker_id == worker_id)
            row = conn.execute(lock_rows(query, conn.dialect)).first()
            if row is None:
                return False
            if row.attempts >= row.max_attempts:
                values: dict[str, Any] = {"status": "failed", "finished_at": now}
            else:
                values = {
                    "status": "queued",
                    "worker_id": None,
                    "not_before": now + self.backoff(row.attempts),
                }
            conn.execute(update(jobs).where(jobs.c.id == job_id).values(error=error, **values))
            return True

        return self.store.write(write)

    def backoff(self, attempts: int) -> float:
        """Seconds before the next attempt after ``attempts`` failed ones."""
        exponent = max(0, attempts - 1)
        delay = self.backoff_s * (2.0**exponent) if exponent < 60 else math.inf
        return min(delay, self.max_backoff_s)

    def release(self, job_id: int, worker_id: str) -> bool:
        """Put a running job back in the queue untouched (its worker is shutting down).

        The attempt does not count: the job is claimable again at once.
        """
        values = {"status": "queued", "worker_id": None, "attempts": jobs.c.attempts - 1}
        return self._transition(job_id, values, status="running", worker_id=worker_id)

    def requeue_stale(self, timeout: float) -> list[int]:
        """Requeue running jobs without a heartbeat for ``timeout`` seconds; returns their ids.

        A job out of attempts is ``failed`` instead. The runs such a job left ``running``
        are marked ``stale``: their process died with the worker.
        """
        now = self.clock()
        cutoff = now - timeout

        def write(conn: Connection) -> list[int]:
            query = select(jobs.c.id, jobs.c.attempts, jobs.c.max_attempts, jobs.c.worker_id)
            query = query.where(jobs.c.status == "running", jobs.c.heartbeat_at < cutoff)
            rows = conn.execute(lock_rows(query, conn.dialect)).all()
            for row in rows:
                message = (
                    f"worker {row.worker_id} stopped heartbeating (no heartbeat for {timeout:g} s)"
                )
                values: dict[str, Any]
                if row.attempts >= row.max_attempts:
                    values = {"status": "failed", "finished_at": now, "error": message}
                else:
                    values = {"status": "queued", "worker_id": None, "error": message}
                conn.execute(update(jobs).where(jobs.c.id == row.id).values(**values))
            ids = [row.id for row in rows]
            if ids:
                conn.execute(
                    update(runs)
                    .where(runs.c.job_id.in_(ids), runs.c.status == "running")
                    .values(status="stale", end_time=now)
                )
            return ids

        return self.store.write(write)

    # -- the user's side ---------------------------------------------------------------

    def cancel(self, job_id: int) -> Job:
        """Cancel a queued or running job (its worker stops the work at its next heartbeat).

        Raises:
            JobNotFoundError: No such job.
            JobStateError: The job has finished already.
        """
        job = self.get_job(job_id)
        values = {"status": "cancelled", "finished_at": self.clock(), "error": "cancelled"}
        for status in ("queued", "running"):
            if self._transition(job_id, values, status=status):
                return self.get_job(job_id)
        raise JobStateError(
            f"job {job_id} is {self.get_job(job_id).status}: only a queued or running job "
            f"can be cancelled (it was {job.status})",
            hint=f"trainforge jobs retry {job_id} queues it again",
        )

    def retry(self, job_id: int) -> Job:
        """Queue a failed or cancelled job again, with its attempts counted from zero.

        Raises:
            JobNotFoundError: No such job.
            JobStateError: The job is queued, running or completed.
        """
        self.get_job(job_id)
        values = {
            "status": "queued",
            "attempts": 0,
            "worker_id": None,
            "not_before": None,
            "error": None,
            "finished_at": None,
        }
        for status in ("failed", "cancelled"):
            if self._transition(job_id, values, status=status):
                return self.get_job(job_id)
        raise JobStateError(
            f"job {job_id} is {self.get_job(job_id).status}: only a failed or cancelled job "
            "can be retried",
            hint="submit it again to run a completed job once more",
        )

    def get_job(self, job_id: int) -> Job:
        """The job with this id.

        Raises:
            JobNotFoundError: No such job.
        """
        row = self.store.read(lambda c: c.execute(select(jobs).where(jobs.c.id == job_id)).first())
        if row is None:
            raise JobNotFoundError(
                f"no job with id {job_id} in {self.store.display_url}",
                hint="trainforge jobs list shows the jobs",
            )
        return Job.from_row(row)

    def list_jobs(
        self,
        status: str | Iterable[str] | None = None,
        *,
        job_type: str | None = None,
        schedule_id: int | None = None,
        limit: int | None = 100,
    ) -> list[Job]:
        """Jobs, newest first, filtered by status (one or several), type and schedule.

        Raises:
            TrackingValueError: An unknown status (with the closest one).
        """
        query = select(jobs).order_by(jobs.c.id.desc())
        if status is not None:
            statuses = [status] if isinstance(status, str) else list(status)
            for value in statuses:
                check_status(value)
            query = query.where(jobs.c.status.in_(statuses))
        if job_type is not None:
            query = query.where(jobs.c.job_type == job_type)
        if schedule_id is not None:
            query = query.where(jobs.c.schedule_id == schedule_id)
        if limit is not None:
            if limit < 0:
                raise TrackingValueError(f"limit must not be negative, got {limit}")
            query = query.limit(limit)
        return [Job.from_row(row) for row in self.store.read(lambda c: c.execute(query).all())]

    def counts(self) -> dict[str, int]:
        """Number of jobs per status."""
        query = select(jobs.c.status, func.count()).group_by(jobs.c.status)
        found: dict[str, int] = dict(self.store.read(lambda c: c.execute(query).all()))
        return {status: int(found.get(status, 0)) for status in JOB_STATUSES}

    def runs_of(self, job_id: int) -> list[dict[str, Any]]:
        """The runs a job produced (one per attempt that started training), oldest first."""
        query = (
            select(runs.c.id, runs.c.status, runs.c.name, runs.c.start_time, runs.c.end_time)
            .where(runs.c.job_id == job_id)
            .order_by(runs.c.id)
        )
        return [dict(r._mapping) for r in self.store.read(lambda c: c.execute(query).all())]

    def _transition(
        self, job_id: int, values: Mapping[str, Any], *, status: str, worker_id: str | None = None
    ) -> bool:
        return self.store.write_one(
            lambda conn: transition(conn, job_id, values, status=status, worker_id=worker_id)
        )
