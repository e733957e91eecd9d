"""Root Typer application, global options and error-to-exit-code mapping."""

from __future__ import annotations

import logging
import sys
from typing import Annotated

import typer

from trainforge._version import __version__
from trainforge.cli import (
    _ckpt_cmd,
    _config_cmd,
    _evaluate_cmd,
    _export_cmd,
    _jobs_cmd,
    _registry_cmd,
    _runs_cmd,
    _schedules_cmd,
    _train_cmd,
    _triggers_cmd,
    _ui_cmd,
)
from trainforge.cli._process import claim_process, collect_and_freeze
from trainforge.errors import TrainforgeError
from trainforge.logs import configure_logging

app = typer.Typer(
    name="trainforge",
    help="trainforge: from a YAML config to a trained, tracked, trustworthy model.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)
app.command("train", context_settings=_train_cmd.CONTEXT)(_train_cmd.train)
app.add_typer(_config_cmd.app, name="config")
app.add_typer(_ckpt_cmd.app, name="ckpt")
app.add_typer(_runs_cmd.app, name="runs")
app.add_typer(_registry_cmd.app, name="registry")
app.command("ui")(_ui_cmd.ui)
app.command("evaluate")(_evaluate_cmd.evaluate)
app.add_typer(_jobs_cmd.app, name="jobs")
app.add_typer(_schedules_cmd.app, name="schedules")
app.add_typer(_triggers_cmd.app, name="triggers")
app.command("export")(_export_cmd.export)


def _version_callback(value: bool) -> None:
    if value:
        typer.echo(f"trainforge {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_version_callback, is_eager=True, help="Print the version."
        ),
    ] = False,
    log_level: Annotated[
        str | None,
        typer.Option(
            "--log-level",
            help="DEBUG, INFO, WARNING or ERROR (default WARNING; train uses run.log_level).",
        ),
    ] = None,
    log_format: Annotated[str, typer.Option("--log-format", help="text, json or rich.")] = "text",
    ctx: typer.Context = typer.Option(None, hidden=True),
) -> None:
    """Global options, applied before any command runs."""
    try:
        configure_logging(level=log_level or "WARNING", fmt=log_format)  # type: ignore[arg-type]
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None
    ctx.obj = {"log_level_given": log_level is not None, "log_format": log_format}


def main(argv: list[str] | None = None) -> int:
    """Run the CLI and return its exit code: 0, 1 (user error) or 2 (usage error)."""
    try:
        # standalone mode: Typer prints usage errors itself and exits with code 2
        app(args=argv, prog_name="trainforge", standalone_mode=True)
    except SystemExit as exc:
        if exc.code is None:
            return 0
        return exc.code if isinstance(exc.code, int) else 1
    except TrainforgeError as exc:
        typer.echo(f"error: {exc.user_message()}", err=True)
        return 1
    except OSError as exc:  # a path, a permission, a full disk: the machine's, not a bug
        logging.getLogger("trainforge.cli").debug("command failed", exc_info=True)
        where = f" ({exc.filename})" if exc.filename else ""
        typer.echo(f"error: {exc.strerror or exc}{where}", err=True)
        typer.echo("  hint: check the path, its permissions and the free space", err=True)
        return 1
    return 0


def _entry_point() -> None:
    claim_process()  # this process is the CLI's own: see trainforge.cli._process
    code = main()
    collect_and_freeze()
    sys.exit(code)
