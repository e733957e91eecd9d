"""The filter tree as SQL that gives the same answers on SQLite, PostgreSQL and MySQL.

Every value is a bound parameter. Where the databases disagree by default, the SQL is
made to agree (the dialect-specific spellings live in ``_dialect``):

- text is compared byte by byte (``COLLATE "C"`` on PostgreSQL, SQLite's own rule, a
  binary collation on MySQL), so ``'B' < 'a'`` everywhere whatever the server's locale;
- ``LIKE`` is case-sensitive (PostgreSQL's and MySQL's ``LIKE``; SQLite's ``GLOB`` with
  the pattern translated, as SQLite's ``LIKE`` ignores case); ``ILIKE`` folds ASCII
  letters only (``lower`` under ``COLLATE "C"``, SQLite's ``lower``, letter-by-letter
  ``REPLACE`` on MySQL), so all fold the same;
- numbers are bound as 64-bit floats (PostgreSQL would cast ``attributes.id = 1.5`` to
  an integer), ``±DBL_MAX`` meaning ``±inf`` as in stored values, and NaN is stored as
  NULL (see ``_metric_writes``), so it matches no comparison and sorts last everywhere.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import ColumnElement, String, and_, exists, not_, or_, select, true
from sqlalchemy.sql import ClauseElement, bindparam

from trainforge.tracking._dialect import Bytewise, Double, NullsLast, PatternMatch, fold_float
from trainforge.tracking._schema import metric_summaries, run_params, run_tags, runs

__all__ = ["ATTRIBUTES", "NUMERIC_ATTRIBUTES", "compile_tree", "order_term"]

ATTRIBUTES: dict[str, Any] = {
    "id": runs.c.id,
    "name": runs.c.name,
    "project": runs.c.project,
    "experiment": runs.c.experiment,
    "status": runs.c.status,
    "start_time": runs.c.start_time,
    "end_time": runs.c.end_time,
    "duration": runs.c.end_time - runs.c.start_time,
    "config_hash": runs.c.config_hash,
    "git_commit": runs.c.git_commit,
    "host": runs.c.host,
    "notes": runs.c.notes,
}
NUMERIC_ATTRIBUTES = frozenset({"id", "start_time", "end_time", "duration"})
_COMPARE = {"=": "__eq__", "!=": "__ne__", "<": "__lt__", "<=": "__le__"}
_COMPARE.update({">": "__gt__", ">=": "__ge__"})


def compile_tree(tree: Any) -> ColumnElement[bool]:
    """A WHERE clause over ``runs`` for a parsed filter tree (None matches every run)."""
    if tree is None:
        return true()
    if isinstance(tree, tuple):
        if tree[0] == "not":
            return not_(compile_tree(tree[1]))
        combine = and_ if tree[0] == "and" else or_
        return combine(*(compile_tree(child) for child in tree[1:]))
    return _condition(tree)


def _number(value: float) -> Any:
    return bindparam(None, fold_float(value), type_=Double())


def _text(value: str) -> Any:
    return bindparam(None, value, type_=String())


def _test(column: Any, op: str, value: Any, *, text: bool) -> ColumnElement[bool]:
    """``column op value`` with the value bound as a number or as text."""
    bind = _text if text else _number
    if op in ("in", "not in"):
        test = column.in_([bind(v) for v in value])
        return not_(test) if op == "not in" else test
    if op.endswith("like"):
        match = PatternMatch(column, value, fold="ilike" in op)
        return not_(match) if op.startswith("not") else match
    if text and op not in ("=", "!="):
        column = Bytewise(column)
    return getattr(column, _COMPARE[op])(bind(value))


def _condition(cond: Any) -> ColumnElement[bool]:
    if cond.kind == "attributes":
        column = ATTRIBUTES[cond.key]
        if cond.op is None:
            return column.is_not(None)
        if cond.op == "is null":
            return column.is_(None)
        return _test(column, cond.op, cond.value, text=cond.key not in NUMERIC_ATTRIBUTES)
    if cond.kind == "metrics":
        table, where = metric_summaries, [metric_summaries.c.key == _text(cond.key)]
        if cond.op not in (None, "is null"):
            where.append(_test(table.c.last_value, cond.op, cond.value, text=False))
    elif cond.kind == "params":
        table, where = run_params, [run_params.c.key == _text(cond.key)]
        if cond.op not in (None, "is null"):
            numeric = isinstance(cond.value, float) or (
                isinstance(cond.value, tuple) and isinstance(cond.value[0], float)
            )
            column = table.c.value_num if numeric else table.c.value
            where.append(_test(column, cond.op, cond.value, text=not numeric))
    else:
        table, where = run_tags, [run_tags.c.key == _text(cond.key)]
        if cond.op not in (None, "is null"):
            where.append(_test(table.c.value, cond.op, cond.value, text=True))
    found = exists(select(table.c.run_id).where(table.c.run_id == runs.c.id, *where))
    return not_(found) if cond.op == "is null" else found


def order_term(kind: str, key: str, *, descending: bool) -> ClauseElement:
    """An ORDER BY term over ``runs`` (text byte by byte; runs lacking the value last)."""
    column: Any
    if kind == "attributes":
        column = ATTRIBUTES[key]
        if key not in NUMERIC_ATTRIBUTES:
            column = Bytewise(column)
    elif kind == "metrics":
        column = _scalar(metric_summaries, metric_summaries.c.last_value, key)
    elif kind == "params":
        column = _scalar(run_params, run_params.c.value_num, key)
    else:
        column = Bytewise(_scalar(run_tags, run_tags.c.value, key))
    return NullsLast(column, descending=descending)


def _scalar(table: Any, column: Any, key: str) -> Any:
    return (
        select(column)
        .where(table.c.run_id == runs.c.id, table.c.key == _text(key))
        .scalar_subquery()
    )
