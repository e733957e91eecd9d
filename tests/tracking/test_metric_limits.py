"""Values are checked at the call with the same limits on SQLite and PostgreSQL, and a
flush that the store still refuses loses only the refused rows."""

from __future__ import annotations

import math
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np
import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from trainforge.errors import RunNotFoundError, TrackingValueError
from trainforge.tracking import ExperimentDB, ExperimentTracker, ModelRegistry

BAD_CALLS = [
    ({"key": "k" * 300}, "has 300 characters; at most 250"),
    ({"key": "val\x00loss"}, "control character '\\\\x00'"),
    ({"key": "tab\tkey"}, "control character"),
    ({"key": ""}, "must not be empty"),
    ({"key": 5}, "must be a string"),
    ({"step": 2**31}, "step of 'loss' is 2147483648; it must lie in"),
    ({"step": 2**63}, "it must lie in"),
    ({"step": 1.0}, "step of 'loss' must be an integer, got float"),
    ({"step": True}, "must be an integer, got the bool"),
    ({"epoch": -(2**31) - 1}, "epoch of 'loss'"),
    ({"value": "abc"}, "value of metric 'loss' must be a number"),
    ({"value": None}, "must be a number"),
]


@pytest.mark.parametrize(("call", "message"), BAD_CALLS)
def test_bad_values_are_refused_at_the_call_and_never_poison_the_run(
    store_url: str, call: dict[str, Any], message: str
) -> None:
    tracker = ExperimentTracker("limits", database=store_url, handle_sigterm=False)
    args = {"key": "loss", "value": 0.5, "step": 3, "epoch": None, **call}
    with pytest.raises(TrackingValueError, match=message):
        tracker.log_metric(args["key"], args["value"], step=args["step"], epoch=args["epoch"])
    with pytest.raises(TrackingValueError):
        ExperimentDB(tracker.store).log_metric(
            tracker.run_id, args["key"], args["value"], args["step"], args["epoch"]
        )
    for step in range(200):
        tracker.log_metric("loss", 1.0 / (step + 1), step=step)
    tracker.finish()
    run = ExperimentDB(store_url).get_run(tracker.run_id)
    assert run["status"] == "completed" and run["metrics"]["loss"]["count"] == 200


def test_integer_like_steps_are_accepted(store_url: str) -> None:
    tracker = ExperimentTracker("limits", database=store_url, handle_sigterm=False)
    tracker.log_metric("a", np.float32(0.25), step=np.int64(7), epoch=np.int32(1))
    tracker.log_metrics({"b": 1, "c": 2.5}, step=2**31 - 1)
    with pytest.raises(TrackingValueError, match="'bad key\\\\n'"):
        tracker.log_metrics({"ok": 1.0, "bad key\n": 2.0}, step=3)  # all or nothing
    tracker.finish()
    metrics = ExperimentDB(store_url).get_run(tracker.run_id)["metrics"]
    assert metrics["a"]["step"] == 7 and metrics["b"]["step"] == 2**31 - 1
    assert "ok" not in metrics


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda db: db.log_run("r" * 300), "run name 'rrr"),
        (lambda db: db.log_run("run\x00"), "NUL character"),
        (lambda db: db.log_run("r", experiment="e" * 201), "experiment"),
        (lambda db: db.log_run("r", tags={"t": "a\x00b"}), "value of tag 't'"),
        (lambda db: db.log_run("r", tags={"t" * 251: "x"}), "tag key"),
        (lambda db: db.log_run("r", {"optim": {"name": "sg\x00d"}}), "value of param 'optim.name'"),
        (lambda db: db.search_runs(limit=-1), "limit must be >= 0"),
        (lambda db: db.list_runs(status="completed' or attributes.id > '0"), "unknown run status"),
        (
            lambda db: ModelRegistry(db.store).register_model("m" * 201, checkpoint_path="c"),
            "model",
        ),
        (lambda db: ModelRegistry(db.store).set_alias(1, "a\x00"), "alias"),
    ],
)
def test_names_and_text_beyond_what_postgresql_holds_are_refused_on_both(
    store_url: str, call: Any, message: str
) -> None:
    db = ExperimentDB(store_url)
    with pytest.raises(TrackingValueError, match=message):
        call(db)
    assert db.search_runs() == []


@pytest.mark.parametrize("run_id", [99999999999999999999, 2**31, 0, -1])
def test_ids_no_row_can_have_are_not_found_on_both(store_url: str, run_id: int) -> None:
    db = ExperimentDB(store_url)
    with pytest.raises(RunNotFoundError, match=f"no run with id {run_id}"):
        db.get_run(run_id)
    with pytest.raises(RunNotFoundError):
        db.compare_runs([run_id])
    with pytest.raises(KeyError, match=str(run_id)):
        ModelRegistry(db.store).get_model(run_id)


@contextmanager
def _refusing(url: str, key: str) -> Iterator[None]:
    """A trigger that makes the database itself refuse metric rows named ``key``."""
    engine = sa.create_engine(url, poolclass=sa.NullPool)
    if engine.dialect.name == "sqlite":
        create = [
            f"CREATE TRIGGER refuse BEFORE INSERT ON metrics WHEN NEW.key = '{key}' "
            "BEGIN SELECT RAISE(ABORT, 'refused by a trigger'); END"
        ]
        drop = ["DROP TRIGGER refuse"]
    elif engine.dialect.name in ("mysql", "mariadb"):  # 4025: a CHECK constraint failed
        create = [
            f"CREATE TRIGGER refuse BEFORE INSERT ON metrics FOR EACH ROW BEGIN IF NEW.`key` = "
            f"'{key}' THEN SIGNAL SQLSTATE '23000' SET MESSAGE_TEXT = 'refused by a trigger', "
            "MYSQL_ERRNO = 4025; END IF; END"
        ]
        drop = ["DROP TRIGGER refuse"]
    else:
        create = [
            "CREATE FUNCTION refuse() RETURNS trigger AS $$ BEGIN IF NEW.key = "
            f"'{key}' THEN RAISE EXCEPTION 'refused by a trigger' USING ERRCODE = "
            "'check_violation'; END IF; RETURN NEW; END $$ LANGUAGE plpgsql",
            "CREATE TRIGGER refuse BEFORE INSERT ON metrics FOR EACH ROW EXECUTE FUNCTION refuse()",
        ]
        drop = ["DROP TRIGGER refuse ON metrics", "DROP FUNCTION refuse()"]
    with engine.begin() as conn:
        for statement in create:
            conn.exec_driver_sql(statement)
    try:
        yield
    finally:
        with engine.begin() as conn:
            for statement in drop:
                conn.exec_driver_sql(statement)
        engine.dispose()


def test_a_refused_flush_isolates_the_refused_rows(store_url: str) -> None:
    tracker = ExperimentTracker("isolation", database=store_url, handle_sigterm=False)
    with _refusing(store_url, "poison"):
        for step in range(200):
            tracker.log_metric("loss", float(step), step=step)
            if step % 50 == 7:
                tracker.log_metric("poison", 1.0, step=step)
        tracker.finish()
    run = ExperimentDB(store_url).get_run(tracker.run_id)
    assert run["status"] == "completed"
    assert run["metrics"]["loss"]["count"] == 200 and "poison" not in run["metrics"]
    assert [(item[0], item[2]) for item, _ in tracker.rejected] == [
        ("poison", s) for s in (7, 57, 107, 157)
    ]
    assert all("refused by a trigger" in reason for _, reason in tracker.rejected)


_KEYS = st.text(min_size=0, max_size=260) | st.sampled_from(["val/loss", "a" * 250, "a" * 251])
_VALUES = st.floats() | st.integers(-(2**70), 2**70) | st.sampled_from(["1.5", "x", None])
_STEPS = st.none() | st.integers(-(2**64), 2**64) | st.floats(-10, 10) | st.booleans()


@pytest.mark.slow
def test_random_metrics_are_stored_exactly_or_refused_at_the_call(store_url: str) -> None:
    db = ExperimentDB(store_url)
    outcome = {"stored": 0, "refused": 0}

    @settings(max_examples=150, deadline=None, derandomize=True,
              suppress_health_check=[HealthCheck.too_slow])  # fmt: skip
    @given(key=_KEYS, value=_VALUES, step=_STEPS)
    def check(key: Any, value: Any, step: Any) -> None:
        tracker = ExperimentTracker("random", store=db.store, handle_sigterm=False)
        try:
            tracker.log_metric(key, value, step=step)
        except TrackingValueError as error:
            assert str(error)
            outcome["refused"] += 1
            return
        finally:
            tracker.finish()  # never raises: what the call accepted, the store holds
        ((at, stored),) = db.get_metric_history(tracker.run_id, key)[["step", "value"]].values
        expected = float(value)
        if abs(expected) == sys.float_info.max:  # the largest double is infinity (MySQL's)
            expected = math.copysign(math.inf, expected)
        assert math.isnan(stored) if math.isnan(expected) else stored == expected
        assert at == (0 if step is None else step)
        outcome["stored"] += 1

    check()
    assert outcome["stored"] > 20 and outcome["refused"] > 20, outcome
