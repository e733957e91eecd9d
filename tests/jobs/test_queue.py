"""JobManager on SQLite, PostgreSQL and MariaDB: order, retries with backoff, heartbeats, cancel."""

from __future__ import annotations

import pytest

from trainforge.errors import (
    ConfigError,
    JobNotFoundError,
    JobStateError,
    RegistryError,
    TrackingValueError,
)
from trainforge.jobs import JobManager
from trainforge.jobs._sql import claim_next
from trainforge.tracking import ExperimentDB


def test_claims_follow_priority_then_age(jobs_url, echo_type, clock):
    manager = JobManager(jobs_url, clock=clock)
    low = manager.submit_job(echo_type, {"value": 1}, priority=0)
    clock.advance(1)
    high = manager.submit_job(echo_type, {"value": 2}, priority=5)
    clock.advance(1)
    low2 = manager.submit_job(echo_type, {"value": 3}, priority=0)
    order = [manager.claim_job("w").id for _ in range(3)]
    assert order == [high, low, low2]
    assert manager.claim_job("w") is None
    job = manager.get_job(high)
    assert (job.status, job.worker_id, job.attempts) == ("running", "w", 1)
    assert job.config == {"value": 2}


def test_not_before_holds_a_job_back(jobs_url, echo_type, clock):
    manager = JobManager(jobs_url, clock=clock)
    job_id = manager.submit_job(echo_type, {}, not_before=clock() + 60)
    assert manager.claim_job("w") is None
    clock.advance(61)
    assert manager.claim_job("w").id == job_id


def test_failed_attempts_back_off_then_fail_with_the_error(jobs_url, echo_type, clock):
    manager = JobManager(jobs_url, clock=clock, backoff_s=10)
    job_id = manager.submit_job(echo_type, {}, max_attempts=3)
    for attempt, delay in ((1, 10), (2, 20)):
        assert manager.claim_job("w").attempts == attempt
        assert manager.mark_failed(job_id, f"boom {attempt}", worker_id="w")
        job = manager.get_job(job_id)
        assert (job.status, job.error) == ("queued", f"boom {attempt}")
        assert job.not_before == pytest.approx(clock() + delay)
        assert manager.claim_job("w") is None  # backing off
        clock.advance(delay)
    assert manager.claim_job("w").attempts == 3
    manager.mark_failed(job_id, "boom 3", worker_id="w")
    job = manager.get_job(job_id)
    assert (job.status, job.error, job.attempts) == ("failed", "boom 3", 3)
    assert job.finished_at == clock()
    clock.advance(3600)
    assert manager.claim_job("w") is None


def test_a_job_completes_once_and_only_for_its_worker(jobs_url, echo_type, clock):
    manager = JobManager(jobs_url, clock=clock)
    job_id = manager.submit_job(echo_type, {})
    manager.claim_job("a")
    assert not manager.mark_completed(job_id, {"x": 1}, worker_id="b")
    assert manager.mark_completed(job_id, {"x": 1}, worker_id="a")
    assert not manager.mark_completed(job_id, {"x": 2}, worker_id="a")
    job = manager.get_job(job_id)
    assert (job.status, job.result) == ("completed", {"x": 1})


def test_stale_jobs_are_requeued_and_their_runs_marked_stale(jobs_url, echo_type, clock):
    manager = JobManager(jobs_url, clock=clock)
    job_id = manager.submit_job(echo_type, {}, max_attempts=2)
    manager.claim_job("dead")
    db = ExperimentDB(manager.store)
    run_id = db.log_run("attempt-1", job_id=job_id)
    clock.advance(30)
    assert manager.heartbeat(job_id, "dead")
    clock.advance(50)
    assert manager.requeue_stale(timeout=60) == []  # heartbeat 50 s ago
    clock.advance(20)
    assert manager.requeue_stale(timeout=60) == [job_id]
    job = manager.get_job(job_id)
    assert (job.status, job.worker_id) == ("queued", None)
    assert "dead stopped heartbeating" in job.error
    assert db.get_run(run_id)["status"] == "stale"
    assert not manager.heartbeat(job_id, "dead")  # the dead worker lost it
    assert manager.claim_job("alive").attempts == 2
    assert [r["id"] for r in manager.runs_of(job_id)] == [run_id]
    clock.advance(120)
    assert manager.requeue_stale(timeout=60) == [job_id]  # out of attempts: failed
    assert manager.get_job(job_id).status == "failed"


def test_cancel_a_queued_and_a_running_job(jobs_url, echo_type, clock):
    manager = JobManager(jobs_url, clock=clock)
    queued = manager.submit_job(echo_type, {})
    running = manager.submit_job(echo_type, {}, priority=1)
    assert manager.claim_job("w").id == running
    assert manager.cancel(queued).status == "cancelled"
    assert manager.cancel(running).status == "cancelled"
    assert not manager.heartbeat(running, "w")  # the worker notices and stops
    assert not manager.mark_completed(running, worker_id="w")
    assert manager.claim_job("w") is None
    with pytest.raises(JobStateError, match="only a queued or running job"):
        manager.cancel(running)
    assert manager.retry(running).status == "queued"
    assert manager.claim_job("w").attempts == 1
    with pytest.raises(JobStateError, match="only a failed or cancelled"):
        manager.retry(running)
    with pytest.raises(JobNotFoundError, match="no job with id 999"):
        manager.cancel(999)


def test_list_and_count_jobs(jobs_url, echo_type, clock):
    manager = JobManager(jobs_url, clock=clock)
    ids = [manager.submit_job(echo_type, {"value": i}) for i in range(3)]
    manager.claim_job("w")
    assert [j.id for j in manager.list_jobs()] == ids[::-1]
    assert [j.id for j in manager.list_jobs("queued")] == ids[:0:-1]
    assert [j.id for j in manager.list_jobs(["running"], job_type=echo_type)] == [ids[0]]
    assert manager.counts()["queued"] == 2
    with pytest.raises(TrackingValueError, match="did you mean 'queued'"):
        manager.list_jobs("queud")


def test_bad_submissions_are_refused_before_the_queue(jobs_url, echo_type):
    manager = JobManager(jobs_url)
    with pytest.raises(RegistryError, match="did you mean 'echo'"):
        manager.submit_job("ecoh", {})
    with pytest.raises(ConfigError, match="value must be an integer"):
        manager.submit_job(echo_type, {"value": "x"})
    with pytest.raises(TrackingValueError, match="max_attempts"):
        manager.submit_job(echo_type, {}, max_attempts=0)
    assert manager.list_jobs() == []


def test_dedupe_key_submits_once(jobs_url, echo_type):
    manager = JobManager(jobs_url)
    first = manager.submit_once(echo_type, {}, dedupe_key="window-1", reasons=["drift"])
    assert manager.submit_once(echo_type, {}, dedupe_key="window-1") is None
    with pytest.raises(JobStateError, match="window-1"):
        manager.submit_job(echo_type, {}, dedupe_key="window-1")
    assert manager.get_job(first).reasons == ["drift"]


@pytest.mark.parametrize(
    "jobs_url",
    [
        pytest.param("postgres", marks=pytest.mark.postgres),
        pytest.param("mariadb", marks=pytest.mark.mariadb),
    ],
    indirect=True,
)
def test_a_second_claimer_takes_the_next_job_while_the_first_holds_its_own(
    jobs_url, echo_type, clock
):
    manager = JobManager(jobs_url, clock=clock)
    for i in range(40):
        manager.submit_job(echo_type, {"value": i}, priority=i % 4)
        clock.advance(1)
    engine = manager.store.engine
    with engine.connect() as first, engine.connect() as second:
        taken = []
        for conn, worker in ((first, "a"), (second, "b")):  # both transactions stay open
            conn.begin()
            values = {"status": "running", "worker_id": worker}
            taken.append(claim_next(conn, values, clock()))
        # the two most urgent jobs, one each: the first claimer locked only its own row
        expected = [(3, '{"value": 3}'), (3, '{"value": 7}')]
        assert [(row.priority, row.config) for row in taken] == expected
        first.rollback()
        second.rollback()
    assert manager.counts()["queued"] == 40
