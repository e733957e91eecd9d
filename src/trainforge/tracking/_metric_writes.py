"""Bulk metric writes: history rows in driver-level bulk, summaries by upsert.

This is the tracker's hot path on the writer thread. Rows go to the driver as tuples (no
per-row dicts through SQLAlchemy): ``executemany`` on SQLite, ``COPY`` on PostgreSQL
(psycopg 3). The per-(run, key) summary is folded in Python over the batch and merged with
one upsert per key, in the same transaction as the history, so the two never disagree.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import case
from sqlalchemy.engine import Connection

from trainforge.tracking._schema import metric_summaries

__all__ = ["MetricRow", "next_steps", "summarize", "write_metric_rows"]

#: (run_id, key, step, epoch, value, timestamp)
MetricRow = tuple[int, str, int, "int | None", float, float]

_COLUMNS = "run_id, key, step, epoch, value, timestamp"


def summarize(rows: Sequence[MetricRow]) -> dict[tuple[int, str], list[Any]]:
    """Fold rows into ``{(run_id, key): [last_value, last_step, last_ts, min, max, count]}``."""
    out: dict[tuple[int, str], list[Any]] = {}
    get = out.get
    for run_id, key, step, _epoch, value, ts in rows:
        s = get((run_id, key))
        if s is None:
            finite = value if value == value else None  # NaN never becomes min or max
            out[(run_id, key)] = [value, step, ts, finite, finite, 1]
            continue
        if step >= s[1]:
            s[0] = value
            s[1] = step
            s[2] = ts
        if value == value:
            if s[3] is None or value < s[3]:
                s[3] = value
            if s[4] is None or value > s[4]:
                s[4] = value
        s[5] += 1
    return out


def write_metric_rows(conn: Connection, rows: Sequence[MetricRow]) -> None:
    """Append ``rows`` to the history and merge them into the summaries (caller's transaction)."""
    if not rows:
        return
    if conn.dialect.name == "postgresql":  # COPY: about 4x faster than executemany
        cursor = conn.connection.cursor()
        try:
            with cursor.copy(f"COPY metrics ({_COLUMNS}) FROM STDIN") as copy:
                for row in rows:
                    copy.write_row(row)
        finally:
            cursor.close()
    else:
        conn.exec_driver_sql(f"INSERT INTO metrics ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?)", rows)
    _upsert_summaries(conn, summarize(rows))


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


def _upsert_summaries(conn: Connection, summary: dict[tuple[int, str], list[Any]]) -> None:
    if conn.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert
    table = metric_summaries
    stmt = insert(table)
    new = stmt.excluded
    newer = new.last_step >= table.c.last_step
    stmt = stmt.on_conflict_do_update(
        index_elements=[table.c.run_id, table.c.key],
        set_={
            "last_value": case((newer, new.last_value), else_=table.c.last_value),
            "last_step": case((newer, new.last_step), else_=table.c.last_step),
            "last_timestamp": case((newer, new.last_timestamp), else_=table.c.last_timestamp),
            "min_value": case(
                (table.c.min_value.is_(None), new.min_value),
                (new.min_value < table.c.min_value, new.min_value),
                else_=table.c.min_value,
            ),
            "max_value": case(
                (table.c.max_value.is_(None), new.max_value),
                (new.max_value > table.c.max_value, new.max_value),
                else_=table.c.max_value,
            ),
            "count": table.c["count"] + new["count"],
        },
    )
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
        for (run_id, key), s in sorted(summary.items())  # fixed order: no upsert deadlocks
    ]
    conn.execute(stmt, params)
