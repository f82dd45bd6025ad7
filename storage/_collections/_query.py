"""The query language of collections: ``field("done") == False``, ``&``, ``|``, ``~``,
comparisons, ``in_``, ``like``, ``is_null``; compiled to SQL over ``json_extract``.

A field's SQL is ``json_extract(value, '$.path')`` with the path written into the text (its
segments are checked to be identifiers or indexes, so nothing can escape the quotes). A
declared index is built from exactly that text, so SQLite matches the index to the query:
binding the path as a parameter instead would leave every index unused.

Semantics are SQL's: a missing or null field matches no comparison, and not its negation
either (``~(field("n") == 1)`` skips records without ``n``); ask with ``is_null()``.
``like`` is SQLite's: ``%`` and ``_`` wildcards, case-insensitive for ASCII letters.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Sequence

import attrs

from .._errors import InvalidRecordError
from ._values import sql_literal

_SEGMENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*|[0-9]+")
IN_INLINE = 16
"""``in_`` lists up to this long bind one parameter per value; longer ones bind the whole
list as one JSON array read with ``json_each``, under the limit of 100 bound parameters."""


class Expr:
    """A condition on records: combine with ``&``, ``|`` and ``~``."""

    def compile(self, params: list[object]) -> str:
        """The SQL text, appending its bound values to ``params``."""
        raise NotImplementedError

    def to_data(self) -> list[object]:
        """This condition as JSON-able data (``expr_from_data`` reads it back): how a
        condition crosses to another object or over the network."""
        raise NotImplementedError

    def __and__(self, other: Expr) -> Expr:
        return _Junction("AND", (self, _expr(other)))

    def __or__(self, other: Expr) -> Expr:
        return _Junction("OR", (self, _expr(other)))

    def __invert__(self) -> Expr:
        return _Not(self)

    def __bool__(self) -> bool:
        raise TypeError("a query condition has no truth value: combine conditions with "
                        "& | ~ (not and, or, not)")


def _expr(value: object) -> Expr:
    if not isinstance(value, Expr):
        raise TypeError(f"expected a condition such as field('x') == 1, not {value!r}")
    return value


@attrs.frozen(eq=False)
class _Junction(Expr):
    op: str
    parts: tuple[Expr, ...]

    def compile(self, params: list[object]) -> str:
        return "(" + f" {self.op} ".join(part.compile(params) for part in self.parts) + ")"

    def to_data(self) -> list[object]:
        return [self.op.lower(), [part.to_data() for part in self.parts]]


@attrs.frozen(eq=False)
class _Not(Expr):
    inner: Expr

    def compile(self, params: list[object]) -> str:
        return f"(NOT {self.inner.compile(params)})"

    def to_data(self) -> list[object]:
        return ["not", self.inner.to_data()]


@attrs.frozen(eq=False)
class _Compare(Expr):
    field: Field
    op: str
    value: object

    def compile(self, params: list[object]) -> str:
        params.append(self.value)
        return f"({self.field.sql} {self.op} ?)"

    def to_data(self) -> list[object]:
        return ["cmp", self.field.path, self.op, self.value]


@attrs.frozen(eq=False)
class _Null(Expr):
    field: Field
    negated: bool = False

    def compile(self, params: list[object]) -> str:
        return f"({self.field.sql} IS {'NOT ' if self.negated else ''}NULL)"

    def to_data(self) -> list[object]:
        return ["not-null" if self.negated else "null", self.field.path]


@attrs.frozen(eq=False)
class _In(Expr):
    field: Field
    values: tuple[object, ...]

    def to_data(self) -> list[object]:
        return ["in", self.field.path, list(self.values)]

    def compile(self, params: list[object]) -> str:
        if not self.values:
            # Matches nothing, and like every comparison it is unknown for a null field
            # (SQLite's own "x IN ()" is false even for null, so its negation would match).
            return f"(CASE WHEN {self.field.sql} IS NULL THEN NULL ELSE 0 END)"
        if len(self.values) <= IN_INLINE:
            params.extend(self.values)
            return f"({self.field.sql} IN ({', '.join('?' * len(self.values))}))"
        params.append(json.dumps(self.values))
        return f"({self.field.sql} IN (SELECT value FROM json_each(?)))"


class Field:
    """A record field, by name or dotted path (``field("owner.name")``, ``field("tags.0")``).

    Raises:
        ValueError: a path segment that is neither an identifier nor an index.
    """

    __slots__ = ("path", "sql")

    def __init__(self, path: str) -> None:
        segments = path.split(".")
        if not all(_SEGMENT.fullmatch(segment) for segment in segments):
            raise ValueError(f"field path {path!r}: each dot-separated part must be an "
                             "identifier (letters, digits, _) or an index")
        json_path = "$" + "".join(f"[{s}]" if s.isdigit() else f".{s}" for s in segments)
        self.path = path
        self.sql = f"json_extract(value, '{json_path}')"
        """The SQL text of this field: queries and indexes use exactly this."""

    def __repr__(self) -> str:
        return f"field({self.path!r})"

    def _compare(self, op: str, value: object) -> Expr:
        try:
            literal = sql_literal(value)
        except InvalidRecordError as exc:
            raise TypeError(f"{self!r} {op} ...: {exc}") from None
        if literal is None:
            if op in ("=", "!="):
                return _Null(self, negated=op == "!=")
            raise TypeError(f"{self!r} {op} None: nothing is ordered against null; use "
                            "is_null()")
        return _Compare(self, op, literal)

    def __eq__(self, value: object) -> Expr:  # type: ignore[override]  # builds a condition
        return self._compare("=", value)

    def __ne__(self, value: object) -> Expr:  # type: ignore[override]  # builds a condition
        return self._compare("!=", value)

    def __lt__(self, value: object) -> Expr:
        return self._compare("<", value)

    def __le__(self, value: object) -> Expr:
        return self._compare("<=", value)

    def __gt__(self, value: object) -> Expr:
        return self._compare(">", value)

    def __ge__(self, value: object) -> Expr:
        return self._compare(">=", value)

    __hash__ = None  # type: ignore[assignment]  # == builds a condition, so no hashing

    def in_(self, values: Iterable[object]) -> Expr:
        """The field equals one of ``values`` (an empty list matches nothing)."""
        literals = tuple(sql_literal(value) for value in values)
        if any(literal is None for literal in literals):
            raise TypeError(f"{self!r}.in_(...) with None: use | field.is_null()")
        return _In(self, literals)

    def like(self, pattern: str) -> Expr:
        """SQL LIKE: ``%`` any run, ``_`` one character, ASCII case-insensitive."""
        if not isinstance(pattern, str):
            raise TypeError(f"like() takes a str pattern, not {type(pattern).__name__}")
        return _Compare(self, "LIKE", pattern)

    def is_null(self) -> Expr:
        """The field is null or missing."""
        return _Null(self)

    def asc(self) -> OrderTerm:
        return OrderTerm(self, descending=False)

    def desc(self) -> OrderTerm:
        return OrderTerm(self, descending=True)


_OPS = frozenset({"=", "!=", "<", "<=", ">", ">=", "LIKE"})


def expr_from_data(data: object) -> Expr:
    """The condition ``Expr.to_data`` wrote.

    Raises:
        ValueError: malformed data (it names the part).
    """
    try:
        kind = data[0]  # type: ignore[index]  # checked by the except
        if kind in ("and", "or"):
            parts = [expr_from_data(part) for part in data[1]]  # type: ignore[index]  # as above
            if len(parts) < 2:
                raise ValueError(f"{kind} needs two conditions or more")
            return _Junction(kind.upper(), tuple(parts))
        if kind == "not":
            return _Not(expr_from_data(data[1]))  # type: ignore[index]  # as above
        if kind == "cmp" and data[2] in _OPS:  # type: ignore[index]  # as above
            value = data[3]  # type: ignore[index]  # as above
            if value is None or not isinstance(value, str | int | float):
                raise ValueError(f"a comparison's value is a str or a number, not {value!r}")
            return _Compare(Field(data[1]), data[2], value)  # type: ignore[index]  # as above
        if kind in ("null", "not-null"):
            return _Null(Field(data[1]), negated=kind == "not-null")  # type: ignore[index]  # as above
        if kind == "in":
            values = data[2]  # type: ignore[index]  # as above
            if not isinstance(values, list) or not all(
                    isinstance(v, str | int | float) for v in values):
                raise ValueError("in takes a list of strings and numbers")
            return _In(Field(data[1]), tuple(values))  # type: ignore[index]  # as above
    except (TypeError, IndexError, KeyError, AttributeError) as exc:
        raise ValueError(f"not a condition: {data!r:.80}") from exc
    raise ValueError(f"not a condition: {data!r:.80}")


def field(path: str) -> Field:
    """The record field at ``path`` (a name, or a dotted path into nested values)."""
    return Field(path)


@attrs.frozen
class OrderTerm:
    """One ``order_by`` term. SQLite puts nulls first ascending and last descending."""

    field: Field
    descending: bool = False

    @property
    def sql(self) -> str:
        return f"{self.field.sql} {'DESC' if self.descending else 'ASC'}"


def order_terms(order_by: str | Field | OrderTerm | Sequence[str | Field | OrderTerm]
                ) -> tuple[OrderTerm, ...]:
    """``order_by`` as terms: ``"score"``, ``"-score"`` (descending), a field, or
    ``field("score").desc()``, or a sequence of those."""
    items = [order_by] if isinstance(order_by, str | Field | OrderTerm) else list(order_by)
    terms = []
    for item in items:
        if isinstance(item, OrderTerm):
            terms.append(item)
        elif isinstance(item, Field):
            terms.append(item.asc())
        elif isinstance(item, str):
            descending = item.startswith("-")
            terms.append(OrderTerm(Field(item.lstrip("-")), descending=descending))
        else:
            raise TypeError(f"order_by takes field names, fields or field(...).desc(), not "
                            f"{item!r}")
    return tuple(terms)


def after_condition(terms: Sequence[OrderTerm], values: Sequence[object], key: str,
                    params: list[object]) -> str:
    """SQL for "comes after the row with these order values and this stored key", in the
    order ``terms`` then key ascending, with SQLite's null placement (keyset pagination:
    ties are broken by the key, so no record is skipped or repeated across pages)."""
    Part = tuple[str, list[object]]
    alternatives: list[list[Part]] = []
    equal_so_far: list[Part] = []
    for term, value in zip(terms, values, strict=True):
        sql = term.field.sql
        later: Part
        if value is None:  # nulls come first ascending, last descending
            later = ("0", []) if term.descending else (f"{sql} IS NOT NULL", [])
            same: Part = (f"{sql} IS NULL", [])
        else:
            later = ((f"({sql} < ? OR {sql} IS NULL)", [value]) if term.descending
                     else (f"{sql} > ?", [value]))
            same = (f"{sql} = ?", [value])
        alternatives.append([*equal_so_far, later])
        equal_so_far.append(same)
    alternatives.append([*equal_so_far, ("key > ?", [key])])
    texts = []
    for parts in alternatives:
        for _, bound in parts:
            params.extend(bound)
        texts.append("(" + " AND ".join(text for text, _ in parts) + ")")
    return "(" + " OR ".join(texts) + ")"
