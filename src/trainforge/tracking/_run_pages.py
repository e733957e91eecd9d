"""Pages of the runs table: one window of a filtered, sorted run list, and what changed.

A run browser shows a window of rows at a time (the rows on screen), so a page reads only
``limit`` runs and only the params and metrics the user chose as columns, whatever the
size of the store; the total comes from one ``COUNT``. Live refresh asks which runs
changed since a cursor (started, finished, beat their heartbeat or logged a value), so a
page that holds 10,000 rows re-reads only those.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import exists, func, select
from sqlalchemy.engine import Connection

from trainforge.tracking._filter import compile_filter, order_clause
from trainforge.tracking._run_records import param_out, run_dict
from trainforge.tracking._schema import metric_summaries, run_params, run_tags, runs
from trainforge.tracking._store import TrackingStore

__all__ = ["CURSOR_MARGIN_S", "RunPage", "column_keys", "page_runs"]

#: A cursor lags the clock by this much: a value is stamped when logged, and committed a
#: little later by the tracker's writer thread.
CURSOR_MARGIN_S = 5.0
_MAX_LIMIT = 1000
_DEFAULT_METRICS = 4
_UNINTERESTING = ("grad/", "weights/", "system/", "lr/", "health/", "epoch")


@dataclass
class RunPage:
    """One window of runs.

    Attributes:
        total: Runs matching the filter (all of them, not just this window).
        runs: The window: attributes, tags, and the chosen ``params`` and ``metrics``.
        params: Param columns returned.
        metrics: Metric columns returned.
        cursor: Pass as ``since`` to get only what changes after this page was read.
    """

    total: int
    runs: list[dict[str, Any]] = field(default_factory=list)
    params: list[str] = field(default_factory=list)
    metrics: list[str] = field(default_factory=list)
    cursor: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        """Plain data for JSON."""
        return {
            "total": self.total,
            "runs": self.runs,
            "params": self.params,
            "metrics": self.metrics,
            "cursor": self.cursor,
        }


def page_runs(
    store: TrackingStore,
    *,
    filter: str | None = None,
    order_by: str | Sequence[str] | None = None,
    offset: int = 0,
    limit: int = 100,
    params: Sequence[str] = (),
    metrics: Sequence[str] | None = None,
    since: float | None = None,
    run_ids: Sequence[int] | None = None,
) -> RunPage:
    """Runs ``offset .. offset+limit`` of those matching ``filter``, sorted by ``order_by``.

    Args:
        store: The tracking store.
        filter: The run filter language (``metrics.val/loss < 0.4 and tags.baseline``).
        order_by: ``"metrics.val/loss desc"`` terms; newest runs first after them.
        offset: First row of the window.
        limit: Rows in the window (at most 1000).
        params: Param keys to return with each run.
        metrics: Metric keys whose last value to return; None picks up to four of the
            metrics the window's runs logged (validation metrics first).
        since: Only runs that changed at or after this time (a previous page's cursor);
            the window then applies to those.
        run_ids: Only these runs.

    Raises:
        FilterSyntaxError: The filter or an ``order_by`` term does not parse.
    """
    limit = max(0, min(int(limit), _MAX_LIMIT))
    where = compile_filter(filter)
    if run_ids is not None:
        where = where & runs.c.id.in_([int(i) for i in run_ids])
    if since is not None:
        where = where & _changed_since(float(since))
    orders = [order_by] if isinstance(order_by, str) else list(order_by or [])
    terms = [order_clause(spec) for spec in orders]
    query = (
        select(runs)
        .where(where)
        .order_by(*terms, runs.c.start_time.desc(), runs.c.id.desc())
        .offset(max(0, int(offset)))
        .limit(limit)
    )
    cursor = time.time() - CURSOR_MARGIN_S

    def read(conn: Connection) -> RunPage:
        total = int(conn.execute(select(func.count()).select_from(runs).where(where)).scalar_one())
        found = [_row(r) for r in conn.execute(query)]
        by_id = {r["run_id"]: r for r in found}
        chosen = list(metrics) if metrics is not None else _default_metrics(conn, list(by_id))
        _attach(conn, by_id, list(params), chosen)
        return RunPage(total, found, list(params), chosen, cursor)

    return store.read(read)


def column_keys(store: TrackingStore) -> dict[str, list[str]]:
    """Every param and metric key in the store (the table's column picker)."""

    def read(conn: Connection) -> dict[str, list[str]]:
        return {
            "params": list(
                conn.execute(
                    select(run_params.c.key).distinct().order_by(run_params.c.key)
                ).scalars()
            ),
            "metrics": list(
                conn.execute(
                    select(metric_summaries.c.key).distinct().order_by(metric_summaries.c.key)
                ).scalars()
            ),
        }

    return store.read(read)


def _changed_since(since: float) -> Any:
    s = metric_summaries.c
    new_value = exists(select(s.run_id).where(s.run_id == runs.c.id, s.last_timestamp >= since))
    return (
        (runs.c.start_time >= since)
        | (runs.c.heartbeat_at >= since)
        | (runs.c.end_time >= since)
        | ((runs.c.status == "running") & new_value)
    )


def _row(row: Any) -> dict[str, Any]:
    return {**run_dict(row), "tags": {}, "params": {}, "metrics": {}}


def _default_metrics(conn: Connection, ids: list[int]) -> list[str]:
    if not ids:
        return []
    s = metric_summaries.c
    counts = conn.execute(
        select(s.key, func.count()).where(s.run_id.in_(ids)).group_by(s.key)
    ).all()
    keys = [k for k, _ in counts if not k.startswith(_UNINTERESTING)]
    keys.sort(key=lambda k: (not k.startswith("val/"), not k.startswith("train/"), k))
    return keys[:_DEFAULT_METRICS]


def _attach(
    conn: Connection, by_id: dict[int, dict[str, Any]], params: list[str], chosen: list[str]
) -> None:
    if not by_id:
        return
    ids = list(by_id)
    t = run_tags.c
    for run_id, key, value in conn.execute(
        select(t.run_id, t.key, t.value).where(t.run_id.in_(ids))
    ):
        by_id[run_id]["tags"][key] = value
    if params:
        p = run_params.c
        for run_id, key, value, number in conn.execute(
            select(p.run_id, p.key, p.value, p.value_num).where(
                p.run_id.in_(ids), p.key.in_(params)
            )
        ):
            by_id[run_id]["params"][key] = param_out(value, number)
    if chosen:
        s = metric_summaries.c
        for run_id, key, last, step in conn.execute(
            select(s.run_id, s.key, s.last_value, s.last_step).where(
                s.run_id.in_(ids), s.key.in_(chosen)
            )
        ):
            by_id[run_id]["metrics"][key] = {"last": last, "step": step}
