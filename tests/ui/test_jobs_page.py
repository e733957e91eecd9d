"""The Jobs page: the queue, its workers and schedules, from the API and in Chromium."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from trainforge.jobs import JOB_TYPES, JobManager, TrainingScheduler, register_job_type
from trainforge.tracking import ExperimentDB, TrackingStore

from .conftest import serve

XSS = "<img src=x onerror=alert(1)>"


@pytest.fixture(scope="module")
def queue(tmp_path_factory) -> Iterator[Any]:
    """A store with a queued, a running (with its run) and a failed job, and a schedule."""

    def noop(config: dict[str, Any], context: Any) -> None:
        return None

    register_job_type("ui-noop", noop)
    store = TrackingStore(str(tmp_path_factory.mktemp("jobs") / "jobs.db"))
    manager = JobManager(store)
    doomed = manager.submit_job(
        "ui-noop", {"overrides": ["optim.lr=0.1"]}, priority=9, max_attempts=1
    )
    running = manager.submit_job("ui-noop", {"overrides": ["optim.lr=0.2"]}, priority=5)
    queued = manager.submit_job("ui-noop", {"overrides": ["optim.lr=0.3"]})
    assert manager.claim_job("box-2").id == doomed
    manager.mark_failed(doomed, f"diverged {XSS}", worker_id="box-2")
    assert manager.claim_job("box-1").id == running
    manager.heartbeat(running, "box-1")
    run = ExperimentDB(store).log_run("job-run", {"optim": {"lr": 0.2}}, job_id=running)
    TrainingScheduler(manager).create_schedule(
        "nightly", "ui-noop", {"overrides": ["optim.lr=0.4"]}, "0 3 * * *", timezone="Europe/Paris"
    )
    try:
        with serve(store) as served:
            served.ids = {"failed": doomed, "running": running, "queued": queued, "run": run}
            served.manager = manager
            yield served
    finally:
        JOB_TYPES.unregister("ui-noop")
        store.dispose()


def test_the_api_lists_jobs_workers_and_schedules(queue):
    data = queue.json("/api/jobs")
    assert data["counts"] == {
        "queued": 1,
        "running": 1,
        "completed": 0,
        "failed": 1,
        "cancelled": 0,
    }
    by_id = {j["id"]: j for j in data["jobs"]}
    running = by_id[queue.ids["running"]]
    assert running["worker_id"] == "box-1" and running["what"] == "optim.lr=0.2"
    assert [r["id"] for r in running["runs"]] == [queue.ids["run"]]
    assert by_id[queue.ids["failed"]]["error"] == f"diverged {XSS}"
    assert data["workers"] == [
        {
            "worker_id": "box-1",
            "jobs": [queue.ids["running"]],
            "heartbeat_at": running["heartbeat_at"],
        }
    ]
    (nightly,) = data["schedules"]
    assert (nightly["name"], nightly["schedule_expr"], nightly["timezone"]) == (
        "nightly",
        "0 3 * * *",
        "Europe/Paris",
    )
    only = queue.json("/api/jobs?status=queued,failed")
    assert sorted(j["id"] for j in only["jobs"]) == sorted(
        [queue.ids["queued"], queue.ids["failed"]]
    )


def test_an_unknown_status_is_a_json_error(queue):
    status, _, body = queue.get("/api/jobs?status=finished")
    assert status == 400 and b"unknown" in body and b"finished" in body


def test_the_jobs_page_shows_the_queue_as_text_and_follows_it(queue, chromium):
    context = chromium.new_context(viewport={"width": 1280, "height": 800})
    tab = context.new_page()
    problems: list[str] = []
    tab.on("dialog", lambda d: (problems.append(d.message), d.dismiss()))
    tab.on("pageerror", lambda e: problems.append(str(e)))
    try:
        tab.goto(queue.base + "/jobs")
        tab.wait_for_selector("#jobs-table")
        assert tab.locator("#jobs-table tbody tr").count() == 3
        failed = tab.locator(f'#jobs-table tr[data-job-id="{queue.ids["failed"]}"]')
        assert XSS in failed.inner_text()  # rendered as text: no image, no dialog
        assert tab.locator("#jobs-table img").count() == 0
        running = tab.locator(f'#jobs-table tr[data-job-id="{queue.ids["running"]}"]')
        assert running.locator(f'a[href="/runs/{queue.ids["run"]}"]').count() == 1
        assert tab.locator('#workers-table tr[data-worker="box-1"]').count() == 1
        assert (
            "Europe/Paris"
            in tab.locator('#schedules-table tr[data-schedule="nightly"]').inner_text()
        )
        tab.select_option("#job-status", "queued")
        tab.locator(f'#jobs-table tr[data-job-id="{queue.ids["failed"]}"]').wait_for(
            state="detached"
        )
        assert tab.locator("#jobs-table tbody tr").count() == 1
        assert "status=queued" in tab.url
        tab.reload()
        tab.wait_for_selector("#jobs-table")
        assert tab.locator("#jobs-table tbody tr").count() == 1
        assert tab.locator("#job-status").input_value() == "queued"
        # a job submitted while the page is open appears without a reload
        added = queue.manager.submit_job("ui-noop", {"overrides": ["optim.lr=0.5"]})
        tab.wait_for_selector(f'#jobs-table tr[data-job-id="{added}"]', timeout=20_000)
        assert problems == []
    finally:
        context.close()
