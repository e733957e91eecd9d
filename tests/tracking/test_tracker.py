"""ExperimentTracker: buffering, flushing, metadata, and what survives SIGTERM and SIGKILL."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from trainforge.errors import TrackingError
from trainforge.records import ConfigRecord
from trainforge.tracking import ExperimentDB, ExperimentTracker

# What the composition root passes down: values, hash and provenance as plain data.
_RECORD = ConfigRecord(
    {"optim": {"lr": 0.01}, "tracking": {"database": None}},
    "f" * 64,
    {"optim.lr": {"source": "cli"}},
)


def test_logs_metrics_params_tags_and_finishes(store_url):
    tracker = ExperimentTracker(
        "exp", "proj", tags=["baseline"], config=_RECORD, database=store_url, run_name="r"
    )
    for step in range(100):
        tracker.log_metric("train/loss", 1.0 / (step + 1), step=step, epoch=step // 10)
    tracker.log_metrics({"val/loss": 0.5, "val/acc": 0.8})
    tracker.log_metrics({"val/loss": 0.4, "val/acc": 0.9})
    tracker.log_params({"data": {"batch_size": 32}})
    tracker.set_tags({"owner": "me"})
    tracker.finish()
    run = ExperimentDB(store_url).get_run(tracker.run_id)
    assert (run["status"], run["experiment"], run["project"], run["name"]) == (
        "completed",
        "exp",
        "proj",
        "r",
    )
    assert run["config_hash"] == "f" * 64
    assert run["provenance"] == {"optim.lr": {"source": "cli"}}
    assert run["params"]["optim.lr"] == 0.01
    assert run["params"]["data.batch_size"] == 32
    assert run["tags"] == {"baseline": "true", "owner": "me"}
    assert run["metrics"]["train/loss"]["count"] == 100
    assert run["metrics"]["val/loss"] == {
        "last": 0.4,
        "step": 1,
        "min": 0.4,
        "max": 0.5,
        "count": 2,
    }
    assert run["system"]["cpu_count"] == os.cpu_count()
    assert run["host"]


def test_background_writer_flushes_without_finish(tmp_path):
    tracker = ExperimentTracker("exp", database=str(tmp_path / "t.db"), flush_interval_s=0.05)
    tracker.log_metric("loss", 1.0)
    deadline = time.monotonic() + 5
    while tracker.flushed_count < 1 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert ExperimentDB(str(tmp_path / "t.db")).get_run(tracker.run_id)["metrics"]["loss"]
    tracker.finish("failed")
    assert ExperimentDB(str(tmp_path / "t.db")).get_run(tracker.run_id)["status"] == "failed"


def test_log_artifact_records_sha256(tmp_path):
    artifact = tmp_path / "weights.bin"
    artifact.write_bytes(b"abc")
    with ExperimentTracker("exp", database=str(tmp_path / "t.db")) as tracker:
        digest = tracker.log_artifact(artifact)
        with pytest.raises(TrackingError, match="missing.bin"):
            tracker.log_artifact(tmp_path / "missing.bin")
    assert digest == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    run = ExperimentDB(str(tmp_path / "t.db")).get_run(tracker.run_id)
    assert run["artifacts"] == [{"path": str(artifact), "sha256": digest, "size_bytes": 3}]


def test_context_manager_marks_failure(tmp_path):
    with pytest.raises(RuntimeError), ExperimentTracker("e", database=str(tmp_path / "t.db")) as t:
        raise RuntimeError("boom")
    assert ExperimentDB(str(tmp_path / "t.db")).get_run(t.run_id)["status"] == "failed"


def test_database_is_the_argument_then_env_then_the_default(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("TRAINFORGE_DB", str(tmp_path / "env.db"))
    ExperimentTracker("e", database=str(tmp_path / "arg.db")).finish()
    # the config is stored, never read for settings
    ExperimentTracker("e", config={"tracking": {"database": "ignored.db"}}).finish()
    monkeypatch.delenv("TRAINFORGE_DB")
    ExperimentTracker("e", config={"lr": 1}).finish()
    assert (tmp_path / "arg.db").exists()
    assert (tmp_path / "env.db").exists()
    assert (tmp_path / "outputs" / "trainforge.db").exists()
    assert not (tmp_path / "ignored.db").exists()


def _child(script: str, db: Path) -> subprocess.Popen:
    code = textwrap.dedent(script).replace("DB", repr(str(db)))
    return subprocess.Popen(
        [sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def _close(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.kill()
    proc.communicate()


def _read_line(proc: subprocess.Popen) -> str:
    line = proc.stdout.readline()
    assert line, proc.stderr.read()
    return line.strip()


def test_sigkill_keeps_flushed_values_and_run_goes_stale(tmp_path):
    db_path = tmp_path / "t.db"
    proc = _child(
        """
        import time
        from trainforge.tracking import ExperimentTracker
        t = ExperimentTracker("crash", database=DB, heartbeat_interval_s=3600)
        for i in range(5000):
            t.log_metric("loss", float(i), step=i)
        print(t.run_id, t.flush(), flush=True)
        for i in range(5000, 6000):
            t.log_metric("loss", float(i), step=i)
        time.sleep(60)
        """,
        db_path,
    )
    run_id, flushed = map(int, _read_line(proc).split())
    _close(proc)
    db = ExperimentDB(str(db_path))
    history = db.get_metric_history(run_id, "loss")
    assert flushed == 5000
    assert len(history) >= flushed
    assert history["value"].tolist()[:flushed] == [float(i) for i in range(flushed)]
    assert db.get_run(run_id)["status"] == "running"
    time.sleep(0.5)
    assert db.mark_stale_runs(timeout_s=0.2) == [run_id]
    assert db.get_run(run_id)["status"] == "stale"


def test_sigterm_flushes_and_marks_killed(tmp_path):
    db_path = tmp_path / "t.db"
    proc = _child(
        """
        import time
        from trainforge.tracking import ExperimentTracker
        t = ExperimentTracker("term", database=DB, flush_interval_s=3600)
        for i in range(3000):
            t.log_metric("loss", float(i))
        print(t.run_id, flush=True)
        time.sleep(60)
        """,
        db_path,
    )
    run_id = int(_read_line(proc))
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=30) == -signal.SIGTERM  # the default action still runs
    _close(proc)
    run = ExperimentDB(str(db_path)).get_run(run_id)
    assert run["status"] == "killed"
    assert run["metrics"]["loss"]["count"] == 3000


@pytest.mark.parametrize(
    ("ending", "status"),
    [
        ("pass", "completed"),
        ("raise SystemExit(3)", "completed"),
        ("raise ValueError('x')", "failed"),
    ],
)
def test_interpreter_exit_flushes(tmp_path, ending, status):
    db_path = tmp_path / "t.db"
    proc = _child(
        f"""
        from trainforge.tracking import ExperimentTracker
        t = ExperimentTracker("exit", database=DB, flush_interval_s=3600)
        t.log_metrics({{"a": 1.0, "b": 2.0}})
        print(t.run_id, flush=True)
        {ending}
        """,
        db_path,
    )
    run_id = int(_read_line(proc))
    proc.wait(timeout=30)
    _close(proc)
    run = ExperimentDB(str(db_path)).get_run(run_id)
    assert run["status"] == status
    assert set(run["metrics"]) == {"a", "b"}


def test_tracker_does_not_import_torch(tmp_path):
    code = (
        "import sys\nfrom trainforge.tracking import ExperimentTracker\n"
        f"ExperimentTracker('e', database={str(tmp_path / 't.db')!r}).finish()\n"
        "assert 'torch' not in sys.modules, 'torch imported'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


def test_auto_steps_continue_after_explicit_steps(tmp_path):
    tracker = ExperimentTracker("e", database=str(tmp_path / "t.db"), flush_interval_s=3600)
    tracker.log_metric("loss", 1.0)
    tracker.log_metric("loss", 2.0)
    tracker.flush()
    tracker.log_metric("loss", 3.0, step=10)
    tracker.flush()
    tracker.log_metric("loss", 4.0)
    tracker.finish()
    history = ExperimentDB(str(tmp_path / "t.db")).get_metric_history(tracker.run_id, "loss")
    assert history["step"].tolist() == [0, 1, 10, 11]
