"""The examples of the "Jobs" sections of docs/production.md run as written."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from trainforge.jobs import JOB_TYPES, JobManager

DOC = Path(__file__).resolve().parents[2] / "docs" / "production.md"
SECTIONS = [
    part
    for part in re.split(r"^## ", DOC.read_text(encoding="utf-8"), flags=re.M)
    if part.startswith("Jobs")
]
TEXT = "\n".join(SECTIONS)
PYTHON = re.findall(r"```python\n(.*?)```", TEXT, flags=re.S)
BASH = re.findall(r"```bash\n(.*?)```", TEXT, flags=re.S)


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
    assert len(SECTIONS) == 3 and len(PYTHON) == 3 and len(BASH) == 1


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


def test_shell_example_runs(tmp_path):
    bin_dir = Path(sys.executable).parent
    env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}"}
    done = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", BASH[0]],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    assert "no checkpoint at" in done.stderr  # the refused evaluate job
    assert "Traceback" not in done.stderr
    jobs = JobManager(f"sqlite:///{tmp_path / 'jobs.db'}")
    (job,) = jobs.list_jobs()
    assert (job.status, job.priority) == ("queued", 5)  # cancelled, then retried
    assert (tmp_path / "job-1.json").read_text().startswith("{")
