"""What differs between the tracking store's databases, kept in one place.

The store runs on SQLite, PostgreSQL and MySQL/MariaDB (``mysql+pymysql://`` or
``mariadb+pymysql://``). Everything else in ``tracking`` writes portable SQLAlchemy; the
few places where the databases disagree ask this module:

- column types: :class:`Double` is a 64-bit float everywhere (SQLAlchemy's ``Float`` is a
  4-byte ``FLOAT`` on MySQL) and :data:`LONG_TEXT` holds more than MySQL's 64 KiB
  ``TEXT``; MySQL tables are InnoDB, ``utf8mb4``, with a binary no-pad collation
  (:func:`table_options`), so text compares byte by byte and case-sensitively, as on
  SQLite and PostgreSQL, and ``'a'`` and ``'a '`` are different keys;
- values MySQL cannot hold: its ``DOUBLE`` has no NaN and no infinity. NaN is stored as
  NULL on every backend (see ``_metric_writes``); ``±inf`` is stored as
  ``±DBL_MAX`` and read back as ``±inf``, and every backend stores a logged ``±DBL_MAX``
  as ``±inf`` (:func:`fold_float`), so the three hold and answer the same;
- SQL that is spelled differently: upserts (:func:`upsert`), ``NULLS LAST``
  (:class:`NullsLast`), byte-wise text order (:class:`Bytewise`), case-sensitive and
  ASCII-folding ``LIKE`` (:class:`PatternMatch`), claiming rows with ``FOR UPDATE SKIP
  LOCKED`` (:func:`claim_rows`);
- connections and locks: engine options (:func:`mysql_engine_options`), which errors are
  transient and retried (:func:`is_transient`), the schema-upgrade lock
  (:func:`migration_lock`), the servers too old to use (:func:`check_server`) and the
  database's size (:func:`storage_bytes_sql`).
"""

from __future__ import annotations

import math
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Float, Text, text
from sqlalchemy.dialects import mysql
from sqlalchemy.engine import Connection, Dialect, make_url
from sqlalchemy.types import TypeDecorator, TypeEngine

from trainforge.errors import StoreUnavailableError, TrackingError
from trainforge.tracking._dialect_sql import MYSQL_DIALECTS, Bytewise, NullsLast, PatternMatch

__all__ = [
    "DBL_MAX",
    "LONG_TEXT",
    "MYSQL_DIALECTS",
    "Bytewise",
    "Double",
    "NullsLast",
    "PatternMatch",
    "check_server",
    "claim_rows",
    "floor_capped",
    "fold_float",
    "inserted_id",
    "is_mysql",
    "is_refused_value",
    "is_transient",
    "migration_lock",
    "mysql_engine_options",
    "storage_bytes_sql",
    "table_options",
    "upsert",
]

DBL_MAX = sys.float_info.max
"""The largest double: MySQL's stand-in for infinity, so a logged ``±DBL_MAX`` is ``±inf``."""

#: Oldest servers with what the store needs (``SKIP LOCKED``, window functions, no-pad
#: binary collations, ``utf8mb4`` keys of 1000 bytes in InnoDB's DYNAMIC rows).
MIN_MARIADB = (10, 6)
MIN_MYSQL = (8, 0)

_PG_MIGRATION_LOCK_KEY = 7_412_309_881
_MYSQL_LOCK_SECONDS = 300
_TRANSIENT_TEXT = (
    "database is locked",
    "database is busy",
    "deadlock detected",
    "could not serialize",
)
_MYSQL_TRANSIENT_CODES = frozenset({1205, 1213})  # lock wait timeout, deadlock found
#: MySQL errors PyMySQL reports as OperationalError that are a refused value: a CHECK
#: constraint (MariaDB 4025, MySQL 3819) or a trigger's SIGNAL (1644).
_MYSQL_REFUSED_CODES = frozenset({4025, 3819, 1644})
#: Session SQL mode on MySQL: strict (a value that does not fit is an error, never
#: truncated) and without ANSI_QUOTES / NO_BACKSLASH_ESCAPES, whatever the server's default.
_MYSQL_SQL_MODE = (
    "STRICT_ALL_TABLES,ERROR_FOR_DIVISION_BY_ZERO,NO_ZERO_DATE,NO_ZERO_IN_DATE,"
    "NO_ENGINE_SUBSTITUTION"
)


def is_mysql(dialect: Dialect) -> bool:
    """True for MySQL and MariaDB."""
    return dialect.name in MYSQL_DIALECTS


def fold_float(value: float) -> float:
    """``value`` with ``±DBL_MAX`` as ``±inf``: the one double no backend keeps apart."""
    if value == DBL_MAX or value == -DBL_MAX:
        return math.copysign(math.inf, value)
    return value


# -- column types ----------------------------------------------------------------------


def _to_mysql(value: float | None) -> float | None:
    if value is None or value != value:
        return None
    if value == math.inf:
        return DBL_MAX
    if value == -math.inf:
        return -DBL_MAX
    return value


def _from_mysql(value: float | None) -> float | None:
    if value is None:
        return None
    value = float(value)
    return math.copysign(math.inf, value) if abs(value) == DBL_MAX else value


class Double(TypeDecorator[float]):
    """A 64-bit float: ``FLOAT`` on SQLite and PostgreSQL, ``DOUBLE`` on MySQL, where NaN
    is written as NULL and ``±inf`` as ``±DBL_MAX`` (read back as ``±inf``)."""

    impl = Float
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        """``DOUBLE`` on MySQL, ``FLOAT`` (8 bytes there) elsewhere."""
        if is_mysql(dialect):
            return dialect.type_descriptor(mysql.DOUBLE(asdecimal=False))
        return dialect.type_descriptor(Float())

    def bind_processor(self, dialect: Dialect) -> Callable[[Any], Any] | None:
        """Values MySQL cannot hold become ones it can; other backends take them as is."""
        return _to_mysql if is_mysql(dialect) else super().bind_processor(dialect)

    def result_processor(self, dialect: Dialect, coltype: Any) -> Callable[[Any], Any] | None:
        """``±DBL_MAX`` from MySQL is ``±inf`` again."""
        return _from_mysql if is_mysql(dialect) else super().result_processor(dialect, coltype)


#: Text of any length: ``TEXT`` on SQLite and PostgreSQL, ``LONGTEXT`` on MySQL.
LONG_TEXT = Text().with_variant(mysql.LONGTEXT(), *MYSQL_DIALECTS)


def table_options(conn: Connection) -> dict[str, Any]:
    """Keyword arguments for ``create_table``: InnoDB, utf8mb4, binary no-pad on MySQL."""
    if not is_mysql(conn.dialect):
        return {}
    prefix = conn.dialect.name  # mariadb+pymysql:// reads only mariadb_* options
    return {
        f"{prefix}_engine": "InnoDB",
        f"{prefix}_charset": "utf8mb4",
        f"{prefix}_collate": _binary_collation(conn.dialect),
    }


def _binary_collation(dialect: Dialect) -> str:
    # Code-point (= UTF-8 byte) order, case-sensitive, trailing spaces significant.
    return "utf8mb4_nopad_bin" if getattr(dialect, "is_mariadb", False) else "utf8mb4_0900_bin"


# -- SQL spelled differently -----------------------------------------------------------


def inserted_id(result: Any) -> int:
    """The id of the row an ``INSERT`` created (MySQL has no ``INSERT ... RETURNING``)."""
    key = result.inserted_primary_key
    if key is None or key[0] is None:
        raise TrackingError("the tracking database reported no id for a new row")
    return int(key[0])


def upsert(
    dialect: Dialect,
    table: Any,
    keys: Sequence[Any],
    assignments: Callable[[Any], list[tuple[str, Any]]],
) -> Any:
    """``INSERT ... ON CONFLICT (keys) DO UPDATE`` (``ON DUPLICATE KEY UPDATE`` on MySQL).

    ``assignments(new)`` returns ``(column name, expression)`` pairs, where ``new`` names
    the row being inserted. MySQL applies them in order and each sees the columns set
    before it: list a column after every expression that reads its old value.
    """
    if is_mysql(dialect):
        from sqlalchemy.dialects.mysql import insert as mysql_insert

        stmt: Any = mysql_insert(table)
        return stmt.on_duplicate_key_update(assignments(stmt.inserted))
    if dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as dialect_insert
    else:
        from sqlalchemy.dialects.sqlite import insert as dialect_insert  # type: ignore[assignment]
    stmt = dialect_insert(table)
    return stmt.on_conflict_do_update(index_elements=keys, set_=dict(assignments(stmt.excluded)))


def claim_rows(select: Any, dialect: Dialect | str) -> Any:
    """``select`` locking the rows it returns and skipping rows others hold locked.

    PostgreSQL and MySQL: ``FOR UPDATE SKIP LOCKED``, so concurrent claimers take
    different rows. SQLite has no row locks: the store's write transaction
    (``BEGIN IMMEDIATE``) already lets one writer in at a time.

    On MySQL, InnoDB locks every row it reads, before any sort: a claim must read (and
    so lock) only the rows it returns, by primary key or in the order of an index, never
    through a sort (see ``trainforge.jobs._sql``), or it locks every row it looked at.
    """
    if (dialect if isinstance(dialect, str) else dialect.name) == "sqlite":
        return select
    return select.with_for_update(skip_locked=True)


def floor_capped(dialect: Dialect, value: Any, cap: int) -> Any:
    """``min(floor(value), cap)`` as an integer, for ``value >= 0``."""
    from sqlalchemy import Integer, cast, func

    if dialect.name == "sqlite":  # CAST truncates toward zero: a floor, since value >= 0
        return func.min(cast(value, Integer), cap)
    return func.least(cast(func.floor(value), Integer), cap)


# -- connections and locks -------------------------------------------------------------


def mysql_engine_options(url: str) -> tuple[Any, dict[str, Any]]:
    """The URL (``charset=utf8mb4`` unless given) and ``create_engine`` options for MySQL.

    Sessions run strict (a value that does not fit is refused, never truncated) at READ
    COMMITTED, as PostgreSQL's default, which also keeps InnoDB's gap locks out of the
    metric writers' way, and sort text on its first 64 KiB (not 1 KiB).
    """
    parsed = make_url(url)
    if "charset" not in parsed.query:
        parsed = parsed.update_query_dict({"charset": "utf8mb4"})
    # ORDER BY on text looks at max_sort_length bytes only (1,024 by default)
    init = f"SET SESSION sql_mode = '{_MYSQL_SQL_MODE}', SESSION max_sort_length = 65536"
    return parsed, {"isolation_level": "READ COMMITTED", "connect_args": {"init_command": init}}


def check_server(dialect: Dialect, display_url: str) -> None:
    """Refuse MySQL and MariaDB servers older than the store needs.

    Raises:
        StoreUnavailableError: The server is older than MariaDB 10.6 or MySQL 8.0.
    """
    if not is_mysql(dialect):
        return
    version = tuple(dialect.server_version_info or ())
    mariadb = bool(getattr(dialect, "is_mariadb", False))
    oldest = MIN_MARIADB if mariadb else MIN_MYSQL
    if version and version < oldest:
        product = "MariaDB" if mariadb else "MySQL"
        raise StoreUnavailableError(
            f"tracking database {display_url} runs {product} "
            f"{'.'.join(map(str, version))}; trainforge needs {product} "
            f"{'.'.join(map(str, oldest))} or newer",
            hint="upgrade the server, or use PostgreSQL or SQLite",
        )


def is_transient(err: BaseException) -> bool:
    """True for lock, deadlock and serialization errors worth retrying."""
    orig = getattr(err, "orig", None) or err
    if _mysql_code(orig) in _MYSQL_TRANSIENT_CODES:
        return True
    message = str(orig).lower()
    return any(marker in message for marker in _TRANSIENT_TEXT)


def is_refused_value(err: BaseException) -> bool:
    """True when the database refused a value (a constraint, a range), not a query."""
    orig = getattr(err, "orig", None) or err
    if {cls.__name__ for cls in type(orig).__mro__} & {"IntegrityError", "DataError"}:
        return True
    return _mysql_code(orig) in _MYSQL_REFUSED_CODES


def _mysql_code(orig: BaseException) -> int | None:
    """The MySQL error number of a PyMySQL error (its first argument), else None."""
    args: tuple[Any, ...] = tuple(getattr(orig, "args", ()))
    return args[0] if args and isinstance(args[0], int) else None


@contextmanager
def migration_lock(conn: Connection) -> Iterator[None]:
    """Hold the schema-upgrade lock: one upgrader at a time, the others wait, then no-op.

    SQLite: the write transaction's ``BEGIN IMMEDIATE`` is the lock. PostgreSQL: an
    advisory lock ending with the transaction. MySQL, whose DDL commits by itself: a named
    lock for this database, held until the upgrade ends.
    """
    if conn.dialect.name == "postgresql":
        conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _PG_MIGRATION_LOCK_KEY})
        yield
        return
    if not is_mysql(conn.dialect):
        yield
        return
    name = "CONCAT('trainforge_migrate_', MD5(DATABASE()))"
    got = conn.execute(text(f"SELECT GET_LOCK({name}, :s)"), {"s": _MYSQL_LOCK_SECONDS}).scalar()
    if got != 1:
        raise StoreUnavailableError(
            f"waited {_MYSQL_LOCK_SECONDS} s for another process upgrading the tracking "
            "database's schema",
            hint="check for a stuck trainforge process connected to this database",
        )
    try:
        yield
        # the new revision number must be visible before the next upgrader reads it
        conn.exec_driver_sql("COMMIT")
    finally:
        conn.execute(text(f"SELECT RELEASE_LOCK({name})"))


def storage_bytes_sql(dialect: Dialect) -> str | None:
    """A query for the bytes the database uses on its server (None: SQLite, a file)."""
    if dialect.name == "postgresql":
        return "SELECT pg_database_size(current_database())"
    if is_mysql(dialect):
        return (
            "SELECT COALESCE(SUM(data_length + index_length), 0) "
            "FROM information_schema.tables WHERE table_schema = DATABASE()"
        )
    return None
