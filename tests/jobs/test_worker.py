"""Worker with user job types: results, retries, cancel at the heartbeat, clean shutdown."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time

import pytest
import sqlalchemy as sa

from trainforge.errors import StoreUnavailableError
from trainforge.jobs import JOB_TYPES, JobManager, Worker, register_job_type


def test_user_jobs_complete_or_retry_then_fail(jobs_url, echo_type):
    manager = JobManager(jobs_url, backoff_s=0)
    ok = manager.submit_job(echo_type, {"value": 7})
    bad = manager.submit_job(echo_type, {"fail": "disk on fire"}, max_attempts=2)
    events: list[tuple[str, int]] = []
    worker = Worker(manager, on_event=lambda e, job, d: events.append((e, job.id)))
    assert worker.run(once=True) == 3
    assert manager.get_job(ok).result == {"echo": 7, "attempt": 1}
    failed = manager.get_job(bad)
    assert (failed.status, failed.attempts) == ("failed", 2)
    assert "echo was told to fail: disk on fire" in failed.error
    assert events.count(("retry", bad)) == 1 and events.count(("failed", bad)) == 1


def test_a_completion_already_in_the_store_is_reported_completed(jobs_url):
    # the state a report leaves when its commit reached the server and the reply did not:
    # the store holds this attempt's completion and the worker sends the report again
    def landed_early(config, context):
        context.manager.mark_completed(context.job_id, {"n": 1}, worker_id=context.worker_id)
        return {"n": 1}

    register_job_type("landed-early", landed_early)
    try:
        manager = JobManager(jobs_url)
        job_id = manager.submit_job("landed-early", {})
        events: list[tuple[str, str]] = []
        worker = Worker(manager, on_event=lambda e, job, d: events.append((e, d)))
        assert worker.run(once=True) == 1
        assert [e for e, _ in events] == ["claimed", "completed"]
        assert manager.get_job(job_id).status == "completed"
    finally:
        JOB_TYPES.unregister("landed-early")


def test_a_cancelled_running_job_stops_at_its_next_heartbeat(jobs_url):
    started = threading.Event()

    def wait_for_stop(config, context):
        started.set()
        while not context.should_stop():
            time.sleep(0.01)
        raise RuntimeError("stopped")

    register_job_type("wait-for-stop", wait_for_stop)
    try:
        manager = JobManager(jobs_url)
        job_id = manager.submit_job("wait-for-stop", {})
        worker = Worker(manager, heartbeat_interval_s=0.05, stale_timeout_s=5)
        thread = threading.Thread(target=worker.run, kwargs={"once": True})
        thread.start()
        assert started.wait(30)
        manager.cancel(job_id)
        thread.join(30)
        assert not thread.is_alive()
        job = manager.get_job(job_id)
        assert (job.status, job.error) == ("cancelled", "cancelled")  # not overwritten
    finally:
        JOB_TYPES.unregister("wait-for-stop")


_SLOW_TYPE = textwrap.dedent(
    """
    import time
    from trainforge.jobs import register_job_type

    @register_job_type("slow")
    def slow(config, context):
        print("slow job started", flush=True)
        while not context.should_stop():
            time.sleep(0.02)
        raise RuntimeError("interrupted")
    """
)


def test_sigterm_stops_the_worker_and_requeues_its_job(tmp_path):
    (tmp_path / "slow_jobs.py").write_text(_SLOW_TYPE)
    url = f"sqlite:///{tmp_path / 'jobs.db'}"
    command = [sys.executable, "-m", "trainforge.cli", "jobs", "worker", "--db", url]
    worker = subprocess.Popen(
        [*command, "--import", "slow_jobs", "--json", "--poll", "0.1"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(tmp_path)},
    )
    manager = JobManager(url)
    register_job_type("slow", lambda config, context: None)  # known here for submit
    try:
        job = manager.get_job(manager.submit_job("slow", {}))
    finally:
        JOB_TYPES.unregister("slow")
    deadline = time.monotonic() + 60
    while manager.get_job(job.id).status != "running" and time.monotonic() < deadline:
        time.sleep(0.05)
    worker.send_signal(signal.SIGTERM)
    out, err = worker.communicate(timeout=60)
    assert worker.returncode == 0, err
    events = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    assert [e["event"] for e in events] == [
        "worker started",
        "claimed",
        "released",
        "worker stopped",
    ]
    assert events[-1]["reason"] == "signal SIGTERM"
    after = manager.get_job(job.id)
    assert (after.status, after.attempts, after.worker_id) == ("queued", 0, None)


def _pg_outage(url: str, allow: bool) -> None:
    """Refuse (or allow again) connections to ``url``'s database; cut the open ones."""
    name = url.rsplit("/", 1)[1]
    admin = sa.create_engine(
        url.rsplit("/", 1)[0] + "/postgres", poolclass=sa.NullPool, isolation_level="AUTOCOMMIT"
    )
    with admin.connect() as conn:
        conn.exec_driver_sql(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS {str(allow).lower()}')
        if not allow:
            conn.exec_driver_sql(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                f"WHERE datname = '{name}' AND pid <> pg_backend_pid()"
            )
    admin.dispose()


def _completed(manager: JobManager, job_id: int) -> bool:
    """The job is completed (False while the store is down)."""
    try:
        return manager.get_job(job_id).status == "completed"
    except StoreUnavailableError:
        return False


def _wait_until(predicate, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


@pytest.mark.postgres
def test_a_worker_outlives_a_store_outage(fresh_pg_url, echo_type):
    # the database refuses connections for a while (a restart, a failover) and every
    # open connection is cut: the worker keeps polling, runs what is queued after, and
    # reports a job that finished during an outage once the store is back
    manager = JobManager(fresh_pg_url)
    events: list[str] = []
    worker = Worker(manager, poll_interval_s=0.05, on_event=lambda e, job, d: events.append(e))
    thread = threading.Thread(target=worker.run)
    thread.start()

    def cut_while_running(config, context):
        _pg_outage(fresh_pg_url, allow=False)  # the job ends while the store is down
        threading.Timer(1.0, _pg_outage, (fresh_pg_url, True)).start()
        return {"ran": True}

    register_job_type("cut-while-running", cut_while_running)
    try:
        _pg_outage(fresh_pg_url, allow=False)
        time.sleep(1.5)  # many polls into the outage
        assert thread.is_alive()
        _pg_outage(fresh_pg_url, allow=True)
        first = manager.submit_job(echo_type, {"value": 3})
        _wait_until(lambda: _completed(manager, first))
        assert manager.get_job(first).result == {"echo": 3, "attempt": 1}
        second = manager.submit_job("cut-while-running", {})
        _wait_until(lambda: _completed(manager, second))
        assert manager.get_job(second).result == {"ran": True}
        assert thread.is_alive() and events == ["claimed", "completed"] * 2
    finally:
        _pg_outage(fresh_pg_url, allow=True)
        JOB_TYPES.unregister("cut-while-running")
        worker.stop()
        thread.join(30)
    assert not thread.is_alive()


@pytest.mark.postgres
def test_the_scheduler_command_outlives_a_store_outage(fresh_pg_url):
    JobManager(fresh_pg_url)  # the tables exist before the scheduler starts
    command = [sys.executable, "-m", "trainforge.cli", "jobs", "scheduler", "--json"]
    proc = subprocess.Popen(
        [*command, "--interval", "0.1", "--db", fresh_pg_url],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        assert json.loads(proc.stdout.readline())["event"] == "scheduler started"
        _pg_outage(fresh_pg_url, allow=False)
        line = json.loads(proc.stdout.readline())  # the next tick meets the outage
        assert line["event"] == "store unavailable" and "unavailable" in line["error"]
        time.sleep(1.0)
        assert proc.poll() is None  # still ticking
    finally:
        _pg_outage(fresh_pg_url, allow=True)
    assert json.loads(proc.stdout.readline())["event"] == "store back"
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert json.loads(out.splitlines()[-1])["event"] == "scheduler stopped"
    assert "Traceback" not in err
