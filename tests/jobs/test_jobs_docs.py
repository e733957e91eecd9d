"""The examples of the "Jobs" sections of docs/production.md run as written."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from trainforge.jobs import JOB_TYPES, JobManager
from trainforge.tracking import ModelRegistry

DOC = Path(__file__).resolve().parents[2] / "docs" / "production.md"
SECTIONS = [
    part
    for part in re.split(r"^## ", DOC.read_text(encoding="utf-8"), flags=re.M)
    if part.startswith("Jobs")
]
TEXT = "\n".join(SECTIONS)
PYTHON = re.findall(r"```python\n(.*?)```", TEXT, flags=re.S)
BASH = re.findall(r"```bash\n(.*?)```", TEXT, flags=re.S)
(EXPORT_JOB,) = [block for block in BASH if "--type export" in block]
(COMMANDS,) = [block for block in BASH if "TRAINFORGE_DB" in block]


# what each example prints (as its comments say)
SHOWN = [
    ["{'greeting': 'hello first', 'attempt': 1}\n2\n[3]\n[]\n"],
    [
        "(True, ['performance: val/loss 0.45 vs baseline 0.38 (18.4% worse > threshold 10.0%)'])",
        "True False",
    ],
    [
        "['drift/f0/jsd', 'val/acc', 'val/ece', 'val/entropy', 'val/loss', "
        "'val/top1_confidence']\nTrue\n",
        "data_drift - warning data drift",
        "calibration - val/ece",
    ],
]


def test_the_jobs_sections_have_examples():
    assert len(SECTIONS) == 3 and len(PYTHON) == 3 and len(BASH) == 2


@pytest.mark.parametrize("index", range(len(PYTHON)))
def test_python_example_runs(index, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    try:
        exec(compile(PYTHON[index], f"{DOC.name}[jobs python {index}]", "exec"), {})
    finally:
        if "greet" in JOB_TYPES:
            JOB_TYPES.unregister("greet")
    out = capsys.readouterr().out
    for shown in SHOWN[index]:
        assert shown in out, (shown, out)


def _bash(script: str, cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    bin_dir = Path(sys.executable).parent
    path = f"{bin_dir}{os.pathsep}{os.environ['PATH']}"
    base = {k: v for k, v in os.environ.items() if k != "TRAINFORGE_DB"}
    return subprocess.run(
        ["bash", "-euo", "pipefail", "-c", script],
        cwd=cwd,
        env={**base, "PATH": path, **env},
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_shell_example_runs(tmp_path):
    done = _bash(COMMANDS, tmp_path)
    assert done.returncode == 0, done.stderr
    assert "no checkpoint at" in done.stderr  # the refused evaluate job
    assert "Traceback" not in done.stderr
    jobs = JobManager(f"sqlite:///{tmp_path / 'jobs.db'}")
    (job,) = jobs.list_jobs()
    assert (job.status, job.priority) == ("queued", 5)  # cancelled, then retried
    assert (tmp_path / "job-1.json").read_text().startswith("{")


@pytest.mark.slow
@pytest.mark.postgres
def test_export_job_example_runs(tmp_path, pg_url):
    # on PostgreSQL: the run, the queue and the registry in one server database
    # (test_train_jobs.py runs an export job on SQLite)
    done = _bash(  # the training kept short and quiet, as the page does not say
        EXPORT_JOB,
        tmp_path,
        TRAINFORGE_DB=pg_url,
        TRAINFORGE__TRAINER__ENGINE="plain",
        TRAINFORGE__TRAINER__LIMIT_TRAIN_BATCHES="2",
        TRAINFORGE__TRAINER__ENABLE_PROGRESS_BAR="false",
        TRAINFORGE__LOGGERS__TENSORBOARD__ENABLED="false",
    )
    assert done.returncode == 0, done.stderr
    job = json.loads((tmp_path / "export-job.json").read_text())
    assert (job["job_type"], job["status"]) == ("export", "completed")
    bundle = Path(job["result"]["bundle"])
    assert bundle.parent == tmp_path / "outputs" / "run-000001" / "export"
    assert (bundle / "manifest.json").is_file()
    assert job["result"]["formats"] == ["pytorch"] and job["result"]["model_id"] == 1
    model = ModelRegistry(pg_url).get_model(name="digits-mlp")
    assert model["export_formats"] == ["pytorch"] and model["training_run_id"] == 1
