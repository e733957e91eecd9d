"""``trainforge schedules``: cron schedules that enqueue jobs (run by ``jobs scheduler``)."""

from __future__ import annotations

import time
from typing import Annotated, Any

import typer

from trainforge.cli._jobs_cmd import ImportOpt, import_modules, job_config, manager
from trainforge.cli._output import print_json, print_table
from trainforge.cli._store import DbOpt

app = typer.Typer(help="Create, list, enable, disable and delete schedules.", no_args_is_help=True)

JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]
NameArg = Annotated[str, typer.Argument(help="Schedule name.")]


def _scheduler(db: str | None, *, create: bool = False) -> Any:
    from trainforge.jobs import TrainingScheduler

    return TrainingScheduler(manager(db, create=create))


def _when(stamp: float | None) -> str:
    return "" if stamp is None else time.strftime("%Y-%m-%d %H:%M:%S %Z", time.localtime(stamp))


def _print(schedules: list[Any], as_json: bool) -> None:
    if as_json:
        print_json([s.to_dict() for s in schedules])
        return
    print_table(
        "schedules",
        ["id", "name", "type", "cron", "time zone", "catch-up", "enabled", "next run", "last"],
        [
            (
                s.id,
                s.name,
                s.job_type,
                s.schedule_expr,
                s.timezone,
                s.catchup,
                "yes" if s.enabled else "no",
                _when(s.next_run_at) if s.enabled else "-",
                _when(s.last_run_at) or "-",
            )
            for s in schedules
        ],
    )


@app.command("create")
def create(
    name: NameArg,
    cron: Annotated[str, typer.Argument(help="Cron expression, e.g. '0 2 * * *'.")],
    args: Annotated[
        list[str] | None,
        typer.Argument(help="train: config files and key=value overrides; else KEY=VALUE."),
    ] = None,
    job_type: Annotated[str, typer.Option("--type", "-t", help="Job type.")] = "train",
    priority: Annotated[int, typer.Option(help="Priority of the jobs it submits.")] = 0,
    timezone: Annotated[str, typer.Option("--timezone", help="IANA time zone.")] = "UTC",
    catchup: Annotated[
        str, typer.Option("--catchup", help="Missed slots: latest (one job) or all.")
    ] = "latest",
    config_json: Annotated[
        str | None, typer.Option("--config-json", help="The job config as a JSON object.")
    ] = None,
    modules: ImportOpt = None,
    db: DbOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Create a schedule; the job config is validated now."""
    import_modules(modules)
    scheduler = _scheduler(db, create=True)
    config = job_config(job_type, list(args or []), config_json)
    schedule_id = scheduler.create_schedule(
        name, job_type, config, cron, priority, timezone, catchup=catchup
    )
    schedule = scheduler.get_schedule(schedule_id)
    if as_json:
        print_json(schedule.to_dict())
    else:
        typer.echo(f"created schedule {name!r}; next run {_when(schedule.next_run_at)}")


@app.command("list")
def list_schedules(db: DbOpt = None, as_json: JsonOpt = False) -> None:
    """List schedules."""
    _print(_scheduler(db).list_schedules(), as_json)


@app.command("enable")
def enable(name: NameArg, db: DbOpt = None, as_json: JsonOpt = False) -> None:
    """Enable a schedule (from its next slot on; missed slots are not caught up)."""
    _print([_scheduler(db).enable(name)], as_json)


@app.command("disable")
def disable(name: NameArg, db: DbOpt = None, as_json: JsonOpt = False) -> None:
    """Disable a schedule."""
    _print([_scheduler(db).disable(name)], as_json)


@app.command("delete")
def delete(name: NameArg, db: DbOpt = None, as_json: JsonOpt = False) -> None:
    """Delete a schedule (jobs it submitted stay)."""
    _scheduler(db).delete(name)
    if as_json:
        print_json({"deleted": name})
    else:
        typer.echo(f"deleted schedule {name!r}")
