"""Hypothesis: random batches and random subset queries (conditions, orderings, pages)
against an in-memory model with SQL's three-valued logic and null placement."""

from __future__ import annotations

import re
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from storage import (
    Collection,
    Delete,
    DuplicateKeyError,
    Expr,
    Insert,
    RecordNotFoundError,
    Update,
    Upsert,
    collection,
    field,
    open_storage,
)

SPEC = collection("things", indexes=["n"])
Model = dict[object, dict[str, Any]]
Truth = bool | None  # SQL's: None is "unknown"

keys = st.integers(-2, 5) | st.sampled_from(["a", "b", "A"])
numbers = st.none() | st.integers(-3, 3)
texts = st.none() | st.sampled_from(["x", "y", "xy", "Y", "yx_"])
MISSING = object()


@st.composite
def records(draw: st.DrawFn) -> dict[str, Any]:
    record: dict[str, Any] = {"id": draw(keys)}
    for name, values in (("n", numbers), ("s", texts)):
        value = draw(st.just(MISSING) | values)
        if value is not MISSING:
            record[name] = value
    return record


operations = st.one_of(
    st.builds(Insert, records()),
    st.builds(Upsert, records()),
    st.builds(lambda key, n: Update(key, {"n": n}), keys, numbers),
    st.builds(Delete, keys),
)

# A condition is built twice, as an Expr and as a model predicate, from the same draw.
Condition = tuple[Expr, Callable[[dict[str, Any]], Truth]]


def compare(name: str, op: str, value: object) -> Condition:
    sql_op = {"==": "__eq__", "!=": "__ne__", "<": "__lt__", "<=": "__le__", ">": "__gt__",
              ">=": "__ge__"}[op]
    expr = getattr(field(name), sql_op)(value)

    def model(record: dict[str, Any]) -> Truth:
        stored = record.get(name)
        if stored is None:
            return None
        return {"==": stored == value, "!=": stored != value, "<": stored < value,
                "<=": stored <= value, ">": stored > value, ">=": stored >= value}[op]

    return expr, model


def like(pattern: str) -> Condition:
    regex = re.compile("".join(".*" if c == "%" else "." if c == "_" else re.escape(c)
                               for c in pattern), re.IGNORECASE | re.DOTALL)

    def model(record: dict[str, Any]) -> Truth:
        stored = record.get("s")
        return None if stored is None else regex.fullmatch(stored) is not None

    return field("s").like(pattern), model


def one_of(values: list[str]) -> Condition:
    def model(record: dict[str, Any]) -> Truth:
        stored = record.get("s")
        return None if stored is None else stored in values

    return field("s").in_(values), model


def is_null(name: str) -> Condition:
    return field(name).is_null(), lambda record: record.get(name) is None


def both(a: Condition, b: Condition) -> Condition:
    def model(record: dict[str, Any]) -> Truth:
        x, y = a[1](record), b[1](record)
        if x is False or y is False:
            return False
        return None if x is None or y is None else True

    return a[0] & b[0], model


def either(a: Condition, b: Condition) -> Condition:
    def model(record: dict[str, Any]) -> Truth:
        x, y = a[1](record), b[1](record)
        if x is True or y is True:
            return True
        return None if x is None or y is None else False

    return a[0] | b[0], model


def negate(a: Condition) -> Condition:
    def model(record: dict[str, Any]) -> Truth:
        x = a[1](record)
        return None if x is None else not x

    return ~a[0], model


ops = st.sampled_from(["==", "!=", "<", "<=", ">", ">="])
leaves = st.one_of(
    st.builds(compare, st.just("n"), ops, st.integers(-3, 3)),
    st.builds(compare, st.just("s"), ops, st.sampled_from(["x", "xy", "Y"])),
    st.builds(like, st.sampled_from(["x%", "%y", "_", "%", "y_x\\_"])),
    st.builds(one_of, st.lists(st.sampled_from(["x", "y", "Y", "q"]), max_size=20)),
    st.builds(is_null, st.sampled_from(["n", "s"])),
)
conditions = st.recursive(
    leaves,
    lambda inner: st.one_of(st.builds(both, inner, inner), st.builds(either, inner, inner),
                            st.builds(negate, inner)),
    max_leaves=6,
)
orderings = st.sampled_from([[], ["n"], ["-n"], ["s"], ["-s"], ["s", "-n"], ["-n", "s"]])


def key_order(key: object) -> tuple[int, object]:
    return (0, key) if isinstance(key, int) else (1, key)


def model_order(rows: list[dict[str, Any]], order_by: list[str]) -> list[dict[str, Any]]:
    rows = sorted(rows, key=lambda r: key_order(r["id"]))
    for term in reversed(order_by):  # stable sorts, last term first
        name, descending = term.lstrip("-"), term.startswith("-")
        present = [r for r in rows if r.get(name) is not None]
        absent = [r for r in rows if r.get(name) is None]
        present.sort(key=lambda r, name=name: r[name], reverse=descending)
        # reverse=True keeps ties in order, as SQLite's key tie-break wants
        rows = present + absent if descending else absent + present
    return rows


def apply_to_model(model: Model, batch: list[Any]) -> type[Exception] | None:
    changed = {k: dict(v) for k, v in model.items()}
    for op in batch:
        if isinstance(op, Insert):
            if op.record["id"] in changed:
                return DuplicateKeyError
            changed[op.record["id"]] = dict(op.record)
        elif isinstance(op, Upsert):
            changed[op.record["id"]] = dict(op.record)
        elif isinstance(op, Update):
            if op.key not in changed:
                return RecordNotFoundError
            changed[op.key] = {**changed[op.key], **op.changes}
        else:
            changed.pop(op.key, None)
    model.clear()
    model.update(changed)
    return None


@settings(max_examples=150, deadline=None)
@given(batches=st.lists(st.lists(operations, min_size=1, max_size=4), max_size=8),
       queries=st.lists(st.tuples(st.none() | conditions, orderings,
                                  st.none() | st.integers(1, 4)), min_size=1, max_size=4))
def test_collections_match_the_model(batches: list[list[Any]],
                                     queries: list[tuple[Any, list[str], int | None]]) -> None:
    with tempfile.TemporaryDirectory() as scratch, \
            open_storage(Path(scratch) / "o.sqlite", durability="off") as store:
        store.prepare_collection(SPEC)
        things: Collection[Any] = store.collection(SPEC)
        model: Model = {}
        for batch in batches:
            expected_error = apply_to_model(model, batch)
            if expected_error is None:
                things.apply(batch)
            else:
                try:
                    things.apply(batch)
                except expected_error:
                    pass
                else:
                    raise AssertionError(f"{batch} should raise {expected_error.__name__}")
        for condition, order_by, limit in queries:
            matching = [r for r in model.values()
                        if condition is None or condition[1](r) is True]
            expected = model_order(matching, order_by)
            where = None if condition is None else condition[0]
            got: list[dict[str, Any]] = []
            page = things.load_subset(where, order_by=order_by, limit=limit)
            for _ in range(len(model) + 1):  # bounded: a cursor that fails to advance fails
                got += page.records
                if page.cursor is None:
                    break
                page = things.load_subset(where, order_by=order_by, limit=limit,
                                          after=page.cursor)
            assert got == expected
