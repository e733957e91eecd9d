"""Root Typer application, global options and error-to-exit-code mapping."""

from __future__ import annotations

import sys
from typing import Annotated

import click
import typer

from trainforge._version import __version__
from trainforge.cli import _config_cmd
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
app.add_typer(_config_cmd.app, name="config")


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
        str, typer.Option("--log-level", help="DEBUG, INFO, WARNING or ERROR.")
    ] = "WARNING",
    log_format: Annotated[str, typer.Option("--log-format", help="text, json or rich.")] = "text",
) -> None:
    """Global options, applied before any command runs."""
    configure_logging(level=log_level, fmt=log_format)


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; return (and, as a script, exit with) 0, 1 or 2."""
    try:
        app(args=argv, prog_name="trainforge", standalone_mode=False)
    except TrainforgeError as exc:
        typer.echo(f"error: {exc.user_message()}", err=True)
        return 1
    except click.exceptions.UsageError as exc:
        exc.show()
        return 2
    except click.exceptions.Exit as exc:
        return exc.exit_code
    except click.exceptions.Abort:
        typer.echo("aborted", err=True)
        return 1
    except click.exceptions.ClickException as exc:
        exc.show()
        return exc.exit_code
    return 0


def _entry_point() -> None:
    sys.exit(main())
