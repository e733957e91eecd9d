"""Job queue fixtures: every queue test runs on a SQLite file, a real PostgreSQL and a real
MariaDB.

PostgreSQL and MariaDB get one fresh database per test session (per xdist worker), dropped
at the end; each test starts from empty tables. With ``CI=true`` an unreachable server
fails the run.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from trainforge.jobs import JOB_TYPES, register_job_type


@pytest.fixture(
    params=[
        "sqlite",
        pytest.param("postgres", marks=pytest.mark.postgres),
        pytest.param("mariadb", marks=pytest.mark.mariadb),
    ]
)
def jobs_url(request: pytest.FixtureRequest, tmp_path, server_store: Any) -> str:
    """URL of an empty, migrated store: a SQLite file, or the session's PostgreSQL or
    MariaDB database."""
    return server_store(request, request.param, tmp_path / "jobs.db")


@pytest.fixture
def pg_url(request: pytest.FixtureRequest, tmp_path, server_store: Any) -> str:
    """The session's PostgreSQL database, emptied (for tests that run only there)."""
    return server_store(request, "postgres", tmp_path / "unused.db")


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
