"""An operator's SQL may only read (``dobox sql`` and the inspector run it this way)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from storage import ForbiddenSqlError, LimitExceededError
from storage._reading import run_reading_sql


@pytest.fixture
def conn(tmp_path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(tmp_path / "object.sqlite", isolation_level=None)
    conn.execute("CREATE TABLE notes(id INTEGER PRIMARY KEY, body TEXT)")
    conn.executemany("INSERT INTO notes(body) VALUES (?)", [(f"note {i}",) for i in range(5)])
    conn.execute("CREATE TABLE _dobox_kv(key BLOB PRIMARY KEY, value BLOB)")
    return conn


@pytest.mark.parametrize("sql", [
    "SELECT count(*) FROM notes",
    "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 3) "
    "SELECT i FROM n",
    "SELECT upper(body) FROM notes WHERE id = 1",
    "PRAGMA table_info(notes)",
    "PRAGMA user_version",
    "SELECT * FROM _dobox_kv",  # an operator may read the engine's tables
])
def test_reading_statements_run(conn: sqlite3.Connection, sql: str) -> None:
    result = run_reading_sql(conn, sql)
    assert result.columns
    assert not result.truncated


@pytest.mark.parametrize("sql", [
    "INSERT INTO notes(body) VALUES ('x')",
    "UPDATE notes SET body = 'x'",
    "DELETE FROM notes",
    "DROP TABLE notes",
    "CREATE TABLE other(x)",
    "CREATE TEMP TABLE other(x)",
    "ALTER TABLE notes ADD COLUMN y",
    "PRAGMA user_version = 7",
    "PRAGMA journal_mode = DELETE",
    "BEGIN",
    "ATTACH DATABASE ':memory:' AS other",
    "WITH x AS (SELECT 1) DELETE FROM notes",
])
def test_anything_else_is_refused_before_it_runs(conn: sqlite3.Connection, sql: str) -> None:
    with pytest.raises(ForbiddenSqlError, match="dobox only reads object files"):
        run_reading_sql(conn, sql)
    assert conn.execute("SELECT count(*) FROM notes").fetchone() == (5,)
    assert conn.execute("PRAGMA user_version").fetchone() == (0,)
    assert not conn.in_transaction


def test_rows_beyond_the_limit_are_left_unread(conn: sqlite3.Connection) -> None:
    result = run_reading_sql(conn, "SELECT id FROM notes ORDER BY id", max_rows=3)
    assert (result.rows, result.truncated) == ([(1,), (2,), (3,)], True)
    exact = run_reading_sql(conn, "SELECT id FROM notes ORDER BY id", max_rows=5)
    assert (len(exact.rows), exact.truncated) == (5, False)


def test_a_query_longer_than_its_time_is_stopped(conn: sqlite3.Connection) -> None:
    endless = ("WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n) "
               "SELECT count(*) FROM n")
    with pytest.raises(LimitExceededError, match=r"ran for more than 0\.05 s"):
        run_reading_sql(conn, endless, seconds=0.05)
    assert run_reading_sql(conn, "SELECT 1").rows == [(1,)]  # the handler is gone


def test_sqlite_errors_are_left_to_the_caller(conn: sqlite3.Connection) -> None:
    with pytest.raises(sqlite3.OperationalError, match="no such table"):
        run_reading_sql(conn, "SELECT * FROM missing")


def test_the_authorizer_is_removed_afterwards(conn: sqlite3.Connection) -> None:
    with pytest.raises(ForbiddenSqlError):
        run_reading_sql(conn, "DELETE FROM notes")
    conn.execute("DELETE FROM notes WHERE id = 1")  # the connection's owner may write again
    assert conn.execute("SELECT count(*) FROM notes").fetchone() == (4,)
