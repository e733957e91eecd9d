"""The job queue's dialect-specific SQL, in one place.

SQLite serialises writers: under the store's ``BEGIN IMMEDIATE`` one ``UPDATE ... RETURNING``
picks and takes the next job atomically. PostgreSQL (and MariaDB) let writers run side by
side: ``SELECT ... FOR UPDATE SKIP LOCKED`` takes the first row no other claimer holds, so
concurrent workers never wait for each other or take the same job; the row is then updated
by id. Everything else the queue does is portable SQLAlchemy Core.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy import Select, and_, or_, select, update
from sqlalchemy.engine import Connection, Row

from trainforge.tracking._schema import jobs

__all__ = ["claim_next", "claimable", "lock_rows"]


def claimable(now: float) -> Any:
    """The condition of a job a worker may take now."""
    return and_(
        jobs.c.status == "queued", or_(jobs.c.not_before.is_(None), jobs.c.not_before <= now)
    )


def _next_candidate(now: float) -> Select[Any]:
    # highest priority first, then oldest: the order a user expects from a queue
    return (
        select(jobs.c.id)
        .where(claimable(now))
        .order_by(jobs.c.priority.desc(), jobs.c.created_at, jobs.c.id)
        .limit(1)
    )


def lock_rows(query: Select[Any], dialect: str) -> Select[Any]:
    """``query`` with ``FOR UPDATE SKIP LOCKED`` where the database has row locks."""
    if dialect == "sqlite":  # the whole database is locked by BEGIN IMMEDIATE already
        return query
    return query.with_for_update(skip_locked=True)


def claim_next(conn: Connection, dialect: str, values: Mapping[str, Any], now: float) -> Row | None:
    """Take the next claimable job in this transaction; ``None`` when there is none."""
    if dialect == "sqlite":
        statement = (
            update(jobs)
            .where(jobs.c.id == _next_candidate(now).scalar_subquery())
            .where(jobs.c.status == "queued")
            .values(attempts=jobs.c.attempts + 1, **values)
            .returning(*jobs.c)
        )
        return conn.execute(statement).first()
    job_id = conn.execute(lock_rows(_next_candidate(now), dialect)).scalar()
    if job_id is None:
        return None
    conn.execute(
        update(jobs).where(jobs.c.id == job_id).values(attempts=jobs.c.attempts + 1, **values)
    )
    return conn.execute(select(jobs).where(jobs.c.id == job_id)).first()
