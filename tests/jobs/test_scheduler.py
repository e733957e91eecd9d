"""TrainingScheduler over simulated time, on SQLite and PostgreSQL."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from datetime import datetime, timezone

import pytest

from trainforge.errors import ConfigError, RegistryError, ScheduleError, ScheduleNotFoundError
from trainforge.jobs import JobManager, TrainingScheduler

START = datetime(2027, 3, 1, 12, 0, 30, tzinfo=timezone.utc).timestamp()

_TICKER = textwrap.dedent(
    """
    import sys
    from trainforge.jobs import JobManager, TrainingScheduler, register_job_type
    register_job_type("echo", lambda config, context: None)
    url, start, seconds, step = sys.argv[1], float(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
    scheduler = TrainingScheduler(JobManager(url))
    for offset in range(0, seconds + 1, step):
        scheduler.tick(start + offset)
    """
)


def test_two_schedulers_enqueue_one_job_per_slot(jobs_url, echo_type, clock):
    clock.now = START
    scheduler = TrainingScheduler(JobManager(jobs_url, clock=clock), clock=clock)
    schedule_id = scheduler.create_schedule("every-minute", echo_type, {}, "* * * * *")
    minutes = 30
    # two processes tick the same half hour of simulated time, at different rates
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", _TICKER, jobs_url, str(START), str(minutes * 60), str(step)],
            stderr=subprocess.PIPE,
            text=True,
        )
        for step in (7, 11)
    ]
    errors = [p.communicate(timeout=120)[1] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], errors
    jobs = scheduler.manager.list_jobs(schedule_id=schedule_id, limit=None)
    slots = sorted(job.scheduled_for for job in jobs)
    assert slots == [START - 30 + 60 * n for n in range(1, minutes + 1)]
    assert scheduler.get_schedule(schedule_id).next_run_at == START - 30 + 60 * (minutes + 1)


@pytest.mark.parametrize(("catchup", "expected"), [("latest", 1), ("all", 5)])
def test_missed_slots_follow_the_catch_up_policy(jobs_url, echo_type, clock, catchup, expected):
    clock.now = START
    scheduler = TrainingScheduler(JobManager(jobs_url, clock=clock), clock=clock)
    scheduler.create_schedule("hourly", echo_type, {}, "0 * * * *", catchup=catchup)
    clock.advance(5 * 3600)  # five slots pass with no scheduler running
    jobs = scheduler.tick()
    assert len(jobs) == expected
    newest = scheduler.manager.get_job(jobs[-1]).scheduled_for
    assert newest == datetime(2027, 3, 1, 17, 0, tzinfo=timezone.utc).timestamp()
    assert scheduler.tick() == []  # nothing due twice


def test_time_zone_disable_enable_delete(jobs_url, echo_type, clock):
    clock.now = START
    scheduler = TrainingScheduler(JobManager(jobs_url, clock=clock), clock=clock)
    scheduler.create_schedule("berlin", echo_type, {"value": 1}, "0 2 * * *", 3, "Europe/Berlin")
    schedule = scheduler.get_schedule("berlin")
    # 02:00 in Berlin on 2 March is 01:00 UTC (CET, UTC+1)
    assert schedule.next_run_at == datetime(2027, 3, 2, 1, 0, tzinfo=timezone.utc).timestamp()
    assert not scheduler.disable("berlin").enabled
    clock.advance(3 * 86400)
    assert scheduler.tick() == []
    enabled = scheduler.enable("berlin")
    assert enabled.next_run_at > clock()  # no backlog after a pause
    clock.advance(86400)
    (job_id,) = scheduler.tick()
    job = scheduler.manager.get_job(job_id)
    assert (job.priority, job.config, job.schedule_id) == (3, {"value": 1}, schedule.id)
    scheduler.delete("berlin")
    with pytest.raises(ScheduleNotFoundError, match="no schedule 'berlin'"):
        scheduler.get_schedule("berlin")
    assert scheduler.manager.get_job(job_id).status == "queued"  # its jobs stay


def test_bad_schedules_are_refused(jobs_url, echo_type):
    scheduler = TrainingScheduler(JobManager(jobs_url))
    with pytest.raises(ScheduleError, match="invalid cron expression '61 \\* \\* \\* \\*'"):
        scheduler.create_schedule("bad", echo_type, {}, "61 * * * *")
    with pytest.raises(ScheduleError, match="unknown time zone 'Mars/Olympus'"):
        scheduler.create_schedule("bad", echo_type, {}, "* * * * *", timezone="Mars/Olympus")
    with pytest.raises(ScheduleError, match="catch-up policy 'some'"):
        scheduler.create_schedule("bad", echo_type, {}, "* * * * *", catchup="some")
    with pytest.raises(RegistryError, match="did you mean 'echo'"):
        scheduler.create_schedule("bad", "ehco", {}, "* * * * *")
    with pytest.raises(ConfigError, match="value must be an integer"):
        scheduler.create_schedule("bad", echo_type, {"value": "x"}, "* * * * *")
    scheduler.create_schedule("good", echo_type, {}, "* * * * *")
    with pytest.raises(ScheduleError, match="'good' exists already"):
        scheduler.create_schedule("good", echo_type, {}, "* * * * *")
    assert [s.name for s in scheduler.list_schedules()] == ["good"]
