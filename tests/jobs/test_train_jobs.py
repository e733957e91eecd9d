"""Training jobs end to end: `trainforge jobs worker` processes, SIGKILL, resume, retries."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from trainforge.jobs import JobManager
from trainforge.tracking import ExperimentDB

pytestmark = pytest.mark.slow


def _worker(url: str, *extra: str) -> subprocess.Popen[str]:
    command = [sys.executable, "-m", "trainforge.cli", "jobs", "worker", "--db", url, "--json"]
    return subprocess.Popen(
        [*command, "--heartbeat", "0.5", "--stale-timeout", "3", "--poll", "0.3", *extra],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _digits(out: Path, *extra: str) -> dict:
    return {
        "template": "digits",
        "overrides": [
            "trainer.engine=plain",
            f"run.output_dir={out}",
            "trainer.enable_progress_bar=false",
            "loggers.tensorboard.enabled=false",
            "callbacks.monitoring.enabled=false",
            *extra,
        ],
    }


def _wait(predicate, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


def test_a_sigkilled_worker_s_job_resumes_on_another_worker(tmp_path):
    url = f"sqlite:///{tmp_path / 'queue.db'}"
    manager = JobManager(url)
    # the worker is killed right after the first checkpoint: 10 epochs leave it mid-training
    spec = _digits(tmp_path / "out", "trainer.max_epochs=10", "trainer.limit_train_batches=2")
    job_id = manager.submit_job("train", spec)
    last = tmp_path / "out" / "jobs" / f"job-{job_id:06d}" / "checkpoints" / "last"

    first = _worker(url)
    _wait(last.exists, 240, "the first checkpoint")
    os.kill(first.pid, signal.SIGKILL)  # the worker and, with it, its training process
    first.communicate()
    # ckpt-NNNNNN-epochEEEE-stepSSSSSS: the newest checkpoint when the worker died
    killed_at_epoch = int(last.read_text().strip().split("-epoch")[1][:4])
    killed_run = manager.runs_of(job_id)[0]
    assert manager.get_job(job_id).status == "running"  # nobody knows yet

    second = _worker(url)
    _wait(lambda: manager.get_job(job_id).status == "completed", 240, "the job to complete")
    second.send_signal(signal.SIGTERM)
    out, err = second.communicate(timeout=60)
    assert second.returncode == 0, err
    assert '"reason": "signal SIGTERM"' in out

    job = manager.get_job(job_id)
    assert (job.status, job.attempts) == ("completed", 2)
    runs = manager.runs_of(job_id)
    assert [r["status"] for r in runs] == ["stale", "completed"]
    assert runs[0]["id"] == killed_run["id"]
    assert job.result["run_id"] == runs[1]["id"]
    assert job.result["resumed_from"] == str(last)
    # the new attempt continued from the killed one's last checkpoint, not from scratch
    db = ExperimentDB(url)
    resumed_epochs = db.get_metric_history(runs[1]["id"], "val/loss")["epoch"]
    assert resumed_epochs.min() >= killed_at_epoch + 1 > 0
    assert resumed_epochs.max() == 9
    assert killed_at_epoch < 9  # it was killed in the middle of training
    assert db.get_run(runs[1]["id"])["tags"]["resumed_from"]
    assert out.count('"event": "completed"') == 1

    # the trained job's checkpoint, evaluated by an evaluate job and bundled by an export job
    # (test_jobs_docs.py runs the export of a run by id, registered, on PostgreSQL)
    evaluate_id = manager.submit_job("evaluate", {"checkpoint": job.result["checkpoints"]})
    bundle = tmp_path / "bundle"
    export_id = manager.submit_job(
        "export", {"checkpoint": job.result["checkpoints"], "formats": "pytorch", "output": bundle}
    )
    third = _worker(url, "--once")
    out, err = third.communicate(timeout=240)
    assert third.returncode == 0, err
    evaluated = manager.get_job(evaluate_id)
    assert evaluated.status == "completed", evaluated.error
    assert evaluated.result["split"] == "val"
    assert set(evaluated.result["metrics"]) == {"val/loss", "val/acc"}
    assert 0.0 <= evaluated.result["metrics"]["val/acc"] <= 1.0
    exported = manager.get_job(export_id)
    assert exported.status == "completed", exported.error
    assert (exported.result["bundle"], exported.result["formats"]) == (str(bundle), ["pytorch"])
    assert exported.result["model_id"] is None  # not registered
    assert (bundle / "manifest.json").is_file()


@pytest.mark.postgres
def test_a_training_job_that_raises_is_retried_then_failed(tmp_path, pg_url):
    # on PostgreSQL (the SIGKILL test above covers SQLite): queue and runs in one database
    url = pg_url
    manager = JobManager(url)
    spec = _digits(tmp_path / "out", "model.name=no_such_package.models:Net")
    job_id = manager.submit_job("train", spec, max_attempts=2)
    worker = _worker(url, "--once", "--retry-backoff", "0")
    out, err = worker.communicate(timeout=240)
    assert worker.returncode == 0, err
    job = manager.get_job(job_id)
    assert (job.status, job.attempts) == ("failed", 2)
    assert "training exited with code 1" in job.error
    assert "no_such_package" in job.error
    assert out.count('"event": "retry"') == 1
    assert out.count('"event": "failed"') == 1
    assert manager.runs_of(job_id) == []  # the model never built: no run was opened
