"""``sql.exec`` and its cursor: results, several statements, eager execution, limits."""

from __future__ import annotations

import pytest

from storage import (
    MAX_SQL_LENGTH,
    ConstraintError,
    LimitExceededError,
    SqlError,
    Storage,
    UnsupportedValueError,
)


@pytest.fixture
def people(store: Storage) -> Storage:
    store.sql.exec(
        "CREATE TABLE people (id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE, age REAL)"
    )
    for name, age in [("ada", 36), ("bob", 40.5), ("cy", None)]:
        store.sql.exec("INSERT INTO people (name, age) VALUES (?, ?)", name, age)
    return store


def test_rows_are_dicts_and_values_keep_sqlite_types(people: Storage) -> None:
    cursor = people.sql.exec("SELECT id, name, age, x'00ff' AS blob FROM people ORDER BY id")
    assert cursor.column_names == ["id", "name", "age", "blob"]
    assert cursor.to_list() == [
        {"id": 1, "name": "ada", "age": 36.0, "blob": b"\x00\xff"},
        {"id": 2, "name": "bob", "age": 40.5, "blob": b"\x00\xff"},
        {"id": 3, "name": "cy", "age": None, "blob": b"\x00\xff"},
    ]


def test_iteration_and_raw_share_one_position(people: Storage) -> None:
    cursor = people.sql.exec("SELECT name FROM people ORDER BY id")
    assert next(cursor) == {"name": "ada"}
    assert cursor.raw().to_list() == [("bob",), ("cy",)]
    assert cursor.to_list() == []
    assert cursor.rows_read == 3


def test_duplicate_column_names_keep_the_last(people: Storage) -> None:
    cursor = people.sql.exec("SELECT 1 AS x, 2 AS x")
    assert cursor.column_names == ["x", "x"]
    assert cursor.one() == {"x": 2}


def test_one_uses_dos_messages(people: Storage) -> None:
    assert people.sql.exec("SELECT name FROM people WHERE id = ?", 2).one() == {"name": "bob"}
    with pytest.raises(
        SqlError, match=r"^Expected exactly one result from SQL query, but got no results\.$"
    ):
        people.sql.exec("SELECT * FROM people WHERE id = 99").one()
    with pytest.raises(SqlError, match=r"but got multiple results\.$"):
        people.sql.exec("SELECT * FROM people").one()


def test_write_happens_without_reading_the_cursor(people: Storage) -> None:
    people.sql.exec("INSERT INTO people (name) VALUES ('dee') RETURNING id")
    people.sql.exec("UPDATE people SET age = 1 WHERE name = 'ada' RETURNING *")
    assert people.sql.exec("SELECT count(*) AS n FROM people").one() == {"n": 4}
    assert people.sql.exec("SELECT age FROM people WHERE name = 'ada'").one() == {"age": 1.0}


def test_rows_written_counts_the_whole_exec(people: Storage) -> None:
    cursor = people.sql.exec("UPDATE people SET age = 0; DELETE FROM people WHERE id = 1")
    assert cursor.rows_written == 4
    assert cursor.column_names == []
    assert cursor.to_list() == []


def test_several_statements_bind_the_last(store: Storage) -> None:
    cursor = store.sql.exec(
        "CREATE TABLE t (a TEXT); INSERT INTO t VALUES ('x;y'); -- a ; comment\n"
        "INSERT INTO t VALUES ('/* not ; a comment */'); SELECT a FROM t WHERE a != ?; ",
        "nothing",
    )
    assert [row["a"] for row in cursor] == ["x;y", "/* not ; a comment */"]


def test_trigger_bodies_are_not_split(store: Storage) -> None:
    store.sql.exec(
        "CREATE TABLE t (a); CREATE TABLE log (a);"
        "CREATE TRIGGER t_log AFTER INSERT ON t BEGIN INSERT INTO log VALUES (new.a); "
        "INSERT INTO log VALUES (new.a * 10); END; INSERT INTO t VALUES (?)",
        4,
    )
    assert store.sql.exec("SELECT a FROM log ORDER BY a").raw().to_list() == [(4,), (40,)]


def test_bindings_for_an_earlier_statement_fail(store: Storage) -> None:
    with pytest.raises(SqlError, match="Incorrect number of bindings"):
        store.sql.exec("SELECT ?; SELECT 1", 5)


@pytest.mark.parametrize(
    ("value", "stored"),
    [
        pytest.param(True, 1, id="bool-as-integer"),
        pytest.param(2**62, 2**62, id="int64"),
        pytest.param(1.5, 1.5, id="float"),
        pytest.param(b"\x00", b"\x00", id="bytes"),
        pytest.param(bytearray(b"\x01"), b"\x01", id="bytearray"),
        pytest.param(None, None, id="null"),
    ],
)
def test_binding_types(store: Storage, value: object, stored: object) -> None:
    assert store.sql.exec("SELECT ? AS v", value).one() == {"v": stored}


@pytest.mark.parametrize("value", [[1], {"a": 1}, object(), 1j], ids=repr)
def test_unsupported_binding_is_refused(store: Storage, value: object) -> None:
    with pytest.raises(UnsupportedValueError, match="binding 2 is of type"):
        store.sql.exec("SELECT ?, ?", 1, value)


def test_integer_binding_over_64_bits_is_refused(store: Storage) -> None:
    with pytest.raises(LimitExceededError, match="64-bit INTEGER"):
        store.sql.exec("SELECT ?", 2**64)


def test_constraint_violation_is_a_constraint_error(people: Storage) -> None:
    with pytest.raises(
        ConstraintError, match=r"UNIQUE constraint failed: people\.name: SQLITE_CONSTRAINT"
    ):
        people.sql.exec("INSERT INTO people (name) VALUES ('ada')")
    with pytest.raises(ConstraintError, match="NOT NULL"):
        people.sql.exec("INSERT INTO people (name) VALUES (NULL)")


def test_foreign_keys_are_enforced(store: Storage) -> None:
    store.sql.exec("CREATE TABLE a (id INTEGER PRIMARY KEY); "
                   "CREATE TABLE b (a_id INTEGER REFERENCES a(id))")
    with pytest.raises(ConstraintError, match="FOREIGN KEY"):
        store.sql.exec("INSERT INTO b VALUES (7)")


def test_sqlite_errors_name_their_code(store: Storage) -> None:
    with pytest.raises(SqlError, match="no such table: nope: SQLITE_ERROR"):
        store.sql.exec("SELECT * FROM nope")
    with pytest.raises(SqlError, match="syntax error"):
        store.sql.exec("SELEC 1")


def test_database_size_grows_with_data(store: Storage) -> None:
    before = store.sql.database_size
    store.sql.exec("CREATE TABLE t (a BLOB)")
    store.sql.exec("INSERT INTO t VALUES (zeroblob(100000))")
    assert store.sql.database_size >= before + 100_000
    assert store.sql.database_size % 4096 == 0


def test_fts5_virtual_tables_work(store: Storage) -> None:
    store.sql.exec("CREATE VIRTUAL TABLE docs USING fts5(body)")
    store.sql.exec("INSERT INTO docs VALUES ('durable objects on trio')")
    assert store.sql.exec("SELECT body FROM docs WHERE docs MATCH 'trio'").one() == {
        "body": "durable objects on trio"
    }


# -- limits --------------------------------------------------------------------------------


def test_statement_over_100kb_is_refused(store: Storage) -> None:
    query = "SELECT '" + "x" * MAX_SQL_LENGTH + "'"
    with pytest.raises(LimitExceededError, match="the limit is 100,000 bytes"):
        store.sql.exec(query)
    # Multi-byte characters count as their UTF-8 bytes.
    query = "SELECT '" + "é" * (MAX_SQL_LENGTH // 2) + "'"
    with pytest.raises(LimitExceededError):
        store.sql.exec(query)


def test_statement_just_under_100kb_runs(store: Storage) -> None:
    query = "SELECT length('" + "x" * (MAX_SQL_LENGTH - 40) + "') AS n"
    assert store.sql.exec(query).one() == {"n": MAX_SQL_LENGTH - 40}


def test_more_than_100_bindings_are_refused(store: Storage) -> None:
    placeholders = ",".join("?" * 101)
    with pytest.raises(LimitExceededError, match="101 bindings; at most 100"):
        store.sql.exec(f"SELECT {placeholders}", *range(101))
    (row,) = store.sql.exec(f"SELECT {placeholders[:-2]}", *range(100)).raw().to_list()
    assert len(row) == 100


def test_more_than_100_columns_are_refused(store: Storage) -> None:
    columns = ", ".join(f"c{i}" for i in range(101))
    with pytest.raises(LimitExceededError, match="too many columns"):
        store.sql.exec(f"CREATE TABLE wide ({columns})")


def test_strings_and_blobs_over_2mib_are_refused(store: Storage) -> None:
    store.sql.exec("CREATE TABLE t (b BLOB)")
    with pytest.raises(LimitExceededError, match="too big"):
        store.sql.exec("INSERT INTO t VALUES (zeroblob(?))", 3 * 1024 * 1024)
    with pytest.raises(LimitExceededError):
        store.sql.exec("INSERT INTO t VALUES (?)", b"x" * (3 * 1024 * 1024))
    assert store.sql.exec("SELECT count(*) AS n FROM t").one() == {"n": 0}


def test_query_must_be_a_string(store: Storage) -> None:
    with pytest.raises(TypeError, match="needs the query as a str"):
        store.sql.exec(b"SELECT 1")  # type: ignore[arg-type]
