"""``trainforge runs``: list, show, compare, search and plot tracked runs.

The store, pandas and matplotlib are imported inside the commands, so ``--help`` and the
other command groups start fast.
"""

from __future__ import annotations

import datetime as _dt
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer

from trainforge.cli._output import print_json, print_table
from trainforge.cli._store import ConfigOpt, DbOpt, open_store, remember_config

app = typer.Typer(
    help="List, inspect, compare, search and plot tracked runs.", no_args_is_help=True
)

JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]
LimitOpt = Annotated[int, typer.Option("--limit", "-n", min=0, help="At most this many runs.")]


@app.callback()
def _group(config: ConfigOpt = None) -> None:
    """List, inspect, compare, search and plot tracked runs."""
    remember_config(config)


def _db(url: str | None) -> Any:
    from trainforge.tracking import ExperimentDB

    return ExperimentDB(open_store(url))


def _when(timestamp: float | None) -> str:
    if timestamp is None:
        return ""
    return _dt.datetime.fromtimestamp(timestamp).strftime("%Y-%m-%d %H:%M:%S")


def _seconds(value: float | None) -> str:
    return "" if value is None else f"{value:.1f}s"


MONITOR_PARAMS = ("checkpoint.monitor", "callbacks.early_stopping.monitor")


def shown_metrics(run: dict[str, Any], chosen: list[str] | None, count: int = 4) -> list[str]:
    """The metric keys a runs table shows: the chosen ones, else the monitor, val/*, train/*."""
    if chosen:
        return chosen
    logged = run.get("metrics", {})
    params = run.get("params", {})
    monitors = [str(params[p]) for p in MONITOR_PARAMS if params.get(p)]
    ranked = [
        *monitors,
        *sorted(k for k in logged if k.startswith("val/")),
        *sorted(k for k in logged if k.startswith("train/")),
    ]
    keys = list(dict.fromkeys(k for k in ranked if k in logged)) or sorted(logged)
    return keys[:count]


def _metric_cell(run: dict[str, Any], keys: list[str]) -> str:
    logged = run.get("metrics", {})
    return ", ".join(
        f"{k}={logged[k]['last']:.4g}"
        if k in logged and logged[k]["last"] is not None
        else f"{k}=-"
        for k in keys
    )


def _print_runs(
    found: list[dict[str, Any]], title: str, as_json: bool, metrics: list[str] | None = None
) -> None:
    if as_json:
        print_json(found)
        return
    print_table(
        title,
        ["id", "name", "experiment", "status", "started", "duration", "metrics"],
        [
            (
                r["run_id"],
                r["name"],
                r["experiment"],
                r["status"],
                _when(r["start_time"]),
                _seconds(r["duration_s"]),
                _metric_cell(r, shown_metrics(r, metrics)),
            )
            for r in found
        ],
    )


MetricsOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--metrics",
        "-m",
        help="Metrics to show (repeatable); by default the monitored metric first.",
    ),
]


@app.command("list")
def list_runs(
    db: DbOpt = None,
    experiment: Annotated[str | None, typer.Option(help="Only this experiment.")] = None,
    project: Annotated[str | None, typer.Option(help="Only this project.")] = None,
    status: Annotated[
        str | None,
        typer.Option(help="Only runs in this status (running, completed, failed, killed, stale)."),
    ] = None,
    limit: LimitOpt = 50,
    stale_after: Annotated[
        float,
        typer.Option(min=0, help="Mark running runs silent for this many seconds as stale first."),
    ] = 300.0,
    metrics: MetricsOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """List the newest runs (running runs whose heartbeat stopped become ``stale``)."""
    store = _db(db)
    store.mark_stale_runs(stale_after)
    found = store.list_runs(project=project, experiment=experiment, status=status, limit=limit)
    _print_runs(found, "runs", as_json, metrics)


@app.command("show")
def show(
    run_id: Annotated[int, typer.Argument(help="Run id.")],
    db: DbOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Show one run: attributes, tags, params, metric summaries, artifacts."""
    run = _db(db).get_run(run_id)
    if as_json:
        print_json(run)
        return
    attributes = ("name", "project", "experiment", "status", "config_hash", "git_commit", "host")
    rows: list[tuple[str, Any]] = [(key, run[key]) for key in attributes]
    rows += [("started", _when(run["start_time"])), ("duration", _seconds(run["duration_s"]))]
    rows += [(f"tags.{k}", v) for k, v in sorted(run["tags"].items())]
    rows += [(f"params.{k}", v) for k, v in sorted(run["params"].items())]
    print_table(f"run {run_id}", ["field", "value"], rows)
    print_table(
        "metrics",
        ["key", "last", "step", "min", "max", "count"],
        [
            (k, m["last"], m["step"], m["min"], m["max"], m["count"])
            for k, m in sorted(run["metrics"].items())
        ],
    )
    if run["artifacts"]:
        print_table(
            "artifacts",
            ["path", "sha256", "bytes"],
            [(a["path"], a["sha256"][:16], a["size_bytes"]) for a in run["artifacts"]],
        )


@app.command("compare")
def compare(
    run_ids: Annotated[list[int], typer.Argument(help="Run ids to put side by side.")],
    db: DbOpt = None,
    metric: Annotated[
        list[str] | None, typer.Option("--metric", "-m", help="Only these metrics.")
    ] = None,
    show_all: Annotated[
        bool, typer.Option("--all", help="Also show the params every run shares.")
    ] = False,
    as_json: JsonOpt = False,
) -> None:
    """Compare runs: last metric values first, then the params that differ (``--all``: every one).

    ``--json`` always carries every field.
    """
    frame = _db(db).compare_runs(run_ids, metrics=metric or None)
    if as_json:
        print_json(frame.reset_index().to_dict(orient="records"))
        return
    table = frame.T  # one column per run reads better than one wide row each
    fields = [str(f) for f in table.index]
    params = [f for f in fields if f.startswith("params.")]
    differing = [f for f in params if show_all or _differs(table.loc[f].tolist())]
    order = [
        *(f for f in fields if not f.startswith(("params.", "metrics."))),
        *(f for f in fields if f.startswith("metrics.")),
        *differing,
    ]
    print_table(
        "comparison",
        ["field", *[f"run {i}" for i in table.columns]],
        [(field, *table.loc[field].tolist()) for field in order],
    )
    hidden = len(params) - len(differing)
    if hidden:
        typer.echo(f"{hidden} params identical in every run are hidden; --all shows them")


def _differs(values: list[Any]) -> bool:
    """Whether a row of compared values holds more than one distinct value (NaN = missing)."""
    seen = {None if isinstance(v, float) and v != v else repr(v) for v in values}
    return len(seen) > 1


@app.command("search")
def search(
    filter: Annotated[str, typer.Argument(help='e.g. "metrics.val/loss < 0.4 and tags.baseline".')],
    db: DbOpt = None,
    order_by: Annotated[
        list[str] | None,
        typer.Option("--order-by", "-o", help="e.g. 'metrics.val/loss asc' (repeatable)."),
    ] = None,
    limit: LimitOpt = 50,
    metrics: MetricsOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Search runs with the filter language (see docs/tracking.md)."""
    found = _db(db).search_runs(filter, order_by=order_by or None, limit=limit)
    _print_runs(found, f"runs matching {filter!r}", as_json, metrics)


@app.command("plot")
def plot(
    run_ids: Annotated[list[int], typer.Argument(help="Run ids to plot.")],
    metric: Annotated[
        list[str] | None, typer.Option("--metric", "-m", help="Metric to plot (repeatable).")
    ] = None,
    output: Annotated[Path, typer.Option("--output", "-o", help="PNG file to write.")] = Path(
        "runs.png"
    ),
    dashboard: Annotated[
        bool,
        typer.Option("--dashboard", help="One run's dashboard: 6 panels, 10 when it logged drift."),
    ] = False,
    db: DbOpt = None,
) -> None:
    """Plot metrics of runs against step (or one run's dashboard) and write a PNG."""
    from trainforge.errors import TrackingError

    if dashboard:
        if len(run_ids) != 1 or metric:
            raise TrackingError(
                "--dashboard draws one run and chooses its own metrics",
                hint="trainforge runs plot RUN_ID --dashboard -o dashboard.png",
            )
        from trainforge.cli._dashboard_cmd import write_dashboard

        store = _db(db)
        with _writing_png(output):
            typer.echo(f"wrote {write_dashboard(store, run_ids[0], output)}")
        return
    if not metric:
        raise TrackingError(
            "runs plot needs --metric/-m (repeatable), or --dashboard",
            hint="`trainforge runs show RUN_ID` lists a run's metrics",
        )
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    store = _db(db)
    figure, axes = plt.subplots(len(metric), 1, figsize=(8, 3 * len(metric)), squeeze=False)
    plotted = 0
    try:
        for axis, key in zip(axes[:, 0], metric):
            drawn = 0
            for run_id in run_ids:
                history = store.get_metric_history(run_id, key)
                if not history.empty:
                    axis.plot(history["step"], history["value"], label=f"run {run_id}")
                    drawn += 1
            axis.set_title(key)
            axis.set_xlabel("step")
            if drawn:  # a legend of nothing is a matplotlib warning
                axis.legend(loc="best")
            plotted += drawn
        if plotted == 0:
            raise TrackingError(
                f"none of the runs {run_ids} logged {', '.join(metric)}",
                hint="`trainforge runs show RUN_ID` lists a run's metrics",
            )
        figure.tight_layout()
        with _writing_png(output):
            figure.savefig(output, dpi=100)
    finally:
        plt.close(figure)
    typer.echo(f"wrote {output}")


@contextmanager
def _writing_png(output: Path) -> Iterator[None]:
    """Create ``output``'s folder; a file that cannot be written is a clear error."""
    from trainforge.errors import TrainforgeError

    try:
        output.parent.mkdir(parents=True, exist_ok=True)
        yield
    except OSError as err:
        raise TrainforgeError(
            f"cannot write {output}: {err.strerror or err}",
            hint="choose another --output (a PNG file in a folder you can write)",
        ) from None
