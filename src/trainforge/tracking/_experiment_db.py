"""ExperimentDB: create runs, write single values, and query many runs at once.

Queries that rank or compare runs read ``metric_summaries`` (one row per run and key), so
their cost grows with the number of runs, not with the number of logged values. Every value
is checked against the limits both backends share before it is written (see ``_limits``),
and every user value in a query is a bound parameter.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from sqlalchemy import insert, select, update
from sqlalchemy.engine import Connection

from trainforge.errors import RunNotFoundError, TrackingError, TrackingValueError, did_you_mean
from trainforge.records import ConfigSource, flatten
from trainforge.tracking._dialect import inserted_id
from trainforge.tracking._filter import STATUS_ALIASES, compile_filter, order_clause
from trainforge.tracking._limits import (
    check_int,
    check_key,
    check_limit,
    check_name,
    check_text,
    valid_id,
)
from trainforge.tracking._metric_writes import next_steps, write_metric_rows
from trainforge.tracking._run_queries import compare_runs, store_statistics
from trainforge.tracking._run_records import attach_details, param_rows, put_rows, run_dict
from trainforge.tracking._schema import (
    RUN_STATUSES,
    artifacts,
    metric_summaries,
    metrics,
    run_params,
    run_tags,
    runs,
)
from trainforge.tracking._store import TrackingStore
from trainforge.tracking._values import config_parts, dumps, tag_items

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["ExperimentDB"]


class ExperimentDB:
    """Runs, metrics and multi-run queries over one tracking store.

    Args:
        database: A :class:`TrackingStore`, a SQLAlchemy URL, a plain file path, or ``None``
            for the default (``$TRAINFORGE_DB``, else ``outputs/trainforge.db``).

    Examples:
        >>> db = ExperimentDB("runs.db")
        >>> run_id = db.log_run("baseline", {"optim": {"lr": 3e-4}})
        >>> db.log_metric(run_id, "val/loss", 0.38, epoch=5)
        >>> [run["params"] for run in db.search_runs("metrics.val/loss < 0.4")]
        [{'optim.lr': 0.0003}]
    """

    def __init__(self, database: TrackingStore | str | None = None) -> None:
        self.store = database if isinstance(database, TrackingStore) else TrackingStore(database)

    def __repr__(self) -> str:
        return f"ExperimentDB({self.store.display_url!r})"

    def close(self) -> None:
        """Close the store's pooled connections."""
        self.store.dispose()

    # -- writes ------------------------------------------------------------------------

    def log_run(
        self,
        name: str,
        config: ConfigSource | None = None,
        *,
        experiment: str = "default",
        project: str = "default",
        tags: Mapping[str, Any] | Iterable[str] | None = None,
        notes: str | None = None,
        git_commit: str | None = None,
        host: str | None = None,
        system: Mapping[str, Any] | None = None,
        job_id: int | None = None,
    ) -> int:
        """Create a run in status ``running`` and return its id.

        Raises:
            TrackingValueError: A name longer than 200 characters, text with a NUL
                character, a tag or param key that is not a valid key.
        """
        for value, what in ((name, "run name"), (experiment, "experiment"), (project, "project")):
            check_name(value, what)
        for optional, what in ((host, "host"), (git_commit, "git commit"), (notes, "notes")):
            if optional is not None:
                check_name(optional, what, limit=64 if what == "git commit" else 1 << 30)
        tag_rows = _tag_rows(tags)
        data, config_hash, provenance = config_parts(config)
        now = time.time()
        row = {
            "project": project,
            "experiment": experiment,
            "name": name,
            "status": "running",
            "config": dumps(data),
            "config_hash": config_hash,
            "provenance": dumps(provenance),
            "system": dumps(dict(system) if system else None),
            "git_commit": git_commit,
            "host": host,
            "notes": notes,
            "start_time": now,
            "heartbeat_at": now,
            "job_id": job_id,
        }

        def write(conn: Connection) -> int:
            run_id = inserted_id(conn.execute(insert(runs).values(row)))
            put_rows(conn, run_tags, run_id, tag_rows)
            if data:
                put_rows(conn, run_params, run_id, param_rows(flatten(data)))
            return run_id

        return self.store.write(write)

    def log_metric(
        self, run_id: int, key: str, value: float, step: int | None = None, epoch: int | None = None
    ) -> None:
        """Append one value (step defaults to the key's next step).

        Raises:
            TrackingValueError: As :meth:`ExperimentTracker.log_metric`.
        """
        check_key(key)
        step = None if step is None else check_int(step, "step", key)
        epoch = None if epoch is None else check_int(epoch, "epoch", key)
        try:
            value = float(value)
        except (TypeError, ValueError):
            raise TrackingValueError(
                f"value of metric {key!r} must be a number, got {type(value).__name__}"
            ) from None

        def write(conn: Connection) -> None:
            self._require_run(conn, run_id)
            at = step if step is not None else next_steps(conn, run_id, {key})[key]
            write_metric_rows(conn, run_id, [(key, value, at, epoch, time.time())])

        self.store.write(write)

    def log_params(self, run_id: int, params: Mapping[str, Any]) -> None:
        """Record params (nested mappings flattened to dotted keys), replacing old values."""
        rows = param_rows(flatten(params))

        def write(conn: Connection) -> None:
            self._require_run(conn, run_id)
            put_rows(conn, run_params, run_id, rows)

        self.store.write(write)

    def set_tags(self, run_id: int, tags: Mapping[str, Any] | Iterable[str]) -> None:
        """Set tags on a run; a list of names sets each to ``"true"``."""
        rows = _tag_rows(tags)

        def write(conn: Connection) -> None:
            self._require_run(conn, run_id)
            put_rows(conn, run_tags, run_id, rows)

        self.store.write(write)

    def update_run_status(self, run_id: int, status: str) -> None:
        """Set a run's status; a final status also records the end time."""
        if status not in RUN_STATUSES:
            guess = did_you_mean(status, RUN_STATUSES)
            raise TrackingError(
                f"unknown run status {status!r}; use one of {', '.join(RUN_STATUSES)}",
                hint=f"did you mean {guess!r}?" if guess else None,
            )
        now = time.time()
        values: dict[str, Any] = {"status": status, "heartbeat_at": now}
        values["end_time"] = None if status == "running" else now

        def write(conn: Connection) -> None:
            self._require_run(conn, run_id)
            conn.execute(update(runs).where(runs.c.id == run_id).values(values))

        self.store.write(write)

    def heartbeat(self, run_id: int) -> None:
        """Record that a run is alive now."""
        self.store.write(
            lambda c: c.execute(
                update(runs).where(runs.c.id == run_id).values(heartbeat_at=time.time())
            )
        )

    def mark_stale_runs(self, timeout_s: float = 300.0) -> list[int]:
        """Mark ``running`` runs whose heartbeat is older than ``timeout_s`` as ``stale``."""
        cutoff = time.time() - timeout_s
        old = (runs.c.status == "running") & (runs.c.heartbeat_at < cutoff)

        def write(conn: Connection) -> list[int]:
            ids = list(conn.execute(select(runs.c.id).where(old)).scalars())
            if ids:
                conn.execute(update(runs).where(runs.c.id.in_(ids)).values(status="stale"))
            return ids

        return self.store.write(write)

    # -- single run --------------------------------------------------------------------

    def get_run(self, run_id: int) -> dict[str, Any]:
        """Everything about one run: attributes, config, tags, params, metrics, artifacts."""

        def read(conn: Connection) -> dict[str, Any]:
            row = self._require_run(conn, run_id)
            run = run_dict(row, full=True)
            attach_details(conn, [run], metrics_too=True)
            run["artifacts"] = [
                dict(a._mapping)
                for a in conn.execute(
                    select(artifacts.c.path, artifacts.c.sha256, artifacts.c.size_bytes)
                    .where(artifacts.c.run_id == run_id)
                    .order_by(artifacts.c.id)
                )
            ]
            return run

        return self.store.read(read)

    def get_metric_history(self, run_id: int, key: str) -> pd.DataFrame:
        """All values of one metric of a run, by step: columns step, epoch, value, timestamp."""
        import pandas as pd

        def read(conn: Connection) -> list[Any]:
            self._require_run(conn, run_id)
            query = (
                select(metrics.c.step, metrics.c.epoch, metrics.c.value, metrics.c.timestamp)
                .where(metrics.c.run_id == run_id, metrics.c.key == key)
                .order_by(metrics.c.step, metrics.c.timestamp)
            )
            return list(conn.execute(query).all())

        frame = pd.DataFrame(self.store.read(read), columns=["step", "epoch", "value", "timestamp"])
        frame["value"] = frame["value"].astype("float64")  # NaN is stored as NULL: NaN again
        return frame

    def metric_keys(self, run_id: int) -> list[str]:
        """The metric names a run has logged."""
        if not valid_id(run_id):
            return []
        query = select(metric_summaries.c.key).where(metric_summaries.c.run_id == int(run_id))
        return sorted(self.store.read(lambda c: list(c.execute(query).scalars())))

    # -- many runs ---------------------------------------------------------------------

    def search_runs(
        self,
        filter: str | None = None,
        order_by: str | Sequence[str] | None = None,
        limit: int | None = 100,
        *,
        project: str | None = None,
        experiment: str | None = None,
    ) -> list[dict[str, Any]]:
        """Runs matching a filter (see ``docs/tracking.md``), with tags, params, last metrics.

        Raises:
            FilterSyntaxError: The filter or an ``order_by`` term does not parse.
            TrackingValueError: ``limit`` is negative or not an integer.
        """
        limit = check_limit(limit)
        where = compile_filter(filter)
        orders = [order_by] if isinstance(order_by, str) else list(order_by or [])
        terms = [order_clause(spec) for spec in orders]
        query = select(runs).where(where)
        if project is not None:
            query = query.where(runs.c.project == project)
        if experiment is not None:
            query = query.where(runs.c.experiment == experiment)
        query = query.order_by(*terms, runs.c.start_time.desc(), runs.c.id.desc())
        if limit is not None:
            query = query.limit(limit)

        def read(conn: Connection) -> list[dict[str, Any]]:
            found = [run_dict(row) for row in conn.execute(query)]
            attach_details(conn, found, metrics_too=True)
            return found

        return self.store.read(read)

    def list_runs(
        self,
        *,
        project: str | None = None,
        experiment: str | None = None,
        status: str | None = None,
        limit: int | None = 100,
    ) -> list[dict[str, Any]]:
        """Newest runs first, optionally of one project, experiment or status.

        ``status`` is one of the run statuses (or MLflow's name for one, ``FINISHED``).

        Raises:
            TrackingValueError: An unknown status (with a did-you-mean), a negative limit.
        """
        runs_found = self.search_runs(
            None, limit=None if status else limit, project=project, experiment=experiment
        )
        if status is None:
            return runs_found
        wanted = _status(status)
        matching = [r for r in runs_found if r["status"] == wanted]
        return matching if limit is None else matching[: check_limit(limit)]

    def best_run(
        self,
        metric: str,
        mode: str = "min",
        *,
        project: str | None = None,
        experiment: str | None = None,
    ) -> dict[str, Any] | None:
        """The run with the best value ever logged for ``metric`` (min or max), or None."""
        if mode not in ("min", "max"):
            raise TrackingError(f"best_run mode must be 'min' or 'max', got {mode!r}")
        column = metric_summaries.c.min_value if mode == "min" else metric_summaries.c.max_value
        query = (
            select(metric_summaries.c.run_id, column)
            .join(runs, runs.c.id == metric_summaries.c.run_id)
            .where(metric_summaries.c.key == metric, column.is_not(None))
            .order_by(column.asc() if mode == "min" else column.desc(), runs.c.id)
            .limit(1)
        )
        if project is not None:
            query = query.where(runs.c.project == project)
        if experiment is not None:
            query = query.where(runs.c.experiment == experiment)
        found = self.store.read(lambda c: c.execute(query).first())
        if found is None:
            return None
        run = self.get_run(found[0])
        run["best_value"] = found[1]
        return run

    def compare_runs(
        self, run_ids: Sequence[int], metrics: Sequence[str] | None = None
    ) -> pd.DataFrame:
        """One row per run (index ``run_id``): attributes, ``params.*`` and last ``metrics.*``.

        Raises:
            RunNotFoundError: Naming the first id that is not a run.
        """
        return compare_runs(self.store, run_ids, metrics)

    def statistics(self) -> dict[str, Any]:
        """Counts by status, run durations, logged values and storage used."""
        return store_statistics(self.store)

    def _require_run(self, conn: Connection, run_id: int) -> Any:
        row = None
        if valid_id(run_id):  # an id no row can have is not sent (SQLite overflows on it)
            row = conn.execute(select(runs).where(runs.c.id == int(run_id))).first()
        if row is None:
            raise RunNotFoundError(
                f"no run with id {run_id!r} in {self.store.display_url}",
                hint="`trainforge runs list` shows the run ids",
            )
        return row


def _tag_rows(tags: Mapping[str, Any] | Iterable[str] | None) -> dict[str, dict[str, Any]]:
    """Tag rows keyed by tag name, each key and value checked."""
    return {
        check_key(k, "tag key"): {"value": check_text(v, f"value of tag {k!r}")}
        for k, v in tag_items(tags).items()
    }


def _status(status: str) -> str:
    """A run status given as ours or as MLflow's name, else TrackingValueError."""
    if status in RUN_STATUSES:
        return status
    if status.upper() in STATUS_ALIASES:
        return STATUS_ALIASES[status.upper()]
    guess = did_you_mean(status.lower(), RUN_STATUSES)
    raise TrackingValueError(
        f"unknown run status {status!r}; use one of {', '.join(RUN_STATUSES)}"
        + (f" (did you mean {guess!r}?)" if guess else "")
    )
