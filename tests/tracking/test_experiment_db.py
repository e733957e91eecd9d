"""ExperimentDB against SQLite, PostgreSQL and MariaDB: runs, metrics, search, best, compare,
stats."""

from __future__ import annotations

import time

import pandas as pd
import pytest

from trainforge.errors import FilterSyntaxError, RunNotFoundError, TrackingError
from trainforge.tracking import ExperimentDB

from .conftest import BACKENDS


@pytest.fixture
def db(store_url):
    db = ExperimentDB(store_url)
    yield db
    db.store.dispose()


@pytest.fixture(scope="module", params=BACKENDS)
def searchable(request, tmp_path_factory):
    """A store holding the three runs of ``_populate``, shared by the read-only tests."""
    if request.param == "sqlite":
        db = ExperimentDB(str(tmp_path_factory.mktemp("search") / "search.db"))
        _populate(db)
        yield db
        db.close()
        return
    fixture = "pg_databases" if request.param == "postgres" else "mysql_databases"
    with request.getfixturevalue(fixture)() as url:
        db = ExperimentDB(url)
        _populate(db)
        yield db
        db.close()


def _populate(db: ExperimentDB) -> dict[str, int]:
    """Three runs with known metrics, params and tags."""
    spec = {
        "a": ({"optim": {"lr": 1e-3, "name": "adamw"}}, ["baseline"], [0.9, 0.5, 0.35]),
        "b": ({"optim": {"lr": 1e-5, "name": "sgd"}}, {"team": "vision"}, [0.8, 0.3, 0.45]),
        "c": ({"optim": {"lr": 3e-4, "name": "adamw"}}, ["baseline"], [0.7, 0.6, 0.55]),
    }
    ids = {}
    for name, (config, tags, losses) in spec.items():
        run_id = db.log_run(name, config, experiment="exp", tags=tags)
        for step, loss in enumerate(losses):
            db.log_metric(run_id, "val_loss", loss, step=step, epoch=step)
        db.log_metric(run_id, "val/acc", 1 - losses[-1])
        ids[name] = run_id
    db.update_run_status(ids["a"], "completed")
    db.update_run_status(ids["b"], "failed")
    return ids


def test_run_round_trip(db):
    config = {"optim": {"lr": 3e-4}, "data": {"batch_size": 32}}
    run_id = db.log_run("r1", config, experiment="e", project="p", tags={"k": "v"}, notes="n")
    run = db.get_run(run_id)
    assert run["config"] == config
    assert len(run["config_hash"]) == 64
    assert run["params"] == {"optim.lr": 3e-4, "data.batch_size": 32}
    assert run["tags"] == {"k": "v"}
    assert (run["status"], run["project"], run["experiment"], run["notes"]) == (
        "running",
        "p",
        "e",
        "n",
    )
    db.update_run_status(run_id, "completed")
    finished = db.get_run(run_id)
    assert finished["status"] == "completed"
    assert finished["duration_s"] >= 0


def test_metric_history_and_summary(db):
    run_id = db.log_run("r")
    for value in (3.0, 1.0, 2.0):
        db.log_metric(run_id, "train/loss", value)  # steps 0, 1, 2
    history = db.get_metric_history(run_id, "train/loss")
    assert isinstance(history, pd.DataFrame)
    assert history["step"].tolist() == [0, 1, 2]
    assert history["value"].tolist() == [3.0, 1.0, 2.0]
    summary = db.get_run(run_id)["metrics"]["train/loss"]
    assert summary == {"last": 2.0, "step": 2, "min": 1.0, "max": 3.0, "count": 3}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("metrics.val_loss < 0.5", {"a", "b"}),
        ("metrics.val_loss < 0.5 and tags.baseline", {"a"}),
        ("tags.baseline and params.optim.lr >= 1e-4", {"a", "c"}),
        ("params.optim.name = 'sgd' or metrics.val_loss > 0.5", {"b", "c"}),
        ("not tags.baseline", {"b"}),
        ('tags.team = "vision"', {"b"}),
        ("attributes.status = 'completed'", {"a"}),
        ("attributes.status != 'running' and not (attributes.name = 'a')", {"b"}),
        ("metrics.val/acc >= 0.6", {"a"}),
        ("metrics.missing < 1", set()),
        ("params.optim.lr < 1e-4", {"b"}),
        ("", {"a", "b", "c"}),
    ],
)
def test_search_runs_filter(searchable, text, expected):
    assert {run["name"] for run in searchable.search_runs(text)} == expected


def test_search_runs_order_and_limit(searchable):
    db = searchable
    ordered = db.search_runs(None, order_by="metrics.val_loss desc")
    assert [r["name"] for r in ordered] == ["c", "b", "a"]
    assert [r["name"] for r in db.search_runs(order_by=["params.optim.lr"], limit=2)] == ["b", "c"]
    assert db.search_runs("metrics.val_loss < 1")[0]["metrics"]["val_loss"]["last"] in (
        0.35,
        0.45,
        0.55,
    )


@pytest.mark.parametrize(
    ("text", "position"),
    [
        ("metrics.val_loss <", 18),
        ("metrics.val_loss < 0.4 and", 26),
        ("(metrics.val_loss < 0.4", 23),
        ("metrics.val_loss < 0.4)", 22),
        ("metrcs.val_loss < 0.4", 0),
        ("metrics.val_loss < 'low'", 19),
        ("tags.a = 'unterminated", 9),
        ("metrics.x < 1 $", 14),
        ("attributes.status = 'complete'", 20),
    ],
)
def test_filter_syntax_error_points_at_position(searchable, text, position):
    with pytest.raises(FilterSyntaxError) as caught:
        searchable.search_runs(text)
    assert caught.value.position == position
    assert text in str(caught.value)


def test_best_run(db):
    ids = _populate(db)
    best = db.best_run("val_loss", "min")
    assert (best["run_id"], best["best_value"]) == (ids["b"], 0.3)  # best ever, not last
    assert db.best_run("val/acc", "max")["run_id"] == ids["a"]
    assert db.best_run("no-such-metric") is None
    with pytest.raises(TrackingError, match="'min' or 'max'"):
        db.best_run("val_loss", "lowest")


def test_compare_runs(db):
    ids = _populate(db)
    frame = db.compare_runs([ids["a"], ids["c"]])
    assert list(frame.index) == [ids["a"], ids["c"]]
    assert frame.loc[ids["a"], "metrics.val_loss"] == 0.35
    assert frame.loc[ids["c"], "params.optim.name"] == "adamw"
    assert set(frame.columns) >= {"name", "status", "metrics.val/acc", "params.optim.lr"}


def test_unknown_run_ids_name_the_id(db):
    for call in (
        lambda: db.get_run(999),
        lambda: db.log_metric(999, "x", 1.0),
        lambda: db.update_run_status(999, "completed"),
        lambda: db.compare_runs([999]),
        lambda: db.get_metric_history(999, "x"),
    ):
        with pytest.raises(RunNotFoundError, match="999"):
            call()


def test_unknown_status_suggests_the_closest(db):
    run_id = db.log_run("r")
    with pytest.raises(TrackingError, match="completd") as caught:
        db.update_run_status(run_id, "completd")
    assert "completed" in str(caught.value)


def test_mark_stale_runs(db):
    alive = db.log_run("alive")
    dead = db.log_run("dead")
    time.sleep(0.3)
    db.heartbeat(alive)
    assert db.mark_stale_runs(timeout_s=0.2) == [dead]
    assert db.get_run(dead)["status"] == "stale"
    assert db.get_run(alive)["status"] == "running"


def test_statistics(db):
    _populate(db)
    stats = db.statistics()
    assert stats["runs"] == 3
    assert stats["by_status"]["completed"] == 1
    assert stats["by_status"]["failed"] == 1
    assert stats["by_status"]["running"] == 1
    assert stats["metric_values"] == 12
    assert stats["finished_runs"] == 2
    assert stats["storage_bytes"] > 0
