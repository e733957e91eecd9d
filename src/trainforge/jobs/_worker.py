"""Worker: claims jobs from the queue and runs them, heartbeating while they run.

``concurrency`` slots (threads) each claim and run one job at a time; the work itself of
the built-in types runs in child processes. While a job runs, a heartbeat thread records
that it is alive; when the heartbeat is refused (the job was cancelled, or presumed dead
and taken over) the work is stopped and nothing is reported. :meth:`Worker.stop` (the CLI
calls it on SIGTERM / SIGINT) stops claiming, stops running work cleanly and puts those
jobs back in the queue so another worker resumes them. While the store is unreachable (a
database restart or failover) the worker keeps polling, backing off, and reports a
finished job once the store is back.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import uuid
from collections.abc import Callable
from typing import Any, TypeVar

from trainforge.errors import StoreUnavailableError, TrainforgeError
from trainforge.jobs._child import JobContext
from trainforge.jobs._job import Job
from trainforge.jobs._manager import JobManager

__all__ = ["Worker", "WorkerEvent"]

log = logging.getLogger(__name__)

#: ``(event, job, detail)``: event is claimed, completed, retry, failed, cancelled, released.
WorkerEvent = Callable[[str, Job, str], None]
T = TypeVar("T")
_OUTAGE_BACKOFF_MAX_S = 5.0  # the longest wait between tries while the store is down


class Worker:
    """Run jobs from a :class:`JobManager` until stopped (or, with ``once``, the queue is empty).

    Args:
        manager: The queue.
        worker_id: Name recorded on the jobs it claims (default ``host:pid:random``).
        concurrency: Jobs run at the same time.
        poll_interval_s: Wait between claims when nothing is due.
        heartbeat_interval_s: How often a running job's heartbeat is recorded.
        stale_timeout_s: Running jobs silent this long are requeued (their worker died).
        on_event: Called on every job event (for status lines).

    Examples:
        >>> from trainforge.jobs import JOB_TYPES, register_job_type
        >>> @register_job_type("doc-example-greet")
        ... def greet(config, context):
        ...     return {"greeting": f"hello {config['name']}"}
        >>> manager = JobManager("sqlite:///jobs.db")
        >>> job_id = manager.submit_job("doc-example-greet", {"name": "worker"})
        >>> Worker(manager).run(once=True)  # the number of jobs it ran
        1
        >>> manager.get_job(job_id).result
        {'greeting': 'hello worker'}
        >>> JOB_TYPES.unregister("doc-example-greet")
    """

    def __init__(
        self,
        manager: JobManager,
        *,
        worker_id: str | None = None,
        concurrency: int = 1,
        poll_interval_s: float = 1.0,
        heartbeat_interval_s: float = 5.0,
        stale_timeout_s: float = 60.0,
        on_event: WorkerEvent | None = None,
    ) -> None:
        if concurrency < 1:
            raise ValueError(f"concurrency must be at least 1, got {concurrency}")
        if heartbeat_interval_s >= stale_timeout_s:
            raise ValueError(
                f"heartbeat_interval_s ({heartbeat_interval_s}) must be shorter than "
                f"stale_timeout_s ({stale_timeout_s}), or live jobs would be requeued"
            )
        self.manager = manager
        self.worker_id = worker_id or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
        self.concurrency = concurrency
        self.poll_interval_s = poll_interval_s
        self.heartbeat_interval_s = heartbeat_interval_s
        self.stale_timeout_s = stale_timeout_s
        self.on_event = on_event
        self._stopping = threading.Event()
        self._lock = threading.Lock()
        self.processed = 0

    def stop(self) -> None:
        """Stop claiming; running jobs are stopped and put back in the queue."""
        self._stopping.set()

    def run(self, *, once: bool = False) -> int:
        """Claim and run jobs until :meth:`stop` (or, ``once``, none is due); returns the count."""
        slots = [
            threading.Thread(target=self._slot, args=(n, once), name=f"trainforge-worker-{n}")
            for n in range(self.concurrency)
        ]
        for slot in slots:
            slot.start()
        try:
            for slot in slots:
                while slot.is_alive():
                    slot.join(timeout=0.2)  # short joins: signal handlers run in between
        finally:
            self._stopping.set()
            for slot in slots:
                slot.join()
        return self.processed

    def _slot(self, number: int, once: bool) -> None:
        slot_id = self.worker_id if self.concurrency == 1 else f"{self.worker_id}/{number}"
        while not self._stopping.is_set():
            job = self._through_outage(lambda: self._poll(number, slot_id), "claim a job")
            if job is None and self._stopping.is_set():
                return
            if job is None:
                if once:
                    return
                self._stopping.wait(self.poll_interval_s)
                continue
            self._execute(job, slot_id)

    def _poll(self, number: int, slot_id: str) -> Job | None:
        """Requeue stale jobs (slot 0), then claim the next due job, if any."""
        if number == 0:
            for job_id in self.manager.requeue_stale(self.stale_timeout_s):
                log.warning("job %s: its worker stopped heartbeating; requeued", job_id)
        return self.manager.claim_job(slot_id)

    def _through_outage(self, call: Callable[[], T], what: str) -> T | None:
        """``call()``, tried again (backing off) while the store is unavailable.

        Returns None only when the worker is stopped during an outage.
        """
        wait = self.poll_interval_s
        warned = False
        while True:
            try:
                result = call()
            except StoreUnavailableError as err:
                if not warned:
                    log.warning("cannot %s, trying again until the store is back: %s", what, err)
                    warned = True
                if self._stopping.wait(wait):
                    return None
                wait = min(max(wait, 0.05) * 2, _OUTAGE_BACKOFF_MAX_S)
                continue
            if warned:
                log.warning("the store is back: %s", what)
            return result

    def _execute(self, job: Job, slot_id: str) -> None:
        self._emit("claimed", job, f"attempt {job.attempts} of {job.max_attempts}")
        context = JobContext(job.id, job.attempts, slot_id, self.manager, stopping=self._stopping)
        done = threading.Event()
        beat = threading.Thread(target=self._heartbeat, args=(context, done), daemon=True)
        beat.start()
        try:
            job_type = self.manager.job_types.get(job.job_type)
            result = job_type.run(job.config, context)
        except Exception as exc:
            done.set()
            self._finish_failed(job, context, exc)
        else:
            done.set()
            marked: bool | None = False  # cancelled or taken over: nothing to report
            if not context.lost.is_set():
                marked = self._through_outage(
                    lambda: self._report_completed(job, result, slot_id),
                    f"report job {job.id} completed",
                )
            if marked is None:
                self._emit("released", job, _UNREPORTED)
            elif not marked:
                self._emit("cancelled", job, "cancelled or taken over; result discarded")
            else:
                self._emit("completed", job, _summary(result))
        finally:
            done.set()
            beat.join()
            with self._lock:
                self.processed += 1

    def _report_completed(self, job: Job, result: Any, slot_id: str) -> bool:
        """Mark ``job`` completed; False when it was cancelled or taken over meanwhile."""
        if self.manager.mark_completed(job.id, result, worker_id=slot_id):
            return True
        # a report whose reply was lost (the connection cut after the commit) is sent again
        # and finds the job completed: by this attempt of this slot, it was this report
        now = self.manager.get_job(job.id)
        return (now.status, now.worker_id, now.attempts) == ("completed", slot_id, job.attempts)

    def _finish_failed(self, job: Job, context: JobContext, exc: BaseException) -> None:
        if context.lost.is_set():
            self._emit("cancelled", job, "stopped: cancelled or taken over")
            return
        if context.stopping.is_set():
            try:
                self.manager.release(job.id, context.worker_id)
            except StoreUnavailableError as err:  # stopping: no waiting for the store
                log.warning("job %s: %s; %s", job.id, err, _UNREPORTED)
            self._emit("released", job, "worker stopping: back in the queue")
            return
        message = exc.user_message() if isinstance(exc, TrainforgeError) else repr(exc)
        if not isinstance(exc, TrainforgeError):
            log.exception("job %s raised", job.id)

        def report() -> Job:
            self.manager.mark_failed(job.id, message, worker_id=context.worker_id)
            return self.manager.get_job(job.id)

        after = self._through_outage(report, f"report job {job.id} failed")
        if after is None:
            self._emit("released", job, _UNREPORTED)
            return
        self._emit("failed" if after.status == "failed" else "retry", job, message)

    def _heartbeat(self, context: JobContext, done: threading.Event) -> None:
        while not done.wait(self.heartbeat_interval_s):
            try:
                alive = self.manager.heartbeat(context.job_id, context.worker_id)
            except TrainforgeError as err:  # the store is down: keep working, try again
                log.warning("job %s: heartbeat failed: %s", context.job_id, err)
                continue
            if not alive:
                context.lost.set()
                return

    def _emit(self, event: str, job: Job, detail: str) -> None:
        if self.on_event is not None:  # the caller reports it (the CLI's status lines)
            log.debug("job %s (%s): %s %s", job.id, job.job_type, event, detail)
            self.on_event(event, job, detail)
            return
        level = logging.WARNING if event in ("failed", "retry") else logging.INFO
        log.log(level, "job %s (%s): %s %s", job.id, job.job_type, event, detail)


_UNREPORTED = (
    "worker stopped while the store was down: the job is requeued once its heartbeat is stale"
)


def _summary(result: Any) -> str:
    if isinstance(result, dict) and result.get("run_id") is not None:
        return f"run {result['run_id']}"
    return ""
