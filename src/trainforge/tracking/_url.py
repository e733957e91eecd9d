"""Where the tracking store lives: one resolution rule shared by the Python API and the CLI.

Order: an explicit ``database`` (the config's ``tracking.database`` or a ``--db`` option),
else the environment variable ``TRAINFORGE_DB``, else ``sqlite:///<output_dir>/trainforge.db``.
A plain file path is accepted wherever a URL is and becomes a SQLite URL.
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["DATABASE_ENV_VAR", "DEFAULT_DB_FILENAME", "display_url", "resolve_database_url"]

DATABASE_ENV_VAR = "TRAINFORGE_DB"
"""The environment variable naming the tracking store when no database is given."""
DEFAULT_DB_FILENAME = "trainforge.db"


def resolve_database_url(
    database: str | os.PathLike[str] | None = None, output_dir: str | os.PathLike[str] = "outputs"
) -> str:
    """Return the tracking store URL: ``database``, else ``$TRAINFORGE_DB``, else the default.

    Args:
        database: A SQLAlchemy URL or a plain file path; ``None`` or ``""`` means unset.
        output_dir: Directory of the default SQLite file ``trainforge.db``.

    Returns:
        A SQLAlchemy URL; plain paths become ``sqlite:///<absolute path>``.

    Examples:
        >>> resolve_database_url("runs.db").startswith("sqlite:///")
        True
    """
    chosen = os.fspath(database) if database not in (None, "") else None
    if chosen is None:
        chosen = os.environ.get(DATABASE_ENV_VAR) or None
    if chosen is None:
        chosen = os.fspath(Path(output_dir) / DEFAULT_DB_FILENAME)
    return _as_url(chosen)


def _as_url(value: str) -> str:
    if "://" in value:
        return value
    return "sqlite:///" + str(Path(value).expanduser().resolve())


def display_url(url: str) -> str:
    """The URL with any password hidden, for messages and logs."""
    from sqlalchemy.engine import make_url

    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # an unparsable URL is shown as given; the parse error is raised later
        return url


def sqlite_path(url: str) -> Path | None:
    """The database file of a SQLite URL (``None`` for in-memory or non-SQLite URLs)."""
    from sqlalchemy.engine import make_url

    parsed = make_url(url)
    if not parsed.drivername.startswith("sqlite") or not parsed.database:
        return None
    database = parsed.database
    if database == ":memory:":
        return None
    if database.startswith("file:"):  # SQLite URI filename: file:/path?mode=ro
        database = database[len("file:") :].split("?", 1)[0]
    return Path(database)
