"""4 claimer processes x 200 jobs: each job claimed and completed exactly once, in order."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

from trainforge.jobs import JobManager

PROCESSES = 4
JOBS = 200 * PROCESSES

_CLAIMER = textwrap.dedent(
    """
    import json, sys
    from trainforge.jobs import JobManager
    url, name = sys.argv[1], sys.argv[2]
    manager = JobManager(url)
    claimed = []
    while (job := manager.claim_job(name)) is not None:
        claimed.append((job.id, job.priority))
        assert manager.mark_completed(job.id, {"by": name}, worker_id=name)
    print(json.dumps(claimed))
    """
)


def test_four_processes_claim_every_job_exactly_once(jobs_url, echo_type):
    manager = JobManager(jobs_url)
    priorities = {
        manager.submit_job(echo_type, {"value": i}, priority=i % 5): i % 5 for i in range(JOBS)
    }
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", _CLAIMER, jobs_url, f"w{n}"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for n in range(PROCESSES)
    ]
    outputs = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0] * PROCESSES, [err for _, err in outputs]
    assert not any("locked" in err for _, err in outputs)
    claims = [json.loads(out) for out, _ in outputs]
    ids = [job_id for claimed in claims for job_id, _ in claimed]
    assert sorted(ids) == sorted(priorities)  # every job once, none twice
    for claimed in claims:
        # each claimer always took the most urgent job left: its priorities never go up
        seen = [priority for _, priority in claimed]
        assert seen == sorted(seen, reverse=True)
    assert manager.counts()["completed"] == JOBS
    by = {job.id: job.result["by"] for job in manager.list_jobs(limit=None)}
    for n, claimed in enumerate(claims):
        assert all(by[job_id] == f"w{n}" for job_id, _ in claimed)
