"""The run search language: a small tokenizer and recursive-descent parser to SQL.

Grammar (keywords are case-insensitive)::

    filter     := or_expr
    or_expr    := and_expr ("or" and_expr)*
    and_expr   := not_expr ("and" not_expr)*
    not_expr   := "not" not_expr | "(" or_expr ")" | condition
    condition  := name [op value]        -- a bare name tests presence
    name       := ("metrics" | "params" | "tags" | "attributes") "." key
    op         := "=" | "==" | "!=" | "<" | "<=" | ">" | ">="
    value      := number | 'string' | "string" | true | false

A key may hold letters, digits and ``_ . / : -`` (``metrics.val/loss``,
``params.optim.lr``) or be quoted in backticks (``metrics.`val loss```). ``metrics.K``
compares the run's *last* value of K (highest step). A condition on a metric, param or tag
the run does not have is false. Every syntax error is a :class:`FilterSyntaxError` with the
position of the offending character.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, and_, exists, not_, or_, select, true
from sqlalchemy.sql.expression import ColumnOperators

from trainforge.errors import FilterSyntaxError, did_you_mean
from trainforge.tracking._schema import RUN_STATUSES, metric_summaries, run_params, run_tags, runs

__all__ = ["ATTRIBUTES", "Condition", "compile_filter", "order_clause", "parse_filter"]

ATTRIBUTES = {
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
_KINDS = {"metrics": "metrics", "params": "params", "tags": "tags", "attributes": "attributes"}
_KINDS.update({"metric": "metrics", "param": "params", "tag": "tags", "attribute": "attributes"})
_KEYWORDS = {"and", "or", "not", "true", "false", "asc", "desc"}
_OPS = {"=": "__eq__", "==": "__eq__", "!=": "__ne__", "<": "__lt__", "<=": "__le__"}
_OPS.update({">": "__gt__", ">=": "__ge__"})

_TOKEN = re.compile(
    r"""
    (?P<ws>\s+)
  | (?P<lparen>\()
  | (?P<rparen>\))
  | (?P<op><=|>=|!=|==|=|<|>)
  | (?P<string>'(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*")
  | (?P<number>[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)
  | (?P<name>[A-Za-z_]\w*(?:\.(?:`[^`]+`|[\w./:\-]+))?)
    """,
    re.VERBOSE,
)


@dataclass(frozen=True)
class Token:
    """One lexical token and where it starts."""

    kind: str
    text: str
    pos: int


@dataclass(frozen=True)
class Condition:
    """``kind.key [op value]``: one leaf of the filter tree."""

    kind: str
    key: str
    op: str | None
    value: Any
    pos: int


def tokenize(text: str) -> list[Token]:
    """Split a filter into tokens; raise FilterSyntaxError at the first unknown character."""
    tokens: list[Token] = []
    pos = 0
    while pos < len(text):
        match = _TOKEN.match(text, pos)
        if match is None:
            if text[pos] in "'\"":
                raise FilterSyntaxError("unterminated string", text=text, position=pos)
            raise FilterSyntaxError(f"unexpected character {text[pos]!r}", text=text, position=pos)
        kind = match.lastgroup or ""
        if kind != "ws":
            tokens.append(Token(kind, match.group(), pos))
        pos = match.end()
    tokens.append(Token("end", "", len(text)))
    return tokens


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.tokens = tokenize(text)
        self.i = 0

    def peek(self) -> Token:
        return self.tokens[self.i]

    def next(self) -> Token:
        token = self.tokens[self.i]
        self.i += 1
        return token

    def error(self, message: str, token: Token) -> FilterSyntaxError:
        return FilterSyntaxError(message, text=self.text, position=token.pos)

    def is_word(self, word: str) -> bool:
        token = self.peek()
        return token.kind == "name" and token.text.lower() == word

    def parse(self) -> Any:
        if self.peek().kind == "end":
            raise self.error("empty filter", self.peek())
        tree = self.or_expr()
        token = self.peek()
        if token.kind != "end":
            hint = "a closing parenthesis without an opening one" if token.text == ")" else ""
            raise self.error(hint or f"expected 'and', 'or' or the end, got {token.text!r}", token)
        return tree

    def or_expr(self) -> Any:
        tree = self.and_expr()
        while self.is_word("or"):
            self.next()
            tree = ("or", tree, self.and_expr())
        return tree

    def and_expr(self) -> Any:
        tree = self.not_expr()
        while self.is_word("and"):
            self.next()
            tree = ("and", tree, self.not_expr())
        return tree

    def not_expr(self) -> Any:
        if self.is_word("not"):
            self.next()
            return ("not", self.not_expr())
        token = self.peek()
        if token.kind == "lparen":
            self.next()
            tree = self.or_expr()
            if self.peek().kind != "rparen":
                raise self.error(f"unclosed '(' (opened at position {token.pos})", self.peek())
            self.next()
            return tree
        return self.condition()

    def condition(self) -> Condition:
        token = self.next()
        if token.kind == "end":
            raise self.error("expected a condition such as metrics.val_loss < 0.4", token)
        if token.kind != "name" or "." not in token.text:
            raise self.error(
                f"expected a name such as metrics.val_loss, params.lr, tags.baseline or "
                f"attributes.status, got {token.text!r}",
                token,
            )
        prefix, key = token.text.split(".", 1)
        kind = _KINDS.get(prefix.lower())
        if kind is None:
            guess = did_you_mean(prefix.lower(), ["metrics", "params", "tags", "attributes"])
            extra = f"; did you mean '{guess}'?" if guess else ""
            raise self.error(f"unknown name prefix {prefix!r}{extra}", token)
        key = key.strip("`")
        if kind == "attributes" and key not in ATTRIBUTES:
            guess = did_you_mean(key, ATTRIBUTES)
            extra = f"; did you mean 'attributes.{guess}'?" if guess else ""
            raise self.error(f"unknown attribute {key!r}{extra}", token)
        if self.peek().kind != "op":
            return Condition(kind, key, None, None, token.pos)
        op = self.next().text
        value_token = self.next()
        value = self.value(value_token, op)
        if kind == "metrics" and not isinstance(value, float):
            raise self.error("metrics compare with numbers", value_token)
        if kind == "attributes" and key == "status" and value not in RUN_STATUSES:
            guess = did_you_mean(str(value), RUN_STATUSES)
            extra = f"; did you mean '{guess}'?" if guess else ""
            raise self.error(
                f"unknown status {value!r} (one of {', '.join(RUN_STATUSES)}){extra}", value_token
            )
        return Condition(kind, key, op, value, token.pos)

    def value(self, token: Token, op: str) -> Any:
        if token.kind == "number":
            return float(token.text)
        if token.kind == "string":
            body = token.text[1:-1]
            return re.sub(r"\\(.)", r"\1", body)
        if token.kind == "name" and token.text.lower() in ("true", "false"):
            return token.text.lower()
        raise self.error(f"expected a number or a quoted string after {op!r}", token)


def parse_filter(text: str) -> Any:
    """Parse a filter into a tree of ``("and"|"or", a, b)``, ``("not", a)`` and Conditions."""
    return _Parser(text).parse()


def compile_filter(text: str | None) -> ColumnElement[bool]:
    """A WHERE clause over ``runs`` for a filter (``None`` or blank matches every run)."""
    if text is None or not text.strip():
        return true()
    return _compile(parse_filter(text))


def _compile(node: Any) -> ColumnElement[bool]:
    if isinstance(node, Condition):
        return _condition(node)
    if node[0] == "not":
        return not_(_compile(node[1]))
    combine = and_ if node[0] == "and" else or_
    return combine(_compile(node[1]), _compile(node[2]))


def _compare(column: ColumnOperators, op: str, value: Any) -> ColumnElement[bool]:
    return getattr(column, _OPS[op])(value)


def _condition(cond: Condition) -> ColumnElement[bool]:
    if cond.kind == "attributes":
        column = ATTRIBUTES[cond.key]
        if cond.op is None:
            return column.is_not(None)
        return _compare(column, cond.op, cond.value)
    if cond.kind == "metrics":
        table, where = metric_summaries, [metric_summaries.c.key == cond.key]
        if cond.op is not None:
            where.append(_compare(table.c.last_value, cond.op, cond.value))
    elif cond.kind == "params":
        table, where = run_params, [run_params.c.key == cond.key]
        if cond.op is not None:
            column = table.c.value_num if isinstance(cond.value, float) else table.c.value
            where.append(_compare(column, cond.op, cond.value))
    else:
        table, where = run_tags, [run_tags.c.key == cond.key]
        if cond.op is not None:
            where.append(_compare(table.c.value, cond.op, str(cond.value)))
    return exists(select(table.c.run_id).where(table.c.run_id == runs.c.id, *where))


def order_clause(spec: str) -> Any:
    """An ORDER BY term for ``"metrics.val_loss [asc|desc]"`` (runs lacking it sort last)."""
    parser = _Parser(spec)
    token = parser.peek()
    cond = parser.condition()
    if cond.op is not None:
        raise parser.error("order_by takes a name and an optional asc/desc", token)
    direction = "asc"
    if parser.is_word("asc") or parser.is_word("desc"):
        direction = parser.next().text.lower()
    if parser.peek().kind != "end":
        raise parser.error("expected 'asc', 'desc' or the end", parser.peek())
    if cond.kind == "attributes":
        column: Any = ATTRIBUTES[cond.key]
    elif cond.kind == "metrics":
        column = _scalar(metric_summaries, metric_summaries.c.last_value, cond.key)
    elif cond.kind == "params":
        column = _scalar(run_params, run_params.c.value_num, cond.key)
    else:
        column = _scalar(run_tags, run_tags.c.value, cond.key)
    ordered = column.desc() if direction == "desc" else column.asc()
    return ordered.nulls_last()


def _scalar(table: Any, column: Any, key: str) -> Any:
    return select(column).where(table.c.run_id == runs.c.id, table.c.key == key).scalar_subquery()
