"""``trainforge export``: a run or checkpoint -> a checked, self-contained serving bundle."""

from __future__ import annotations

from typing import Annotated

import typer

from trainforge.cli._output import print_json, print_table
from trainforge.cli._store import DbOpt, open_store
from trainforge.errors import StoreUnavailableError

__all__ = ["export"]


def export(
    target: Annotated[
        str,
        typer.Argument(
            help="Run id, run folder (its best checkpoint), or checkpoint directory/pointer.",
            metavar="RUN_OR_CHECKPOINT",
            show_default=False,
        ),
    ],
    formats: Annotated[
        str | None,
        typer.Option(
            "--format",
            help="Comma-separated: onnx, torchscript, pytorch (default: the run's export.formats).",
            show_default=False,
        ),
    ] = None,
    output: Annotated[
        str | None,
        typer.Option("--output", "-o", help="Bundle folder (default: <run>/export/<checkpoint>)."),
    ] = None,
    register: Annotated[
        str | None,
        typer.Option("--register", help="Register the bundle in the model registry as NAME."),
    ] = None,
    overwrite: Annotated[
        bool, typer.Option("--overwrite", help="Replace an existing bundle folder.")
    ] = False,
    runs_dir: Annotated[
        str, typer.Option("--runs-dir", help="Where run folders are (run.output_dir).")
    ] = "outputs",
    db: DbOpt = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the manifest as JSON.")] = False,
) -> None:
    """Export a trained model: ONNX, TorchScript and PyTorch, each checked against PyTorch."""
    from trainforge.jobs import current_job_id
    from trainforge.production import check_formats
    from trainforge.train._export import export_checkpoint, register_bundle, resolve_export_target

    chosen = check_formats(formats) if formats is not None else None
    store = open_store(db) if register else None  # a wrong --db fails before exporting
    if store is None and target.isdigit():  # a run id: the store's run, where there is one
        try:
            store = open_store(db)
        except StoreUnavailableError:
            if db is not None:
                raise  # a --db that cannot be opened is an error, not a fallback

    checkpoint = resolve_export_target(target, runs_dir, store)
    bundle = export_checkpoint(
        checkpoint, formats=chosen, output=output, overwrite=overwrite, job_id=current_job_id()
    )
    model_id = register_bundle(bundle, register, store) if register and store else None
    if as_json:
        print_json({**bundle.manifest, "path": str(bundle.path), "model_id": model_id})
        return
    rows = []
    for name, result in bundle.manifest["formats"].items():
        diff = result["max_abs_diff"]
        rows.append(
            (
                name,
                "ok" if result["status"] == "ok" else "failed",
                "" if diff is None else f"{diff:.2e}",
                result["file"] or result["reason"],
            )
        )
    print_table(f"export of {checkpoint}", ["format", "status", "max abs diff", "file"], rows)
    typer.echo(f"bundle: {bundle.path}  ({bundle.size_mb:.2f} MB)")
    if model_id is not None:
        typer.echo(f"registered {register} as model {model_id}")
