"""Tracking fixtures: every store test runs against a SQLite file, a real PostgreSQL and a
real MariaDB.

PostgreSQL and MariaDB each get one fresh database per test session (per xdist worker),
dropped at the end; each test starts from empty tables. With ``CI=true`` an unreachable
server fails the run instead of skipping.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
import sqlalchemy as sa

PG_ADMIN_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
MYSQL_ADMIN_URL = "mysql+pymysql://root@127.0.0.1:3306/test"
_TABLES = (
    "model_label_history, model_labels, models, artifacts, metric_summaries, metrics, "
    "run_params, run_tags, jobs, schedules, runs"
)


def _admin_engine(url: str = PG_ADMIN_URL) -> sa.Engine:
    engine = sa.create_engine(url, isolation_level="AUTOCOMMIT", poolclass=sa.NullPool)
    server = "PostgreSQL at 127.0.0.1:5432" if "postgresql" in url else "MariaDB at 127.0.0.1:3306"
    try:
        with engine.connect():
            pass
    except sa.exc.OperationalError as err:
        engine.dispose()
        if os.environ.get("CI") == "true":
            pytest.fail(f"{server} is unreachable under CI: {err}")
        pytest.skip(f"{server} is unreachable: {err}")
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


@contextmanager
def fresh_mysql_database() -> Iterator[str]:
    """Create an empty, uniquely named MariaDB database; drop it afterwards."""
    engine = _admin_engine(MYSQL_ADMIN_URL)
    name = f"tf_test_{os.getpid()}_{secrets.token_hex(4)}"
    with engine.connect() as conn:
        conn.exec_driver_sql(f"CREATE DATABASE `{name}`")
    try:
        yield MYSQL_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
    finally:
        with engine.connect() as conn:
            conn.exec_driver_sql(f"DROP DATABASE IF EXISTS `{name}`")
        engine.dispose()


@pytest.fixture(scope="session")
def mysql_session_url() -> Iterator[str]:
    """One migrated MariaDB database for this test session."""
    from trainforge.tracking import TrackingStore

    with fresh_mysql_database() as url:
        TrackingStore(url).dispose()
        yield url


@pytest.fixture(scope="session")
def pg_session_url() -> Iterator[str]:
    """One migrated PostgreSQL database for this test session."""
    from trainforge.tracking import TrackingStore

    with fresh_pg_database() as url:
        TrackingStore(url).dispose()
        yield url


BACKENDS = [
    "sqlite",
    pytest.param("postgres", marks=pytest.mark.postgres),
    pytest.param("mariadb", marks=pytest.mark.mariadb),
]


@pytest.fixture(params=BACKENDS)
def store_url(request: pytest.FixtureRequest, tmp_path) -> str:
    """URL of an empty, migrated store: a SQLite file, or the session's PostgreSQL or
    MariaDB database."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'tracking.db'}"
    if request.param == "mariadb":
        url = request.getfixturevalue("mysql_session_url")
        empty_mysql_tables(url)
        return url
    url = request.getfixturevalue("pg_session_url")
    engine = sa.create_engine(url, poolclass=sa.NullPool)
    with engine.begin() as conn:
        conn.exec_driver_sql(f"TRUNCATE {_TABLES} RESTART IDENTITY CASCADE")
    engine.dispose()
    return url


def empty_mysql_tables(url: str) -> None:
    """Delete every row of the store's tables and restart their ids at 1 (DELETE is far
    quicker than TRUNCATE on small InnoDB tables)."""
    engine = sa.create_engine(url, poolclass=sa.NullPool)
    with engine.begin() as conn:
        conn.exec_driver_sql("SET FOREIGN_KEY_CHECKS = 0")
        for table in _TABLES.split(", "):
            deleted = conn.exec_driver_sql(f"DELETE FROM {table}").rowcount
            if deleted and table in _IDENTITY_TABLES:  # an ALTER costs ~40 ms: only if used
                conn.exec_driver_sql(f"ALTER TABLE {table} AUTO_INCREMENT = 1")
        conn.exec_driver_sql("SET FOREIGN_KEY_CHECKS = 1")
    engine.dispose()


_IDENTITY_TABLES = ("runs", "artifacts", "models", "model_label_history", "jobs", "schedules")


@pytest.fixture
def fresh_pg_url() -> Iterator[str]:
    """An empty PostgreSQL database (no schema yet) for this test only."""
    with fresh_pg_database() as url:
        yield url


@pytest.fixture
def fresh_mysql_url() -> Iterator[str]:
    """An empty MariaDB database (no schema yet) for this test only."""
    with fresh_mysql_database() as url:
        yield url


@pytest.fixture(scope="session")
def pg_databases():
    """The ``fresh_pg_database`` context manager, for fixtures of wider scope."""
    return fresh_pg_database


@pytest.fixture(scope="session")
def mysql_databases():
    """The ``fresh_mysql_database`` context manager, for fixtures of wider scope."""
    return fresh_mysql_database
