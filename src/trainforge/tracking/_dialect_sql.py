"""SQL spelled differently per database: byte-wise text order, ``NULLS LAST``, ``LIKE``.

Expression elements the filter language compiles to; each renders itself for SQLite,
PostgreSQL and MySQL/MariaDB (see ``_dialect`` for the rest of what differs).
"""

from __future__ import annotations

import re
from typing import Any

from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql import ColumnElement, bindparam
from sqlalchemy.types import Boolean, String

__all__ = ["MYSQL_DIALECTS", "Bytewise", "NullsLast", "PatternMatch"]

#: Dialect names of MySQL and MariaDB (``mysql+pymysql://`` and ``mariadb+pymysql://``).
MYSQL_DIALECTS = ("mysql", "mariadb")


class Bytewise(ColumnElement[Any]):
    """A text column compared byte by byte: ``col COLLATE "C"`` on PostgreSQL; SQLite's
    own rule; MySQL's columns already have a binary collation."""

    inherit_cache = False

    def __init__(self, column: Any) -> None:
        self.column = column
        self.type = column.type


@compiles(Bytewise)
def _bytewise(element: Bytewise, compiler: Any, **kw: Any) -> str:
    return str(compiler.process(element.column, **kw))


@compiles(Bytewise, "postgresql")
def _bytewise_pg(element: Bytewise, compiler: Any, **kw: Any) -> str:
    return f'({compiler.process(element.column, **kw)} COLLATE "C")'


class NullsLast(ColumnElement[Any]):
    """``column ASC|DESC NULLS LAST``; MySQL, which lacks the clause, sorts on
    ``column IS NULL`` first."""

    inherit_cache = False

    def __init__(self, column: Any, *, descending: bool) -> None:
        self.column = column
        self.descending = descending
        self.type = column.type


@compiles(NullsLast)
def _nulls_last(element: NullsLast, compiler: Any, **kw: Any) -> str:
    ordered = element.column.desc() if element.descending else element.column.asc()
    return str(compiler.process(ordered.nulls_last(), **kw))


def _nulls_last_mysql(element: NullsLast, compiler: Any, **kw: Any) -> str:
    column = compiler.process(element.column, **kw)
    return f"({column} IS NULL), {column} {'DESC' if element.descending else 'ASC'}"


class PatternMatch(ColumnElement[bool]):
    """``column LIKE pattern`` (``%``, ``_``, ``\\`` escapes), case-sensitive or ASCII-folded."""

    inherit_cache = False
    type = Boolean()

    def __init__(self, column: Any, pattern: str, *, fold: bool) -> None:
        self.column = column
        self.pattern = pattern
        self.fold = fold


@compiles(PatternMatch)
def _match_sqlite(element: PatternMatch, compiler: Any, **kw: Any) -> str:
    # SQLite's LIKE ignores case: GLOB with the pattern translated is case-sensitive.
    column = compiler.process(element.column, **kw)
    pattern = compiler.process(bindparam(None, _glob(element.pattern), type_=String()), **kw)
    if element.fold:
        return f"(lower({column}) GLOB lower({pattern}))"
    return f"({column} GLOB {pattern})"


@compiles(PatternMatch, "postgresql")
def _match_pg(element: PatternMatch, compiler: Any, **kw: Any) -> str:
    column = compiler.process(element.column, **kw)
    pattern = compiler.process(bindparam(None, element.pattern, type_=String()), **kw)
    if element.fold:  # lower() under "C" folds ASCII letters only, as SQLite's does
        column, pattern = f'lower({column} COLLATE "C")', f'lower({pattern} COLLATE "C")'
    return f"({column} LIKE {pattern} ESCAPE '\\')"


def _match_mysql(element: PatternMatch, compiler: Any, **kw: Any) -> str:
    # LIKE under the columns' binary collation is case-sensitive; MySQL's lower() folds
    # every letter (É too), so ASCII letters are folded one by one instead.
    column = compiler.process(element.column, **kw)
    pattern = compiler.process(bindparam(None, element.pattern, type_=String()), **kw)
    escape = compiler.process(bindparam(None, "\\", type_=String()), **kw)
    if element.fold:
        column, pattern = _ascii_lower(column), _ascii_lower(pattern)
    return f"({column} LIKE {pattern} ESCAPE {escape})"


def _ascii_lower(sql: str) -> str:
    for letter in "ABCDEFGHIJKLMNOPQRSTUVWXYZ":
        sql = f"REPLACE({sql}, '{letter}', '{letter.lower()}')"
    return sql


for _name in MYSQL_DIALECTS:
    compiles(NullsLast, _name)(_nulls_last_mysql)
    compiles(PatternMatch, _name)(_match_mysql)


def _glob(pattern: str) -> str:
    """A LIKE pattern as a GLOB pattern: ``%`` -> ``*``, ``_`` -> ``?``, the rest literal."""
    out = []
    for escaped, char in re.findall(r"(\\)?(.)", pattern, flags=re.S):
        if not escaped and char == "%":
            out.append("*")
        elif not escaped and char == "_":
            out.append("?")
        elif char in "*?[":
            out.append(f"[{char}]")
        else:
            out.append(char)
    return "".join(out)
