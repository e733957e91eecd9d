"""Metric curves for charts and pages of the runs table, on SQLite and PostgreSQL."""

from __future__ import annotations

import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from trainforge.errors import FilterSyntaxError, TrackingError
from trainforge.tracking import (
    ExperimentDB,
    TrackingStore,
    column_keys,
    metric_points,
    metric_series,
    page_runs,
    series_heads,
)
from trainforge.tracking._metric_writes import write_metric_rows


def _log(store: TrackingStore, run_id: int, key: str, values: dict[int, float]):
    t0 = time.time()
    rows = [(key, v, step, step // 100, t0 + step) for step, v in sorted(values.items())]
    store.write(lambda c: write_metric_rows(c, run_id, rows))


def _bucket_extremes(values: dict[int, float], lo: float, hi: float, n: int):
    """Expected (min, max) of each non-empty bucket, computed the slow, obvious way."""
    span = hi - lo
    out: dict[int, list[float]] = {}
    for step, v in values.items():
        if lo <= step <= hi:
            b = min(int((step - lo) * n / span), n - 1) if span > 0 else 0
            out.setdefault(b, []).append(v)
    return {b: (min(vs), max(vs)) for b, vs in out.items()}


@pytest.fixture(scope="module")
def spiky(tmp_path_factory):
    """One run of 3,000 smooth values with a single-step spike at step 1,234."""
    store = TrackingStore(str(tmp_path_factory.mktemp("series") / "s.db"))
    db = ExperimentDB(store)
    run = db.log_run("spiky")
    values = {s: 1.0 + (s % 7) * 0.01 for s in range(3000)}
    values[1234] = 99.0
    _log(store, run, "loss", values)
    return store, run, values


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(points=st.integers(2, 400), lo=st.integers(0, 1234), hi=st.integers(1234, 2999))
def test_every_bucket_keeps_its_min_and_max_and_the_spike_survives(spiky, points, lo, hi):
    store, run, values = spiky
    window = metric_series(store, [run], "loss", points=points, lo=lo, hi=hi)
    ys = window.y[run]
    assert 99.0 in ys  # the single-step spike, at this zoom level too
    if window.raw:
        assert window.x == [float(s) for s in range(lo, hi + 1)]
        assert ys == [values[s] for s in range(lo, hi + 1)]
        return
    assert window.buckets == points and len(window.x) == len(ys) == 2 * points
    expected = _bucket_extremes(values, lo, hi, points)
    for b in range(points):
        pair = ys[2 * b : 2 * b + 2]
        if b in expected:
            assert sorted(pair) == sorted(expected[b])
        else:
            assert pair == [None, None]


def test_zooming_in_far_enough_returns_the_raw_points(spiky):
    store, run, values = spiky
    full = metric_series(store, [run], "loss", points=500)
    assert not full.raw and full.counts[run] == 3000
    zoomed = metric_series(store, [run], "loss", points=500, lo=1200.0, hi=1300.0)
    assert zoomed.raw and zoomed.counts[run] == 101
    assert zoomed.x == [float(s) for s in range(1200, 1301)]
    assert zoomed.y[run] == [values[s] for s in range(1200, 1301)]
    after = metric_series(store, [run], "loss", points=500, after=2990.0)
    assert after.raw and after.x == [float(s) for s in range(2991, 3000)]


def test_runs_share_one_x_axis_on_every_backend(store_url):
    store = TrackingStore(store_url)
    db = ExperimentDB(store)
    a, b = db.log_run("a"), db.log_run("b")
    _log(store, a, "val/loss", {0: 1.0, 10: 0.5, 20: 0.25})
    _log(store, b, "val/loss", {0: 2.0, 5: 1.5, 20: float("nan")})
    window = metric_series(store, [a, b, 999], "val/loss", points=100)
    assert window.raw and window.x == [0.0, 5.0, 10.0, 20.0]
    assert window.y[a] == [1.0, None, 0.5, 0.25]
    assert window.y[b] == [2.0, 1.5, None, None]  # NaN is no point
    assert window.y[999] == [None] * 4
    by_epoch = metric_series(store, [a], "val/loss", x_axis="epoch", points=100)
    assert not by_epoch.raw  # three values share epoch 0: buckets, not raw points
    assert sorted(v for v in by_epoch.y[a] if v is not None) == [0.25, 1.0]
    by_time = metric_series(store, [a], "val/loss", x_axis="time", points=2)
    assert by_time.lo is not None and by_time.lo >= 0  # seconds since the run started
    buckets = metric_series(store, [a, b], "val/loss", points=2)
    assert not buckets.raw and buckets.y[a] == [1.0, 1.0, 0.5, 0.25]  # [0, 10) and [10, 20]
    heads = series_heads(store, [a, b], "val/loss")
    assert heads[a]["count"] == 3 and heads[a]["last_step"] == 20
    store.dispose()


def test_bad_series_requests_are_tracking_errors(spiky):
    store, run, _ = spiky
    with pytest.raises(TrackingError, match="unknown x axis"):
        metric_series(store, [run], "loss", x_axis="wall")
    with pytest.raises(TrackingError, match="points must be"):
        metric_series(store, [run], "loss", points=0)


def test_metric_points_streams_every_point_in_chunks(tmp_path):
    store = TrackingStore(str(tmp_path / "p.db"))
    run = ExperimentDB(store).log_run("long")
    rows = [("x", float(i), i // 2, None, 5.0 + i) for i in range(120_001)]  # steps repeat
    store.write(lambda c: write_metric_rows(c, run, rows))
    chunks = list(metric_points(store, run, "x"))
    assert len(chunks) == 3
    flat = [r for chunk in chunks for r in chunk]
    assert [r[2] for r in flat] == [float(i) for i in range(120_001)]


def test_page_runs_windows_sorts_and_reports_changes(store_url):
    store = TrackingStore(store_url)
    db = ExperimentDB(store)
    ids = []
    for i in range(12):
        run = db.log_run(f"r{i}", {"optim": {"lr": 0.1 * (i + 1)}}, tags=["sweep"])
        db.log_metric(run, "val/loss", 1.0 / (i + 1), step=0)
        db.log_metric(run, "grad/global_norm", 3.0, step=0)
        ids.append(run)
    page = page_runs(
        store,
        filter="tags.sweep",
        order_by="metrics.val/loss asc",
        offset=2,
        limit=3,
        params=["optim.lr"],
    )
    assert page.total == 12
    assert [r["name"] for r in page.runs] == ["r9", "r8", "r7"]
    assert page.runs[0]["params"] == {"optim.lr": pytest.approx(1.0)}
    assert page.metrics == ["val/loss"]  # defaults skip grad/, system/, lr/...
    assert page.runs[0]["metrics"]["val/loss"]["last"] == pytest.approx(0.1)
    assert page_runs(store, since=time.time() + 60).total == 0
    assert page.cursor <= time.time() - 4.9  # lags the clock: late commits are not missed
    marker = time.time()  # everything above happened before it
    db.update_run_status(ids[3], "completed")
    changed = page_runs(store, since=marker)
    assert [r["run_id"] for r in changed.runs] == [ids[3]]
    assert page_runs(store, metrics=[], limit=1).runs[0]["metrics"] == {}
    keys = column_keys(store)
    assert keys == {"params": ["optim.lr"], "metrics": ["grad/global_norm", "val/loss"]}
    with pytest.raises(FilterSyntaxError):
        page_runs(store, filter="metrics.x <")
    store.dispose()
