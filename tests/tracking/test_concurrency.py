"""Eight writer processes and a reader on one store: nothing lost, no lock errors surface."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time

import pytest

from trainforge.tracking import ExperimentDB, ModelRegistry

WRITERS = 8
# values per writer: MariaDB's InnoDB commits (fsync per transaction) are the slowest here
VALUES = {"sqlite": 20_000, "postgresql": 20_000, "mysql": 5_000}

_WRITER = textwrap.dedent(
    """
    import sys, time
    from trainforge.tracking import ExperimentTracker
    url, index, values = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    tracker = ExperimentTracker("load", database=url, run_name=f"w{index}", flush_interval_s=0.02)
    for chunk in range(values // 1000):
        for step in range(chunk * 1000, (chunk + 1) * 1000):
            tracker.log_metric("loss", float(step), step=step)
        time.sleep(0.01)
    tracker.finish()
    """
)


def _start(script: str, url: str, processes: int, count: int) -> list[subprocess.Popen[str]]:
    """``processes`` Python processes running ``script URL INDEX COUNT``."""
    return [
        subprocess.Popen(
            [sys.executable, "-c", script, url, str(i), str(count)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(processes)
    ]


@pytest.mark.slow
def test_parallel_writers_and_reader(store_url):
    db = ExperimentDB(store_url)  # migrate once up front, so writers race on data, not DDL
    values = VALUES.get(db.store.dialect, VALUES["mysql"])  # "mariadb" from mariadb+pymysql
    procs = _start(_WRITER, store_url, WRITERS, values)
    searches = 0
    while any(p.poll() is None for p in procs) or searches == 0:
        db.search_runs("metrics.loss >= 0 and attributes.experiment = 'load'", limit=None)
        searches += 1
        time.sleep(0.02)  # a busy reader, not a CPU hog on a two-core machine
    errors = [p.communicate()[1] for p in procs]
    assert [p.returncode for p in procs] == [0] * WRITERS, errors
    assert not any("locked" in e or "eadlock" in e for e in errors), errors
    runs = db.search_runs("attributes.experiment = 'load'", limit=None)
    assert len(runs) == WRITERS
    assert {r["status"] for r in runs} == {"completed"}
    assert [r["metrics"]["loss"]["count"] for r in runs] == [values] * WRITERS
    assert db.statistics()["metric_values"] == WRITERS * values
    for run in runs:
        history = db.get_metric_history(run["run_id"], "loss")
        assert history["step"].tolist() == list(range(values))
        assert history["value"].tolist() == [float(step) for step in range(values)]
    db.close()


_REGISTRAR = textwrap.dedent(
    """
    import sys
    from trainforge.tracking import ModelRegistry
    url, index, count = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    registry = ModelRegistry(url)
    ids = [
        registry.register_model("shared", checkpoint_path=f"/w{index}/v{n}", metrics={"n": n})
        for n in range(count)
    ]
    print(",".join(map(str, ids)))
    """
)


@pytest.mark.slow
def test_parallel_registrations_of_one_name_take_distinct_versions(store_url):
    # retraining jobs on several workers register the same model name at once: each gets
    # the next free version; none fails on the (name, version) key another just took
    ExperimentDB(store_url)  # migrate once up front
    writers, count = 6, 15
    procs = _start(_REGISTRAR, store_url, writers, count)
    results = [p.communicate() for p in procs]
    assert [p.returncode for p in procs] == [0] * writers, [err for _, err in results]
    versions = ModelRegistry(store_url).list_models("shared")
    assert sorted(m["version"] for m in versions) == list(range(1, writers * count + 1))
    assert len({m["checkpoint_path"] for m in versions}) == writers * count
