"""SearchIndex's query language: parse a query string, evaluate it on thing documents."""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

# A document is the searchable view of one thing: field name -> its values as strings
# (a list field such as thingGroupNames has several; booleans are "true"/"false").
Document = Mapping[str, Sequence[str]]

KNOWN_FIELDS = frozenset(
    {
        "thingName",
        "thingId",
        "thingTypeName",
        "thingGroupNames",
        "connectivity.connected",
        "connectivity.disconnectReason",
        "connectivity.timestamp",
        "connectivity.clientId",
        "connectivity.keepAliveDuration",
        "connectivity.cleanSession",
        "connectivity.sessionExpiry",
    }
)
_COMPARISONS = ("<=", ">=", "<", ">")
_FIELD_RE = re.compile(r"[A-Za-z][A-Za-z0-9_.\-]*")
# AWS's query-syntax page: "The maximum number of terms in a query is twelve." Each value of
# a field group (``field:(a OR b)``) and a bare ``*`` count as one term each.
MAX_TERMS = 12


class QueryError(ValueError):
    """The query string is not valid; the message says where and why."""


@dataclass(frozen=True)
class Term:
    """``field:value`` (with ``*``/``?`` wildcards) or ``field<op>number``."""

    field: str
    op: str
    value: str

    @functools.cached_property
    def pattern(self) -> re.Pattern[str] | None:
        """The wildcard pattern, or None when the value has no wildcard (then: equality)."""
        if "*" not in self.value and "?" not in self.value:
            return None
        return _wildcard(self.value)

    def matches(self, doc: Document) -> bool:
        values = doc.get(self.field)
        if not values:
            return False
        if self.op == ":":
            pattern = self.pattern
            if pattern is None:
                return self.value in values
            return any(pattern.fullmatch(v) for v in values)
        bound = float(self.value)
        return any(_compare(v, self.op, bound) for v in values)


@dataclass(frozen=True)
class MatchAll:
    """A bare ``*``: every indexed thing (AWS documents it for counting the whole index)."""

    def matches(self, doc: Document) -> bool:
        return True


@dataclass(frozen=True)
class Not:
    """Negation."""

    operand: Expr

    def matches(self, doc: Document) -> bool:
        return not self.operand.matches(doc)


@dataclass(frozen=True)
class And:
    """Conjunction (explicit AND, or terms side by side)."""

    operands: tuple[Expr, ...]

    def matches(self, doc: Document) -> bool:
        return all(o.matches(doc) for o in self.operands)


@dataclass(frozen=True)
class Or:
    """Disjunction."""

    operands: tuple[Expr, ...]

    @functools.cached_property
    def prefixes(self) -> tuple[str, tuple[str, ...]] | None:
        """(field, prefixes) when every operand is ``field:prefix*`` on one field: a shard's
        ``thingId:a* OR thingId:b* ...``, tested with one startswith instead of N patterns."""
        terms = [o for o in self.operands if isinstance(o, Term)]
        if len(terms) != len(self.operands) or len({t.field for t in terms}) != 1:
            return None
        stems = [t.value[:-1] for t in terms if t.op == ":" and t.value.endswith("*")]
        if len(stems) != len(terms) or any("*" in s or "?" in s for s in stems):
            return None
        return terms[0].field, tuple(stems)

    def matches(self, doc: Document) -> bool:
        prefixes = self.prefixes
        if prefixes is not None:
            return any(v.startswith(prefixes[1]) for v in doc.get(prefixes[0]) or ())
        return any(o.matches(doc) for o in self.operands)


Expr = Term | MatchAll | Not | And | Or


def _wildcard(value: str) -> re.Pattern[str]:
    parts = [".*" if c == "*" else "." if c == "?" else re.escape(c) for c in value]
    return re.compile("".join(parts), re.DOTALL)


def _compare(text: str, op: str, bound: float) -> bool:
    try:
        number = float(text)
    except ValueError:
        return False
    if op == "<":
        return number < bound
    if op == "<=":
        return number <= bound
    if op == ">":
        return number > bound
    return number >= bound


def fields(expr: Expr) -> frozenset[str]:
    """The fields a query reads."""
    if isinstance(expr, Term):
        return frozenset({expr.field})
    if isinstance(expr, MatchAll):
        return frozenset()
    if isinstance(expr, Not):
        return fields(expr.operand)
    return frozenset().union(*(fields(o) for o in expr.operands))


def conjuncts(expr: Expr) -> tuple[Expr, ...]:
    """The parts a thing must match all of: an And's operands (flattened), else the query."""
    if isinstance(expr, And):
        return tuple(part for operand in expr.operands for part in conjuncts(operand))
    return (expr,)


def count_terms(expr: Expr) -> int:
    """How many terms a parsed query has, as AWS's twelve-term limit counts them."""
    if isinstance(expr, Term | MatchAll):
        return 1
    if isinstance(expr, Not):
        return count_terms(expr.operand)
    return sum(count_terms(o) for o in expr.operands)


def _tokenize(query: str) -> list[str]:
    """Split into '(', ')', and words; a double-quoted run stays inside its word."""
    tokens: list[str] = []
    i, n = 0, len(query)
    while i < n:
        c = query[i]
        if c.isspace():
            i += 1
        elif c in "()":
            tokens.append(c)
            i += 1
        else:
            word: list[str] = []
            while i < n and not query[i].isspace() and query[i] not in "()":
                if query[i] == '"':
                    end = query.find('"', i + 1)
                    if end < 0:
                        raise QueryError(f"unterminated quote at position {i}")
                    word.append(query[i : end + 1])
                    i = end + 1
                else:
                    word.append(query[i])
                    i += 1
            tokens.append("".join(word))
    return tokens


def _unquote(value: str) -> str:
    if len(value) >= 2 and value[0] == '"' and value[-1] == '"':
        return value[1:-1]
    if '"' in value:
        raise QueryError(f"misplaced quote in {value!r}")
    return value


def _known(field: str) -> bool:
    return field in KNOWN_FIELDS or (field.startswith("attributes.") and len(field) > 11)


def _term(word: str, known_field: Callable[[str], bool]) -> Term:
    op_at, op = -1, ""
    for candidate in (":", *_COMPARISONS):
        at = word.find(candidate)
        if at > 0 and (op_at < 0 or at < op_at or (at == op_at and len(candidate) > len(op))):
            op_at, op = at, candidate
    if op_at <= 0:
        raise QueryError(f"expected field:value, got {word!r}")
    field, value = word[:op_at], _unquote(word[op_at + len(op) :])
    if not _FIELD_RE.fullmatch(field) or not known_field(field):
        raise QueryError(f"unknown field {field!r}")
    if value == "":
        raise QueryError(f"missing value for field {field!r}")
    if op != ":":
        try:
            float(value)
        except ValueError:
            raise QueryError(f"{field}{op} needs a number, got {value!r}") from None
    return Term(field, op, value)


class _Parser:
    def __init__(self, tokens: list[str], known_field: Callable[[str], bool]) -> None:
        self.tokens = tokens
        self.pos = 0
        self.known_field = known_field
        # Inside ``field:( ... )`` every bare word is a value of this field.
        self.group_field: str | None = None

    def peek(self, ahead: int = 0) -> str | None:
        at = self.pos + ahead
        return self.tokens[at] if at < len(self.tokens) else None

    def take(self) -> str:
        token = self.tokens[self.pos]
        self.pos += 1
        return token

    def parse_or(self) -> Expr:
        operands = [self.parse_and()]
        while self.peek() == "OR":
            self.take()
            operands.append(self.parse_and())
        return operands[0] if len(operands) == 1 else Or(tuple(operands))

    def parse_and(self) -> Expr:
        operands = [self.parse_not()]
        while (word := self.peek()) is not None and word not in ("OR", ")"):
            if word == "AND":
                self.take()
            operands.append(self.parse_not())
        return operands[0] if len(operands) == 1 else And(tuple(operands))

    def parse_not(self) -> Expr:
        word = self.peek()
        if word == "NOT":
            self.take()
            return Not(self.parse_not())
        if word == "-" and self.peek(1) == "(":
            self.take()
            return Not(self.parse_primary())
        if word is not None and len(word) > 1 and word.startswith("-"):
            # AWS's hyphen operator excludes, as in thingName:(tv* AND -plasma).
            self.tokens[self.pos] = word[1:]
            return Not(self.parse_primary())
        return self.parse_primary()

    def parse_primary(self) -> Expr:
        word = self.peek()
        if word is None:
            raise QueryError("query ends where a term was expected")
        if word in ("AND", "OR", ")"):
            raise QueryError(f"unexpected {word!r} at token {self.pos + 1}")
        self.take()
        if word == "(":
            return self.parse_parenthesised()
        if word.endswith(":") and self.peek() == "(":
            return self.parse_field_group(word[:-1])
        if self.group_field is not None:
            return Term(self.group_field, ":", _value(word, self.group_field))
        if word == "*":
            return MatchAll()
        return _term(word, self.known_field)

    def parse_parenthesised(self) -> Expr:
        inner = self.parse_or()
        if self.peek() != ")":
            raise QueryError("missing ')'")
        self.take()
        return inner

    def parse_field_group(self, field: str) -> Expr:
        """``field:(a OR b)``: the words inside are values of ``field`` (AWS's field grouping)."""
        if self.group_field is not None:
            raise QueryError(f"field group {field!r} inside the field group {self.group_field!r}")
        if not _FIELD_RE.fullmatch(field) or not self.known_field(field):
            raise QueryError(f"unknown field {field!r}")
        self.take()  # "("
        self.group_field = field
        try:
            return self.parse_parenthesised()
        finally:
            self.group_field = None


def _value(word: str, field: str) -> str:
    value = _unquote(word)
    if value == "":
        raise QueryError(f"missing value for field {field!r}")
    return value


def parse(query: str, known_field: Callable[[str], bool] = _known) -> Expr:
    """Parse a query string; raise QueryError with a message if it is not valid."""
    tokens = _tokenize(query)
    if not tokens:
        raise QueryError("empty query")
    parser = _Parser(tokens, known_field)
    expr = parser.parse_or()
    if parser.peek() is not None:
        raise QueryError(f"unexpected {parser.peek()!r} at token {parser.pos + 1}")
    terms = count_terms(expr)
    if terms > MAX_TERMS:
        raise QueryError(f"the query has {terms} terms; at most {MAX_TERMS} are allowed")
    return expr
