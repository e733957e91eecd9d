"""Metric curves for charts: min/max buckets sized to the chart, raw points when few enough.

A chart ``points`` pixels wide cannot show more than one value range per pixel column, so
a curve is cut into ``points`` buckets along x and each bucket keeps its smallest and its
largest value (in the order they were logged): a single-step spike survives at any zoom,
unlike sampling every n-th point. The buckets are computed in SQL (two ``ROW_NUMBER``
windows per bucket, on every backend alike), so a 1,000,000-point curve costs the
browser 2 x ``points`` values. Zooming in asks again for the narrower range; once a range
holds no more than ``points`` values per run, the raw points come back unchanged.

Several runs come back on one shared x axis (what uPlot draws): raw points on the union of
their x values, buckets on a grid of two slots per bucket, each slot placed a quarter and
three quarters into its bucket.
"""

from __future__ import annotations

import math
from bisect import bisect_right
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from operator import itemgetter
from typing import Any

from sqlalchemy import Float, and_, func, literal, select
from sqlalchemy.engine import Connection

from trainforge.errors import TrackingError
from trainforge.tracking._dialect import floor_capped
from trainforge.tracking._schema import metric_summaries, metrics, runs
from trainforge.tracking._store import TrackingStore

__all__ = ["X_AXES", "SeriesWindow", "metric_points", "metric_series", "series_heads"]

X_AXES = ("step", "epoch", "time")
"""What a curve can be drawn against: the step, the epoch, or seconds since the start."""
_MAX_POINTS = 20_000
_CHUNK = 50_000


@dataclass
class SeriesWindow:
    """Curves of one metric for several runs on a shared x axis.

    Attributes:
        key: The metric.
        x_axis: ``step``, ``epoch`` or ``time``.
        raw: True when ``x`` and ``y`` are the logged points themselves.
        x: The shared x values, ascending.
        y: Per run id, one value (or None) per x.
        counts: Per run id, how many logged points fall in the range.
        lo: Start of the range covered (None when no run has a point).
        hi: End of the range covered.
        buckets: Number of buckets (0 when raw).
    """

    key: str
    x_axis: str
    raw: bool
    x: list[float] = field(default_factory=list)
    y: dict[int, list[float | None]] = field(default_factory=dict)
    counts: dict[int, int] = field(default_factory=dict)
    lo: float | None = None
    hi: float | None = None
    buckets: int = 0

    def to_dict(self) -> dict[str, Any]:
        """Plain data for JSON (non-finite values become None)."""
        return {
            "key": self.key,
            "x_axis": self.x_axis,
            "raw": self.raw,
            "lo": self.lo,
            "hi": self.hi,
            "buckets": self.buckets,
            "x": self.x,
            "runs": [
                {"run_id": run_id, "count": self.counts.get(run_id, 0), "y": _finite(ys)}
                for run_id, ys in self.y.items()
            ],
        }


def metric_series(
    store: TrackingStore,
    run_ids: Sequence[int],
    key: str,
    *,
    x_axis: str = "step",
    points: int = 800,
    lo: float | None = None,
    hi: float | None = None,
    after: float | None = None,
) -> SeriesWindow:
    """One metric of several runs, bucketed to ``points`` buckets or raw when few enough.

    Args:
        store: The tracking store.
        run_ids: Runs to read (unknown ids simply have no points).
        key: Metric name, e.g. ``val/loss``.
        x_axis: ``step``, ``epoch`` or ``time`` (seconds since the run started).
        points: Buckets across the range: the chart's width in pixels.
        lo: Start of the range (inclusive); None: the smallest x logged.
        hi: End of the range (inclusive); None: the largest x logged.
        after: Only points with x greater than this (a live chart's new points).

    Returns:
        A :class:`SeriesWindow`: raw when no run has more than ``points`` values in the
        range (each at a distinct x), else two values per bucket.

    Raises:
        TrackingError: Unknown ``x_axis``, or ``points`` outside 1..20000.
    """
    if x_axis not in X_AXES:
        raise TrackingError(f"unknown x axis {x_axis!r}; use one of {', '.join(X_AXES)}")
    if not 1 <= points <= _MAX_POINTS:
        raise TrackingError(f"points must be between 1 and {_MAX_POINTS}, got {points}")
    ids = sorted({int(i) for i in run_ids})
    x = _x_column(x_axis)
    window = SeriesWindow(key, x_axis, raw=True, y={i: [] for i in ids})

    def read(conn: Connection) -> SeriesWindow:
        if not ids:
            return window
        where = _where(conn, ids, key, x, lo, hi, after)
        if lo is None and hi is None and after is None and _few(conn, ids, key, points):
            # every curve is short: one read of the raw points, no counting pass first
            rows = _plain_rows(
                conn,
                _joined(select(metrics.c.run_id, x, metrics.c.value), x_axis)
                .where(where)
                .order_by(metrics.c.run_id, x),
            )
            if _fill_raw_if_distinct(window, rows, points):
                return window
        stats = conn.execute(
            _joined(
                select(
                    metrics.c.run_id,
                    func.count(),
                    func.count(x.distinct()),
                    func.min(x),
                    func.max(x),
                ),
                x_axis,
            )
            .where(where)
            .group_by(metrics.c.run_id)
        ).all()
        window.counts = {row[0]: int(row[1]) for row in stats}
        if not stats:
            return window
        window.lo = float(lo if lo is not None else min(row[3] for row in stats))
        window.hi = float(hi if hi is not None else max(row[4] for row in stats))
        raw = all(row[1] == row[2] and row[1] <= points for row in stats)
        if raw:
            rows = _plain_rows(
                conn,
                _joined(select(metrics.c.run_id, x, metrics.c.value), x_axis)
                .where(where)
                .order_by(metrics.c.run_id, x),
            )
            if _fill_raw_if_distinct(window, rows, points):
                return window
        _fill_buckets(window, conn, where, x, points)
        return window

    return store.read(read)


def series_heads(
    store: TrackingStore, run_ids: Sequence[int], key: str
) -> dict[int, dict[str, Any]]:
    """Per run: last step, last timestamp and count of a metric (a live chart's cheap check)."""
    ids = sorted({int(i) for i in run_ids})
    s = metric_summaries.c
    query = select(s.run_id, s.last_step, s.last_timestamp, s["count"]).where(
        s.run_id.in_(ids), s.key == key
    )
    rows = store.read(lambda c: c.execute(query).all()) if ids else []
    return {r[0]: {"last_step": r[1], "last_timestamp": r[2], "count": r[3]} for r in rows}


def metric_points(store: TrackingStore, run_id: int, key: str) -> Iterator[list[tuple[Any, ...]]]:
    """Every logged point of one metric, as chunks of ``(step, epoch, value, timestamp)``.

    Chunks are read one transaction at a time, ordered by every column, so memory stays
    bounded whatever the length of the history and no point is repeated or skipped.
    """
    m = metrics.c
    base = (
        select(m.step, m.epoch, m.value, m.timestamp)
        .where(m.run_id == int(run_id), m.key == key)
        .order_by(m.step, m.timestamp, m.value, m.epoch)
    )
    offset = 0
    while True:
        query = base.offset(offset).limit(_CHUNK)

        def read(conn: Connection, query: Any = query) -> list[tuple[Any, ...]]:
            return [tuple(r) for r in conn.execute(query)]

        rows = store.read(read)
        if rows:
            yield rows
        if len(rows) < _CHUNK:
            return
        offset += len(rows)


# -- queries -------------------------------------------------------------------------------


def _x_column(x_axis: str) -> Any:
    if x_axis == "step":
        return metrics.c.step
    if x_axis == "epoch":
        return metrics.c.epoch
    return metrics.c.timestamp - runs.c.start_time


def _joined(query: Any, x_axis: str) -> Any:
    if x_axis != "time":
        return query
    return query.join_from(metrics, runs, runs.c.id == metrics.c.run_id)


def _where(conn: Connection, ids: list[int], key: str, x: Any, lo: Any, hi: Any, after: Any) -> Any:
    value = metrics.c.value
    terms = [metrics.c.run_id.in_(ids), metrics.c.key == key, x.is_not(None), value.is_not(None)]
    if conn.dialect.name == "postgresql":  # it keeps NaN (SQLite stores NULL): never a min/max
        terms.append(value != literal(float("nan"), Float))
    if lo is not None:
        terms.append(x >= float(lo))
    if hi is not None:
        terms.append(x <= float(hi))
    if after is not None:
        terms.append(x > float(after))
    return and_(*terms)


def _plain_rows(conn: Connection, query: Any) -> list[tuple[Any, ...]]:
    """A query's rows as plain tuples from the driver's cursor, in ``conn``'s transaction.

    The raw points of a chart are the UI's largest read (100 curves x 1,000 points); the
    driver's own tuples skip building a result row object per point.
    """
    compiled = query.compile(dialect=conn.dialect, compile_kwargs={"render_postcompile": True})
    params = compiled.params
    args = tuple(params[n] for n in compiled.positiontup or ()) if compiled.positional else params
    cursor = conn.connection.cursor()
    try:
        cursor.execute(str(compiled), args)
        return list(cursor.fetchall())
    finally:
        cursor.close()


def _few(conn: Connection, ids: list[int], key: str, points: int) -> bool:
    """True when no run logged more than ``points`` values of ``key`` (its summary says)."""
    s = metric_summaries.c
    most = conn.execute(
        select(func.max(s["count"])).where(s.run_id.in_(ids), s.key == key)
    ).scalar()
    return most is not None and most <= points


def _fill_raw_if_distinct(window: SeriesWindow, rows: Sequence[Any], points: int) -> bool:
    """Fill ``window`` with raw ``rows`` (ordered by run, x) unless a run repeats an x or
    the union of x values is too long; False leaves ``window`` untouched.

    The rows are split into columns once and each run's curve is a slice of them, so a
    hundred 1,000-point curves cost a handful of C-level passes, not a Python loop a point.
    """
    if not rows:
        return False
    run_col, x_col, y_col = (tuple(map(itemgetter(i), rows)) for i in range(3))
    curves: dict[int, tuple[tuple[Any, ...], tuple[Any, ...]]] = {}
    start = 0
    while start < len(run_col):
        run_id = run_col[start]
        end = bisect_right(run_col, run_id, lo=start)
        xs = x_col[start:end]
        if len(set(xs)) != len(xs):  # a repeated x (they are sorted): buckets, not points
            return False
        curves[run_id] = (xs, y_col[start:end])
        start = end
    first = next(iter(curves.values()))[0]
    shared = all(xs == first for xs, _ in curves.values())  # the usual case: same steps
    union = first if shared else tuple(sorted(set().union(*(xs for xs, _ in curves.values()))))
    if len(union) > 2 * points:
        return False
    window.counts = {run_id: len(xs) for run_id, (xs, _) in curves.items()}
    if window.lo is None:  # no range asked for: the points' own
        window.lo, window.hi = float(union[0]), float(union[-1])
    window.x = list(map(float, union))
    slot = None if shared else {value: i for i, value in enumerate(union)}
    for run_id in window.y:
        xs, ys = curves.get(run_id, ((), ()))
        if slot is None and xs:
            window.y[run_id] = list(ys)
            continue
        filled: list[float | None] = [None] * len(union)
        for x, y in zip(xs, ys):
            filled[slot[x] if slot else 0] = y
        window.y[run_id] = filled
    return True


def _fill_buckets(window: SeriesWindow, conn: Connection, where: Any, x: Any, points: int) -> None:
    lo, hi = window.lo or 0.0, window.hi or 0.0
    span = hi - lo
    n = points if span > 0 else 1
    width = span / n if span > 0 else 1.0
    # bucket index in 0..n-1 (float arithmetic: steps are integers); the end of the range
    # falls in the last bucket
    scaled = (x - literal(lo, Float)) * literal(float(n), Float) / literal(span or 1.0, Float)
    bucket = floor_capped(conn.dialect, scaled, n - 1)  # x >= lo: scaled >= 0
    inner = (
        _joined(
            select(
                metrics.c.run_id.label("run_id"),
                bucket.label("b"),
                x.label("x"),
                metrics.c.value.label("v"),
            ),
            window.x_axis,
        )
        .where(where)
        .subquery()
    )
    ranked = select(
        inner.c.run_id,
        inner.c.b,
        inner.c.x,
        inner.c.v,
        func.row_number()
        .over(partition_by=(inner.c.run_id, inner.c.b), order_by=(inner.c.v.asc(), inner.c.x.asc()))
        .label("rmin"),
        func.row_number()
        .over(
            partition_by=(inner.c.run_id, inner.c.b), order_by=(inner.c.v.desc(), inner.c.x.asc())
        )
        .label("rmax"),
    ).subquery()
    rows = conn.execute(
        select(ranked.c.run_id, ranked.c.b, ranked.c.x, ranked.c.v).where(
            (ranked.c.rmin == 1) | (ranked.c.rmax == 1)
        )
    ).all()
    window.raw = False
    window.buckets = n
    window.x = [lo + (b + q) * width for b in range(n) for q in (0.25, 0.75)]
    window.y = {run_id: [None] * (2 * n) for run_id in window.y}
    extremes: dict[tuple[int, int], list[tuple[float, float]]] = {}
    for run_id, b, xv, v in rows:
        extremes.setdefault((run_id, int(b)), []).append((float(xv), v))
    for (run_id, b), found in extremes.items():
        found.sort()  # the extreme logged first takes the first slot
        ys = window.y[run_id]
        ys[2 * b] = found[0][1]
        ys[2 * b + 1] = found[-1][1]


def _finite(values: Sequence[float | None]) -> list[float | None]:
    """The values with NaN and infinities as None (one C-level check when all are finite)."""
    try:
        if values and math.isfinite(min(values)) and math.isfinite(max(values)):  # type: ignore[type-var, arg-type]
            return list(values)
    except TypeError:  # a None among them: the slow path below
        pass
    return [v if v is None or math.isfinite(v) else None for v in values]
