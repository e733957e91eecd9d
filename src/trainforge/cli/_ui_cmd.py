"""``trainforge ui``: serve the read-only run browser over the tracking store."""

from __future__ import annotations

from typing import Annotated

import typer

from trainforge.cli._store import DbOpt, database_url

__all__ = ["ui"]


def ui(
    db: DbOpt = None,
    host: Annotated[
        str,
        typer.Option(help="Address to listen on; anything but loopback is reachable by others."),
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=0, max=65535, help="Port to listen on.")] = 5005,
) -> None:
    """Browse runs, curves, comparisons and the model registry in a web browser.

    Binds 127.0.0.1 unless --host is given (then it warns: the UI has no login).
    """
    from trainforge.ui import is_loopback, serve

    url = database_url(db)
    shown = "localhost" if is_loopback(host) else host
    typer.echo(f"trainforge ui: http://{shown}:{port}/  (store {url}; Ctrl-C stops)")
    serve(url, host=host, port=port)
