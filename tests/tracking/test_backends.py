"""What the three backends store the same way (edge values, text keys, long text), and what
MySQL/MariaDB needs of its own: its URL forms, its schema, its locks and its old servers."""

from __future__ import annotations

import math
import sys
import threading
import time
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.dialects.mysql import pymysql as mysql_pymysql

from trainforge.errors import StoreUnavailableError
from trainforge.tracking import ExperimentDB, ExperimentTracker, TrackingStore
from trainforge.tracking._dialect import check_server, claim_rows
from trainforge.tracking._schema import HEAD_REVISION, jobs

from .conftest import BACKENDS
from .test_tracking_store import _check_upgrade_from_first_revision

DBL_MAX = sys.float_info.max


def _raw_values(url: str, run_id: int, key: str) -> list[Any]:
    """The ``value`` column of a run's metric rows as the database itself holds them."""
    engine = sa.create_engine(url, poolclass=sa.NullPool)
    with engine.connect() as conn:
        table = sa.table("metrics", sa.column("run_id"), sa.column("key"), sa.column("value"))
        query = sa.select(table.c.value).where(table.c.run_id == run_id, table.c.key == key)
        rows = conn.execute(query.order_by(sa.column("step"))).all()  # untyped: raw values
    engine.dispose()
    return [row[0] for row in rows]


def test_nan_infinity_and_the_largest_double_read_back_the_same_on_every_backend(store_url):
    logged = [1.5, math.nan, math.inf, -math.inf, DBL_MAX, -DBL_MAX, 5e-324, -0.25]
    tracker = ExperimentTracker("edges", database=store_url, handle_sigterm=False)
    for step, value in enumerate(logged):
        tracker.log_metric("x", value, step=step)
    tracker.log_params({"big": DBL_MAX, "inf": math.inf, "nan": math.nan})
    tracker.finish()
    db = ExperimentDB(store_url)
    history = db.get_metric_history(tracker.run_id, "x")["value"].tolist()
    assert math.isnan(history[1])
    expected = [1.5, math.inf, -math.inf, math.inf, -math.inf, 5e-324, -0.25]
    assert history[:1] + history[2:] == expected  # the largest double is infinity
    summary = db.get_run(tracker.run_id)["metrics"]["x"]
    assert (summary["min"], summary["max"], summary["last"], summary["count"]) == (
        -math.inf,
        math.inf,
        -0.25,
        8,
    )
    # filters see the same: NaN matches nothing, infinity is above every number
    found = db.search_runs("metrics.x < 0 and params.big > 1e308 and params.inf = 1e400")
    assert [r["run_id"] for r in found] == [tracker.run_id]
    assert db.search_runs("params.nan >= 0 or params.nan < 0") == []
    # and what the database itself holds: NULL for NaN everywhere; MySQL's DOUBLE has no
    # infinity, so it holds the largest double in its place
    raw = _raw_values(store_url, tracker.run_id, "x")
    assert raw[1] is None
    big = DBL_MAX if db.store.dialect in ("mysql", "mariadb") else math.inf
    assert [float(v) for v in raw[2:6]] == [big, -big, big, -big]
    db.close()


def test_keys_differing_by_case_or_trailing_space_stay_apart_on_every_backend(store_url):
    tracker = ExperimentTracker("keys", database=store_url, handle_sigterm=False)
    for i, key in enumerate(["loss", "Loss", "loss ", "LOSS", "ß", "ss", "é", "e"]):
        tracker.log_metric(key, float(i), step=0)
    tracker.set_tags({"team": "a", "Team": "b", "team ": "c"})
    tracker.finish()
    db = ExperimentDB(store_url)
    run = db.get_run(tracker.run_id)
    assert {k: v["last"] for k, v in run["metrics"].items()} == {
        "loss": 0.0,
        "Loss": 1.0,
        "loss ": 2.0,
        "LOSS": 3.0,
        "ß": 4.0,
        "ss": 5.0,
        "é": 6.0,
        "e": 7.0,
    }
    assert run["tags"] == {"team": "a", "Team": "b", "team ": "c"}
    assert [r["run_id"] for r in db.search_runs("tags.team = 'a'")] == [tracker.run_id]
    assert db.search_runs("tags.team = 'A'") == []
    assert db.search_runs("tags.team = 'a '") == []
    db.close()


def test_long_tag_values_sort_on_more_than_their_first_kilobyte_on_every_backend(store_url):
    db = ExperimentDB(store_url)
    for name, last in (("b", "b"), ("a", "a"), ("c", "c")):
        db.log_run(name, tags={"long": "x" * 3000 + last})
    found = db.search_runs(order_by="tags.long desc")
    assert [r["name"] for r in found] == ["c", "b", "a"]
    db.close()


def test_long_text_and_four_byte_characters_round_trip_on_every_backend(store_url):
    big = {"layers": [{"name": f"block-{i}", "note": "x" * 90} for i in range(1500)]}
    db = ExperimentDB(store_url)
    run_id = db.log_run("🚀 run", {"model": big}, tags={"emoji": "🙂 ok"}, notes="📝" * 20_000)
    run = db.get_run(run_id)
    assert run["name"] == "🚀 run" and run["tags"] == {"emoji": "🙂 ok"}
    assert run["notes"] == "📝" * 20_000  # 80,000 bytes: more than a MySQL TEXT holds
    assert run["config"]["model"] == big
    assert [r["run_id"] for r in db.search_runs("tags.emoji LIKE '🙂%'")] == [run_id]
    db.close()


# ------------------------------------------------------------------ MySQL / MariaDB only
@pytest.mark.mariadb
def test_database_from_first_revision_upgrades_mariadb(fresh_mysql_url):
    _check_upgrade_from_first_revision(fresh_mysql_url)


@pytest.mark.mariadb
def test_mariadb_url_form_and_the_schema_it_gets(fresh_mysql_url):
    url = fresh_mysql_url.replace("mysql+pymysql://", "mariadb+pymysql://")
    db = ExperimentDB(url)
    assert db.store.dialect == "mariadb" and db.store.current_revision() == HEAD_REVISION
    run_id = db.log_run("r", {"lr": 0.1})
    db.log_metric(run_id, "loss", 0.5)
    assert db.get_run(run_id)["metrics"]["loss"]["last"] == 0.5
    with db.store.engine.connect() as conn:
        tables = dict(
            conn.exec_driver_sql(
                "SELECT table_name, CONCAT(engine, ' ', table_collation) FROM "
                "information_schema.tables WHERE table_schema = DATABASE() AND table_name <> "
                "'trainforge_alembic_version'"
            ).all()
        )
        columns = dict(
            conn.exec_driver_sql(
                "SELECT CONCAT(table_name, '.', column_name), data_type FROM "
                "information_schema.columns WHERE table_schema = DATABASE()"
            ).all()
        )
    assert len(tables) == 11 and set(tables.values()) == {"InnoDB utf8mb4_nopad_bin"}
    assert columns["metrics.value"] == columns["runs.start_time"] == "double"
    assert columns["runs.config"] == columns["run_tags.value"] == "longtext"
    assert db.store.storage_bytes() > 0
    db.close()


@pytest.mark.mariadb
def test_processes_opening_a_new_mariadb_database_at_once_migrate_it_once(fresh_mysql_url):
    errors: list[BaseException] = []

    def open_store() -> None:
        try:
            TrackingStore(fresh_mysql_url).dispose()
        except BaseException as error:  # reported below, with the thread's error
            errors.append(error)

    threads = [threading.Thread(target=open_store) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert TrackingStore(fresh_mysql_url).current_revision() == HEAD_REVISION


def test_unreachable_mysql_is_a_clear_error():
    with pytest.raises(StoreUnavailableError, match=r"127\.0\.0\.1:1/nowhere.*unavailable"):
        TrackingStore("mysql+pymysql://root@127.0.0.1:1/nowhere")


@pytest.mark.parametrize(
    ("mariadb", "version", "message"),
    [
        (True, (10, 5, 27), "runs MariaDB 10.5.27; trainforge needs MariaDB 10.6 or newer"),
        (False, (5, 7, 44), "runs MySQL 5.7.44; trainforge needs MySQL 8.0 or newer"),
        (True, (10, 6, 0), None),
        (False, (8, 0, 36), None),
    ],
)
def test_servers_without_skip_locked_are_refused(mariadb, version, message):
    dialect = mysql_pymysql.dialect()
    dialect.server_version_info = version
    dialect.is_mariadb = mariadb
    if message is None:
        check_server(dialect, "mysql+pymysql://db")
        return
    with pytest.raises(StoreUnavailableError, match=message):
        check_server(dialect, "mysql+pymysql://db")


@pytest.mark.mariadb
def test_a_missing_mariadb_database_says_to_create_it():
    with pytest.raises(StoreUnavailableError, match="does not exist on its server") as caught:
        TrackingStore("mysql+pymysql://root@127.0.0.1:3306/tf_no_such_database")
    assert "CREATE DATABASE" in (caught.value.hint or "")


@pytest.mark.parametrize("store_url", BACKENDS[1:], indirect=True)
def test_claims_skip_the_rows_another_transaction_holds(store_url):
    store = TrackingStore(store_url)
    now = time.time()
    queued = {"job_type": "train", "priority": 0, "status": "queued", "attempts": 0}
    store.write(
        lambda c: c.execute(
            sa.insert(jobs),
            [{**queued, "max_attempts": 1, "created_at": now + i} for i in range(3)],
        )
    )
    # in the order of the index ix_jobs_claim (status, priority, created_at): InnoDB then
    # locks only the rows it returns, where a sort would have locked every queued row
    oldest = sa.select(jobs.c.id).where(jobs.c.status == "queued")
    oldest = oldest.order_by(jobs.c.priority, jobs.c.created_at).limit(1)
    claim = claim_rows(oldest, store.engine.dialect)
    with store.engine.connect() as first, store.engine.connect() as second:
        first.begin()
        second.begin()
        held = first.execute(claim).scalar_one()
        assert second.execute(claim).scalar_one() == held + 1  # not blocked: skipped
        first.rollback()
        second.rollback()
    store.dispose()
