"""Tracking fixtures: every store test runs against a SQLite file and a real PostgreSQL.

PostgreSQL gets one fresh database per test session (per xdist worker), dropped at the end;
each test starts from empty tables. With ``CI=true`` an unreachable server fails the run
instead of skipping.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
import sqlalchemy as sa

PG_ADMIN_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
_TABLES = (
    "model_label_history, model_labels, models, artifacts, metric_summaries, metrics, "
    "run_params, run_tags, jobs, schedules, runs"
)


def _admin_engine() -> sa.Engine:
    engine = sa.create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT", poolclass=sa.NullPool)
    try:
        with engine.connect():
            pass
    except sa.exc.OperationalError as err:
        engine.dispose()
        if os.environ.get("CI") == "true":
            pytest.fail(f"PostgreSQL at 127.0.0.1:5432 is unreachable under CI: {err}")
        pytest.skip(f"PostgreSQL at 127.0.0.1:5432 is unreachable: {err}")
    return engine


@contextmanager
def fresh_pg_database() -> Iterator[str]:
    """Create an empty, uniquely named PostgreSQL database; drop it afterwards."""
    engine = _admin_engine()
    name = f"tf_test_{os.getpid()}_{secrets.token_hex(4)}"
    with engine.connect() as conn:
        conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    try:
        yield PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
    finally:
        with engine.connect() as conn:
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        engine.dispose()


@pytest.fixture(scope="session")
def pg_session_url() -> Iterator[str]:
    """One migrated PostgreSQL database for this test session."""
    from trainforge.tracking import TrackingStore

    with fresh_pg_database() as url:
        TrackingStore(url).dispose()
        yield url


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def store_url(request: pytest.FixtureRequest, tmp_path) -> str:
    """URL of an empty, migrated store: a SQLite file, or the session's PostgreSQL database."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'tracking.db'}"
    url = request.getfixturevalue("pg_session_url")
    engine = sa.create_engine(url, poolclass=sa.NullPool)
    with engine.begin() as conn:
        conn.exec_driver_sql(f"TRUNCATE {_TABLES} RESTART IDENTITY CASCADE")
    engine.dispose()
    return url


@pytest.fixture
def fresh_pg_url() -> Iterator[str]:
    """An empty PostgreSQL database (no schema yet) for this test only."""
    with fresh_pg_database() as url:
        yield url


@pytest.fixture(scope="session")
def pg_databases():
    """The ``fresh_pg_database`` context manager, for fixtures of wider scope."""
    return fresh_pg_database
