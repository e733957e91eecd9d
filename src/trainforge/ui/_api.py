"""The JSON API under ``/api/``: read-only views of the tracking store for the front end.

Every query goes through ``trainforge.tracking`` (the filter language, ``ExperimentDB``,
``ModelRegistry``, the run pages and metric series): this module parses query strings and
shapes JSON, nothing more. Handlers are plain functions, which Starlette runs in its thread
pool, so a slow query never blocks the event loop. A user error (a filter that does not
parse, an unknown run) is a 4xx JSON body ``{"error": ..., ...}``, never a traceback.
"""

from __future__ import annotations

import csv
import io
import json
import math
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from trainforge._version import __version__
from trainforge.errors import (
    FilterSyntaxError,
    ModelNotFoundError,
    RunNotFoundError,
    TrackingError,
    UiRequestError,
)
from trainforge.jobs import JobManager, TrainingScheduler
from trainforge.tracking import (
    ExperimentDB,
    ModelRegistry,
    TrackingStore,
    column_keys,
    metric_points,
    metric_series,
    page_runs,
    series_heads,
)
from trainforge.ui._run_files import checkpoints, run_files, run_folder

__all__ = ["Api"]

_MAX_COMPARE = 500


class Api:
    """Route handlers over one tracking store.

    Args:
        store: The open tracking store (shared by every request).
    """

    def __init__(self, store: TrackingStore) -> None:
        self.store = store
        self.db = ExperimentDB(store)
        self.registry = ModelRegistry(store)
        self.queue = JobManager(store)
        self.scheduler = TrainingScheduler(self.queue)

    def routes(self) -> list[Route]:
        """The ``/api/...`` routes (GET only: the UI never writes)."""
        table: list[tuple[str, Callable[[Request], Response]]] = [
            ("/api/info", self.info),
            ("/api/runs", self.runs),
            ("/api/columns", self.columns),
            ("/api/runs/{run_id:int}", self.run),
            ("/api/runs/{run_id:int}/checkpoints", self.run_checkpoints),
            ("/api/series", self.series),
            ("/api/series/heads", self.heads),
            ("/api/points", self.points),
            ("/api/compare", self.compare),
            ("/api/registry", self.models),
            ("/api/registry/{model_id:int}/lineage", self.lineage),
            ("/api/jobs", self.jobs),
        ]
        return [Route(path, _guarded(handler), methods=["GET"]) for path, handler in table]

    # -- handlers --------------------------------------------------------------------------

    def info(self, request: Request) -> Response:
        """The store this server reads and the trainforge version."""
        return _json({"store": self.store.display_url, "version": __version__, "read_only": True})

    def runs(self, request: Request) -> Response:
        """A window of the runs table: ``filter``, ``sort``, ``offset``, ``limit``, columns."""
        q = request.query_params
        metrics = _names(q["metrics"]) if "metrics" in q else None
        page = page_runs(
            self.store,
            filter=q.get("filter") or None,
            order_by=[s for s in q.getlist("sort") if s] or None,
            offset=_int(q, "offset", 0),
            limit=_int(q, "limit", 100),
            params=_names(q.get("params", "")),
            metrics=metrics,
            since=_float(q, "since"),
            run_ids=_ids(q["ids"]) if "ids" in q else None,
        )
        return _json(page.to_dict())

    def columns(self, request: Request) -> Response:
        """Every param and metric key (the column picker)."""
        return _json(column_keys(self.store))

    def run(self, request: Request) -> Response:
        """One run: attributes, params with provenance, tags, metrics, files, checkpoints."""
        run = self.db.get_run(request.path_params["run_id"])
        run["files"] = run_files(run)
        return _json(run)

    def run_checkpoints(self, request: Request) -> Response:
        """A run's checkpoints; ``verify=1`` checks every file's size and SHA256."""
        run = self.db.get_run(request.path_params["run_id"])
        folder = run_folder(run)
        recorded = {a["path"]: a["sha256"] for a in run["artifacts"]}
        found = (
            checkpoints(
                Path(folder) / "checkpoints",
                verify=request.query_params.get("verify") == "1",
                recorded=recorded,
            )
            if folder is not None
            else []
        )
        return _json({"run_id": run["run_id"], "checkpoints": found})

    def series(self, request: Request) -> Response:
        """Curves of one metric: ``runs``, ``key``, ``x``, ``points``, ``lo``, ``hi``, ``after``."""
        q = request.query_params
        window = metric_series(
            self.store,
            _ids(q.get("runs", "")),
            _required(q, "key"),
            x_axis=q.get("x", "step"),
            points=_int(q, "points", 800),
            lo=_float(q, "lo"),
            hi=_float(q, "hi"),
            after=_float(q, "after"),
        )
        return _json(window.to_dict())

    def heads(self, request: Request) -> Response:
        """Last step, time and count of one metric per run (live charts poll this)."""
        q = request.query_params
        heads = series_heads(self.store, _ids(q.get("runs", "")), _required(q, "key"))
        return _json({str(k): v for k, v in heads.items()})

    def points(self, request: Request) -> Response:
        """Every raw point of one run's metric, as ``format=csv`` (default) or ``json``."""
        q = request.query_params
        run_id = _int(q, "run", -1)
        key = _required(q, "key")
        self.db.get_run(run_id)  # unknown run: 404 before the stream starts
        fmt = q.get("format", "csv")
        if fmt not in ("csv", "json"):
            raise UiRequestError(f"format must be csv or json, got {fmt!r}")
        chunks = metric_points(self.store, run_id, key)
        safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in key)
        headers = {"Content-Disposition": f'attachment; filename="run{run_id}-{safe}.{fmt}"'}
        if fmt == "csv":
            return StreamingResponse(_csv(chunks), media_type="text/csv", headers=headers)
        return StreamingResponse(
            _json_points(run_id, key, chunks), media_type="application/json", headers=headers
        )

    def compare(self, request: Request) -> Response:
        """Params and last metric values of the chosen runs (``runs=1,2,...``)."""
        ids = _ids(request.query_params.get("runs", ""))
        if not ids:
            raise UiRequestError("compare needs runs=ID,ID,...")
        if len(ids) > _MAX_COMPARE:
            raise UiRequestError(f"compare takes at most {_MAX_COMPARE} runs, got {len(ids)}")
        page = page_runs(self.store, run_ids=ids, limit=len(ids), metrics=[])
        found = {r["run_id"]: r for r in page.runs}
        missing = [i for i in ids if i not in found]
        if missing:
            raise RunNotFoundError(f"no run with id {missing[0]} in {self.store.display_url}")
        frame = self.db.compare_runs(ids)
        records = json.loads(frame.reset_index().to_json(orient="records"))
        for record in records:
            record.update(found[record["run_id"]])
        keys = sorted({k for r in records for k in r if k.startswith("metrics.")})
        return _json({"runs": records, "metrics": [k.split(".", 1)[1] for k in keys]})

    def models(self, request: Request) -> Response:
        """Every registered version with tags and aliases, and each name's label history."""
        versions = self.registry.list_models()
        names = sorted({m["name"] for m in versions})
        history = {name: self.registry.label_history(name) for name in names}
        return _json({"models": versions, "history": history})

    def lineage(self, request: Request) -> Response:
        """A version and its ancestors, each with its training run."""
        return _json({"lineage": self.registry.get_lineage(request.path_params["model_id"])})

    def jobs(self, request: Request) -> Response:
        """The job queue: counts per status, jobs (``status``, ``limit``), workers, schedules."""
        q = request.query_params
        statuses = _names(q.get("status", "")) or None
        listed = []
        for job in self.queue.list_jobs(statuses, limit=_int(q, "limit", 200)):
            item = job.to_dict()
            item["what"] = _job_summary(item.pop("config"))
            item["runs"] = self.queue.runs_of(job.id)
            listed.append(item)
        workers: dict[str, dict[str, Any]] = {}
        for job in self.queue.list_jobs("running", limit=None):
            worker = workers.setdefault(
                job.worker_id or "?", {"worker_id": job.worker_id, "jobs": [], "heartbeat_at": None}
            )
            worker["jobs"].append(job.id)
            beats = [b for b in (worker["heartbeat_at"], job.heartbeat_at) if b is not None]
            worker["heartbeat_at"] = max(beats) if beats else None
        schedules = []
        for schedule in self.scheduler.list_schedules():
            item = schedule.to_dict()
            item["what"] = _job_summary(item.pop("config"))
            schedules.append(item)
        return _json(
            {
                "now": time.time(),
                "counts": self.queue.counts(),
                "jobs": listed,
                "workers": sorted(workers.values(), key=lambda w: str(w["worker_id"])),
                "schedules": schedules,
            }
        )


def _job_summary(config: dict[str, Any]) -> str:
    """One line saying what a job trains or does: its files, template and overrides."""
    parts = [*map(str, config.get("files") or [])]
    if config.get("template"):
        parts.append(f"--template {config['template']}")
    parts += [str(o) for o in config.get("overrides") or []]
    if not parts and "config" in config:
        parts.append("a full config")
    return " ".join(parts) or ", ".join(sorted(config)) or ""


# -- helpers ---------------------------------------------------------------------------------


def _guarded(handler: Callable[[Request], Response]) -> Callable[[Request], Response]:
    """User errors become 400/404 JSON; anything else propagates (a 500, logged)."""

    def endpoint(request: Request) -> Response:
        try:
            return handler(request)
        except FilterSyntaxError as exc:
            body = {
                "error": exc.message,
                "text": getattr(exc, "text", None),
                "position": getattr(exc, "position", None),
            }
            return _json(body, status=400)
        except (RunNotFoundError, ModelNotFoundError) as exc:
            return _json({"error": exc.message}, status=404)
        except (UiRequestError, TrackingError) as exc:
            return _json({"error": str(getattr(exc, "message", exc))}, status=400)

    endpoint.__name__ = handler.__name__
    endpoint.__doc__ = handler.__doc__
    return endpoint


def _json(data: Any, status: int = 200) -> Response:
    try:  # the usual case, all numbers finite: one pass in C
        body = json.dumps(data, separators=(",", ":"), default=str, allow_nan=False)
    except ValueError:
        body = json.dumps(_clean(data), separators=(",", ":"), default=str, allow_nan=False)
    return Response(body, status_code=status, media_type="application/json")


def _clean(value: Any) -> Any:
    """NaN and infinities become None (JSON has no such numbers)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    return value


def _csv(chunks: Iterator[list[tuple[Any, ...]]]) -> Iterator[str]:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["step", "epoch", "value", "timestamp"])
    for chunk in chunks:
        writer.writerows(
            ("" if v is None else repr(v) if isinstance(v, float) else v for v in row)
            for row in chunk
        )
        yield buffer.getvalue()
        buffer.seek(0)
        buffer.truncate()
    yield buffer.getvalue()


def _json_points(run_id: int, key: str, chunks: Iterator[list[tuple[Any, ...]]]) -> Iterator[str]:
    yield json.dumps({"run_id": run_id, "key": key})[:-1] + ',"points":['
    first = True
    for chunk in chunks:
        rows = [json.dumps(_clean(list(row))) for row in chunk]
        yield ("" if first else ",") + ",".join(rows)
        first = False
    yield "]}"


def _required(q: Any, name: str) -> str:
    value = q.get(name)
    if not value:
        raise UiRequestError(f"missing query parameter {name!r}")
    return str(value)


def _int(q: Any, name: str, default: int) -> int:
    value = q.get(name)
    if value in (None, ""):
        return default
    try:
        return int(value)
    except ValueError:
        raise UiRequestError(f"{name} must be an integer, got {value!r}") from None


def _float(q: Any, name: str) -> float | None:
    value = q.get(name)
    if value in (None, ""):
        return None
    try:
        number = float(value)
    except ValueError:
        raise UiRequestError(f"{name} must be a number, got {value!r}") from None
    if not math.isfinite(number):
        raise UiRequestError(f"{name} must be a finite number, got {value!r}")
    return number


def _ids(text: str) -> list[int]:
    try:
        return [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise UiRequestError(
            f"run ids must be integers separated by commas, got {text!r}"
        ) from None


def _names(text: str) -> list[str]:
    return [part for part in text.split(",") if part]
