"""The run search language: a tokenizer and a bounded recursive-descent parser.

Grammar (keywords are case-insensitive)::

    filter     := or_expr
    or_expr    := and_expr ("or" and_expr)*
    and_expr   := not_expr ("and" not_expr)*
    not_expr   := "not" not_expr | "(" or_expr ")" | condition
    condition  := name                                   -- presence
                | name op value
                | name ["not"] ("like" | "ilike") string
                | name ["not"] "in" "(" value ("," value)* ")"
                | name "is" ["not"] "null"
    name       := ("metrics" | "params" | "tags" | "attributes") "." key
    op         := "=" | "==" | "!=" | "<" | "<=" | ">" | ">="
    value      := number | 'string' | "string" | true | false

A key may hold letters, digits and ``_ . / : -`` (``metrics.val/loss``,
``params.optim.lr``) or be quoted, in backticks or double quotes as MLflow writes them
(``metrics.`val loss```, ``tags."mlflow.runName"``). MLflow's names are accepted too:
``attributes.run_name`` and ``attributes.run_id``, ``tags."mlflow.runName"`` (the run's
name) and MLflow's status names (``FINISHED`` is ``completed``). ``metrics.K`` compares the
run's *last* value of K (highest step). A condition on a metric, param or tag the run does
not have is false.

Every error is a :class:`FilterSyntaxError` with the position of the offending token: a
syntax error, a value of the wrong type for its field (``attributes.name < 5``), text
with a NUL character, nesting deeper than :data:`MAX_DEPTH` or more than
:data:`MAX_CONDITIONS` conditions (a filter stays far from the limits of either
database, and from Python's recursion limit). Values never become SQL text: compiling
(see ``_filter_sql``) binds each one as a parameter.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from trainforge.errors import FilterSyntaxError, did_you_mean
from trainforge.tracking._filter_sql import (
    ATTRIBUTES,
    NUMERIC_ATTRIBUTES,
    compile_tree,
    order_term,
)
from trainforge.tracking._schema import RUN_STATUSES

__all__ = [
    "ATTRIBUTES",
    "MAX_CONDITIONS",
    "MAX_DEPTH",
    "STATUS_ALIASES",
    "Condition",
    "compile_filter",
    "order_clause",
    "parse_filter",
]

MAX_DEPTH = 32
"""Deepest nesting of parentheses and ``not``."""
MAX_CONDITIONS = 256
"""Most conditions in one filter (SQLite refuses expressions about 1,000 deep)."""
MAX_IN_VALUES = 1000
"""Most values in one ``IN (...)`` list."""

_KINDS = {"metrics": "metrics", "params": "params", "tags": "tags", "attributes": "attributes"}
_KINDS.update({"metric": "metrics", "param": "params", "tag": "tags", "attribute": "attributes"})
#: MLflow's attribute names for ours.
ATTRIBUTE_ALIASES = {"run_name": "name", "run_id": "id"}
#: MLflow's run statuses for ours.
STATUS_ALIASES = {
    "RUNNING": "running",
    "FINISHED": "completed",
    "FAILED": "failed",
    "KILLED": "killed",
    **{s.upper(): s for s in RUN_STATUSES},
}
_MLFLOW_ONLY = {"artifact_uri", "user_id", "lifecycle_stage", "dataset"}
_OPS = {"=", "==", "!=", "<", "<=", ">", ">="}

_TOKEN = re.compile(
    r"""
    (?P<ws>\s+)
  | (?P<lparen>\()
  | (?P<rparen>\))
  | (?P<comma>,)
  | (?P<op><=|>=|!=|<>|==|=|<|>)
  | (?P<string>'(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*")
  | (?P<number>[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)
  | (?P<name>[A-Za-z_]\w*(?:\.(?:`[^`]+`|"(?:[^"\\]|\\.)+"|[\w./:\-]+))?)
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
    """``kind.key [op value]``: one leaf of the filter tree.

    ``op`` is None (presence), ``=``, ``!=``, ``<``, ``<=``, ``>``, ``>=``, ``like``,
    ``ilike``, ``not like``, ``not ilike``, ``in``, ``not in`` or ``is null``; ``value``
    is a float, a string, or a tuple of them for ``in``.
    """

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
        if kind == "op" and match.group() == "<>":
            raise FilterSyntaxError("use != for 'not equal'", text=text, position=pos)
        if kind != "ws":
            tokens.append(Token(kind, match.group(), pos))
        pos = match.end()
    tokens.append(Token("end", "", len(text)))
    return tokens


def _unquote(body: str) -> str:
    r"""A quoted string's text: ``\\``, ``\'`` and ``\"`` are escapes; other backslashes stay
    (so ``'5\%'`` is the LIKE pattern ``5\%``, which matches a literal percent sign)."""
    return re.sub(r"\\([\\'\"])", r"\1", body)


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.tokens = tokenize(text)
        self.i = 0
        self.depth = 0
        self.conditions = 0

    def peek(self, ahead: int = 0) -> Token:
        return self.tokens[min(self.i + ahead, len(self.tokens) - 1)]

    def next(self) -> Token:
        token = self.tokens[self.i]
        self.i += 1
        return token

    def error(self, message: str, token: Token) -> FilterSyntaxError:
        return FilterSyntaxError(message, text=self.text, position=token.pos)

    def is_word(self, word: str, ahead: int = 0) -> bool:
        token = self.peek(ahead)
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
        children = [self.and_expr()]
        while self.is_word("or"):
            self.next()
            children.append(self.and_expr())
        return children[0] if len(children) == 1 else ("or", *children)

    def and_expr(self) -> Any:
        children = [self.not_expr()]
        while self.is_word("and"):
            self.next()
            children.append(self.not_expr())
        return children[0] if len(children) == 1 else ("and", *children)

    def not_expr(self) -> Any:
        token = self.peek()
        if self.is_word("not") or token.kind == "lparen":
            self.depth += 1
            if self.depth > MAX_DEPTH:
                raise self.error(f"nested more than {MAX_DEPTH} levels deep", token)
            self.next()
            if token.kind == "lparen":
                tree = self.or_expr()
                if self.peek().kind != "rparen":
                    raise self.error(f"unclosed '(' (opened at position {token.pos})", self.peek())
                self.next()
            else:
                tree = ("not", self.not_expr())
            self.depth -= 1
            return tree
        return self.condition()

    def condition(self) -> Condition:
        token = self.next()
        self.conditions += 1
        if self.conditions > MAX_CONDITIONS:
            raise self.error(f"more than {MAX_CONDITIONS} conditions in one filter", token)
        kind, key = self.name(token)
        op = self.operator()
        if op is None:
            return Condition(kind, key, None, None, token.pos)
        value_token = self.peek()
        if op == "is null":
            return Condition(kind, key, op, None, token.pos)
        numeric = kind == "metrics" or (kind == "attributes" and key in NUMERIC_ATTRIBUTES)
        if op in ("in", "not in"):
            value: Any = self.value_list(kind, key)
        elif op.endswith("like"):
            if numeric:
                what = "metrics" if kind == "metrics" else f"attributes.{key}"
                raise self.error(f"{what} are numbers: {op.upper()} matches text", value_token)
            value = self.pattern(op)
        else:
            value = self.value(self.next(), op, kind, key)
        if kind == "attributes" and key == "status":
            value = self.status(value, value_token)
        return Condition(kind, key, op, value, token.pos)

    def name(self, token: Token) -> tuple[str, str]:
        if token.kind == "end":
            raise self.error("expected a condition such as metrics.val_loss < 0.4", token)
        if token.kind != "name" or "." not in token.text:
            raise self.error(
                "expected a name such as metrics.val_loss, params.lr, tags.baseline or "
                f"attributes.status, got {token.text!r}",
                token,
            )
        prefix, key = token.text.split(".", 1)
        kind = _KINDS.get(prefix.lower())
        if kind is None:
            guess = did_you_mean(prefix.lower(), ["metrics", "params", "tags", "attributes"])
            extra = f"; did you mean '{guess}'?" if guess else ""
            raise self.error(f"unknown name prefix {prefix!r}{extra}", token)
        if key[:1] == "`":
            key = key[1:-1]
        elif key[:1] == '"':
            key = _unquote(key[1:-1])
        if "\x00" in key:
            raise self.error("a key cannot hold a NUL character", token)
        if kind == "tags" and key == "mlflow.runName":
            return "attributes", "name"
        if kind == "attributes":
            key = ATTRIBUTE_ALIASES.get(key, key)
            if key not in ATTRIBUTES:
                if key in _MLFLOW_ONLY:
                    raise self.error(
                        f"trainforge records no attribute {key!r} (MLflow does)", token
                    )
                guess = did_you_mean(key, [*ATTRIBUTES, *ATTRIBUTE_ALIASES])
                extra = f"; did you mean 'attributes.{guess}'?" if guess else ""
                raise self.error(f"unknown attribute {key!r}{extra}", token)
        return kind, key

    def operator(self) -> str | None:
        token = self.peek()
        if token.kind == "op":
            self.next()
            return "=" if token.text == "==" else token.text
        negated = self.is_word("not") and any(self.is_word(w, 1) for w in ("like", "ilike", "in"))
        if negated:
            self.next()
        for word in ("like", "ilike", "in"):
            if self.is_word(word):
                self.next()
                return f"not {word}" if negated else word
        if self.is_word("is"):
            self.next()
            absent = not self.is_word("not")
            if not absent:
                self.next()
            if not self.is_word("null"):
                raise self.error("expected NULL after IS (or IS NOT)", self.peek())
            self.next()
            return "is null" if absent else None  # IS NOT NULL: presence
        return None

    def pattern(self, op: str) -> str:
        token = self.next()
        if token.kind != "string":
            raise self.error(f"{op.upper()} takes a quoted pattern such as 'val%'", token)
        pattern = self.text_value(token)
        if re.search(r"(?<!\\)(?:\\\\)*\\$", pattern):
            raise self.error("a pattern cannot end with a lone backslash", token)
        return pattern

    def value_list(self, kind: str, key: str) -> tuple[Any, ...]:
        if self.peek().kind != "lparen":
            raise self.error("IN takes a parenthesised list: IN ('a', 'b')", self.peek())
        self.next()
        values = [self.value(self.next(), "in", kind, key)]
        while self.peek().kind == "comma":
            self.next()
            values.append(self.value(self.next(), "in", kind, key))
        if self.peek().kind != "rparen":
            raise self.error("expected ',' or ')' in the IN list", self.peek())
        if len(values) > MAX_IN_VALUES:
            raise self.error(f"more than {MAX_IN_VALUES} values in one IN list", self.peek())
        self.next()
        if len({type(v) for v in values}) > 1:
            raise self.error("an IN list holds numbers or strings, not both", self.peek())
        return tuple(values)

    def text_value(self, token: Token) -> str:
        value = _unquote(token.text[1:-1])
        if "\x00" in value:
            raise self.error("strings cannot hold a NUL character", token)
        return value

    def value(self, token: Token, op: str, kind: str, key: str) -> Any:
        if token.kind == "number":
            value: Any = float(token.text)
        elif token.kind == "string":
            value = self.text_value(token)
        elif token.kind == "name" and token.text.lower() in ("true", "false"):
            value = token.text.lower()
        else:
            raise self.error(f"expected a number or a quoted string after {op!r}", token)
        numeric = kind == "metrics" or (kind == "attributes" and key in NUMERIC_ATTRIBUTES)
        if numeric and not isinstance(value, float):
            if key == "id" and isinstance(value, str) and value.isdigit():
                return float(value)  # MLflow quotes run ids: attributes.run_id = '12'
            what = "metrics" if kind == "metrics" else f"attributes.{key}"
            raise self.error(f"{what} compare with numbers, got {token.text}", token)
        if kind == "attributes" and not numeric and isinstance(value, float):
            raise self.error(f"attributes.{key} is text: quote the value ('{token.text}')", token)
        if kind == "tags" and token.kind == "number":
            return token.text  # tags are text: compare with the number as written
        return value

    def status(self, value: Any, token: Token) -> Any:
        if isinstance(value, tuple):
            return tuple(self.status(v, token) for v in value)
        if value in RUN_STATUSES:
            return value
        if isinstance(value, str) and value.upper() in STATUS_ALIASES:
            return STATUS_ALIASES[value.upper()]
        guess = did_you_mean(str(value).lower(), RUN_STATUSES)
        extra = f"; did you mean '{guess}'?" if guess else ""
        raise self.error(
            f"unknown status {value!r} (one of {', '.join(RUN_STATUSES)}, or MLflow's "
            f"RUNNING, FINISHED, FAILED, KILLED){extra}",
            token,
        )


def parse_filter(text: str) -> Any:
    """Parse a filter into a tree of ``("and"|"or", *children)``, ``("not", a)`` and
    :class:`Condition` leaves.

    Raises:
        FilterSyntaxError: With the position of the offending token.
    """
    return _Parser(text).parse()


def compile_filter(text: str | None) -> Any:
    """A WHERE clause over ``runs`` for a filter (``None`` or blank matches every run)."""
    if text is None or not text.strip():
        return compile_tree(None)
    return compile_tree(parse_filter(text))


def order_clause(spec: str) -> Any:
    """An ORDER BY term for ``"metrics.val_loss [asc|desc]"`` (runs lacking it sort last)."""
    parser = _Parser(spec)
    token = parser.peek()
    if token.kind == "end":
        raise parser.error("order_by takes a name such as metrics.val_loss", token)
    kind, key = parser.name(parser.next())
    direction = "asc"
    if parser.is_word("asc") or parser.is_word("desc"):
        direction = parser.next().text.lower()
    if parser.peek().kind != "end":
        raise parser.error("order_by takes a name and an optional asc/desc", parser.peek())
    return order_term(kind, key, descending=direction == "desc")
