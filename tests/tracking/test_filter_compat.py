"""The filter language: MLflow's forms, bounded size, user errors as user errors, and the
same answers from SQLite, PostgreSQL and MariaDB for any filter."""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from trainforge.errors import FilterSyntaxError, TrackingValueError
from trainforge.tracking import ExperimentDB, TrackingStore

# name, status, metrics, params, tags: chosen so that case, collation, NaN and types matter
RUNS: list[tuple[str, str, dict[str, float], dict[str, Any], dict[str, str]]] = [
    (
        "Alpha",
        "completed",
        {"val_loss": 0.30, "acc": 0.91},
        {"lr": 1e-3, "opt": "adam"},
        {"model": "a"},
    ),
    (
        "beta",
        "completed",
        {"val_loss": 0.50, "acc": math.nan},
        {"lr": 3e-4, "opt": "SGD"},
        {"model": "b"},
    ),
    (
        "gamma_1",
        "failed",
        {"val_loss": math.nan},
        {"lr": "auto", "flag": True},
        {"model": "B", "x": "%_"},
    ),
    (
        "delta%",
        "running",
        {"val_loss": math.inf, "acc": -1.0},
        {"lr": 0.1},
        {"model": "é", "x": "a\\b"},
    ),
    (
        "Épsilon",
        "killed",
        {"acc": 0.5},
        {"opt": "adamw", "layers": [1, 2]},
        {"model": "ab", "baseline": "true"},
    ),
    ("zeta", "completed", {"val_loss": -math.inf, "acc": 0.99}, {"lr": 2, "opt": "adam"}, {}),
]


def _fill(url: str) -> ExperimentDB:
    db = ExperimentDB(TrackingStore(url))
    for i, (name, status, metrics, params, tags) in enumerate(RUNS):
        run_id = db.log_run(name, {"p": params}, experiment="compat", tags=tags, notes=None)
        for key, value in metrics.items():
            db.log_metric(run_id, key, value, step=i)
        db.update_run_status(run_id, status)
    engine = sa.create_engine(url, poolclass=sa.NullPool)
    with engine.begin() as conn:  # times that order the same on both stores
        conn.exec_driver_sql("UPDATE runs SET start_time = id * 10, end_time = id * 10 + id")
        conn.exec_driver_sql("UPDATE runs SET end_time = NULL WHERE status = 'running'")
    engine.dispose()
    return db


@pytest.fixture(scope="module")
def stores(
    tmp_path_factory: pytest.TempPathFactory, pg_databases: Any, mysql_databases: Any
) -> Iterator[list[Any]]:
    """The same runs in a SQLite file, a PostgreSQL database and a MariaDB database."""
    sqlite = _fill(f"sqlite:///{tmp_path_factory.mktemp('compat') / 'runs.db'}")
    with pg_databases() as pg_url, mysql_databases() as mysql_url:
        postgres, mariadb = _fill(pg_url), _fill(mysql_url)
        yield [sqlite, postgres, mariadb]
        postgres.close()
        mariadb.close()
    sqlite.close()


def _answers(stores: list[Any], text: str, order_by: Any = None) -> list[Any]:
    out = []
    for db in stores:
        try:
            found = db.search_runs(text, order_by=order_by, limit=None)
        except FilterSyntaxError as error:
            out.append(("error", error.position))
        else:
            out.append([r["name"] for r in found])
    return out


@pytest.mark.parametrize(
    ("text", "names"),
    [
        ("""tags."mlflow.runName" LIKE 'delta%'""", ["delta%"]),
        ("attributes.run_name = 'zeta'", ["zeta"]),
        ("attributes.run_id = '2'", ["beta"]),
        ("attributes.run_id IN ('1', '6')", ["zeta", "Alpha"]),
        ('metrics."val_loss" < 0.4', ["zeta", "Alpha"]),
        ("metrics.`val_loss` <= 0.5 AND tags.model IN ('a', 'b')", ["beta", "Alpha"]),
        ("tags.model NOT IN ('a', 'b')", ["Épsilon", "delta%", "gamma_1"]),
        ("tags.model LIKE 'b'", ["beta"]),
        ("tags.model ILIKE 'b'", ["gamma_1", "beta"]),
        ("attributes.name ILIKE '%A%'", ["zeta", "delta%", "gamma_1", "beta", "Alpha"]),
        ("attributes.name ILIKE 'é%'", []),  # ILIKE folds ASCII letters only, on both
        ("attributes.name LIKE 'gamma\\_%'", ["gamma_1"]),
        ("tags.x LIKE '\\%\\_'", ["gamma_1"]),
        ("attributes.status = 'FINISHED'", ["zeta", "beta", "Alpha"]),
        ("attributes.status IN ('RUNNING', 'KILLED')", ["Épsilon", "delta%"]),
        ("params.p.opt = 'adam' and not tags.baseline", ["zeta", "Alpha"]),
        (
            "tags.baseline IS NULL and params.p.lr IS NOT NULL",
            ["zeta", "delta%", "gamma_1", "beta", "Alpha"],
        ),
        ("metrics.acc > 0", ["zeta", "Épsilon", "Alpha"]),  # NaN matches nothing
        ("metrics.acc != 0.5", ["zeta", "delta%", "Alpha"]),
        ("metrics.val_loss > 1e308", ["delta%"]),
        ("attributes.name < 'a'", ["Alpha"]),  # byte order: capitals first, É after z
        ("attributes.name > 'zeta'", ["Épsilon"]),
    ],
)
def test_mlflow_forms_and_edge_values_answer_the_same_on_all(
    stores: list[Any], text: str, names: list[str]
) -> None:
    assert _answers(stores, text) == [names] * 3


@pytest.mark.parametrize(
    ("order_by", "names"),
    [
        ("metrics.val_loss asc", ["zeta", "Alpha", "beta", "delta%", "Épsilon", "gamma_1"]),
        ("attributes.name desc", ["Épsilon", "zeta", "gamma_1", "delta%", "beta", "Alpha"]),
        ("tags.model", ["gamma_1", "Alpha", "Épsilon", "beta", "delta%", "zeta"]),
    ],
)
def test_ordering_is_the_same_on_all(stores: list[Any], order_by: str, names: list[str]) -> None:
    assert _answers(stores, "", order_by) == [names] * 3


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (" or ".join(["tags.a"] * 1000), "more than 256 conditions"),
        ("(" * 500 + "tags.a" + ")" * 500, "nested more than 32 levels"),
        ("not " * 100 + "tags.a", "nested more than 32 levels"),
        ("attributes.name < 5", "attributes.name is text: quote the value"),
        ("attributes.start_time > 'yesterday'", "attributes.start_time compare with numbers"),
        ("metrics.loss = 'low'", "metrics compare with numbers"),
        ("attributes.status = 'SCHEDULED'", "unknown status 'SCHEDULED'"),
        ("attributes.user_id = 'me'", "records no attribute 'user_id'"),
        ("tags.x IN 'a'", "IN takes a parenthesised list"),
        ("params.x IN (1, 'a')", "numbers or strings, not both"),
        ("tags.x LIKE 'a\\\\'", "lone backslash"),
        ("tags.x LIKE 'a\\'", "unterminated string"),
        ("attributes.id LIKE '1%'", "attributes.id are numbers: LIKE matches text"),
        ("metrics.acc ILIKE '1%'", "metrics are numbers"),
        ("tags.x = 'a\x00b'", "NUL"),
        ("tags.x <> 'a'", "use != for"),
        ("tags.x IS 'a'", "expected NULL after IS"),
    ],
)
def test_user_errors_are_filter_errors_on_all(stores: list[Any], text: str, message: str) -> None:
    for db in stores:
        with pytest.raises(FilterSyntaxError, match=message) as info:
            db.search_runs(text)
        assert 0 <= info.value.position <= len(text)


def test_two_hundred_conditions_still_run_on_all(stores: list[Any]) -> None:
    text = " or ".join(f"metrics.val_loss = {i}" for i in range(199)) + " or tags.model = 'a'"
    assert _answers(stores, text) == [["Alpha"]] * 3


def test_status_and_limit_are_values_not_text(stores: list[Any]) -> None:
    for db in stores:
        with pytest.raises(TrackingValueError, match="unknown run status"):
            db.list_runs(status="completed' or attributes.id > '0")
        assert [r["name"] for r in db.list_runs(status="FINISHED", limit=2)] == ["zeta", "beta"]
        with pytest.raises(TrackingValueError, match="limit must be >= 0"):
            db.search_runs(limit=-1)


# ------------------------------------------------------------------ random filters
_TEXT = st.sampled_from(
    ["a", "A", "b", "B", "ab", "é", "%_", "a\\b", "adam", "SGD", "zeta", "true", "x'y"]
)
_PATTERN = st.lists(
    st.sampled_from(["a", "A", "b", "%", "_", "\\%", "\\_", "é", "\\\\"]), max_size=4
).map("".join)
_NUMBER = st.sampled_from(["0", "0.3", "-1", "1e-3", "3e-4", "0.5", "2", "1e400", "-1e400", "6"])
_KEYS = {
    "metrics": ["val_loss", "acc", "missing"],
    "params": ["p.lr", "p.opt", "p.flag", "p.layers", "nope"],
    "tags": ["model", "x", "baseline", "mlflow.runName"],
    "attributes": [
        "id",
        "run_id",
        "name",
        "run_name",
        "status",
        "start_time",
        "end_time",
        "duration",
        "notes",
    ],
}


def _quote(text: str) -> str:
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


@st.composite
def _condition(draw: Any) -> str:
    kind = draw(st.sampled_from(sorted(_KEYS)))
    key = draw(st.sampled_from(_KEYS[kind]))
    style = draw(st.sampled_from(["plain", "backtick", "double"]))
    name = (
        f"{kind}.{key}"
        if style == "plain"
        else f"{kind}.`{key}`"
        if style == "backtick"
        else f'{kind}."{key}"'
    )
    op = draw(
        st.sampled_from(
            [
                "",
                "=",
                "!=",
                "<",
                "<=",
                ">",
                ">=",
                "LIKE",
                "ilike",
                "NOT LIKE",
                "in",
                "not in",
                "IS NULL",
                "is not null",
            ]
        )
    )
    literal = st.one_of(
        _NUMBER, _TEXT.map(_quote), st.sampled_from(["'FINISHED'", "'completed'", "'2'", "true"])
    )
    if op in ("", "IS NULL", "is not null"):
        return f"{name} {op}".strip()
    if op.lower().endswith("like"):
        return f"{name} {op} {_quote(draw(_PATTERN))}"
    if op.lower().endswith("in"):
        return f"{name} {op} ({', '.join(draw(st.lists(literal, min_size=1, max_size=3)))})"
    return f"{name} {op} {draw(literal)}"


_FILTERS = st.recursive(
    _condition(),
    lambda inner: st.one_of(
        st.tuples(inner, st.sampled_from(["and", "OR", "And"]), inner).map(" ".join),
        inner.map(lambda f: f"not ({f})"),
        inner.map(lambda f: f"({f})"),
    ),
    max_leaves=6,
)
_ORDERS = st.sampled_from(
    [None, "metrics.acc desc", "params.p.lr", "tags.model desc", "attributes.name"]
)


@pytest.mark.slow
@pytest.mark.postgres
@pytest.mark.mariadb
def test_random_filters_give_the_same_runs_on_sqlite_postgresql_and_mariadb(
    stores: list[Any],
) -> None:
    seen = {"answers": 0, "errors": 0}

    @settings(max_examples=250, deadline=None, derandomize=True,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])  # fmt: skip
    @given(text=_FILTERS, order_by=_ORDERS)
    def check(text: str, order_by: str | None) -> None:
        sqlite, postgres, mariadb = _answers(stores, text, order_by)
        assert sqlite == postgres == mariadb, text
        seen["errors" if isinstance(sqlite, tuple) else "answers"] += 1

    check()
    assert seen["answers"] > 100, seen
