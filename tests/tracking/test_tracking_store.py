"""TrackingStore: URL resolution, migrations (old databases upgrade), unavailable stores."""

from __future__ import annotations

import sqlite3
import time

import pytest
import sqlalchemy as sa

from trainforge.errors import StoreUnavailableError
from trainforge.tracking import DATABASE_ENV_VAR, ExperimentDB, TrackingStore, resolve_database_url
from trainforge.tracking._schema import HEAD_REVISION, artifacts


@pytest.mark.parametrize(
    ("database", "env", "output_dir", "expected_tail"),
    [
        ("postgresql+psycopg://u@h/db", "sqlite:///env.db", "out", "postgresql+psycopg://u@h/db"),
        (None, "sqlite:////tmp/env.db", "out", "sqlite:////tmp/env.db"),
        (None, None, "out", "/out/trainforge.db"),
        ("", None, "runs", "/runs/trainforge.db"),
        ("plain/file.db", None, "out", "/plain/file.db"),
    ],
)
def test_resolve_database_url(database, env, output_dir, expected_tail, monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    if env is None:
        monkeypatch.delenv(DATABASE_ENV_VAR, raising=False)
    else:
        monkeypatch.setenv(DATABASE_ENV_VAR, env)
    url = resolve_database_url(database, output_dir)
    assert url.endswith(expected_tail)
    if "://" not in (database or env or ""):
        assert url == f"sqlite:///{tmp_path}{expected_tail}"


def test_open_migrates_to_head(store_url):
    store = TrackingStore(store_url)
    assert store.current_revision() == HEAD_REVISION
    assert {"runs", "metrics", "metric_summaries", "models", "jobs", "schedules"} <= set(
        sa.inspect(store.engine).get_table_names()
    )
    store.dispose()


def test_plain_path_opens_sqlite_in_wal_mode(tmp_path):
    db = ExperimentDB(str(tmp_path / "nested" / "runs.db"))
    db.log_run("a")
    with sqlite3.connect(tmp_path / "nested" / "runs.db") as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def _check_upgrade_from_first_revision(url: str) -> None:
    TrackingStore(url, revision="0001").dispose()
    engine = sa.create_engine(url, poolclass=sa.NullPool)
    with engine.begin() as conn:
        assert "jobs" not in sa.inspect(conn).get_table_names()
        conn.execute(
            sa.text(
                "INSERT INTO runs (project, experiment, name, status, start_time) "
                "VALUES ('p', 'e', 'old-run', 'completed', :t)"
            ),
            {"t": time.time()},
        )
    engine.dispose()
    db = ExperimentDB(url)  # opening applies revision 0002
    assert db.store.current_revision() == HEAD_REVISION
    run = db.list_runs()[0]
    assert run["name"] == "old-run"
    assert db.get_run(run["run_id"])["job_id"] is None
    assert "jobs" in sa.inspect(db.store.engine).get_table_names()
    _check_artifact_size_beyond_32_bits(db, run["run_id"])  # revision 0004
    db.store.dispose()


def _check_artifact_size_beyond_32_bits(db: ExperimentDB, run_id: int) -> None:
    """An artifact of 5 GiB is recorded and read back (the column was 32-bit before 0004)."""
    size = 5 * 2**30
    row = {"run_id": run_id, "path": "/ckpt/model.safetensors", "sha256": "0" * 64}
    db.store.write(
        lambda c: (
            c.execute(sa.insert(artifacts).values(**row, size_bytes=size, created_at=time.time()))
            and None
        )
    )
    assert db.get_run(run_id)["artifacts"] == [
        {**{k: row[k] for k in ("path", "sha256")}, "size_bytes": size}
    ]


def test_artifact_sizes_beyond_32_bits(store_url):
    db = ExperimentDB(store_url)
    _check_artifact_size_beyond_32_bits(db, db.log_run("big-checkpoint"))
    db.store.dispose()


def test_database_from_first_revision_upgrades_sqlite(tmp_path):
    _check_upgrade_from_first_revision(f"sqlite:///{tmp_path / 'old.db'}")


@pytest.mark.postgres
def test_database_from_first_revision_upgrades_postgres(fresh_pg_url):
    _check_upgrade_from_first_revision(fresh_pg_url)


def test_unreachable_postgres_is_a_clear_error():
    url = "postgresql+psycopg://postgres@127.0.0.1:1/nowhere"
    with pytest.raises(StoreUnavailableError, match=r"127\.0\.0\.1:1/nowhere"):
        TrackingStore(url)


@pytest.mark.parametrize(
    ("url", "message"),
    [("bogus://host/db", "no database driver"), ("postgresql+psycopg://[bad", r"\[bad")],
)
def test_invalid_url_is_a_clear_error(url, message):
    with pytest.raises(StoreUnavailableError, match=message):
        TrackingStore(url)


def test_read_only_database_file(tmp_path):
    path = tmp_path / "runs.db"
    db = ExperimentDB(str(path))
    run_id = db.log_run("kept")
    db.store.dispose()
    # Tests run as root, which ignores file modes: SQLite's read-only open mode is the
    # dependable way to get a database that refuses writes.
    read_only = ExperimentDB(f"sqlite:///file:{path}?mode=ro&uri=true")
    assert read_only.get_run(run_id)["name"] == "kept"
    with pytest.raises(StoreUnavailableError, match="read-only") as caught:
        read_only.log_run("refused")
    assert str(path) in str(caught.value)


def test_a_server_connection_dropped_while_idle_is_replaced(store_url, monkeypatch):
    # a pooled connection the server closed (restart, idle timeout) is pinged and replaced
    # before it is handed out; one in steady use is not pinged
    if store_url.startswith("sqlite"):
        pytest.skip("SQLite has no server connections")
    from trainforge.tracking import _store

    store = TrackingStore(store_url)
    pid = "SELECT pg_backend_pid()" if store.dialect == "postgresql" else "SELECT CONNECTION_ID()"
    first = store.read(lambda c: c.execute(sa.text(pid)).scalar())
    monkeypatch.setattr(_store, "_PING_AFTER_IDLE_S", 3600.0)
    assert store.read(lambda c: c.execute(sa.text(pid)).scalar()) == first  # reused, no ping
    kill = "SELECT pg_terminate_backend(:p)" if store.dialect == "postgresql" else "KILL :p"
    other = TrackingStore(store_url, pool_size=1)
    other.write(lambda c: c.execute(sa.text(kill), {"p": first}))
    other.dispose()
    monkeypatch.setattr(_store, "_PING_AFTER_IDLE_S", 0.0)
    assert store.read(lambda c: c.execute(sa.text(pid)).scalar()) != first
    store.dispose()


def test_write_one_sends_no_transaction_on_postgres(store_url):
    store = TrackingStore(store_url)

    def in_transaction(conn: sa.Connection) -> bool:
        conn.execute(sa.text("SELECT 1"))
        return conn.connection.dbapi_connection.info.transaction_status != 0  # type: ignore[union-attr]

    if store.dialect != "postgresql":
        assert store.write_one(lambda c: c.execute(sa.text("SELECT 1")).scalar()) == 1
        return
    assert store.write(in_transaction) is True
    assert store.write_one(in_transaction) is False  # autocommit: one round trip
    assert store.write(in_transaction) is True  # the pooled connection is reset after
    store.dispose()
