"""Job queue benchmark: JobManager claims vs a plain claim loop on the same database.

Run: ``python benchmarks/bench_jobs.py [--jobs 400] [--repeats 3] [--claimers 1,4,8]``.
Prints one line per figure: ``name: value unit (reference: value, ratio: x)``.

Figures, for SQLite (a WAL file) and PostgreSQL (127.0.0.1:5432, a fresh database; skipped
when unreachable), with 1, 4 and 8 claimer processes:
- claim throughput: jobs claimed and completed per second, all claimers together;
- claim latency: the median time of one claim.
Each claimer loops "claim the next job, mark it completed" until the queue is empty. The
reference is the same loop written by hand on the same table: on PostgreSQL
``SELECT ... FOR UPDATE SKIP LOCKED`` + ``UPDATE`` in one transaction (psycopg, no ORM), on
SQLite ``UPDATE ... RETURNING`` under ``BEGIN IMMEDIATE`` (sqlite3). The processes start,
import and connect before the clock starts; trainforge and the reference alternate,
``--repeats`` times, and medians are printed.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import secrets
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

PG_ADMIN = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"


def line(name: str, value: float, unit: str, ref: float | None = None, ratio: float | None = None):
    """Print one figure in the shared benchmark format."""
    tail = f" (reference: {ref:.4g}, ratio: {ratio:.3g}x)" if ref is not None else ""
    print(f"{name}: {value:.4g} {unit}{tail}", flush=True)


def fill(url: str, jobs: int) -> None:
    """Empty the queue and insert ``jobs`` queued jobs (priorities 0..4) in one statement."""
    import sqlalchemy as sa

    from trainforge.tracking import TrackingStore
    from trainforge.tracking._schema import jobs as table

    store = TrackingStore(url)
    now = time.time()
    rows = [
        {
            "job_type": "bench",
            "config": "{}",
            "priority": i % 5,
            "status": "queued",
            "attempts": 0,
            "max_attempts": 1,
            "created_at": now + i * 1e-6,
        }
        for i in range(jobs)
    ]
    store.write(lambda c: (c.execute(sa.delete(table)), c.execute(sa.insert(table), rows)))
    store.dispose()


def _trainforge_claimer(url: str, name: str) -> Any:
    from trainforge.jobs import JobManager

    manager = JobManager(url)

    def claim_one() -> bool:
        job = manager.claim_job(name)
        if job is None:
            return False
        manager.mark_completed(job.id, worker_id=name)
        return True

    return claim_one


def _reference_claimer(url: str, name: str) -> Any:
    if url.startswith("sqlite"):
        import sqlite3

        conn = sqlite3.connect(url.removeprefix("sqlite:///"), isolation_level=None, timeout=60)
        conn.execute("PRAGMA busy_timeout = 60000")
        conn.execute("PRAGMA synchronous = NORMAL")  # as the tracking store sets it (WAL)

        def claim_sqlite() -> bool:
            conn.execute("BEGIN IMMEDIATE")
            row = conn.execute(
                "UPDATE jobs SET status='running', worker_id=?, attempts=attempts+1, "
                "started_at=?, heartbeat_at=? WHERE id = (SELECT id FROM jobs WHERE "
                "status='queued' ORDER BY priority DESC, created_at, id LIMIT 1) RETURNING id",
                (name, time.time(), time.time()),
            ).fetchone()
            conn.execute("COMMIT")
            if row is None:
                return False
            conn.execute("BEGIN IMMEDIATE")
            conn.execute(
                "UPDATE jobs SET status='completed', finished_at=? WHERE id=? AND worker_id=?",
                (time.time(), row[0], name),
            )
            conn.execute("COMMIT")
            return True

        return claim_sqlite
    import psycopg

    conn = psycopg.connect(url.replace("postgresql+psycopg://", "postgresql://"))

    def claim_pg() -> bool:
        with conn.transaction():
            row = conn.execute(
                "SELECT id FROM jobs WHERE status='queued' ORDER BY priority DESC, created_at, id "
                "LIMIT 1 FOR UPDATE SKIP LOCKED"
            ).fetchone()
            if row is None:
                return False
            conn.execute(
                "UPDATE jobs SET status='running', worker_id=%s, attempts=attempts+1, "
                "started_at=%s, heartbeat_at=%s WHERE id=%s",
                (name, time.time(), time.time(), row[0]),
            )
        with conn.transaction():
            conn.execute(
                "UPDATE jobs SET status='completed', finished_at=%s WHERE id=%s AND worker_id=%s",
                (time.time(), row[0], name),
            )
        return True

    return claim_pg


def _claimer(kind: str, url: str, name: str, ready: Any, go: Any, out: Any) -> None:
    claim_one = (_trainforge_claimer if kind == "trainforge" else _reference_claimer)(url, name)
    ready.release()
    go.wait()
    latencies = []
    while True:
        start = time.perf_counter()
        more = claim_one()
        if not more:
            break
        latencies.append(time.perf_counter() - start)
    out.put(latencies)


def run_once(kind: str, url: str, claimers: int, jobs: int) -> tuple[float, float]:
    """(claims per second, median claim latency in seconds) of one run."""
    fill(url, jobs)
    ctx = mp.get_context("spawn")
    ready, go, out = ctx.Semaphore(0), ctx.Event(), ctx.Queue()
    procs = [
        ctx.Process(target=_claimer, args=(kind, url, f"{kind}-{n}", ready, go, out))
        for n in range(claimers)
    ]
    for proc in procs:
        proc.start()
    for _ in procs:
        ready.acquire()
    start = time.perf_counter()
    go.set()
    latencies = [value for _ in procs for value in out.get()]
    elapsed = time.perf_counter() - start
    for proc in procs:
        proc.join()
    if len(latencies) != jobs:
        raise SystemExit(f"{kind}: {len(latencies)} claims for {jobs} jobs")
    return jobs / elapsed, statistics.median(latencies)


def bench(backend: str, url: str, claimer_counts: list[int], jobs: int, repeats: int) -> None:
    """Print throughput and latency figures for one database."""
    for claimers in claimer_counts:
        ours: list[tuple[float, float]] = []
        ref: list[tuple[float, float]] = []
        for _ in range(repeats):  # alternate, so both see the same machine load
            ours.append(run_once("trainforge", url, claimers, jobs))
            ref.append(run_once("reference", url, claimers, jobs))
        rate, ref_rate = (statistics.median(r for r, _ in s) for s in (ours, ref))
        lat, ref_lat = (statistics.median(v for _, v in s) * 1e3 for s in (ours, ref))
        label = f"{backend} {claimers} claimer{'s' if claimers > 1 else ''}"
        line(f"job claims, {label}", rate, "claims/s", ref_rate, rate / ref_rate)
        line(f"claim latency p50, {label}", lat, "ms", ref_lat, lat / ref_lat)


def main() -> None:
    """Run the benchmark on SQLite, then PostgreSQL if it is reachable."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=400)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--claimers", default="1,4,8")
    parser.add_argument("--backends", default="sqlite,postgresql")
    args = parser.parse_args()
    counts = [int(n) for n in args.claimers.split(",")]
    backends = args.backends.split(",")
    if "sqlite" in backends:
        with tempfile.TemporaryDirectory() as tmp:
            url = f"sqlite:///{Path(tmp) / 'jobs.db'}"
            bench("sqlite", url, counts, args.jobs, args.repeats)
    if "postgresql" not in backends:
        return
    import sqlalchemy as sa

    admin = sa.create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT", poolclass=sa.NullPool)
    name = f"tf_bench_jobs_{os.getpid()}_{secrets.token_hex(3)}"
    try:
        with admin.connect() as conn:
            conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    except sa.exc.OperationalError as err:
        print(f"postgresql: skipped, server unreachable ({str(err).splitlines()[0]})")
        return
    try:
        bench(
            "postgresql", PG_ADMIN.rsplit("/", 1)[0] + f"/{name}", counts, args.jobs, args.repeats
        )
    finally:
        with admin.connect() as conn:
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.dispose()


if __name__ == "__main__":
    main()
