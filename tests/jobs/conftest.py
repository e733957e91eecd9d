"""Job queue fixtures: every queue test runs on a SQLite file, a real PostgreSQL and a real
MariaDB.

PostgreSQL and MariaDB get one fresh database per test session (per xdist worker), dropped
at the end; each test starts from empty tables. With ``CI=true`` an unreachable server
fails the run.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from typing import Any

import pytest
import sqlalchemy as sa

from trainforge.jobs import JOB_TYPES, register_job_type

PG_ADMIN_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
MYSQL_ADMIN_URL = "mysql+pymysql://root@127.0.0.1:3306/test"
_TABLES = (
    "model_label_history, model_labels, models, artifacts, metric_summaries, metrics, "
    "run_params, run_tags, jobs, schedules, runs"
)


@pytest.fixture(scope="session")
def pg_jobs_url() -> Iterator[str]:
    """One migrated PostgreSQL database for this test session."""
    from trainforge.tracking import TrackingStore

    admin = sa.create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT", poolclass=sa.NullPool)
    name = f"tf_jobs_{os.getpid()}_{secrets.token_hex(4)}"
    try:
        with admin.connect() as conn:
            conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    except sa.exc.OperationalError as err:
        admin.dispose()
        if os.environ.get("CI") == "true":
            pytest.fail(f"PostgreSQL at 127.0.0.1:5432 is unreachable under CI: {err}")
        pytest.skip(f"PostgreSQL at 127.0.0.1:5432 is unreachable: {err}")
    url = PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
    TrackingStore(url).dispose()
    try:
        yield url
    finally:
        with admin.connect() as conn:
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.dispose()


@pytest.fixture(scope="session")
def mysql_jobs_url() -> Iterator[str]:
    """One migrated MariaDB database for this test session."""
    from trainforge.tracking import TrackingStore

    admin = sa.create_engine(MYSQL_ADMIN_URL, isolation_level="AUTOCOMMIT", poolclass=sa.NullPool)
    name = f"tf_jobs_{os.getpid()}_{secrets.token_hex(4)}"
    try:
        with admin.connect() as conn:
            conn.exec_driver_sql(f"CREATE DATABASE `{name}`")
    except sa.exc.OperationalError as err:
        admin.dispose()
        if os.environ.get("CI") == "true":
            pytest.fail(f"MariaDB at 127.0.0.1:3306 is unreachable under CI: {err}")
        pytest.skip(f"MariaDB at 127.0.0.1:3306 is unreachable: {err}")
    url = MYSQL_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
    TrackingStore(url).dispose()
    try:
        yield url
    finally:
        with admin.connect() as conn:
            conn.exec_driver_sql(f"DROP DATABASE IF EXISTS `{name}`")
        admin.dispose()


@pytest.fixture(
    params=[
        "sqlite",
        pytest.param("postgres", marks=pytest.mark.postgres),
        pytest.param("mariadb", marks=pytest.mark.mariadb),
    ]
)
def jobs_url(request: pytest.FixtureRequest, tmp_path) -> str:
    """URL of an empty, migrated store: a SQLite file, or the session's PostgreSQL or
    MariaDB database."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'jobs.db'}"
    if request.param == "mariadb":
        url = request.getfixturevalue("mysql_jobs_url")
        engine = sa.create_engine(url, poolclass=sa.NullPool)
        with engine.begin() as conn:  # DELETE: far quicker than TRUNCATE on small tables
            conn.exec_driver_sql("SET FOREIGN_KEY_CHECKS = 0")
            for table in _TABLES.split(", "):
                if conn.exec_driver_sql(f"DELETE FROM {table}").rowcount and table in _IDS:
                    conn.exec_driver_sql(f"ALTER TABLE {table} AUTO_INCREMENT = 1")
            conn.exec_driver_sql("SET FOREIGN_KEY_CHECKS = 1")
        engine.dispose()
        return url
    url = request.getfixturevalue("pg_jobs_url")
    engine = sa.create_engine(url, poolclass=sa.NullPool)
    with engine.begin() as conn:
        conn.exec_driver_sql(f"TRUNCATE {_TABLES} RESTART IDENTITY CASCADE")
    engine.dispose()
    return url


@pytest.fixture
def pg_url(pg_jobs_url: str) -> str:
    """The session's PostgreSQL database, emptied (for tests that run only there)."""
    engine = sa.create_engine(pg_jobs_url, poolclass=sa.NullPool)
    with engine.begin() as conn:
        conn.exec_driver_sql(f"TRUNCATE {_TABLES} RESTART IDENTITY CASCADE")
    engine.dispose()
    return pg_jobs_url


_IDS = ("runs", "artifacts", "models", "model_label_history", "jobs", "schedules")


class FakeClock:
    """Simulated time: starts at a fixed instant, moves only when told."""

    def __init__(self, start: float = 1_800_000_000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock() -> FakeClock:
    """A simulated clock to inject into JobManager / TrainingScheduler."""
    return FakeClock()


@pytest.fixture
def echo_type() -> Iterator[str]:
    """A registered user job type ``echo`` that returns its config (or raises on demand)."""

    def echo(config: dict[str, Any], context: Any) -> dict[str, Any]:
        if config.get("fail"):
            raise RuntimeError(f"echo was told to fail: {config['fail']}")
        return {"echo": config.get("value"), "attempt": context.attempt}

    def check(config: dict[str, Any]) -> None:
        if "value" in config and not isinstance(config["value"], int):
            raise ValueError("echo: value must be an integer")

    register_job_type("echo", echo, validate=check)
    try:
        yield "echo"
    finally:
        JOB_TYPES.unregister("echo")
