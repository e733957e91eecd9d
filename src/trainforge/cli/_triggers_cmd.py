"""``trainforge triggers``: should a registered model be retrained? Submit the job if so."""

from __future__ import annotations

from typing import Annotated

import typer

from trainforge.cli._jobs_cmd import manager
from trainforge.cli._output import metric_pairs, print_json, print_table
from trainforge.cli._store import DbOpt

app = typer.Typer(help="Check retraining triggers of registered models.", no_args_is_help=True)


@app.command("check")
def check(
    model: Annotated[str, typer.Argument(help="Model id, or model name (see --tag).")],
    tag: Annotated[
        str | None, typer.Option(help="Tag or alias of the version (default: latest).")
    ] = None,
    metric: Annotated[
        list[str] | None,
        typer.Option("--metric", "-m", help="Current KEY=NUMBER, against the registered one."),
    ] = None,
    drift: Annotated[float | None, typer.Option(help="Drift score (JS divergence).")] = None,
    new_data: Annotated[
        int | None, typer.Option("--new-data", help="Samples that arrived since training.")
    ] = None,
    drift_threshold: Annotated[float, typer.Option("--drift-threshold")] = 0.2,
    performance_threshold: Annotated[float, typer.Option("--performance-threshold")] = 0.1,
    time_days: Annotated[float, typer.Option("--time-days", help="Retrain after days.")] = 7.0,
    data_volume: Annotated[int, typer.Option("--data-volume", help="New samples.")] = 10_000,
    submit: Annotated[
        bool, typer.Option("--submit", help="Submit a train job when triggered.")
    ] = False,
    window_hours: Annotated[
        float, typer.Option("--window-hours", help="At most one job per window.")
    ] = 24.0,
    priority: Annotated[int, typer.Option(help="Priority of the submitted job.")] = 0,
    db: DbOpt = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Check a registered model's triggers (its registered metrics are the baseline)."""
    from trainforge.production import RetrainingTriggerManager

    triggers = RetrainingTriggerManager(
        drift_threshold, performance_threshold, time_days, data_volume
    )
    decision = triggers.evaluate_and_submit(
        manager(db),
        int(model) if model.isdigit() else model,
        tag=tag,
        current_metrics=metric_pairs(metric or []),
        drift_score=drift,
        new_data_count=new_data,
        window_s=window_hours * 3600.0,
        priority=priority,
        dry_run=not submit,
    )
    if as_json:
        print_json(decision.to_dict())
        return
    if not decision.triggered:
        typer.echo("no trigger fired: no retraining needed")
        return
    rows = [("reason", reason) for reason in decision.reasons]
    if decision.job_id is not None:
        state = "submitted" if decision.submitted else "already submitted in this window"
        rows.append(("job", f"{decision.job_id} ({state})"))
    elif not submit:
        rows.append(("job", "none (pass --submit to queue one)"))
    print_table("retraining triggered", ("", ""), rows, show_header=False)
