"""Queries over many runs that return tables: side-by-side comparison and store statistics.

Both read ``metric_summaries`` and ``run_params`` with a few flat queries, so their cost
grows with the number of runs compared, not with the number of values logged.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from sqlalchemy import func, select, text
from sqlalchemy.engine import Connection

from trainforge.errors import RunNotFoundError
from trainforge.tracking._limits import valid_id
from trainforge.tracking._run_records import param_out
from trainforge.tracking._schema import RUN_STATUSES, metric_summaries, run_params, runs
from trainforge.tracking._store import TrackingStore

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["compare_runs", "store_statistics"]


def compare_runs(
    store: TrackingStore, run_ids: Sequence[int], metrics: Sequence[str] | None = None
) -> pd.DataFrame:
    """One row per run (index ``run_id``): attributes, ``params.*`` and last ``metrics.*``.

    Raises:
        RunNotFoundError: Naming the first id that is not a run.
    """
    import pandas as pd

    bad = next((i for i in run_ids if not valid_id(i)), None)
    if bad is not None:
        raise RunNotFoundError(
            f"no run with id {bad!r} in {store.display_url}",
            hint="`trainforge runs list` shows the run ids",
        )
    ids = [int(i) for i in run_ids]
    wanted = set(metrics) if metrics is not None else None
    s, p = metric_summaries.c, run_params.c
    # Three flat queries; the id list is inlined as integers, which SQLAlchemy would
    # otherwise expand parameter by parameter for each statement.
    in_ids = ",".join(map(str, ids)) or "NULL"
    run_query = select(
        runs.c.id,
        runs.c.name,
        runs.c.experiment,
        runs.c.status,
        runs.c.start_time,
        runs.c.end_time,
    ).where(text(f"runs.id IN ({in_ids})"))
    param_query = select(p.run_id, p.key, p.value, p.value_num).where(
        text(f"run_params.run_id IN ({in_ids})")
    )
    metric_query = select(s.run_id, s.key, s.last_value).where(
        text(f"metric_summaries.run_id IN ({in_ids})")
    )

    def read(conn: Connection) -> tuple[list[Any], list[Any], list[Any]]:
        return (
            list(conn.execute(run_query).all()),
            list(conn.execute(param_query).all()),
            list(conn.execute(metric_query).all()),
        )

    run_rows, param_rows, metric_rows = store.read(read)
    records: dict[int, dict[str, Any]] = {}
    for run_id, name, experiment, status, start, end in run_rows:
        duration = end - start if end is not None else None
        records[run_id] = {
            "run_id": run_id,
            "name": name,
            "experiment": experiment,
            "status": status,
            "duration_s": duration,
        }
    missing = [i for i in ids if i not in records]
    if missing:
        raise RunNotFoundError(
            f"no run with id {missing[0]} in {store.display_url}",
            hint="`trainforge runs list` shows the run ids",
        )
    for run_id, key, value, number in param_rows:
        records[run_id][f"params.{key}"] = param_out(value, number)
    for run_id, key, last in metric_rows:
        if wanted is None or key in wanted:
            records[run_id][f"metrics.{key}"] = last
    for key in sorted(wanted or ()):
        for record in records.values():
            record.setdefault(f"metrics.{key}", None)
    ordered = [records[i] for i in ids]
    if not ordered:
        return pd.DataFrame(columns=["name", "experiment", "status", "duration_s"])
    return pd.DataFrame.from_records(ordered).set_index("run_id")


def store_statistics(store: TrackingStore) -> dict[str, Any]:
    """Counts by status, run durations, logged values and storage used."""

    def read(conn: Connection) -> dict[str, Any]:
        by_status: dict[str, int] = dict(
            conn.execute(select(runs.c.status, func.count()).group_by(runs.c.status)).all()
        )
        duration = runs.c.end_time - runs.c.start_time
        stats = conn.execute(
            select(func.count(), func.avg(duration), func.max(duration), func.sum(duration)).where(
                runs.c.end_time.is_not(None)
            )
        ).one()
        values, keys = conn.execute(
            select(func.coalesce(func.sum(metric_summaries.c["count"]), 0), func.count())
        ).one()
        return {
            "runs": sum(by_status.values()),
            "by_status": {s: int(by_status.get(s, 0)) for s in RUN_STATUSES},
            "finished_runs": int(stats[0]),
            "mean_duration_s": stats[1],
            "max_duration_s": stats[2],
            "total_duration_s": stats[3] or 0.0,
            "metric_values": int(values),
            "metric_series": int(keys),
        }

    out = store.read(read)
    out["storage_bytes"] = store.storage_bytes()
    return out
