"""Run records: rows of runs/tags/params/summaries to plain dicts, and tag/param writes.

Kept apart from :mod:`._experiment_db` so the query methods read as queries; every
function here works inside a caller's transaction.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy import delete, insert, select
from sqlalchemy.engine import Connection

from trainforge.tracking._limits import check_key, check_text
from trainforge.tracking._schema import metric_summaries, run_params, run_tags
from trainforge.tracking._values import loads, param_value

__all__ = ["attach_details", "param_out", "param_rows", "put_rows", "run_dict"]

_SUMMARY_COLUMNS = ("last", "step", "min", "max", "count")


def param_rows(params: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """Param rows keyed by name: text value and, for numbers, the numeric value.

    Raises:
        TrackingValueError: A key that is not a valid key, text holding a NUL character.
    """
    rows = {}
    for key, value in params.items():
        text, number = param_value(value)
        rows[check_key(key, "param key")] = {
            "value": check_text(text, f"value of param {key!r}"),
            "value_num": number,
        }
    return rows


def put_rows(conn: Connection, table: Any, run_id: int, rows: Mapping[str, dict[str, Any]]) -> None:
    """Replace the (run_id, key) rows of a tags/params table."""
    if not rows:
        return
    conn.execute(delete(table).where(table.c.run_id == run_id, table.c.key.in_(list(rows))))
    conn.execute(insert(table), [{"run_id": run_id, "key": k, **v} for k, v in rows.items()])


def run_dict(row: Any, *, full: bool = False) -> dict[str, Any]:
    """A ``runs`` row as a dict; ``full`` adds config, provenance, system info and notes."""
    m = row._mapping
    end = m["end_time"]
    run = {
        "run_id": m["id"],
        "name": m["name"],
        "project": m["project"],
        "experiment": m["experiment"],
        "status": m["status"],
        "start_time": m["start_time"],
        "end_time": end,
        "heartbeat_at": m["heartbeat_at"],
        "duration_s": (end - m["start_time"]) if end is not None else None,
        "config_hash": m["config_hash"],
        "git_commit": m["git_commit"],
        "host": m["host"],
    }
    if full:
        run.update(
            config=loads(m["config"]),
            provenance=loads(m["provenance"]),
            system=loads(m["system"]),
            notes=m["notes"],
            job_id=m["job_id"],
        )
    return run


def attach_details(conn: Connection, found: list[dict[str, Any]], *, metrics_too: bool) -> None:
    """Add tags, params and metric summaries to run dicts with three queries in all."""
    by_id = {run["run_id"]: run for run in found}
    for run in found:
        run.update(tags={}, params={}, metrics={})
    if not by_id:
        return
    ids = list(by_id)
    for run_id, key, value in conn.execute(
        select(run_tags.c.run_id, run_tags.c.key, run_tags.c.value).where(
            run_tags.c.run_id.in_(ids)
        )
    ):
        by_id[run_id]["tags"][key] = value
    for run_id, key, value, number in conn.execute(
        select(
            run_params.c.run_id, run_params.c.key, run_params.c.value, run_params.c.value_num
        ).where(run_params.c.run_id.in_(ids))
    ):
        by_id[run_id]["params"][key] = param_out(value, number)
    if metrics_too:
        s = metric_summaries.c
        for row in conn.execute(
            select(
                s.run_id, s.key, s.last_value, s.last_step, s.min_value, s.max_value, s["count"]
            ).where(s.run_id.in_(ids))
        ):
            by_id[row[0]]["metrics"][row[1]] = dict(zip(_SUMMARY_COLUMNS, row[2:]))


def param_out(text: str, number: float | None) -> Any:
    """A stored param back as the value it was logged as (number, bool, list or text)."""
    if number is not None:
        return (
            int(number) if number.is_integer() and "." not in text and "e" not in text else number
        )
    try:
        return loads(text) if text in ("true", "false", "null") or text[:1] in "[{" else text
    except ValueError:
        return text
