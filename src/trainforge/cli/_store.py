"""Which tracking store the ``runs`` and ``registry`` commands open.

The same rule as the Python API (:func:`trainforge.tracking.resolve_database_url`):
``--db``, else ``tracking.database`` of the ``--config`` files, else ``$TRAINFORGE_DB``,
else ``<run.output_dir>/trainforge.db``. The commands only open a store that exists: a
mistyped ``--db`` is an error, never a new empty database (and new directories).
"""

from __future__ import annotations

from typing import Annotated, Any

import typer

__all__ = ["ConfigOpt", "DbOpt", "database_url", "open_store", "remember_config"]

DbOpt = Annotated[
    str | None,
    typer.Option(
        "--db",
        help="Tracking store URL or file (default: tracking.database of --config, else "
        "$TRAINFORGE_DB, else outputs/trainforge.db).",
        show_default=False,
    ),
]

ConfigOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--config",
        help="Config file(s) whose tracking.database / run.output_dir choose the store.",
        show_default=False,
    ),
]

_config_files: list[str] = []


def remember_config(files: list[str] | None) -> None:
    """Record the group's ``--config`` files for the command that runs next."""
    _config_files[:] = files or []


def database_url(db: str | None) -> str:
    """The store URL for ``--db`` (may be None) and the remembered ``--config`` files."""
    from trainforge.tracking import resolve_database_url

    if db is None and _config_files:
        from trainforge.config import load_config

        config = load_config(*_config_files)
        return resolve_database_url(config.tracking.database, config.run.output_dir)
    return resolve_database_url(db)


def open_store(db: str | None) -> Any:
    """The existing tracking store chosen by ``--db`` and ``--config`` (never a new one).

    Raises:
        StoreUnavailableError: It does not exist or cannot be opened.
    """
    from trainforge.tracking import TrackingStore

    return TrackingStore(database_url(db), create=False)
