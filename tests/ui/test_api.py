"""The JSON API over HTTP, from a real uvicorn server: curves, raw points, errors, headers."""

from __future__ import annotations

import csv
import io
import json
import time
import urllib.parse

import pytest

from trainforge.tracking import ExperimentDB, ModelRegistry, TrackingStore
from trainforge.tracking._metric_writes import write_metric_rows
from trainforge.ui import create_app
from trainforge.ui._app import CONTENT_SECURITY_POLICY

from .conftest import serve

SPIKE_STEP, STEPS = 3333, 5000


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """A store with a 5,000-step run holding one spike, a second run, and a model."""
    store = TrackingStore(str(tmp_path_factory.mktemp("api") / "api.db"))
    db = ExperimentDB(store)
    spiky = db.log_run("spiky", {"optim": {"lr": 0.1}}, tags=["sweep"])
    now = time.time()
    rows = [("loss", 1.0 + (s % 10) / 100, s, s // 1000, now + s / 1000) for s in range(STEPS)]
    rows[SPIKE_STEP] = ("loss", 50.0, SPIKE_STEP, 3, now + 3.333)
    store.write(lambda c: write_metric_rows(c, spiky, rows))
    other = db.log_run("other", {"optim": {"lr": 0.2}})
    db.log_metric(other, "loss", 0.5, step=0)
    db.update_run_status(other, "completed")
    registry = ModelRegistry(store)
    first = registry.register_model("mlp", checkpoint_path="a", training_run_id=spiky)
    second = registry.register_model("mlp", checkpoint_path="b", parent_model_id=first)
    registry.promote_model(second, "production")
    with serve(store) as served:
        served.ids = (spiky, other, first, second)
        yield served
    store.dispose()


def _series(server, **params):
    return server.json("/api/series?" + urllib.parse.urlencode(params))


@pytest.mark.parametrize(
    ("lo", "hi"), [(None, None), (3000, 4000), (3300, 3400), (3330, 3336), (3333, 3333)]
)
def test_a_single_step_spike_survives_at_every_zoom_level(server, lo, hi):
    spiky = server.ids[0]
    params = {"runs": spiky, "key": "loss", "points": 300}
    if lo is not None:
        params.update(lo=lo, hi=hi)
    window = _series(server, **params)
    ys = window["runs"][0]["y"]
    assert max(v for v in ys if v is not None) == 50.0
    assert min(v for v in ys if v is not None) == 1.0 if lo is None else True
    assert len(window["x"]) <= 2 * 300  # never more than two values per bucket


def test_full_range_is_bucketed_and_zoom_returns_raw_points_when_few(server):
    spiky = server.ids[0]
    full = _series(server, runs=spiky, key="loss", points=400)
    assert not full["raw"] and full["buckets"] == 400 and len(full["x"]) == 800
    assert full["runs"][0]["count"] == STEPS
    zoomed = _series(server, runs=spiky, key="loss", points=400, lo=3300, hi=3500)
    assert zoomed["raw"] and zoomed["runs"][0]["count"] == 201
    assert zoomed["x"] == [float(s) for s in range(3300, 3501)]
    assert zoomed["runs"][0]["y"][33] == 50.0
    newer = _series(server, runs=spiky, key="loss", points=400, after=STEPS - 4)
    assert newer["raw"] and newer["x"] == [float(STEPS - 3), float(STEPS - 2), float(STEPS - 1)]


def test_csv_and_json_downloads_hold_every_raw_point(server):
    spiky = server.ids[0]
    status, headers, body = server.get(f"/api/points?run={spiky}&key=loss")
    assert status == 200 and headers["content-type"].startswith("text/csv")
    assert 'filename="run1-loss.csv"' in headers["content-disposition"]
    rows = list(csv.DictReader(io.StringIO(body.decode())))
    assert len(rows) == STEPS
    assert [int(r["step"]) for r in rows] == list(range(STEPS))
    assert float(rows[SPIKE_STEP]["value"]) == 50.0
    assert float(rows[7]["value"]) == 1.0 + 7 / 100  # exact: written with repr
    data = server.json(f"/api/points?run={spiky}&key=loss&format=json")
    assert data["key"] == "loss" and len(data["points"]) == STEPS
    assert data["points"][SPIKE_STEP][2] == 50.0


def test_runs_table_columns_compare_and_registry(server):
    spiky, other, first, second = server.ids
    page = server.json("/api/runs?sort=attributes.name+asc&params=optim.lr&metrics=loss")
    assert page["total"] == 2 and [r["name"] for r in page["runs"]] == ["other", "spiky"]
    assert page["runs"][1]["params"] == {"optim.lr": 0.1}
    assert page["runs"][1]["metrics"]["loss"]["last"] == 1.0 + (STEPS - 1) % 10 / 100
    assert server.json("/api/runs?filter=tags.sweep")["total"] == 1
    assert server.json("/api/columns") == {"params": ["optim.lr"], "metrics": ["loss"]}
    compared = server.json(f"/api/compare?runs={spiky},{other}")
    assert [r["params.optim.lr"] for r in compared["runs"]] == [0.1, 0.2]
    assert compared["metrics"] == ["loss"]
    heads = server.json(f"/api/series/heads?runs={spiky},{other}&key=loss")
    assert heads[str(spiky)]["count"] == STEPS and heads[str(other)]["last_step"] == 0
    registry = server.json("/api/registry")
    assert [m["tags"] for m in registry["models"]] == [["production"], []]
    assert [h["label"] for h in registry["history"]["mlp"]] == ["production"]
    lineage = server.json(f"/api/registry/{second}/lineage")["lineage"]
    assert [step["model"]["id"] for step in lineage] == [second, first]
    assert lineage[1]["run"]["name"] == "spiky"


@pytest.mark.parametrize(
    ("path", "status", "fragment"),
    [
        ("/api/runs?filter=metrics.loss%20%3C", 400, "expected a number"),
        ("/api/runs?sort=metrics.loss%20sideways", 400, "an optional asc/desc"),
        ("/api/runs/999", 404, "no run with id 999"),
        ("/api/points?run=999&key=loss", 404, "no run with id 999"),
        ("/api/series?runs=1&key=loss&x=wall", 400, "unknown x axis"),
        ("/api/series?runs=1,x&key=loss", 400, "integers separated by commas"),
        ("/api/series?runs=1", 400, "missing query parameter 'key'"),
        ("/api/series?runs=1&key=loss&lo=nan", 400, "finite number"),
        ("/api/compare?runs=1,77", 404, "no run with id 77"),
        ("/api/registry/42/lineage", 404, "no registered model with id 42"),
    ],
)
def test_bad_requests_are_json_errors_that_say_what_is_wrong(server, path, status, fragment):
    code, headers, body = server.get(path)
    assert code == status and headers["content-type"] == "application/json"
    assert fragment in json.loads(body)["error"]


def test_filter_errors_carry_the_position_for_the_caret(server):
    _, _, body = server.get("/api/runs?filter=" + urllib.parse.quote("tags.sweep and metrix.x < 1"))
    error = json.loads(body)
    assert error["position"] == 15 and error["text"] == "tags.sweep and metrix.x < 1"


@pytest.mark.parametrize(
    "path",
    [
        "/",
        "/runs/1",
        "/compare?runs=1,2",
        "/registry",
        "/api/runs",
        "/static/app.js",
        "/api/runs/999",
    ],
)
def test_every_response_has_the_content_security_policy(server, path):
    _, headers, _ = server.get(path)
    assert headers["content-security-policy"] == CONTENT_SECURITY_POLICY
    assert (
        "script-src 'self'" in CONTENT_SECURITY_POLICY and "unsafe" not in CONTENT_SECURITY_POLICY
    )
    assert headers["x-content-type-options"] == "nosniff"


def test_the_app_is_read_only(server):
    import urllib.request

    for method in ("POST", "PUT", "DELETE", "PATCH"):
        request = urllib.request.Request(server.base + "/api/runs", data=b"{}", method=method)
        try:
            urllib.request.urlopen(request, timeout=10)
        except urllib.error.HTTPError as err:
            assert err.code == 405
        else:
            raise AssertionError(f"{method} was accepted")
    methods = {
        m
        for r in create_app("sqlite:///:memory:").routes
        for m in getattr(r, "methods", None) or ()
    }
    assert methods == {"GET", "HEAD"}


def test_pages_and_vendored_files_are_served_from_the_package(server):
    status, _, body = server.get("/compare?runs=1,2")
    assert status == 200 and b'<script type="module" src="/static/app.js">' in body
    for path in (
        "/static/vendor/uplot/uPlot.esm.js",
        "/static/vendor/virtual-core/index.js",
        "/static/vendor/uplot/LICENSE",
        "/static/vendor/virtual-core/LICENSE",
    ):
        assert server.get(path)[0] == 200, path
    assert server.get("/static/../_api.py")[0] == 404


@pytest.mark.parametrize(
    "server",
    [
        pytest.param("pg_store_url", marks=pytest.mark.postgres),
        pytest.param("mysql_store_url", marks=pytest.mark.mariadb),
    ],
)
def test_the_api_reads_a_server_store_the_same_way(request, server):
    store = TrackingStore(request.getfixturevalue(server))
    db = ExperimentDB(store)
    run = db.log_run("pg", {"optim": {"lr": 0.1}})
    now = time.time()
    rows = [("loss", 7.0 if s == 500 else 1.0, s, None, now + s) for s in range(1000)]
    rows.append(("loss", float("nan"), 1000, None, now + 1000))  # NULL, never a min or max
    store.write(lambda c: write_metric_rows(c, run, rows))
    with serve(store) as served:
        page = served.json("/api/runs?sort=metrics.loss+desc&params=optim.lr")
        assert page["runs"][0]["params"] == {"optim.lr": 0.1}
        window = served.json(f"/api/series?runs={run}&key=loss&points=50")
        ys = [v for v in window["runs"][0]["y"] if v is not None]
        assert not window["raw"] and max(ys) == 7.0 and min(ys) == 1.0
        _, _, body = served.get(f"/api/points?run={run}&key=loss")
        assert len(body.decode().splitlines()) == 1 + 1001  # header + every point, NaN too
    store.dispose()
