"""UI benchmark: the run browser over 10,000 runs x 10 metrics x 1,000 steps (SQLite).

Run: ``python benchmarks/bench_ui.py [--runs 10000] [--store PATH] [--mlflow-runs 20]``.
Prints one line per figure: ``name: value unit (reference: value, ratio: x)``.

The trainforge store is built once with bulk inserts straight into its schema (100 M
metric rows, about 6 GB; kept at ``--store`` and reused). Figures, medians of
``--repeats`` in one headless Chromium (Debian's ``/usr/bin/chromium``):

- runs table first paint: navigation start to the first rows on screen (target < 1 s);
- compare of 100 runs, one metric, every curve drawn: navigation start to uPlot drawn
  (target < 1 s);
- API latency of ``/api/runs`` (a window of 100 rows sorted by a metric) and of
  ``/api/series`` (100 runs, one metric, a 1,200-pixel chart: 1,000 raw points a run).

The reference is MLflow 3 on its own SQLite store, side by side: ``search_runs``
(100 rows, ordered by the same metric) and ``get_metric_history`` of one metric for 100
runs. Ingesting 100 M points through MLflow's client is not feasible here (``log_batch``
manages a few thousand values per second: days), so its store holds ``--mlflow-runs``
runs x 10 metrics x 1,000 steps, logged through MLflow itself, and the 100 history calls
cycle over those runs; the line says so.
"""

from __future__ import annotations

import argparse
import os
import socket
import sqlite3
import statistics
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

METRICS = [f"m{i}" for i in range(10)]
STEPS = 1000


def line(name: str, value: float, unit: str, ref: float | None = None, note: str = "") -> None:
    """Print one figure in the shared benchmark format."""
    tail = f" (reference: {ref:.4g}, ratio: {value / ref:.3g}x)" if ref else ""
    print(f"{name}: {value:.4g} {unit}{tail}{note}", flush=True)


def build_store(path: Path, runs: int) -> None:
    """10 metrics x 1,000 steps per run, bulk-inserted in the schema TrackingStore made."""
    from trainforge.tracking import TrackingStore

    TrackingStore(f"sqlite:///{path}").dispose()  # creates and migrates the schema
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA synchronous = OFF")
    now = time.time() - runs * 60
    t0 = time.perf_counter()
    for first in range(1, runs + 1, 100):
        ids = range(first, min(first + 100, runs + 1))
        with conn:
            conn.executemany(
                "INSERT INTO runs (id, project, experiment, name, status, start_time, end_time,"
                " heartbeat_at, config_hash)"
                " VALUES (?, 'bench', 'sweep', ?, 'completed', ?, ?, ?, ?)",
                [
                    (i, f"run-{i}", now + i * 60, now + i * 60 + 50, now + i * 60 + 50, f"{i:064x}")
                    for i in ids
                ],
            )
            conn.executemany(
                "INSERT INTO run_params (run_id, key, value, value_num) VALUES (?, ?, ?, ?)",
                [
                    (i, k, str(v), v)
                    for i in ids
                    for k, v in (("optim.lr", 10 ** -(1 + i % 4)), ("data.batch_size", 16 << i % 3))
                ],
            )
            conn.executemany(
                "INSERT INTO run_tags (run_id, key, value) VALUES (?, 'sweep', 'true')",
                [(i,) for i in ids],
            )
            rows, summaries = [], []
            for i in ids:
                for m, key in enumerate(METRICS):
                    values = [
                        1.0 / (1 + s / 100) + ((i * 7 + m + s) % 13) / 200 for s in range(STEPS)
                    ]
                    ts = now + i * 60
                    rows.extend(
                        (i, key, s, s // 100, v, ts + s * 0.05) for s, v in enumerate(values)
                    )
                    summaries.append(
                        (i, key, values[-1], STEPS - 1, ts + 50, min(values), max(values), STEPS)
                    )
            conn.executemany(
                "INSERT INTO metrics (run_id, key, step, epoch, value, timestamp)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                rows,
            )
            conn.executemany(
                "INSERT INTO metric_summaries (run_id, key, last_value, last_step, last_timestamp,"
                " min_value, max_value, count) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                summaries,
            )
        if first % 1000 == 1:
            print(f"  built {first + 99} runs in {time.perf_counter() - t0:.0f} s", flush=True)
    conn.execute("ANALYZE")
    conn.close()


class Server:
    """trainforge's UI app under uvicorn, in a thread, on a free loopback port."""

    def __init__(self, url: str) -> None:
        import uvicorn

        from trainforge.ui import create_app

        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.base = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        self.server = uvicorn.Server(uvicorn.Config(create_app(url), log_level="warning"))
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.sock]})
        self.thread.start()
        while not self.server.started:
            time.sleep(0.05)

    def get(self, path: str) -> float:
        t0 = time.perf_counter()
        with urllib.request.urlopen(self.base + path, timeout=120) as response:
            response.read()
        return time.perf_counter() - t0

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join()


def browser_figures(server: Server, repeats: int) -> tuple[list[float], list[float]]:
    """Runs-table first paint and 100-run compare drawn, in seconds from navigation start."""
    from playwright.sync_api import sync_playwright

    ids = ",".join(str(i) for i in range(1, 101))
    paint, compare = [], []
    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path="/usr/bin/chromium",
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
            ],
        )
        page = browser.new_page(viewport={"width": 1280, "height": 800})
        for _ in range(repeats):
            page.goto(server.base + "/?sort=metrics.m0+asc&metrics=m0,m1,m2")
            page.wait_for_selector("body[data-runs-painted]", timeout=60_000)
            paint.append(float(page.get_attribute("body", "data-runs-painted")) / 1000)
            page.goto(server.base + f"/compare?runs={ids}&metric=m0")
            page.wait_for_selector('#compare-chart[data-drawn="yes"]', timeout=60_000)
            chart = page.locator("#compare-chart")
            assert chart.get_attribute("data-series") == "100"
            compare.append(float(chart.get_attribute("data-drawn-at")) / 1000)
        browser.close()
    return paint, compare


def mlflow_store(directory: Path, runs: int) -> tuple[object, str, list[str]]:
    """An MLflow SQLite store with ``runs`` x 10 metrics x 1,000 steps, via log_batch."""
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    from mlflow.entities import Metric
    from mlflow.tracking import MlflowClient

    uri = f"sqlite:///{directory / 'mlflow.db'}"
    client = MlflowClient(tracking_uri=uri)
    found = client.get_experiment_by_name("bench")
    if found is None:
        exp = client.create_experiment("bench", artifact_location=str(directory / "artifacts"))
    else:
        exp = found.experiment_id
    existing = client.search_runs([exp], max_results=runs + 1)
    if len(existing) >= runs:
        return client, exp, [r.info.run_id for r in existing]
    ids = []
    for i in range(runs):
        run = client.create_run(exp, run_name=f"run-{i}")
        ids.append(run.info.run_id)
        now = int(time.time() * 1000)
        points = [
            Metric(key, 1.0 / (1 + s / 100), now + s, s) for key in METRICS for s in range(STEPS)
        ]
        for start in range(0, len(points), 1000):
            client.log_batch(run.info.run_id, metrics=points[start : start + 1000])
        client.set_terminated(run.info.run_id)
    return client, exp, ids


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10_000)
    parser.add_argument("--store", type=Path, default=None)
    parser.add_argument("--mlflow-runs", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    scratch = Path(tempfile.gettempdir()) / "trainforge-bench-ui"
    scratch.mkdir(exist_ok=True)
    store = args.store or scratch / f"ui-{args.runs}x10x{STEPS}.db"
    if not (store.exists() and store.with_suffix(".done").exists()):
        store.unlink(missing_ok=True)
        print(f"building {store} ({args.runs} runs x 10 metrics x {STEPS} steps)", flush=True)
        build_store(store, args.runs)
        store.with_suffix(".done").touch()
    client, exp, mlflow_ids = mlflow_store(scratch, args.mlflow_runs)

    server = Server(f"sqlite:///{store}")
    try:
        ids = ",".join(str(i) for i in range(1, 101))
        runs_api, series_api, search, history = [], [], [], []
        server.get("/api/runs?limit=100")  # warm the page cache once for both sides
        for _ in range(args.repeats):  # alternate trainforge and MLflow
            runs_api.append(server.get("/api/runs?sort=metrics.m0+asc&metrics=m0,m1,m2&limit=100"))
            t0 = time.perf_counter()
            client.search_runs([exp], order_by=["metrics.m0 ASC"], max_results=100)
            search.append(time.perf_counter() - t0)
            series_api.append(server.get(f"/api/series?runs={ids}&key=m0&points=1200"))
            t0 = time.perf_counter()
            for k in range(100):  # one call per run, as the UI draws 100 runs
                client.get_metric_history(mlflow_ids[k % len(mlflow_ids)], "m0")
            history.append(time.perf_counter() - t0)
        paint, compare = browser_figures(server, args.repeats)
    finally:
        server.stop()
    med = statistics.median
    note = f"; MLflow store: {len(mlflow_ids)} runs x 10 metrics x {STEPS} steps"
    line(
        f"runs table first paint, {args.runs} runs (Chromium)",
        med(paint) * 1000,
        "ms",
        note=" (target: < 1000 ms)",
    )
    line(
        "compare 100 runs, one metric, all curves drawn (Chromium)",
        med(compare) * 1000,
        "ms",
        note=" (target: < 1000 ms)",
    )
    line(
        f"/api/runs window of 100 sorted by a metric, {args.runs} runs",
        med(runs_api) * 1000,
        "ms",
        med(search) * 1000,
        note=f" [reference: MLflow search_runs{note}]",
    )
    line(
        "/api/series 100 runs x 1000 steps, one metric, 1200 px wide",
        med(series_api) * 1000,
        "ms",
        med(history) * 1000,
        note=f" [reference: MLflow get_metric_history x 100{note}]",
    )


if __name__ == "__main__":
    main()
