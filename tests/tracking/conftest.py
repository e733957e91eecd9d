"""Tracking fixtures: every store test runs against a SQLite file, a real PostgreSQL and a
real MariaDB (the databases come from the suite's ``conftest.py``)."""

from __future__ import annotations

from typing import Any

import pytest

BACKENDS = [
    "sqlite",
    pytest.param("postgres", marks=pytest.mark.postgres),
    pytest.param("mariadb", marks=pytest.mark.mariadb),
]


@pytest.fixture(params=BACKENDS)
def store_url(request: pytest.FixtureRequest, tmp_path, server_store: Any) -> str:
    """URL of an empty, migrated store: a SQLite file, or the session's PostgreSQL or
    MariaDB database."""
    return server_store(request, request.param, tmp_path / "tracking.db")
