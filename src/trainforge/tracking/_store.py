"""The tracking store: one SQLAlchemy engine, SQLite (WAL), PostgreSQL or MySQL/MariaDB,
migrated on open.

SQLite: the pysqlite driver's own transaction handling is switched off
(``isolation_level=None``) and every write transaction starts with ``BEGIN IMMEDIATE``, so a
writer takes the write lock up front and waits ``busy_timeout`` for it, instead of failing
half-way with "database is locked" when it upgrades a read lock. Readers use a plain
``BEGIN`` and, with WAL, never block writers. PostgreSQL and MySQL use a connection pool
(a connection idle for over a second is pinged before it is used again) and the
database's own locking (MySQL sessions at READ COMMITTED, strict SQL mode,
utf8mb4; see ``_dialect``). Transient lock, deadlock and serialization errors are
retried with backoff, so they never reach the user. A value the database refuses (a
constraint, a number out of range) is a :class:`~trainforge.errors.TrackingValueError`,
never reported as an unavailable database; the rest of trainforge checks values first
(see ``_limits``) so that every backend accepts the same data.
"""

from __future__ import annotations

import functools
import logging
import random
import time
import weakref
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import create_engine, event, exc, text
from sqlalchemy.engine import Connection, Engine, make_url

from trainforge.errors import StoreUnavailableError, TrackingValueError
from trainforge.tracking._dialect import (
    check_server,
    is_refused_value,
    is_transient,
    migration_lock,
    mysql_engine_options,
    storage_bytes_sql,
)
from trainforge.tracking._schema import HEAD_REVISION, VERSION_TABLE
from trainforge.tracking._url import display_url, resolve_database_url, sqlite_path

__all__ = ["TrackingStore"]

log = logging.getLogger(__name__)
T = TypeVar("T")

_READ_OPTION = "trainforge_read"
_BUSY_TIMEOUT_MS = 30_000
_RETRY_SECONDS = 120.0
_PING_AFTER_IDLE_S = 1.0  # a pooled connection idle longer is pinged before use
_URL_FORMS = (
    "use sqlite:///path/to/file.db, postgresql+psycopg://user@host/db, "
    "mysql+pymysql://user@host:3306/db or a plain file path"
)


class TrackingStore:
    """Connection to one tracking database; applies pending migrations when opened.

    Args:
        url: SQLAlchemy URL or plain file path; ``None`` resolves the default (see
            :func:`resolve_database_url`).
        pool_size: PostgreSQL / MySQL connection pool size.
        revision: Schema revision to upgrade to on open; ``"head"`` (the default) is the
            only one the rest of trainforge works with.
        create: Create a missing SQLite file (and its directory); with False a missing
            file is an error (the CLI's reading commands never create a store).

    Raises:
        StoreUnavailableError: The database cannot be reached, created or upgraded, or
            (``create=False``) does not exist.

    Examples:
        >>> store = TrackingStore("sqlite:///:memory:")
        >>> store.url
        'sqlite:///:memory:'
    """

    def __init__(
        self,
        url: str | None = None,
        *,
        pool_size: int = 5,
        revision: str = "head",
        create: bool = True,
    ) -> None:
        self.url = resolve_database_url(url)
        self.display_url = display_url(self.url)
        self.engine = self._create_engine(pool_size, create)
        # Close pooled connections when the store is dropped without dispose().
        weakref.finalize(self, self.engine.dispose)
        self.dialect = self.engine.dialect.name
        self._migrate(revision)

    def __repr__(self) -> str:
        return f"TrackingStore({self.display_url!r})"

    def _create_engine(self, pool_size: int, create: bool) -> Engine:
        try:
            parsed = make_url(self.url)
        except exc.ArgumentError as err:
            raise StoreUnavailableError(
                f"tracking database URL {self.url!r} is not a valid URL: {err}",
                hint=_URL_FORMS,
            ) from err
        if parsed.drivername.startswith("sqlite"):
            path = sqlite_path(self.url)
            if path is not None and not create and not path.is_file():
                raise StoreUnavailableError(
                    f"there is no tracking database at {path}",
                    path=path,
                    hint="check --db / TRAINFORGE_DB (or the config's tracking.database); "
                    "a training run creates the store",
                )
            if path is not None and "mode=ro" not in self.url:
                try:
                    path.parent.mkdir(parents=True, exist_ok=True)
                except OSError as err:
                    raise StoreUnavailableError(
                        f"cannot create the folder of the tracking database {path}: "
                        f"{err.strerror or err}",
                        path=path,
                        hint="set tracking.database (--db, TRAINFORGE_DB) to a file in a "
                        "folder you can write",
                    ) from None
            connect_args = {"check_same_thread": False, "timeout": _BUSY_TIMEOUT_MS / 1000}
            if (parsed.database or "").startswith("file:"):
                connect_args["uri"] = True
            engine = create_engine(self.url, connect_args=connect_args)
            event.listen(engine, "connect", _sqlite_on_connect)
            event.listen(engine, "begin", _sqlite_on_begin)
            return engine
        url: Any = self.url
        options: dict[str, Any] = {}
        if parsed.get_backend_name() in ("mysql", "mariadb"):
            url, options = mysql_engine_options(self.url)
        try:
            engine = create_engine(url, pool_size=pool_size, max_overflow=pool_size, **options)
        except (exc.NoSuchModuleError, ModuleNotFoundError) as err:
            raise StoreUnavailableError(
                f"no database driver for {self.display_url}: {err}",
                hint="for PostgreSQL: pip install 'trainforge[postgres]' and use "
                "postgresql+psycopg://; for MySQL or MariaDB: pip install "
                "'trainforge[mysql]' and use mysql+pymysql://",
            ) from err
        event.listen(engine, "checkin", _mark_idle)
        event.listen(engine, "checkout", functools.partial(_ping_if_idle, engine.dialect))
        return engine

    # -- transactions ------------------------------------------------------------------

    def write(self, fn: Callable[[Connection], T]) -> T:
        """Run ``fn(conn)`` in one write transaction, retrying transient lock errors."""
        return self._run(fn, read=False)

    def read(self, fn: Callable[[Connection], T]) -> T:
        """Run ``fn(conn)`` in one read transaction (never blocks SQLite writers)."""
        return self._run(fn, read=True)

    def write_one(self, fn: Callable[[Connection], T]) -> T:
        """As :meth:`write`, for an ``fn`` that runs one statement on PostgreSQL.

        On PostgreSQL the statement is its own transaction (autocommit: one round trip,
        no ``BEGIN`` / ``COMMIT``); elsewhere ``fn`` runs in a write transaction.
        """
        return self._run(fn, read=False, single=self.dialect == "postgresql")

    def _run(self, fn: Callable[[Connection], T], *, read: bool, single: bool = False) -> T:
        deadline = time.monotonic() + _RETRY_SECONDS
        delay = 0.005
        # raw driver errors come from driver-level code (COPY): the DBAPI's own classes
        raw_error = getattr(self.engine.dialect.loaded_dbapi, "Error", exc.DBAPIError)
        while True:
            try:
                with self.engine.connect() as conn:
                    if read:
                        conn = conn.execution_options(**{_READ_OPTION: True})
                    if single:  # the driver commits the statement: nothing to begin
                        return fn(conn.execution_options(isolation_level="AUTOCOMMIT"))
                    with conn.begin():
                        return fn(conn)
            except (exc.DBAPIError, raw_error) as err:
                if is_transient(err) and time.monotonic() < deadline:
                    time.sleep(delay * (1 + random.random()))
                    delay = min(delay * 2, 0.5)
                    continue
                raise self.failure(err) from err
            except OverflowError as err:  # sqlite3 binding an integer beyond 64 bits
                raise self.refused(err) from err

    def failure(self, err: BaseException) -> TrackingValueError | StoreUnavailableError:
        """The trainforge error for a driver error: a refused value, or an unreachable store."""
        if is_refused_value(err):
            return self.refused(err)
        return self.unavailable(err)

    def refused(self, err: BaseException) -> TrackingValueError:
        """A value the database refused, as a user error naming the database."""
        reason = str(getattr(err, "orig", None) or err).strip().splitlines()[0]
        return TrackingValueError(f"tracking database {self.display_url} refused a value: {reason}")

    def unavailable(self, err: BaseException) -> StoreUnavailableError:
        """Turn a driver error into a message naming the database and what to do."""
        reason = str(getattr(err, "orig", None) or err).strip().splitlines()[0]
        lowered = reason.lower()
        if "readonly" in lowered or "read-only" in lowered or "read only" in lowered:
            return StoreUnavailableError(
                f"tracking database {self.display_url} is read-only: {reason}",
                path=sqlite_path(self.url),
                hint="point --db / TRAINFORGE_DB at a writable database, or fix the file's "
                "permissions",
            )
        if "unable to open" in lowered:
            return StoreUnavailableError(
                f"cannot open tracking database {self.display_url}: {reason}",
                path=sqlite_path(self.url),
                hint="check that the directory exists and is writable",
            )
        if "unknown database" in lowered or ("database" in lowered and "does not exist" in lowered):
            return StoreUnavailableError(
                f"tracking database {self.display_url} does not exist on its server: {reason}",
                hint="create it once (MySQL: CREATE DATABASE name CHARACTER SET utf8mb4; "
                "PostgreSQL: createdb name); trainforge creates the tables",
            )
        names = {cls.__name__ for cls in type(getattr(err, "orig", None) or err).__mro__}
        if not names & {"OperationalError", "InterfaceError"}:  # the server answered
            return StoreUnavailableError(
                f"tracking database {self.display_url} failed a query: {reason}",
                hint="this is a trainforge bug if it comes back: please report it",
            )
        return StoreUnavailableError(
            f"tracking database {self.display_url} is unavailable: {reason}",
            hint="check the URL (--db / TRAINFORGE_DB) and that the server is running",
        )

    # -- schema ------------------------------------------------------------------------

    def current_revision(self) -> str | None:
        """The schema revision recorded in the database (``None`` for an empty one)."""

        def query(conn: Connection) -> str | None:
            from sqlalchemy import inspect

            if not inspect(conn).has_table(VERSION_TABLE):
                return None
            return conn.execute(text(f"SELECT version_num FROM {VERSION_TABLE}")).scalar()

        return self.read(query)

    def _migrate(self, revision: str) -> None:
        found = self.current_revision()  # connects: the server's version is known now
        check_server(self.engine.dialect, self.display_url)
        if found in (HEAD_REVISION, revision):
            return
        self.write(lambda conn: self.upgrade(conn, revision))

    def upgrade(self, conn: Connection, revision: str = "head") -> None:
        """Apply migrations up to ``revision`` on ``conn`` (inside its transaction)."""
        from alembic import command
        from alembic.config import Config

        config = Config()
        config.set_main_option("script_location", str(Path(__file__).parent / "migrations"))
        config.attributes["connection"] = conn
        with migration_lock(conn):  # one upgrader at a time; others wait, then no-op
            log.info("upgrading tracking database %s to revision %s", self.display_url, revision)
            command.upgrade(config, revision)

    # -- sizes -------------------------------------------------------------------------

    def storage_bytes(self) -> int:
        """Bytes the database uses on disk (SQLite file + WAL, or the server's database)."""
        query = storage_bytes_sql(self.engine.dialect)
        if query is not None:
            return int(self.read(lambda c: c.execute(text(query)).scalar()) or 0)
        path = sqlite_path(self.url)
        if path is None:
            return 0
        return sum(
            p.stat().st_size for p in (path, Path(f"{path}-wal"), Path(f"{path}-shm")) if p.exists()
        )

    def dispose(self) -> None:
        """Close every pooled connection."""
        self.engine.dispose()


def _mark_idle(_dbapi_conn: Any, record: Any) -> None:
    record.info["idle_since"] = time.monotonic()


def _ping_if_idle(dialect: Any, dbapi_conn: Any, record: Any, _proxy: Any) -> None:
    """Check a pooled server connection that sat idle before it is used again.

    A connection back in use within ``_PING_AFTER_IDLE_S`` is not pinged: a busy worker
    then pays no extra round trip per transaction. One that waited longer may have been
    closed by the server, a proxy or a restart: the ping finds out, and the pool connects
    again instead of handing it out.
    """
    since = record.info.get("idle_since")
    if since is None or time.monotonic() - since < _PING_AFTER_IDLE_S:
        return
    try:
        alive = dialect.do_ping(dbapi_conn)
    except Exception as err:
        raise exc.DisconnectionError(f"pooled connection is gone: {err}") from err
    if alive is False:
        raise exc.DisconnectionError("pooled connection is gone")


def _sqlite_on_connect(dbapi_conn: Any, _record: Any) -> None:
    # Take transactions away from pysqlite: we emit BEGIN / BEGIN IMMEDIATE ourselves.
    dbapi_conn.isolation_level = None
    cursor = dbapi_conn.cursor()
    try:
        cursor.execute(f"PRAGMA busy_timeout = {_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA foreign_keys = ON")
        cursor.execute("PRAGMA synchronous = NORMAL")
        if cursor.execute("PRAGMA query_only").fetchone()[0] == 0:
            try:
                cursor.execute("PRAGMA journal_mode = WAL")
            except Exception:  # a read-only file keeps its journal mode; reads still work
                log.debug("could not switch the tracking database to WAL", exc_info=True)
    finally:
        cursor.close()


def _sqlite_on_begin(conn: Connection) -> None:
    mode = "" if conn.get_execution_options().get(_READ_OPTION) else " IMMEDIATE"
    conn.exec_driver_sql(f"BEGIN{mode}")
