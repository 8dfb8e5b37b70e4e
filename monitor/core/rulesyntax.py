"""The rule query language: a lark grammar, the AST it builds, and syntax errors with columns.

    "coalition of the willing" AND (troops OR soldiers) -football
    title:ceasefire OR (truce NEAR/5 Gaza) OR willing* OR /zelensk[iy]{1,2}/

Operators are upper case (`and`, `or`, `not` are plain words). Juxtaposition is AND. Binding,
tightest first: `NEAR/n`, `NOT`/`-`, `AND`, `OR`. `field:` scopes the term or group after it.
Lives in `monitor` so configuration validation can report errors;
`workers.match.evaluate` evaluates it.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, replace
from functools import cache
from typing import Any, Literal

import regex
from lark import Lark, Token, Transformer, UnexpectedCharacters, UnexpectedEOF, UnexpectedInput
from lark import Tree as LarkTree

from monitor.core.errors import QuerySyntaxError as QuerySyntaxError  # re-exported
from monitor.core.textnorm import normalize_phrase

MatchField = Literal["title", "text", "author"]
FIELDS: tuple[MatchField, ...] = ("title", "text", "author")

_GRAMMAR = r"""
?start: or_expr
?or_expr: and_expr (_OR and_expr)*
?and_expr: unary (_AND? unary)*
?unary: _NOT unary -> not_
      | MINUS unary -> not_
      | near
?near: atom (NEAR atom)*
?atom: "(" or_expr ")"
     | FIELD atom -> scoped
     | PHRASE -> phrase
     | REGEX -> regex
     | WORD -> word
_OR.3: /OR(?![^\s()])/
_AND.3: /AND(?![^\s()])/
_NOT.3: /NOT(?![^\s()])/
NEAR.3: /NEAR\/\d+(?![^\s()])/
FIELD.2: /(title|text|author):/
PHRASE: /"[^"]*"\*?/
REGEX: /\/(?:[^\/\\\n]|\\.)+\//
WORD: /[^\s()"\-\/][^\s()"]*/
MINUS: "-"
%ignore /\s+/
"""


@dataclass(frozen=True, slots=True)
class Term:
    """A phrase (`prefix`: its last word may continue) or a `/regex/`, optionally field-scoped."""

    text: str  # as written, without quotes: the label in alerts and explanations
    kind: Literal["phrase", "regex"]
    prefix: bool = False
    field: MatchField | None = None
    column: int = 0

    def __str__(self) -> str:
        scope = f"{self.field}:" if self.field else ""
        if self.kind == "regex":
            return f"{scope}/{self.text}/"
        body = self.text[:-1] if self.prefix else self.text
        shown = f'"{body}"' if " " in body or not body.isalnum() else body
        return f"{scope}{shown}{'*' if self.prefix else ''}"


@dataclass(frozen=True, slots=True)
class And:
    items: tuple[Node, ...]


@dataclass(frozen=True, slots=True)
class Or:
    items: tuple[Node, ...]


@dataclass(frozen=True, slots=True)
class Not:
    item: Node


@dataclass(frozen=True, slots=True)
class Near:
    """Some term of `left` and some term of `right` with at most `distance` words between."""

    left: tuple[Term, ...]
    right: tuple[Term, ...]
    distance: int


Node = Term | And | Or | Not | Near


def phrase_term(value: str, column: int = 0, field: MatchField | None = None) -> Term:
    """A list phrase or quoted query phrase as a Term (a trailing `*` makes it a prefix)."""
    value = value.strip()
    prefix = value.endswith("*")
    body = value[:-1] if prefix else value
    if "*" in body:
        raise QuerySyntaxError(value, column or 1, "'*' is allowed only at the end of a term")
    if not normalize_phrase(body):
        raise QuerySyntaxError(value, column or 1, f"term {value!r} is empty once normalised")
    return Term(value, "phrase", prefix, field, column)


class _Build(Transformer[Token, Node]):
    def __init__(self, query: str) -> None:
        super().__init__()
        self.query = query

    def _term(self, token: Token, value: str) -> Term:
        column = token.column or 1
        try:
            return phrase_term(value, column)
        except QuerySyntaxError as exc:
            raise QuerySyntaxError(self.query, column, exc.reason) from None

    def phrase(self, items: list[Token]) -> Term:
        raw = str(items[0])
        star = raw.endswith("*")
        return self._term(items[0], raw.strip("*")[1:-1] + ("*" if star else ""))

    def word(self, items: list[Token]) -> Term:
        return self._term(items[0], str(items[0]))

    def regex(self, items: list[Token]) -> Term:
        source = str(items[0])[1:-1]
        try:
            regex.compile(source)
        except regex.error as exc:
            raise QuerySyntaxError(self.query, items[0].column or 1,
                                   f"invalid regex /{source}/: {exc}") from None
        return Term(source, "regex", column=items[0].column or 0)

    def scoped(self, items: list[Token | Node]) -> Node:
        field = str(items[0])[:-1]
        assert isinstance(items[1], Term | And | Or | Not | Near) and field in FIELDS
        return _scope(items[1], field)

    def not_(self, items: list[Token | Node]) -> Node:
        item = items[-1]
        assert not isinstance(item, Token)
        return Not(item)

    def and_expr(self, items: list[Node]) -> Node:
        return And(tuple(items))

    def or_expr(self, items: list[Node]) -> Node:
        return Or(tuple(items))

    def near(self, items: list[Token | Node]) -> Node:
        operands = items[0::2]
        if len(operands) > 2:
            raise QuerySyntaxError(self.query, items[3].column or 1 if isinstance(
                items[3], Token) else 1, "NEAR joins two operands; group with AND instead")
        token = items[1]
        assert isinstance(token, Token)
        distance = int(str(token).split("/")[1])
        left, right = (self._near_terms(op, token) for op in operands)
        return Near(left, right, distance)

    def _near_terms(self, node: Token | Node, token: Token) -> tuple[Term, ...]:
        if isinstance(node, Term):
            return (node,)
        if isinstance(node, Or) and all(isinstance(i, Term) for i in node.items):
            return tuple(i for i in node.items if isinstance(i, Term))
        raise QuerySyntaxError(self.query, token.column or 1,
                               "NEAR needs a term or a (term OR term …) group on each side")


def _scope(node: Node, field: MatchField) -> Node:
    """Give every unscoped term under `node` the field `field` (an inner scope wins)."""
    if isinstance(node, Term):
        return node if node.field else replace(node, field=field)
    if isinstance(node, And):
        return And(tuple(_scope(i, field) for i in node.items))
    if isinstance(node, Or):
        return Or(tuple(_scope(i, field) for i in node.items))
    if isinstance(node, Not):
        return Not(_scope(node.item, field))
    return Near(tuple(t if t.field else replace(t, field=field) for t in node.left),
                tuple(t if t.field else replace(t, field=field) for t in node.right),
                node.distance)


@cache
def _parser() -> Lark:
    return Lark(_GRAMMAR, parser="lalr", lexer="basic", maybe_placeholders=False)


def _describe(exc: UnexpectedInput, query: str) -> tuple[int, str]:
    if isinstance(exc, UnexpectedCharacters):
        pos = exc.pos_in_stream or 0
        char = query[pos] if pos < len(query) else ""
        reason = {'"': "unclosed quote", "/": "unclosed /regex/"}.get(
            char, f"unexpected character {char!r}")
        return exc.column, reason
    token: Any = getattr(exc, "token", None)
    if isinstance(exc, UnexpectedEOF) or token is None or token.type == "$END":
        expected: set[str] = set(getattr(exc, "expected", None) or
                                 getattr(exc, "accepts", None) or ())
        reason = "missing ')'" if "RPAR" in expected and len(expected) <= 8 else \
            "the query ends where a term was expected"
        return len(query.rstrip()) + 1, reason
    return (token.column or 1), f"unexpected {str(token)!r}"


def parse_query(query: str) -> Node:
    """Parse `query` into an AST; raise QuerySyntaxError (with a 1-based column) if invalid."""
    if not query.strip():
        raise QuerySyntaxError(query, 1, "empty query")
    try:
        tree = _parser().parse(query)
    except UnexpectedInput as exc:
        column, reason = _describe(exc, query)
        raise QuerySyntaxError(query, max(column, 1), reason) from None
    if isinstance(tree, Token):  # a lone term is inlined to its token by `?` rules
        tree = LarkTree(_TOKEN_RULES[tree.type], [tree])
    try:
        node = _Build(query).transform(tree)
    except Exception as exc:  # lark wraps callback errors in VisitError
        inner = getattr(exc, "orig_exc", exc)
        if isinstance(inner, QuerySyntaxError):
            raise inner from None
        raise
    if evaluates_empty(node):
        raise QuerySyntaxError(query, 1, "the query matches text that contains none of its "
                                         "terms; add a term that must appear")
    return node


_TOKEN_RULES = {"PHRASE": "phrase", "REGEX": "regex", "WORD": "word"}


def evaluates_empty(node: Node) -> bool:
    """The value of `node` when no term is present (True: it would match everything)."""
    if isinstance(node, Term | Near):
        return False
    if isinstance(node, Not):
        return not evaluates_empty(node.item)
    if isinstance(node, And):
        return all(evaluates_empty(i) for i in node.items)
    return any(evaluates_empty(i) for i in node.items)


def terms(node: Node, negated: bool = False) -> Iterator[tuple[Term, bool]]:
    """Every term of `node` with whether it sits under a NOT."""
    if isinstance(node, Term):
        yield node, negated
    elif isinstance(node, Not):
        yield from terms(node.item, not negated)
    elif isinstance(node, And | Or):
        for item in node.items:
            yield from terms(item, negated)
    else:
        for term in (*node.left, *node.right):
            yield term, negated
