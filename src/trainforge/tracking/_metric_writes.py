"""Bulk metric writes: history rows in driver-level bulk, summaries by upsert.

This is the tracker's hot path on the writer thread. Rows go to the driver as tuples (no
per-row dicts through SQLAlchemy): ``executemany`` on SQLite, ``COPY`` on PostgreSQL
(psycopg 3), PyMySQL's multi-row ``INSERT`` on MySQL. The per-(run, key) summary is folded
in Python over the batch and merged with one upsert per key, in the same transaction as
the history, so the two never disagree.

NaN is stored as NULL on every backend (SQLite and MySQL have no NaN; PostgreSQL's NaN
would compare greater than every number), so a NaN value never matches a comparison in a
search and sorts with the missing values, the same on any store. ``±inf`` is kept (as
``±DBL_MAX`` on MySQL, read back as ``±inf``); a logged ``±DBL_MAX`` is stored as ``±inf``
everywhere, the one value MySQL could not tell apart (see ``_dialect``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import case
from sqlalchemy.engine import Connection

from trainforge.tracking._dialect import DBL_MAX, fold_float, is_mysql, upsert
from trainforge.tracking._schema import metric_summaries

__all__ = ["MetricItem", "next_steps", "summarize", "write_metric_rows"]

#: One value of one run, in the order the tracker buffers it: (key, value, step, epoch, ts).
MetricItem = tuple[str, float, int, "int | None", float]

# Column order follows MetricItem so the buffered tuples go to the driver unchanged; the
# run id is a bound integer in the statement itself.
_COLUMNS = "key, value, step, epoch, timestamp, run_id"


def summarize(items: Sequence[MetricItem]) -> dict[str, list[Any]]:
    """Fold one run's items into ``{key: [last_value, last_step, last_ts, min, max, count]}``."""
    out: dict[str, list[Any]] = {}
    get = out.get
    for key, value, step, _epoch, ts in items:
        s = get(key)
        if s is None:
            finite = value if value == value else None  # NaN is NULL, never min or max
            out[key] = [finite, step, ts, finite, finite, 1]
            continue
        if step >= s[1]:
            s[0] = value if value == value else None
            s[1] = step
            s[2] = ts
        if value == value:
            if s[3] is None or value < s[3]:
                s[3] = value
            if s[4] is None or value > s[4]:
                s[4] = value
        s[5] += 1
    return out


def write_metric_rows(conn: Connection, run_id: int, items: Sequence[MetricItem]) -> None:
    """Append one run's items to the history and merge them into its summaries."""
    if not items:
        return
    run_id = int(run_id)  # inlined in the SQL below: it must be an integer
    if any(item[1] in _EDGES for item in items):
        items = [(k, fold_float(v), s, e, t) for k, v, s, e, t in items]
    if is_mysql(conn.dialect):  # PyMySQL sends executemany as multi-row INSERTs
        quote = conn.dialect.identifier_preparer.quote  # `key` is a reserved word there
        columns = ", ".join(quote(c) for c in _COLUMNS.split(", "))
        cursor = conn.connection.cursor()
        try:
            cursor.executemany(
                f"INSERT INTO metrics ({columns}) VALUES (%s, %s, %s, %s, %s, %s)",
                [(k, _mysql_double(v), s, e, t, run_id) for k, v, s, e, t in items],
            )
        finally:
            cursor.close()
    elif conn.dialect.name == "postgresql":  # COPY: about 4x faster than executemany
        cursor = conn.connection.cursor()
        try:
            with cursor.copy(f"COPY metrics ({_COLUMNS}) FROM STDIN") as copy:
                for key, value, step, epoch, ts in items:
                    copy.write_row(
                        (key, value if value == value else None, step, epoch, ts, run_id)
                    )
        finally:
            cursor.close()
    else:
        sql = f"INSERT INTO metrics ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, {run_id})"
        conn.exec_driver_sql(sql, items)
    _upsert_summaries(conn, run_id, summarize(items))


def next_steps(conn: Connection, run_id: int, keys: set[str]) -> dict[str, int]:
    """The next free step of each key of a run (0 for a new key)."""
    if not keys:
        return {}
    result = conn.execute(
        metric_summaries.select()
        .with_only_columns(metric_summaries.c.key, metric_summaries.c.last_step)
        .where(metric_summaries.c.run_id == run_id, metric_summaries.c.key.in_(sorted(keys)))
    )
    steps = {key: 0 for key in keys}
    steps.update({key: last + 1 for key, last in result})
    return steps


def _mysql_double(value: float) -> float | None:
    """NaN as NULL and ``±inf`` as ``±DBL_MAX``: MySQL's ``DOUBLE`` holds neither."""
    if value != value:
        return None
    if value in _INFINITIES:
        return DBL_MAX if value > 0 else -DBL_MAX
    return value


_EDGES = frozenset({DBL_MAX, -DBL_MAX})
_INFINITIES = frozenset({float("inf"), float("-inf")})


def _merge(new: Any) -> list[tuple[str, Any]]:
    """The summary's new columns; ``last_step`` last, as MySQL assigns in order."""
    table = metric_summaries
    newer = new.last_step >= table.c.last_step
    return [
        ("last_value", case((newer, new.last_value), else_=table.c.last_value)),
        ("last_timestamp", case((newer, new.last_timestamp), else_=table.c.last_timestamp)),
        ("last_step", case((newer, new.last_step), else_=table.c.last_step)),
        (
            "min_value",
            case(
                (table.c.min_value.is_(None), new.min_value),
                (new.min_value < table.c.min_value, new.min_value),
                else_=table.c.min_value,
            ),
        ),
        (
            "max_value",
            case(
                (table.c.max_value.is_(None), new.max_value),
                (new.max_value > table.c.max_value, new.max_value),
                else_=table.c.max_value,
            ),
        ),
        ("count", table.c["count"] + new["count"]),
    ]


# The summaries' upsert, built once per statement family: building the expression costs
# more than the rows it writes on a flush of a few hundred values (the writer's every flush).
_UPSERTS: dict[str, Any] = {}


def _upsert_summaries(conn: Connection, run_id: int, summary: dict[str, list[Any]]) -> None:
    table = metric_summaries
    family = "mysql" if is_mysql(conn.dialect) else conn.dialect.name
    stmt = _UPSERTS.get(family)
    if stmt is None:
        stmt = _UPSERTS[family] = upsert(conn.dialect, table, [table.c.run_id, table.c.key], _merge)
    params = [
        {
            "run_id": run_id,
            "key": key,
            "last_value": s[0],
            "last_step": s[1],
            "last_timestamp": s[2],
            "min_value": s[3],
            "max_value": s[4],
            "count": s[5],
        }
        for key, s in sorted(summary.items())  # fixed order: no upsert deadlocks
    ]
    conn.execute(stmt, params)
