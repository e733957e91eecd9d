"""Tracking benchmark: ExperimentTracker vs raw sqlite3 executemany vs MLflow, and queries.

Run: ``python benchmarks/bench_tracking.py [--metrics 1000000] [--mlflow-calls 2000]``.
Prints one line per figure: ``name: value unit (reference: value, ratio: x)``.

Figures:
- call-site cost of ``log_metric`` (the reference is a bare ``list.append`` of a tuple);
- end-to-end throughput, first call to ``finish()`` returning, vs ``sqlite3.executemany``
  into an equivalent indexed WAL table in 10k-row transactions;
- MLflow (SQLite backend) ``log_metric`` and ``log_batch`` per-metric cost;
- ``best_run`` and ``compare_runs`` over 1,000 runs x 10 metrics x 1,000 steps.
Tracker and raw runs alternate, ``--repeats`` times; medians are printed.
"""

from __future__ import annotations

import argparse
import os
import sqlite3
import statistics
import tempfile
import time
from pathlib import Path

KEYS = [f"train/metric_{i}" for i in range(10)]


def line(name: str, value: float, unit: str, ref: float | None = None, ratio: float | None = None):
    """Print one figure in the shared benchmark format."""
    tail = ""
    if ref is not None:
        tail = f" (reference: {ref:.4g}, ratio: {ratio:.3g}x)"
    print(f"{name}: {value:.4g} {unit}{tail}", flush=True)


def bench_tracker(path: Path, n: int) -> tuple[float, float]:
    """Return (call-site seconds per metric, end-to-end seconds) for n metrics."""
    from trainforge.tracking import ExperimentTracker

    tracker = ExperimentTracker("bench", database=str(path), handle_sigterm=False)
    log_metric, keys = tracker.log_metric, KEYS
    start = time.perf_counter()
    for i in range(n):
        log_metric(keys[i % 10], 0.5, i // 10)
    logged = time.perf_counter()
    tracker.finish()
    end = time.perf_counter()
    return (logged - start) / n, end - start


def bench_append_floor(n: int) -> float:
    """Seconds per metric of the same loop around a bare list.append of a tuple."""
    buffer: list = []
    append, keys, now = buffer.append, KEYS, time.time
    start = time.perf_counter()
    for i in range(n):
        append((keys[i % 10], 0.5, i // 10, None, now()))
    return (time.perf_counter() - start) / n


def bench_raw(path: Path, n: int) -> float:
    """End-to-end seconds of sqlite3.executemany in 10k-row transactions, WAL, indexed."""
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute(
        "CREATE TABLE metrics (run_id INTEGER, key TEXT, step INTEGER, epoch INTEGER, "
        "value REAL, timestamp REAL)"
    )
    conn.execute("CREATE INDEX ix ON metrics (run_id, key, step)")
    sql = "INSERT INTO metrics VALUES (?, ?, ?, ?, ?, ?)"
    start = time.perf_counter()
    batch: list = []
    for i in range(n):
        batch.append((1, KEYS[i % 10], i // 10, None, 0.5, time.time()))
        if len(batch) == 10_000:
            conn.execute("BEGIN IMMEDIATE")
            conn.executemany(sql, batch)
            conn.execute("COMMIT")
            batch = []
    if batch:
        conn.execute("BEGIN IMMEDIATE")
        conn.executemany(sql, batch)
        conn.execute("COMMIT")
    elapsed = time.perf_counter() - start
    conn.close()
    return elapsed


def bench_mlflow(tmp: Path, calls: int, batches: int) -> tuple[float, float, int, int]:
    """Seconds per metric of MLflow log_metric and log_batch(1000) with a SQLite backend."""
    os.environ["MLFLOW_DISABLE_TELEMETRY"] = "true"
    import logging

    from mlflow.entities import Metric
    from mlflow.tracking import MlflowClient

    for name in ("alembic", "mlflow"):  # after the import: mlflow configures its loggers
        logging.getLogger(name).setLevel(logging.WARNING)

    client = MlflowClient(tracking_uri=f"sqlite:///{tmp / 'mlflow.db'}")
    experiment = client.create_experiment("bench", artifact_location=(tmp / "art").as_uri())
    run = client.create_run(experiment)
    run_id = run.info.run_id
    start = time.perf_counter()
    for i in range(calls):
        client.log_metric(run_id, KEYS[i % 10], 0.5, step=i // 10)
    per_call = (time.perf_counter() - start) / calls
    now = int(time.time() * 1000)
    start = time.perf_counter()
    for b in range(batches):
        metrics = [Metric(KEYS[i % 10], 0.5, now, b * 100 + i // 10) for i in range(1000)]
        client.log_batch(run_id, metrics=metrics)
    per_batch_metric = (time.perf_counter() - start) / (batches * 1000)
    client.set_terminated(run_id)
    return per_call, per_batch_metric, calls, batches * 1000


def bench_queries(path: Path, repeats: int) -> None:
    """best_run and compare_runs over 1,000 runs x 10 metrics x 1,000 steps (10 M rows)."""
    from trainforge.tracking import ExperimentDB
    from trainforge.tracking._metric_writes import write_metric_rows

    db = ExperimentDB(str(path))
    start = time.perf_counter()
    run_ids = [db.log_run(f"run{r}", {"lr": 1e-3 * (1 + r % 7)}) for r in range(1000)]
    now = time.time()
    for run_id in run_ids:
        items = [
            (key, 1.0 / (1 + step) + (run_id % 97) * 1e-3, step, None, now)
            for key in KEYS
            for step in range(1000)
        ]
        db.store.write(lambda c, r=run_id, i=items: write_metric_rows(c, r, i))
    line("populate 10M metric rows", time.perf_counter() - start, "s")

    def timed(fn) -> float:
        samples = []
        for _ in range(repeats):
            t = time.perf_counter()
            fn()
            samples.append(time.perf_counter() - t)
        return statistics.median(samples) * 1000

    best = timed(lambda: db.best_run("train/metric_3", "min"))
    line("best_run over 1000 runs x 10 metrics x 1000 steps", best, "ms", 50, best / 50)
    ten = timed(lambda: db.compare_runs(run_ids[:10]))
    line("compare_runs (10 runs) over the same store", ten, "ms", 50, ten / 50)
    every = timed(lambda: db.compare_runs(run_ids))
    line("compare_runs (all 1000 runs) over the same store", every, "ms", 50, every / 50)
    search = timed(lambda: db.search_runs("metrics.train/metric_3 < 0.05", limit=10))
    line("search_runs (limit 10) over the same store", search, "ms", 50, search / 50)
    db.close()


def main() -> None:
    """Run every figure once (tracker and raw alternate ``--repeats`` times)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--metrics", type=int, default=1_000_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--mlflow-calls", type=int, default=1_000)
    parser.add_argument("--mlflow-batches", type=int, default=20)
    parser.add_argument("--skip-queries", action="store_true")
    args = parser.parse_args()
    n = args.metrics
    with tempfile.TemporaryDirectory(prefix="bench-tracking-") as tmp_name:
        tmp = Path(tmp_name)
        call_site, tracker_total, raw_total = [], [], []
        for r in range(args.repeats):
            per_call, total = bench_tracker(tmp / f"tracker{r}.db", n)
            call_site.append(per_call)
            tracker_total.append(total)
            raw_total.append(bench_raw(tmp / f"raw{r}.db", n))
        floor = bench_append_floor(n)
        call = statistics.median(call_site) * 1e6
        line("log_metric call-site cost", call, "us/metric", floor * 1e6, call / (floor * 1e6))
        ours = n / statistics.median(tracker_total)
        raw = n / statistics.median(raw_total)
        line(f"end-to-end {n} metrics incl. final flush", ours, "metrics/s", raw, ours / raw)
        ml_call, ml_batch, calls, batched = bench_mlflow(
            tmp, args.mlflow_calls, args.mlflow_batches
        )
        ours_per_metric = 1 / ours
        line(
            f"MLflow log_metric ({calls} calls) per metric",
            ml_call * 1e6,
            "us/metric",
            ours_per_metric * 1e6,
            ml_call / ours_per_metric,
        )
        line(
            f"MLflow log_batch(1000) ({batched} metrics) per metric",
            ml_batch * 1e6,
            "us/metric",
            ours_per_metric * 1e6,
            ml_batch / ours_per_metric,
        )
        if not args.skip_queries:
            bench_queries(tmp / "queries.db", repeats=7)


if __name__ == "__main__":
    main()
