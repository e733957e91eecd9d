"""``trainforge jobs``: submit, list, show, cancel and retry jobs; run a worker or a scheduler.

The worker and the scheduler run in the foreground, print one status line per event (one
JSON object per line with ``--json``) and stop cleanly on SIGTERM / SIGINT: a worker stops
claiming, stops its running jobs (their runs are marked ``killed``) and puts them back in
the queue for another worker to resume.
"""

from __future__ import annotations

import json
import signal
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Annotated, Any

import typer

from trainforge.cli._output import console, print_json, print_table
from trainforge.cli._store import DbOpt, database_url, open_store

app = typer.Typer(
    help="Submit, list and cancel jobs; run workers and the scheduler.", no_args_is_help=True
)

JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]
TypeOpt = Annotated[
    str, typer.Option("--type", "-t", help="Job type: train, evaluate, export or a registered one.")
]
ImportOpt = Annotated[
    list[str] | None,
    typer.Option("--import", help="Module to import first (it registers job types); repeatable."),
]


def manager(db: str | None, *, create: bool = False) -> Any:
    """The JobManager of the store chosen by ``--db`` (an existing one unless ``create``)."""
    from trainforge.jobs import JobManager
    from trainforge.tracking import TrackingStore

    store = TrackingStore(database_url(db)) if create else open_store(db)
    return JobManager(store)


def import_modules(modules: list[str] | None) -> None:
    """Import the ``--import`` modules (where user job types register themselves)."""
    import importlib

    from trainforge.errors import ImportPathError

    for module in modules or []:
        try:
            importlib.import_module(module)
        except ImportError as err:
            raise ImportPathError(
                f"--import {module}: {err}", hint="pass an importable module name (pkg.jobs)"
            ) from err


def job_config(job_type: str, args: list[str], config_json: str | None) -> dict[str, Any]:
    """The config of a job from the command line.

    ``train``: config files and ``key=value`` overrides, as for ``trainforge train``. Other
    types: ``key=value`` pairs (values read as YAML scalars) or ``--config-json``.
    """
    from trainforge.errors import ConfigError

    if config_json is not None:
        try:
            data = json.loads(config_json)
        except json.JSONDecodeError as err:
            raise ConfigError(f"--config-json is not valid JSON: {err}") from None
        if not isinstance(data, dict):
            raise ConfigError("--config-json must be a JSON object")
        return data
    if job_type in ("train", "training"):
        from trainforge.config import split_cli_args

        files, overrides = split_cli_args(args)
        spec: dict[str, Any] = {"files": files, "overrides": overrides}
        if not files:
            spec["template"] = "digits"
        return spec
    import yaml

    data = {}
    for item in args:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ConfigError(
                f"{item!r} is not KEY=VALUE", hint="e.g. checkpoint=outputs/run-000001/checkpoints"
            )
        data[key] = yaml.safe_load(value) if value else ""
    return data


def _job_rows(jobs: list[Any]) -> list[tuple[Any, ...]]:
    return [
        (
            j.id,
            j.job_type,
            j.status,
            j.priority,
            f"{j.attempts}/{j.max_attempts}",
            j.worker_id or "",
            _when(j.created_at),
            (j.error or "").splitlines()[0][:60] if j.error else "",
        )
        for j in jobs
    ]


def _when(stamp: float | None) -> str:
    return "" if stamp is None else time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(stamp))


@app.command("submit")
def submit(
    args: Annotated[
        list[str] | None,
        typer.Argument(help="train: config files and key=value overrides; else KEY=VALUE."),
    ] = None,
    job_type: TypeOpt = "train",
    priority: Annotated[int, typer.Option(help="Higher runs first.")] = 0,
    max_attempts: Annotated[int, typer.Option("--max-attempts", help="Attempts.")] = 3,
    config_json: Annotated[
        str | None, typer.Option("--config-json", help="The job config as a JSON object.")
    ] = None,
    modules: ImportOpt = None,
    db: DbOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Queue a job; its config is validated now (a bad one is refused here)."""
    import_modules(modules)
    jobs = manager(db, create=True)
    config = job_config(job_type, list(args or []), config_json)
    job_id = jobs.submit_job(job_type, config, priority=priority, max_attempts=max_attempts)
    job = jobs.get_job(job_id)
    if as_json:
        print_json(job.to_dict())
    else:
        typer.echo(f"submitted job {job_id} ({job.job_type}, priority {priority})")


@app.command("list")
def list_jobs(
    status: Annotated[
        list[str] | None, typer.Option("--status", help="Only this status (repeatable).")
    ] = None,
    job_type: Annotated[str | None, typer.Option("--type", help="Only this job type.")] = None,
    limit: Annotated[int, typer.Option(help="At most this many, newest first.")] = 50,
    db: DbOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """List jobs, newest first."""
    found = manager(db).list_jobs(status or None, job_type=job_type, limit=limit)
    if as_json:
        print_json([j.to_dict() for j in found])
        return
    print_table(
        "jobs",
        ["id", "type", "status", "priority", "attempts", "worker", "created", "error"],
        _job_rows(found),
    )


@app.command("show")
def show(
    job_id: Annotated[int, typer.Argument(help="Job id.")],
    db: DbOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Show one job: its config, state, result and the runs it produced."""
    jobs = manager(db)
    job = jobs.get_job(job_id)
    runs = jobs.runs_of(job_id)
    if as_json:
        print_json({**job.to_dict(), "runs": runs})
        return
    rows = [
        ("type", job.job_type),
        ("status", job.status),
        ("priority", job.priority),
        ("attempts", f"{job.attempts} of {job.max_attempts}"),
        ("worker", job.worker_id or "-"),
        ("created", _when(job.created_at)),
        ("started", _when(job.started_at) or "-"),
        ("finished", _when(job.finished_at) or "-"),
        ("not before", _when(job.not_before) or "-"),
        ("reasons", "; ".join(job.reasons) or "-"),
        ("runs", ", ".join(f"{r['id']} ({r['status']})" for r in runs) or "-"),
        ("result", json.dumps(job.result) if job.result is not None else "-"),
        ("error", job.error or "-"),
    ]
    print_table(f"job {job_id}", ("", ""), rows, show_header=False)


@app.command("cancel")
def cancel(
    job_id: Annotated[int, typer.Argument(help="Job id.")],
    db: DbOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Cancel a queued or running job (a running one stops at its next heartbeat)."""
    job = manager(db).cancel(job_id)
    if as_json:
        print_json(job.to_dict())
    else:
        typer.echo(f"cancelled job {job_id}")


@app.command("retry")
def retry(
    job_id: Annotated[int, typer.Argument(help="Job id.")],
    db: DbOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Queue a failed or cancelled job again."""
    job = manager(db).retry(job_id)
    if as_json:
        print_json(job.to_dict())
    else:
        typer.echo(f"job {job_id} is queued again")


@contextmanager
def stop_on_signals(stop: Callable[[], None]) -> Iterator[list[int]]:
    """Call ``stop`` on SIGTERM / SIGINT while the block runs; yields the signals received."""
    received: list[int] = []

    def handler(signum: int, _frame: Any) -> None:
        received.append(signum)
        stop()

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield received
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def status_line(as_json: bool) -> Callable[..., None]:
    """A printer of one status line per event: Rich text, or one JSON object per line."""
    out = console()

    def emit(event: str, **fields: Any) -> None:
        if as_json:
            typer.echo(json.dumps({"time": time.time(), "event": event, **fields}, default=str))
            return
        detail = " ".join(f"{k}={v}" for k, v in fields.items() if v not in (None, ""))
        out.print(f"[dim]{time.strftime('%H:%M:%S')}[/dim] [bold]{event}[/bold] {detail}")

    return emit


@app.command("worker")
def worker(
    concurrency: Annotated[int, typer.Option(help="Jobs run at the same time.")] = 1,
    once: Annotated[
        bool, typer.Option("--once", help="Exit when no job is due instead of waiting.")
    ] = False,
    poll: Annotated[float, typer.Option(help="Seconds between claims when idle.")] = 2.0,
    heartbeat: Annotated[float, typer.Option(help="Seconds between job heartbeats.")] = 10.0,
    stale_timeout: Annotated[
        float,
        typer.Option("--stale-timeout", help="Requeue running jobs silent this long (s)."),
    ] = 120.0,
    worker_id: Annotated[str | None, typer.Option("--worker-id", help="Worker name.")] = None,
    retry_backoff: Annotated[
        float,
        typer.Option("--retry-backoff", help="Seconds before the first retry (doubles)."),
    ] = 30.0,
    modules: ImportOpt = None,
    db: DbOpt = None,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per line.")] = False,
) -> None:
    """Run jobs from the queue in the foreground until SIGTERM / SIGINT (or, --once, idle)."""
    from trainforge.errors import JobStateError
    from trainforge.jobs import Worker

    import_modules(modules)
    emit = status_line(as_json)
    jobs = manager(db)
    jobs.backoff_s = retry_backoff
    try:
        runner = Worker(
            jobs,
            worker_id=worker_id,
            concurrency=concurrency,
            poll_interval_s=poll,
            heartbeat_interval_s=heartbeat,
            stale_timeout_s=stale_timeout,
            on_event=lambda event, job, detail: emit(
                event, job=job.id, type=job.job_type, detail=detail
            ),
        )
    except ValueError as err:
        raise JobStateError(f"worker options: {err}") from None
    emit("worker started", worker=runner.worker_id, concurrency=concurrency)
    with stop_on_signals(runner.stop) as received:
        processed = runner.run(once=once)
    how = f"signal {signal.Signals(received[0]).name}" if received else "queue empty"
    emit("worker stopped", worker=runner.worker_id, jobs=processed, reason=how)


@app.command("scheduler")
def scheduler(
    once: Annotated[bool, typer.Option("--once", help="Tick once and exit.")] = False,
    interval: Annotated[float, typer.Option(help="Seconds between ticks.")] = 30.0,
    db: DbOpt = None,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per line.")] = False,
) -> None:
    """Enqueue due schedule slots until SIGTERM / SIGINT (or, --once, after one tick).

    While the store is unreachable the scheduler keeps ticking (one warning line per
    outage); slots missed meanwhile follow each schedule's catch-up policy.
    """
    import threading

    from trainforge.errors import StoreUnavailableError
    from trainforge.jobs import TrainingScheduler

    emit = status_line(as_json)
    runner = TrainingScheduler(manager(db))
    stop = threading.Event()
    emit("scheduler started", schedules=len(runner.list_schedules()))
    down = False
    with stop_on_signals(stop.set) as received:
        while True:
            try:
                for job_id in runner.tick():
                    job = runner.manager.get_job(job_id)
                    slot = _when(job.scheduled_for)
                    emit("enqueued", job=job_id, schedule=job.schedule_id, slot=slot)
            except StoreUnavailableError as err:
                if once:
                    raise
                if not down:
                    emit("store unavailable", error=err.message, retry=f"every {interval:g} s")
                down = True
            else:
                if down:
                    emit("store back")
                down = False
            if once or stop.wait(interval):
                break
    how = f"signal {signal.Signals(received[0]).name}" if received else "once"
    emit("scheduler stopped", reason=how)
