"""The job queue's dialect-specific SQL, in one place.

SQLite serialises writers: under the store's ``BEGIN IMMEDIATE`` one ``UPDATE ... RETURNING``
picks and takes the next job atomically. PostgreSQL and MySQL/MariaDB let writers run side
by side: ``SELECT ... FOR UPDATE SKIP LOCKED`` takes the first row no other claimer holds,
so concurrent workers never wait for each other or take the same job. On PostgreSQL that
select is the subquery of the same ``UPDATE ... RETURNING``, sent on its own, without
``BEGIN`` / ``COMMIT`` (one round trip per claim). InnoDB locks
every row a locking read examines *before* it sorts, so on MySQL the sorted query would
lock the whole queue (and a second claimer would find nothing): there the next candidates
are read without locks, in queue order, locked one at a time by primary key, updated by id
and read back. Row locking itself is spelled in ``trainforge.tracking._dialect``
(``claim_rows``); everything else the queue does is portable SQLAlchemy Core.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, cast

from sqlalchemy import Select, Update, and_, bindparam, or_, select, update
from sqlalchemy.engine import Connection, Dialect, Row
from sqlalchemy.sql.elements import ClauseElement

from trainforge.tracking._dialect import MYSQL_DIALECTS, claim_rows
from trainforge.tracking._schema import jobs

__all__ = ["claim_next", "claimable", "job_exists", "lock_rows", "transition"]


def claimable(now: Any) -> Any:
    """The condition of a job a worker may take now."""
    return and_(
        jobs.c.status == "queued", or_(jobs.c.not_before.is_(None), jobs.c.not_before <= now)
    )


_MYSQL_CANDIDATES = 16  # ids read per round on MySQL; more claimers than this page on


def _next_candidate(now: Any, count: int = 1) -> Select[Any]:
    # highest priority first, then oldest: the order a user expects from a queue
    return (
        select(jobs.c.id)
        .where(claimable(now))
        .order_by(jobs.c.priority.desc(), jobs.c.created_at, jobs.c.id)
        .limit(count)
    )


def lock_rows(query: Select[Any], dialect: Dialect) -> Select[Any]:
    """``query`` with ``FOR UPDATE SKIP LOCKED`` where the database has row locks."""
    return cast("Select[Any]", claim_rows(query, dialect))


def _lock_next_mysql(conn: Connection, now: float) -> int | None:
    """The id of the first claimable job no one else holds, locked; ``None`` when none."""
    tried: list[int] = []
    while True:
        # the next candidates not tried yet, read afresh: an offset into a queue that
        # other claimers are emptying would skip jobs still queued (and break the order)
        page = _next_candidate(now, _MYSQL_CANDIDATES)
        if tried:
            page = page.where(jobs.c.id.not_in(tried))
        ids = list(conn.execute(page).scalars())
        for job_id in ids:
            mine = select(jobs.c.id).where(jobs.c.id == job_id, claimable(now))
            if conn.execute(lock_rows(mine, conn.dialect)).scalar() is not None:
                return int(job_id)
        if len(ids) < _MYSQL_CANDIDATES:
            return None
        tried.extend(int(i) for i in ids)


_CLAIMS: dict[tuple[str, tuple[str, ...]], Update] = {}


def _claim_statement(dialect: Dialect, keys: tuple[str, ...]) -> Update:
    """The one-statement claim, built once per dialect: values are bound at execution.

    Built once, its cache key and compiled form are reused on every claim instead of
    being worked out again (most of a claim's client time when statements are rebuilt).
    """
    found = _CLAIMS.get((dialect.name, keys))
    if found is None:
        candidate = _next_candidate(bindparam("claim_now"))
        found = (
            update(jobs)
            .where(jobs.c.id == lock_rows(candidate, dialect).scalar_subquery())
            .where(jobs.c.status == "queued")
            .values(attempts=jobs.c.attempts + 1, **{k: bindparam(f"set_{k}") for k in keys})
            .returning(*jobs.c)
        )
        _CLAIMS[(dialect.name, keys)] = found
    return found


def claim_next(conn: Connection, values: Mapping[str, Any], now: float) -> Row | None:
    """Take the next claimable job; ``None`` when there is none.

    On SQLite and PostgreSQL this is one statement (one round trip; see
    :meth:`~trainforge.tracking.TrackingStore.write_one`), elsewhere a few in the
    caller's transaction.
    """
    dialect = conn.dialect
    mysql = dialect.name in MYSQL_DIALECTS
    if dialect.update_returning and not mysql:
        statement = _claim_statement(dialect, tuple(sorted(values)))
        params = {"claim_now": now, **{f"set_{k}": v for k, v in values.items()}}
        return conn.execute(statement, params).first()
    if mysql:  # a sorted locking read would lock the whole queue; see the module's notes
        job_id = _lock_next_mysql(conn, now)
    else:
        job_id = conn.execute(lock_rows(_next_candidate(now), dialect)).scalar()
    if job_id is None:
        return None
    conn.execute(
        update(jobs).where(jobs.c.id == job_id).values(attempts=jobs.c.attempts + 1, **values)
    )
    return conn.execute(select(jobs).where(jobs.c.id == job_id)).first()


_TRANSITIONS: dict[tuple[bool, tuple[str, ...]], Update] = {}


def transition(
    conn: Connection,
    job_id: int,
    values: Mapping[str, Any],
    *,
    status: str,
    worker_id: str | None = None,
) -> bool:
    """Update one job in ``status`` (held by ``worker_id`` when given); True if it was.

    One ``UPDATE``; with plain values, a statement built once per set of columns.
    """
    if any(isinstance(v, ClauseElement) for v in values.values()):  # rare: built each time
        statement = update(jobs).where(jobs.c.id == job_id, jobs.c.status == status)
        if worker_id is not None:
            statement = statement.where(jobs.c.worker_id == worker_id)
        return conn.execute(statement.values(**values)).rowcount == 1
    params = {"t_id": job_id, "t_status": status, **{f"set_{k}": v for k, v in values.items()}}
    if worker_id is not None:
        params["t_worker"] = worker_id
    statement = _transition_statement(worker_id is not None, tuple(sorted(values)))
    return conn.execute(statement, params).rowcount == 1


def _transition_statement(by_worker: bool, keys: tuple[str, ...]) -> Update:
    found = _TRANSITIONS.get((by_worker, keys))
    if found is None:
        where = [jobs.c.id == bindparam("t_id"), jobs.c.status == bindparam("t_status")]
        if by_worker:
            where.append(jobs.c.worker_id == bindparam("t_worker"))
        found = update(jobs).where(*where).values(**{k: bindparam(f"set_{k}") for k in keys})
        _TRANSITIONS[(by_worker, keys)] = found
    return found


def job_exists(
    conn: Connection, dedupe_key: str | None, schedule_id: int | None, scheduled_for: float | None
) -> bool:
    """Whether a job with this dedupe key, or for this schedule slot, exists already."""
    if dedupe_key is not None:
        query = select(jobs.c.id).where(jobs.c.dedupe_key == dedupe_key)
    else:
        query = select(jobs.c.id).where(
            jobs.c.schedule_id == schedule_id, jobs.c.scheduled_for == scheduled_for
        )
    return conn.execute(query).first() is not None
