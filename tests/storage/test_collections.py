"""The collections contract: writes, keys, values, batches, tombstones and pull_since,
every query operator, ordering, cursors, index use, record types, and schema policies."""

from __future__ import annotations

import datetime as dt
import json
import math
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import attrs
import pytest

import storage._collections._collection
from storage import (
    Changes,
    Collection,
    Delete,
    DuplicateKeyError,
    ForbiddenSqlError,
    FullReload,
    Insert,
    InvalidRecordError,
    MigrationError,
    RecordNotFoundError,
    SchemaMismatchError,
    Storage,
    UnsupportedValueError,
    Update,
    Upsert,
    collection,
    field,
    open_storage,
)
from storage._collections._query import expr_from_data

TODOS = collection("todos", indexes=[field("done"), (field("owner"), field("rank"))])


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Storage]:
    with open_storage(tmp_path / "object.sqlite", durability="off") as opened:
        yield opened


@pytest.fixture
def todos(store: Storage) -> Collection[Any]:
    store.prepare_collection(TODOS)
    return store.collection(TODOS)


def keys(records: list[dict[str, Any]]) -> list[object]:
    return [record["id"] for record in records]


# -- writes ----------------------------------------------------------------------------------


def test_insert_get_update_upsert_delete(todos: Collection[Any]) -> None:
    assert todos.insert({"id": "a", "title": "write", "done": False}) == {
        "id": "a", "title": "write", "done": False}
    assert todos.update("a", {"done": True}) == {"id": "a", "title": "write", "done": True}
    assert todos.get("a") == {"id": "a", "title": "write", "done": True}
    assert todos.upsert({"id": "a", "title": "replaced"}) == {"id": "a", "title": "replaced"}
    assert todos.get("a") == {"id": "a", "title": "replaced"}  # upsert replaces, not merges
    assert len(todos) == 1
    assert todos.delete("a") is True
    assert todos.delete("a") is False
    assert todos.get("a") is None


def test_write_errors_change_nothing(todos: Collection[Any]) -> None:
    todos.insert({"id": 1, "n": 1})
    version = todos.row_version
    with pytest.raises(DuplicateKeyError, match="has a record with key 1 already"):
        todos.insert({"id": 1, "n": 2})
    with pytest.raises(RecordNotFoundError, match="no record with key 2 to update"):
        todos.update(2, {"n": 3})
    with pytest.raises(InvalidRecordError, match="cannot change the key field 'id'"):
        todos.update(1, {"id": 5})
    with pytest.raises(InvalidRecordError, match="records need a 'id' field"):
        todos.insert({"n": 1})
    assert todos.get(1) == {"id": 1, "n": 1}
    assert todos.row_version == version


def test_one_and_the_string_one_are_two_keys(todos: Collection[Any]) -> None:
    todos.insert({"id": 1, "kind": "int"})
    todos.insert({"id": "1", "kind": "str"})
    assert (todos.get(1), todos.get("1")) == ({"id": 1, "kind": "int"},
                                              {"id": "1", "kind": "str"})
    for key in (10, -5, 2, "b", "a", -(2**63), 2**63 - 1):
        todos.insert({"id": key})
    ordered = keys(todos.load_subset().records)  # by key: ints numerically, then strings
    assert ordered == [-(2**63), -5, 1, 2, 10, 2**63 - 1, "1", "a", "b"]


@pytest.mark.parametrize("key", [True, 2**63, 1.5, None, ("a",)], ids=repr)
def test_keys_must_be_str_or_64_bit_int(todos: Collection[Any], key: object) -> None:
    with pytest.raises(InvalidRecordError):
        todos.insert({"id": key})


def test_values_keep_their_types(todos: Collection[Any]) -> None:
    due = dt.datetime(2026, 11, 22, 9, 30, tzinfo=dt.timezone(dt.timedelta(hours=2)))
    record = {"id": "v", "due": due, "day": dt.date(2026, 1, 2), "blob": b"\x00\xff",
              "pair": (1, (2, "x")), "huge": 2**80, "inf": math.inf, "ninf": -math.inf,
              "nested": {"list": [1, 2.5, None, True], "when": [due]}}
    todos.insert(record)
    stored = todos.get("v")
    assert stored == record
    assert type(stored["pair"]) is tuple
    assert type(stored["pair"][1]) is tuple
    assert math.isnan(todos.upsert({"id": "n", "x": math.nan})["x"])
    assert math.isnan(todos.get("n")["x"])


@pytest.mark.parametrize(
    ("value", "error", "message"),
    [
        pytest.param(dt.datetime(2026, 1, 1), InvalidRecordError,
                     "field a.b is a naive datetime", id="naive"),
        pytest.param({1, 2}, TypeError, "field a.b is a set", id="set"),
        pytest.param(object(), TypeError, "field a.b is a object", id="object"),
        pytest.param({1: "x"}, TypeError, "field a.b has a int key 1", id="int-key"),
    ],
)
def test_unstorable_values_are_named(todos: Collection[Any], value: object,
                                     error: type[Exception], message: str) -> None:
    """A value of an unsupported type is an UnsupportedValueError, also a TypeError (as
    json.dumps raises), naming its path; a bad value of a supported type is a ValueError."""
    with pytest.raises(error, match=message) as info:
        todos.insert({"id": 1, "a": {"b": value}})
    if error is TypeError:
        assert isinstance(info.value, UnsupportedValueError)
    assert len(todos) == 0


def test_special_values_sort_as_the_originals(todos: Collection[Any]) -> None:
    utc = dt.UTC
    values = [dt.datetime(2026, 1, 1, 19, tzinfo=dt.timezone(dt.timedelta(hours=-5))),
              dt.datetime(2026, 1, 2, 1, tzinfo=utc), dt.datetime(2026, 1, 2, 3, tzinfo=utc)]
    for i, value in enumerate(reversed(values)):
        todos.insert({"id": i, "when": value})
    assert [r["when"] for r in todos.load_subset(order_by="when").records] == values
    assert keys(todos.load_subset(field("when") > dt.datetime(2026, 1, 2, 3, 30,
                                                              tzinfo=dt.timezone(
                                                                  dt.timedelta(hours=3))))
                .records) == [0, 1]  # 03:00Z and 01:00Z are after 00:30Z; 00:00Z is not
    todos.apply([Delete(i) for i in range(3)])
    for i, blob in enumerate([b"\x10", b"\x01\xff", b"\x01"]):
        todos.insert({"id": i, "b": blob, "x": [-math.inf, 1e308, math.inf][i]})
    assert [r["b"] for r in todos.load_subset(order_by="b").records] == [
        b"\x01", b"\x01\xff", b"\x10"]
    assert [r["x"] for r in todos.load_subset(order_by="x").records] == [
        -math.inf, 1e308, math.inf]


# -- batches, tombstones, pull_since ----------------------------------------------------------


def test_a_batch_is_all_or_nothing_at_one_row_version(todos: Collection[Any]) -> None:
    todos.insert({"id": 1, "n": 0})
    before = todos.row_version
    assert todos.apply([Insert({"id": 2}), Upsert({"id": 3}), Update(1, {"n": 1}),
                        Delete(2)]) is True
    assert todos.row_version == before + 1
    assert keys(todos.load_subset().records) == [1, 3]
    with pytest.raises(RecordNotFoundError):
        todos.apply([Insert({"id": 4}), Update(99, {"n": 1})])
    assert todos.get(4) is None
    assert todos.row_version == before + 1


def test_a_batch_with_an_id_applies_once(todos: Collection[Any]) -> None:
    assert todos.apply([Insert({"id": 1})], batch_id="b-1") is True
    assert todos.apply([Insert({"id": 1})], batch_id="b-1") is False  # no DuplicateKeyError
    assert todos.apply([Insert({"id": 2})], batch_id="b-2") is True
    assert len(todos) == 2


def test_pull_since_lists_changed_and_deleted_keys(todos: Collection[Any]) -> None:
    start = todos.row_version
    todos.insert({"id": "a"})
    todos.insert({"id": "b"})
    middle = todos.row_version
    todos.update("a", {"x": 1})
    todos.delete("b")
    todos.insert({"id": "c"})
    assert todos.pull_since(start) == Changes(todos.row_version, ["a", "c"], ["b"])
    assert todos.pull_since(middle) == Changes(todos.row_version, ["a", "c"], ["b"])
    assert todos.pull_since(todos.row_version) == Changes(todos.row_version, [], [])
    todos.insert({"id": "b"})  # back again: no longer a tombstone
    assert todos.pull_since(middle).deleted == []


def test_pull_since_asks_for_a_full_reload_past_the_kept_history(
    todos: Collection[Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(storage._collections._collection, "MAX_TOMBSTONES", 2)
    start = todos.row_version
    for i in range(4):
        todos.insert({"id": i})
    inserted = todos.row_version
    for i in range(3):
        todos.delete(i)  # the first tombstone is pruned
    assert todos.pull_since(start) == FullReload(todos.row_version)
    assert todos.pull_since(inserted + 1) == Changes(todos.row_version, [], [1, 2])
    assert todos.pull_since(todos.row_version + 5) == FullReload(todos.row_version)


# -- queries -------------------------------------------------------------------------------


@pytest.fixture
def people(todos: Collection[Any]) -> Collection[Any]:
    rows = [("a", "ann", 30, True, "x"), ("b", "bob", 25, False, None),
            ("c", "cy", None, True, "y"), ("d", "Dee", 30, False, "x"),
            ("e", "eve", 41, None, "z")]
    for key, name, age, done, owner in rows:
        record = {"id": key, "name": name, "age": age, "done": done, "owner": owner,
                  "address": {"city": name.upper()}, "tags": [name[0], "t"]}
        if key == "e":
            del record["age"]  # missing, not null
        todos.insert(record)
    return todos


@pytest.mark.parametrize(
    ("condition", "expected"),
    [
        pytest.param(field("age") == 30, ["a", "d"], id="eq"),
        pytest.param(field("age") != 30, ["b"], id="ne-skips-null-and-missing"),
        pytest.param(field("age") < 30, ["b"], id="lt"),
        pytest.param(field("age") <= 30, ["a", "b", "d"], id="le"),
        pytest.param(field("age") > 25, ["a", "d"], id="gt"),
        pytest.param(field("age") >= 25, ["a", "b", "d"], id="ge"),
        pytest.param(field("done") == True, ["a", "c"], id="bool"),  # noqa: E712
        pytest.param(field("done") == None, ["e"], id="eq-none"),  # noqa: E711
        pytest.param(field("age").is_null(), ["c", "e"], id="is-null-or-missing"),
        pytest.param(field("owner").in_(["x", "z"]), ["a", "d", "e"], id="in"),
        pytest.param(field("owner").in_([]), [], id="empty-in"),
        pytest.param(field("age").in_(range(0, 2000)), ["a", "b", "d"], id="in-chunked"),
        pytest.param(field("name").like("d%"), ["d"], id="like-ascii-case-insensitive"),
        pytest.param(field("name").like("_o_"), ["b"], id="like-underscore"),
        pytest.param((field("age") == 30) & (field("done") == False), ["d"], id="and"),  # noqa: E712
        pytest.param((field("age") == 25) | (field("owner") == "y"), ["b", "c"], id="or"),
        pytest.param(~(field("age") == 30), ["b"], id="not-skips-null"),
        pytest.param(~field("age").is_null(), ["a", "b", "d"], id="not-null"),
        pytest.param(field("address.city") == "CY", ["c"], id="nested-path"),
        pytest.param(field("tags.0") == "e", ["e"], id="array-index"),
        pytest.param(field("nope") == 1, [], id="missing-field"),
    ],
)
def test_every_operator(people: Collection[Any], condition: Any,
                        expected: list[str]) -> None:
    assert keys(people.load_subset(condition).records) == expected


def test_conditions_refuse_python_boolean_operators() -> None:
    with pytest.raises(TypeError, match=re.escape("combine conditions with & | ~")):
        (field("a") == 1) and (field("b") == 2)  # the mistake under test
    with pytest.raises(TypeError, match="use is_null"):
        field("a") < None  # noqa: B015
    with pytest.raises(ValueError, match="identifier"):
        field("a'); DROP TABLE x; --")


def test_ordering_with_nulls_and_ties(people: Collection[Any]) -> None:
    assert keys(people.load_subset(order_by="age").records) == ["c", "e", "b", "a", "d"]
    assert keys(people.load_subset(order_by="-age").records) == ["a", "d", "b", "c", "e"]
    assert keys(people.load_subset(order_by=["-age", field("name").desc()]).records) == [
        "a", "d", "b", "e", "c"]  # "ann" > "Dee": text compares by bytes


@pytest.mark.parametrize("order_by", ["age", "-age", ["owner", "-age"], ["-done", "age"]],
                         ids=repr)
@pytest.mark.parametrize("limit", [1, 2, 3])
def test_cursor_pages_cover_every_record_once(people: Collection[Any], order_by: Any,
                                              limit: int) -> None:
    everything = keys(people.load_subset(order_by=order_by).records)
    pages: list[object] = []
    page = people.load_subset(order_by=order_by, limit=limit)
    for _ in range(len(everything) + 1):  # bounded: a cursor that fails to advance fails
        assert len(page.records) <= limit
        pages += keys(page.records)
        if page.cursor is None:
            break
        page = people.load_subset(order_by=order_by, limit=limit, after=page.cursor)
    assert pages == everything


def test_a_cursor_from_another_ordering_is_refused(people: Collection[Any]) -> None:
    cursor = people.load_subset(order_by="age", limit=1).cursor
    assert cursor is not None
    with pytest.raises(ValueError, match="another order_by"):
        people.load_subset(order_by=["age", "name"], after=cursor)
    with pytest.raises(ValueError, match="not a cursor"):
        people.load_subset(after="garbage!")


def plan(store: Storage, condition: Any) -> str:
    params: list[object] = []
    sql = f"SELECT key FROM _dobox_c_todos WHERE {condition.compile(params)}"
    rows = store._db.execute(f"EXPLAIN QUERY PLAN {sql}", tuple(params)).fetchall()
    return " ".join(str(row[-1]) for row in rows)


def test_declared_indexes_are_used(store: Storage, people: Collection[Any]) -> None:
    assert "USING INDEX _dobox_i_todos_" in plan(store, field("done") == True)  # noqa: E712
    assert "USING INDEX _dobox_i_todos_" in plan(
        store, (field("owner") == "x") & (field("rank") > 2))
    assert "SCAN" in plan(store, field("age") == 30)  # not indexed


def test_indexes_follow_the_declaration(store: Storage) -> None:
    store.prepare_collection(TODOS)
    fewer = collection("todos", indexes=[field("age")])
    store.prepare_collection(fewer)
    names = {name for (name,) in store._db.execute(
        "SELECT name FROM sqlite_master WHERE type = 'index' AND name LIKE '_dobox_i_%'")}
    assert len(names) == 1
    assert "USING INDEX" in plan(store, field("age") == 1)
    assert "SCAN" in plan(store, field("done") == True)  # noqa: E712


def test_object_sql_cannot_touch_collection_tables(store: Storage,
                                                   todos: Collection[Any]) -> None:
    todos.insert({"id": 1})
    with pytest.raises(ForbiddenSqlError):
        store.sql.exec("DELETE FROM _dobox_c_todos")
    assert len(todos) == 1


# -- record types --------------------------------------------------------------------------


@attrs.define
class Todo:
    id: int = attrs.field(validator=attrs.validators.instance_of(int))
    title: str = attrs.field(validator=attrs.validators.instance_of(str))
    done: bool = attrs.field(default=False, converter=bool)


TYPED = collection("typed", record_type=Todo)


def test_a_record_type_validates_and_converts(store: Storage) -> None:
    store.prepare_collection(TYPED)
    typed = store.collection(TYPED)
    assert typed.insert({"id": 1, "title": "x", "done": 1}) == Todo(1, "x", True)
    assert typed.insert(Todo(2, "y")) == Todo(2, "y", False)
    assert typed.get(1) == Todo(1, "x", True)
    with pytest.raises(InvalidRecordError, match="'title' must be <class 'str'>"):
        typed.insert({"id": 3, "title": 3})
    with pytest.raises(InvalidRecordError, match="'title' must be"):
        typed.update(1, {"title": None})
    with pytest.raises(InvalidRecordError, match="unexpected keyword argument 'colour'"):
        typed.insert({"id": 4, "title": "z", "colour": "red"})
    assert typed.get(1) == Todo(1, "x", True)
    assert len(typed) == 2


@attrs.frozen
class Task:
    id: int
    title: str = attrs.field(validator=attrs.validators.instance_of(str))
    priority: int = attrs.field(default=0, converter=int)


def test_record_type_errors_name_the_field_and_nothing_more(store: Storage) -> None:
    """A converter that fails names its field; a validator's message is its own, without
    the repr of attrs' Attribute."""
    spec = collection("tasks", record_type=Task)
    store.prepare_collection(spec)
    tasks = store.collection(spec)
    with pytest.raises(InvalidRecordError) as info:
        tasks.insert({"id": 1, "title": "x", "priority": "high"})
    assert str(info.value) == ("tasks: not a valid Task: priority: invalid literal for int() "
                               "with base 10: 'high'")
    with pytest.raises(InvalidRecordError) as info:
        tasks.insert({"id": 1, "title": 3})
    assert str(info.value) == ("tasks: not a valid Task: 'title' must be <class 'str'> "
                               "(got 3 that is a <class 'int'>).")
    assert "Attribute(" not in str(info.value)
    assert len(tasks) == 0


# -- schema versions ------------------------------------------------------------------------


def test_a_sync_absent_mismatch_throws_and_touches_nothing(store: Storage) -> None:
    store.prepare_collection(TODOS)
    store.collection(TODOS).insert({"id": 1})
    newer = collection("todos", schema_version=2)
    with pytest.raises(SchemaMismatchError, match='"todos" stores schema version 1'):
        store.prepare_collection(newer)
    assert store.collection(TODOS).get(1) == {"id": 1}


async def refill(obj: object, records: Collection[Any]) -> None:
    records.insert({"id": "from upstream"})


def test_a_sync_present_mismatch_clears_data_history_and_batch_ids(store: Storage) -> None:
    store.prepare_collection(TODOS)
    old = store.collection(TODOS)
    old.apply([Insert({"id": 1}), Insert({"id": 2})], batch_id="b")
    old.delete(2)
    old.set_metadata("cursor", {"upstream": 41})
    assert old.get_metadata("cursor") == {"upstream": 41}
    resume_from = old.row_version
    other = collection("other")
    store.prepare_collection(other)
    store.collection(other).insert({"id": "kept"})
    cached = collection("todos", schema_version=2, sync=refill)
    assert store.prepare_collection(cached) is True  # cleared: it awaits its sync
    records = store.collection(cached)
    assert len(records) == 0
    assert isinstance(records.pull_since(resume_from), FullReload)
    assert records.apply([Insert({"id": 1})], batch_id="b") is True  # the id was forgotten
    assert records.get_metadata("cursor") is None  # the sync source's state went too
    assert store.collection(other).get("kept") == {"id": "kept"}  # one collection only
    store.mark_collection_synced(cached)
    assert store.prepare_collection(cached) is False


def test_migrations_bring_records_up_to_date(store: Storage) -> None:
    store.prepare_collection(TODOS)
    store.collection(TODOS).insert({"id": 1, "title": "x"})

    def add_done(records: Collection[Any]) -> None:
        for record in records.load_subset().records:
            records.update(record["id"], {"done": False})

    def fail(records: Collection[Any]) -> None:
        raise RuntimeError("no")

    with pytest.raises(MigrationError, match="to version 3 raised RuntimeError"):
        store.prepare_collection(collection("todos", schema_version=3,
                                            migrations={2: add_done, 3: fail}))
    assert store.collection(TODOS).get(1) == {"id": 1, "title": "x"}  # rolled back
    v2 = collection("todos", schema_version=2, migrations={2: add_done})
    assert store.prepare_collection(v2) is False
    assert store.collection(v2).get(1) == {"id": 1, "title": "x", "done": False}


def test_delete_all_removes_collections(store: Storage, todos: Collection[Any]) -> None:
    todos.insert({"id": 1})
    store.delete_all_sync()
    store.prepare_collection(TODOS)
    assert len(store.collection(TODOS)) == 0


def test_conditions_cross_as_data_and_malformed_data_is_refused(
        people: Collection[Any]) -> None:
    condition = ((field("age") >= 25) & ~field("owner").in_(["x"])) | field("age").is_null()
    again = expr_from_data(json.loads(json.dumps(condition.to_data())))
    assert keys(people.load_subset(again).records) == keys(
        people.load_subset(condition).records) == ["c", "e"]  # b's owner is null: unknown
    for bad in (["bogus"], "cmp", ["cmp", "a'", "=", 1], ["cmp", "a", "DROP", 1],
                ["cmp", "a", "=", None], ["and", [["null", "a"]]], ["in", "a", "x"], []):
        with pytest.raises(ValueError,
                           match=r"not a condition|identifier|value is|needs two|in takes"):
            expr_from_data(bad)
