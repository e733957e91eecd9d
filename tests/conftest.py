"""Test-session setup: hermetic caches, no network telemetry, no stray output dirs."""

from __future__ import annotations

import os
import secrets
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

# Third-party tools (matplotlib, wandb, mlflow, comet_ml, onnxruntime) write caches under $HOME:
# point everything at a throwaway directory before any of them is imported.
_HOME = Path(tempfile.mkdtemp(prefix="trainforge-test-home-"))
for var, sub in (
    ("HOME", ""),
    ("XDG_CACHE_HOME", ".cache"),
    ("MPLCONFIGDIR", ".matplotlib"),
    ("WANDB_DIR", "wandb"),
    ("WANDB_CACHE_DIR", "wandb-cache"),
    ("WANDB_CONFIG_DIR", "wandb-config"),
):
    path = _HOME / sub
    path.mkdir(parents=True, exist_ok=True)
    os.environ[var] = str(path)
os.environ["MLFLOW_DISABLE_TELEMETRY"] = "true"
# CLI tables off a terminal take their width from COLUMNS: one wide width for every test
# (and every subprocess), whatever the terminal or another library left there.
os.environ["COLUMNS"] = "200"
os.environ["WANDB_MODE"] = "offline"
os.environ["WANDB_SILENT"] = "true"
# comet_ml: no error reports to Sentry (enabled for a random share of imports, which also
# warns SentryHubDeprecationWarning) and no look-up of the route to comet.com for the IP
# (without network it leaves an unclosed socket: ResourceWarning).
os.environ["COMET_ERROR_TRACKING_ENABLE"] = "false"
os.environ["COMET_AUTO_LOG_ENV_HOST"] = "false"
os.environ.pop("COMET_API_KEY", None)
os.environ.pop("TRAINFORGE_ENV", None)
os.environ.pop("TRAINFORGE_DB", None)
for _name in [n for n in os.environ if n.startswith("TRAINFORGE__")]:
    os.environ.pop(_name)


def _short_digits(tmp_path: Path, *extra: str) -> Any:
    from trainforge.config import load_config

    return load_config(
        template="digits",
        cli=[
            "trainer.engine=lightning",
            f"run.output_dir={tmp_path / 'outputs'}",
            f"tracking.database=sqlite:///{tmp_path / 't.db'}",
            "trainer.max_epochs=2",
            "trainer.limit_train_batches=6",
            "trainer.enable_progress_bar=false",
            "trainer.log_every_n_steps=2",
            "callbacks.monitoring.log_frequency=2",
            *extra,
        ],
        environ={},
    )


@pytest.fixture
def digits_config():
    """``digits_config(tmp_path, *overrides)``: digits under Lightning, 2 epochs of 6
    batches, logged every 2 steps, tracked in ``tmp_path/t.db``."""
    return _short_digits


# -- database servers: PostgreSQL and MariaDB, one fresh database per test session ------------
# Every suite that runs on the servers (tracking, jobs, UI) takes its databases from here.
# With CI=true an unreachable server fails the run instead of skipping.

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


@pytest.fixture(scope="session")
def server_store() -> Any:
    """``server_store_url``, for the parametrized store fixtures of each suite."""
    return server_store_url


def server_store_url(request: pytest.FixtureRequest, backend: str, sqlite_path: Path) -> str:
    """An empty, migrated store of ``backend``: a SQLite file at ``sqlite_path``, or this
    session's PostgreSQL or MariaDB database with every table emptied."""
    if backend == "sqlite":
        return f"sqlite:///{sqlite_path}"
    if backend == "mariadb":
        url = request.getfixturevalue("mysql_session_url")
        empty_mysql_tables(url)
        return url
    url = request.getfixturevalue("pg_session_url")
    empty_pg_tables(url)
    return url


def empty_pg_tables(url: str) -> None:
    """Delete every row of the store's tables and restart their ids at 1."""
    engine = sa.create_engine(url, poolclass=sa.NullPool)
    with engine.begin() as conn:
        conn.exec_driver_sql(f"TRUNCATE {_TABLES} RESTART IDENTITY CASCADE")
    engine.dispose()


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


@pytest.fixture(autouse=True)
def _this_process_stays_rank_zero() -> Iterator[None]:
    """Every test process is rank zero of its own: a Lightning strategy set up in-process
    (or imported under a test's ``LOCAL_RANK``) writes its rank into the process-wide
    ``rank_zero_only.rank``, after which every Lightning logger of every later test in the
    worker silently writes nothing."""
    yield
    module = sys.modules.get("lightning_utilities.core.rank_zero")
    if module is not None:
        module.rank_zero_only.rank = 0  # type: ignore[attr-defined]
