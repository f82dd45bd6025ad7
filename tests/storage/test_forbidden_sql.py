"""Object SQL that Durable Objects refuse is refused here too, with a message that says why,
and refusing it changes nothing."""

from __future__ import annotations

import pytest

from storage import ForbiddenSqlError, Storage

TRANSACTION = "To execute a transaction, use ctx.storage.transaction()"
RESERVED = "names starting with '_dobox_' are reserved"
REPLICATOR = "names starting with '_litestream_' are reserved"


@pytest.mark.parametrize(
    ("query", "message"),
    [
        pytest.param("BEGIN", TRANSACTION, id="begin"),
        pytest.param("BEGIN IMMEDIATE TRANSACTION", TRANSACTION, id="begin-immediate"),
        pytest.param("COMMIT", TRANSACTION, id="commit"),
        pytest.param("ROLLBACK", TRANSACTION, id="rollback"),
        pytest.param("SAVEPOINT s", TRANSACTION, id="savepoint"),
        pytest.param("RELEASE s", TRANSACTION, id="release"),
        pytest.param("SELECT 1; COMMIT", TRANSACTION, id="commit-after-select"),
        pytest.param("ATTACH 'other.db' AS other", "ATTACH and DETACH are not allowed",
                     id="attach"),
        pytest.param("DETACH main", "ATTACH and DETACH are not allowed", id="detach"),
        pytest.param("CREATE TEMP TABLE t (a)", "temporary tables", id="temp-table"),
        pytest.param("CREATE TEMPORARY VIEW v AS SELECT 1", "temporary tables", id="temp-view"),
        pytest.param("PRAGMA journal_mode=DELETE", "PRAGMA journal_mode is not allowed",
                     id="journal-mode"),
        pytest.param("PRAGMA synchronous=OFF", "PRAGMA synchronous is not allowed",
                     id="synchronous"),
        pytest.param("PRAGMA user_version", "PRAGMA user_version is not allowed",
                     id="user-version"),
        pytest.param("PRAGMA writable_schema=ON", "PRAGMA writable_schema is not allowed",
                     id="writable-schema"),
        pytest.param("PRAGMA page_size=8192", "may be read but not set", id="page-size-set"),
        pytest.param("SELECT * FROM _dobox_kv", RESERVED, id="read-kv"),
        pytest.param("SELECT count(*) FROM _DOBOX_KV", RESERVED, id="count-kv-uppercase"),
        pytest.param("SELECT * FROM _dobox_meta", RESERVED, id="read-meta"),
        pytest.param("INSERT INTO _dobox_kv VALUES (x'61', x'4e')", RESERVED, id="insert-kv"),
        pytest.param("UPDATE _dobox_meta SET value = 9", RESERVED, id="update-meta"),
        pytest.param("DELETE FROM _dobox_kv", RESERVED, id="delete-kv"),
        pytest.param("DROP TABLE _dobox_kv", RESERVED, id="drop-kv"),
        pytest.param("CREATE TABLE _dobox_mine (a)", RESERVED, id="create-reserved"),
        pytest.param("CREATE INDEX i ON _dobox_kv (value)", RESERVED, id="index-on-kv"),
        pytest.param("CREATE VIEW v AS SELECT * FROM _dobox_kv", "views and triggers",
                     id="view-over-kv"),
        pytest.param(
            "CREATE TRIGGER tr AFTER INSERT ON people BEGIN DELETE FROM _dobox_kv; END",
            "views and triggers", id="trigger-into-kv",
        ),
        pytest.param("ALTER TABLE people RENAME TO _dobox_people", "is reserved",
                     id="rename-into-reserved"),
        pytest.param('ALTER TABLE people RENAME TO "_Dobox_People"', "is reserved",
                     id="rename-quoted"),
        pytest.param("ALTER TABLE _dobox_kv RENAME TO mine", RESERVED, id="rename-kv"),
        pytest.param("PRAGMA table_info(_dobox_kv)", RESERVED, id="pragma-on-kv"),
        pytest.param("SELECT * FROM _litestream_seq", REPLICATOR, id="read-litestream"),
        pytest.param("DELETE FROM _Litestream_Lock", REPLICATOR, id="delete-litestream"),
        pytest.param("CREATE TABLE _litestream_mine (a)", REPLICATOR,
                     id="create-litestream"),
        pytest.param("CREATE VIEW v AS SELECT * FROM _litestream_seq", "views and triggers",
                     id="view-over-litestream"),
        pytest.param("ALTER TABLE people RENAME TO _litestream_people", "is reserved",
                     id="rename-into-litestream"),
        pytest.param("SELECT * FROM pragma_table_info('_dobox_meta')", RESERVED,
                     id="pragma-function-on-meta"),
        pytest.param("CREATE VIRTUAL TABLE v USING fts4(a)", "virtual table module 'fts4'",
                     id="fts4"),
        pytest.param("ANALYZE _dobox_kv", RESERVED, id="analyze-kv"),
        pytest.param("CREATE VIRTUAL TABLE _dobox_docs USING fts5(a)", RESERVED,
                     id="reserved-virtual-table"),
    ],
)
def test_forbidden_sql_is_refused_and_changes_nothing(
    store: Storage, query: str, message: str
) -> None:
    store.sql.exec("CREATE TABLE people (name TEXT)")
    _add_litestreams_tables(store)
    store.kv.put("kept", 1)
    store.commit()
    schema_before = store.sql.exec("SELECT type, name, sql FROM sqlite_master").to_list()

    with pytest.raises(ForbiddenSqlError, match=None) as info:
        store.sql.exec(query)

    assert message in str(info.value)
    assert str(info.value).endswith("SQLITE_AUTH")
    assert isinstance(info.value, PermissionError)
    assert store.sql.exec("SELECT type, name, sql FROM sqlite_master").to_list() == schema_before
    assert store.kv.list() == {"kept": 1}
    store.commit()  # the implicit transaction is still usable


@pytest.mark.parametrize(
    "query",
    [
        "PRAGMA foreign_keys",
        "PRAGMA foreign_keys = ON",
        "PRAGMA defer_foreign_keys = ON",
        "PRAGMA case_sensitive_like = 1",
        "PRAGMA table_info(people)",
        "PRAGMA table_xinfo(people)",
        "PRAGMA index_list(people)",
        "PRAGMA table_list",
        "PRAGMA foreign_key_check",
        "PRAGMA quick_check",
        "PRAGMA optimize",
        "PRAGMA data_version",
        "PRAGMA page_size",
        "SELECT * FROM pragma_table_info('people')",
        "SELECT name FROM sqlite_master",
        "ALTER TABLE people ADD COLUMN age INTEGER",
        "ALTER TABLE people RENAME TO persons",
        "CREATE VIRTUAL TABLE places USING rtree(id, x0, x1)",
        "CREATE VIEW names AS SELECT name FROM people",
    ],
)
def test_allowed_sql_runs(store: Storage, query: str) -> None:
    store.sql.exec("CREATE TABLE people (name TEXT)")
    store.sql.exec(query).to_list()


def test_object_sql_alters_its_tables_beside_the_engines_and_litestreams(
    store: Storage,
) -> None:
    """The tables Litestream adds to a replicated file (made here as it makes them) and a
    collection's tables do not make every ALTER look like a rename into reserved names."""
    _add_litestreams_tables(store)
    store._db.conn.execute("CREATE TABLE _dobox_c_tasks (id TEXT PRIMARY KEY)")
    store.sql.exec("CREATE TABLE people (name TEXT)")
    store.sql.exec("ALTER TABLE people RENAME TO persons")
    store.sql.exec("ALTER TABLE persons ADD COLUMN age INTEGER")
    store.sql.exec("INSERT INTO persons (name, age) VALUES ('ada', 36)")
    assert store.sql.exec("SELECT name, age FROM persons").to_list() == [
        {"name": "ada", "age": 36}]
    names = {row["name"] for row in store.sql.exec("SELECT name FROM sqlite_master")}
    assert {"persons", "_litestream_seq", "_dobox_c_tasks"} <= names


def _add_litestreams_tables(store: Storage) -> None:
    """What Litestream adds to a file it replicates (its own connection, unguarded)."""
    store._db.conn.execute(
        "CREATE TABLE IF NOT EXISTS _litestream_seq (id INTEGER PRIMARY KEY, seq INTEGER)")
    store._db.conn.execute("CREATE TABLE IF NOT EXISTS _litestream_lock (id INTEGER)")


def test_a_view_over_reserved_tables_cannot_be_used(store: Storage) -> None:
    """Even a view that slipped in (say, from a tampered file) is authorized when it runs."""
    store.sql.exec("CREATE VIEW sneaky AS SELECT 1 AS one")
    # Rewrite the view with the engine's own (unguarded) connection, as a tampered file would.
    store._db.conn.execute("DROP VIEW sneaky")
    store._db.conn.execute("CREATE VIEW sneaky AS SELECT * FROM _dobox_kv")
    with pytest.raises(ForbiddenSqlError, match=RESERVED):
        store.sql.exec("SELECT * FROM sneaky")


def test_engine_sql_text_gets_no_cached_pass(store: Storage) -> None:
    """Object SQL identical to an engine statement is still authorized (no shared cache)."""
    store.kv.put("a", 1)
    store.kv.get("a")  # the engine has now prepared and cached its SELECT
    with pytest.raises(ForbiddenSqlError):
        store.sql.exec("SELECT value FROM _dobox_kv WHERE key = ?", b"a")
