"""``trainforge registry``: register, promote, list, compare and trace models."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from trainforge.cli._output import metric_pairs, print_json, print_table
from trainforge.cli._store import ConfigOpt, DbOpt, open_store, remember_config

app = typer.Typer(help="Register, promote, list, compare and trace models.", no_args_is_help=True)

JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]


@app.callback()
def _group(config: ConfigOpt = None) -> None:
    """Register, promote, list, compare and trace models."""
    remember_config(config)


def _registry(url: str | None) -> Any:
    from trainforge.tracking import ModelRegistry

    return ModelRegistry(open_store(url))


def _checkpoint_location(value: str) -> str:
    """Where the registered checkpoint is: a URL as given, else an existing local path.

    A trainforge checkpoint is pinned: ``.../checkpoints/best`` (or a directory of
    checkpoints) is registered as the checkpoint directory it names today, so the version
    keeps pointing at the same weights when ``best`` moves on.
    """
    from pathlib import Path

    from trainforge.errors import CheckpointNotFoundError

    if "://" in value:
        return value
    path = Path(value)
    if not path.exists():
        raise CheckpointNotFoundError(
            f"--checkpoint {value}: no such file or directory",
            path=path,
            hint="pass the checkpoint's directory (or its best/last pointer), a model file, "
            "or a URL such as s3://bucket/model",
        )
    from trainforge.checkpoint import locate_checkpoint

    try:
        return str(locate_checkpoint(path).resolve())
    except CheckpointNotFoundError:  # a file of another kind: an export, a Lightning .ckpt
        return str(path.resolve())


def _print_models(models: list[dict[str, Any]], as_json: bool) -> None:
    if as_json:
        print_json(models)
        return
    print_table(
        "models",
        ["id", "name", "version", "tags", "aliases", "run", "formats", "checkpoint"],
        [
            (
                m["id"],
                m["name"],
                m["version"],
                ",".join(m["tags"]),
                ",".join(m["aliases"]),
                m["training_run_id"],
                ",".join(m["export_formats"]),
                m["checkpoint_path"],
            )
            for m in models
        ],
    )


@app.command("register")
def register(
    name: Annotated[str, typer.Argument(help="Model name.")],
    checkpoint: Annotated[
        str,
        typer.Option(
            "--checkpoint",
            help="Checkpoint directory, its best/last pointer, a model file, or a URL.",
        ),
    ],
    version: Annotated[int | None, typer.Option(help="Version (default: next).")] = None,
    task_type: Annotated[str | None, typer.Option("--task-type", help="Task type.")] = None,
    metric: Annotated[
        list[str] | None, typer.Option("--metric", "-m", help="KEY=NUMBER (repeatable).")
    ] = None,
    config_hash: Annotated[str | None, typer.Option("--config-hash")] = None,
    run_id: Annotated[int | None, typer.Option("--run-id", help="Training run id.")] = None,
    parent_id: Annotated[int | None, typer.Option("--parent-id", help="Parent model id.")] = None,
    export_format: Annotated[
        list[str] | None, typer.Option("--export-format", help="e.g. onnx (repeatable).")
    ] = None,
    size_mb: Annotated[float | None, typer.Option("--size-mb", help="Model size in MB.")] = None,
    db: DbOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Register a new model version."""
    metrics = metric_pairs(metric or [])
    location = _checkpoint_location(checkpoint)
    registry = _registry(db)
    model_id = registry.register_model(
        name,
        version=version,
        checkpoint_path=location,
        task_type=task_type,
        metrics=metrics,
        config_hash=config_hash,
        training_run_id=run_id,
        parent_model_id=parent_id,
        export_formats=export_format or [],
        model_size_mb=size_mb,
    )
    model = registry.get_model(model_id)
    if as_json:
        print_json(model)
    else:
        typer.echo(f"registered {name} version {model['version']} as model {model_id}")


@app.command("promote")
def promote(
    model_id: Annotated[int, typer.Argument(help="Model id.")],
    tag: Annotated[str, typer.Argument(help="production, staging, experimental or retired.")],
    alias: Annotated[
        bool, typer.Option("--alias", help="Treat TAG as a user-defined alias.")
    ] = False,
    db: DbOpt = None,
) -> None:
    """Move a lifecycle tag (or, with --alias, an alias) to a model version."""
    registry = _registry(db)
    if alias:
        registry.set_alias(model_id, tag)
    else:
        registry.promote_model(model_id, tag)
    model = registry.get_model(model_id)
    typer.echo(f"{model['name']} version {model['version']} (model {model_id}) is now {tag}")


@app.command("list")
def list_models(
    name: Annotated[str | None, typer.Option(help="Only this model name.")] = None,
    tag: Annotated[
        str | None, typer.Option(help="Only versions holding this tag or alias.")
    ] = None,
    db: DbOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """List registered model versions."""
    _print_models(_registry(db).list_models(name=name, tag=tag), as_json)


@app.command("compare")
def compare(
    model_ids: Annotated[list[int], typer.Argument(help="Model ids.")],
    db: DbOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Compare model versions side by side."""
    frame = _registry(db).compare_models(model_ids)
    if as_json:
        print_json(frame.reset_index().to_dict(orient="records"))
        return
    table = frame.T
    print_table(
        "models",
        ["field", *[f"model {i}" for i in table.columns]],
        [(field, *values) for field, values in zip(table.index, table.itertuples(index=False))],
    )


@app.command("lineage")
def lineage(
    model_id: Annotated[int, typer.Argument(help="Model id.")],
    db: DbOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Show a model's ancestors and the runs that trained them."""
    chain = _registry(db).get_lineage(model_id)
    if as_json:
        print_json(chain)
        return
    print_table(
        f"lineage of model {model_id}",
        ["generation", "model", "name", "version", "run", "run status", "config hash"],
        [
            (
                depth,
                e["model"]["id"],
                e["model"]["name"],
                e["model"]["version"],
                e["run"]["id"] if e["run"] else "",
                e["run"]["status"] if e["run"] else "",
                (e["model"]["config_hash"] or "")[:12],
            )
            for depth, e in enumerate(chain)
        ],
    )
