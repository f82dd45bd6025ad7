"""The implicit transaction, ``transaction``/``transaction_sync``, ``sync``, ``delete_all``
and the alarm record."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
import trio
import trio.lowlevel
import trio.testing

from storage import (
    MAX_TRANSACTION_DEPTH,
    ConstraintError,
    ForbiddenSqlError,
    ObjectLockedError,
    Storage,
    StorageClosedError,
    TransactionError,
    open_storage,
)
from tests.helpers import committed_view


def committed_keys(path: Path) -> list[str]:
    """What a crash now would leave: only committed data."""
    with committed_view(path) as reader:
        return [bytes(k).decode() for (k,) in reader.execute("SELECT key FROM _dobox_kv")]


def test_writes_are_invisible_until_commit(store: Storage, db_path: Path) -> None:
    store.kv.put("a", 1)
    store.sql.exec("CREATE TABLE t (x)")
    assert committed_keys(db_path) == []
    store.commit()
    assert committed_keys(db_path) == ["a"]


@pytest.mark.parametrize(
    ("action", "writes"),
    [
        pytest.param(lambda s: s.kv.put("a", 1), True, id="put"),
        pytest.param(lambda s: s.kv.get("a"), False, id="get"),
        pytest.param(lambda s: s.kv.list(), False, id="list"),
        pytest.param(lambda s: s.kv.delete("missing"), False, id="delete-missing"),
        pytest.param(lambda s: s.sql.exec("SELECT 1"), False, id="select"),
        pytest.param(lambda s: s.sql.exec("CREATE TABLE t (x)"), True, id="create-table"),
        # DDL is seen when SQLite prepares it, before it knows the table exists: a
        # conservative answer costs one empty commit, never a lost write.
        pytest.param(lambda s: s.sql.exec("CREATE TABLE IF NOT EXISTS e (x)"), True,
                     id="create-existing-is-conservative"),
        pytest.param(lambda s: s.sql.exec("INSERT INTO e VALUES (1)"), True, id="insert"),
        pytest.param(lambda s: s.sql.exec("UPDATE e SET x = 1 WHERE 0"), False,
                     id="update-nothing"),
        pytest.param(lambda s: s.sql.exec("DROP INDEX IF EXISTS nope; DROP TABLE e"), True,
                     id="drop"),
        pytest.param(lambda s: s.set_alarm_sync(10), True, id="set-alarm"),
        pytest.param(lambda s: s.delete_alarm_sync(), False, id="delete-no-alarm"),
    ],
)
def test_has_uncommitted_writes(store: Storage, action: object, writes: bool) -> None:
    """The output gate's question: never False after a change, and False for plain reads."""
    store.sql.exec("CREATE TABLE e (x)")
    store.commit()
    assert not store.has_uncommitted_writes
    action(store)  # type: ignore[operator]
    assert store.has_uncommitted_writes is writes
    store.commit()
    assert not store.has_uncommitted_writes


def test_rollback_discards_everything_uncommitted(store: Storage) -> None:
    store.kv.put("kept", 1)
    store.commit()
    store.kv.put("dropped", 2)
    store.sql.exec("CREATE TABLE t (x)")
    store.set_alarm_sync(5)
    store.rollback()
    assert store.kv.list() == {"kept": 1}
    assert store.get_alarm_sync() is None
    assert store.sql.exec("SELECT name FROM sqlite_master WHERE name = 't'").to_list() == []


def test_a_failing_commit_discards_the_writes_and_says_why(store: Storage) -> None:
    """A deferred foreign key violation fails at COMMIT: nothing of that commit lands."""
    store.sql.exec("CREATE TABLE parent (id INTEGER PRIMARY KEY); "
                   "CREATE TABLE child (parent INTEGER REFERENCES parent(id))")
    store.kv.put("kept", 1)
    store.commit()
    store.sql.exec("PRAGMA defer_foreign_keys = ON")
    store.sql.exec("INSERT INTO child VALUES (42)")
    store.kv.put("dropped", 2)
    with pytest.raises(ConstraintError, match="FOREIGN KEY constraint failed"):
        store.commit()
    assert not store.has_uncommitted_writes
    assert store.kv.list() == {"kept": 1}
    assert store.sql.exec("SELECT count(*) AS n FROM child").one() == {"n": 0}
    store.kv.put("later", 3)
    store.commit()
    assert store.kv.list() == {"kept": 1, "later": 3}


# -- transaction_sync ------------------------------------------------------------------------


def test_transaction_sync_returns_and_keeps_writes(store: Storage) -> None:
    def body() -> int:
        store.kv.put("a", 1)
        return 42

    assert store.transaction_sync(body) == 42
    assert store.kv.get("a") == 1
    assert store.has_uncommitted_writes  # it is part of the implicit transaction


def test_transaction_sync_rolls_back_and_reraises(store: Storage) -> None:
    store.kv.put("before", 0)

    def body() -> None:
        store.kv.put("inside", 1)
        store.sql.exec("CREATE TABLE t (x)")
        raise KeyError("boom")

    with pytest.raises(KeyError, match="boom"):
        store.transaction_sync(body)
    assert store.kv.list() == {"before": 0}
    assert store.sql.exec("SELECT count(*) AS n FROM sqlite_master WHERE name='t'").one() == {
        "n": 0
    }
    store.commit()


def test_nested_transaction_sync_rolls_back_only_the_inner(store: Storage) -> None:
    def inner() -> None:
        store.kv.put("inner", 2)
        raise ValueError("inner fails")

    def outer() -> None:
        store.kv.put("outer", 1)
        with pytest.raises(ValueError, match="inner fails"):
            store.transaction_sync(inner)
        store.kv.put("after", 3)

    store.transaction_sync(outer)
    assert store.kv.list() == {"after": 3, "outer": 1}


def test_transaction_sync_refuses_coroutine_functions(store: Storage) -> None:
    async def body() -> None:
        store.kv.put("a", 1)

    with pytest.raises(TypeError, match=r"use await storage\.transaction"):
        store.transaction_sync(body)  # type: ignore[arg-type]
    assert store.kv.list() == {}


def test_transaction_depth_is_limited(store: Storage) -> None:
    def nest(depth: int) -> int:
        return store.transaction_sync(lambda: nest(depth + 1))

    with pytest.raises(TransactionError, match=rf"at most {MAX_TRANSACTION_DEPTH}\)"):
        nest(0)
    assert not store.in_transaction
    store.commit()


def test_commit_and_delete_all_are_refused_inside_a_transaction(store: Storage) -> None:
    def body() -> None:
        with pytest.raises(TransactionError, match="cannot commit"):
            store.commit()
        with pytest.raises(TransactionError, match=r"Cannot call delete_all\(\) within"):
            store.delete_all_sync()

    store.transaction_sync(body)


# -- async transaction and sync ------------------------------------------------------------


async def test_transaction_spans_awaits_and_rolls_back_together(store: Storage) -> None:
    async def body() -> None:
        await store.put("a", 1)
        await trio.lowlevel.checkpoint()
        store.sql.exec("CREATE TABLE t (x)")
        await trio.lowlevel.checkpoint()
        raise RuntimeError("after the awaits")

    with pytest.raises(RuntimeError):
        await store.transaction(body)
    assert await store.list() == {}
    assert not store.in_transaction


async def test_transaction_returns_its_result(store: Storage) -> None:
    async def body() -> str:
        await store.put("a", 1)
        return "done"

    assert await store.transaction(body) == "done"
    assert await store.get("a") == 1


async def test_cancelled_transaction_rolls_back(store: Storage) -> None:
    async def body() -> None:
        await store.put("a", 1)
        await trio.sleep_forever()

    with trio.move_on_after(1):
        await store.transaction(body)
    assert await store.list() == {}


async def test_transaction_refuses_plain_functions(store: Storage) -> None:
    def body() -> None:
        store.kv.put("a", 1)

    with pytest.raises(TypeError, match=r"use storage\.transaction_sync"):
        await store.transaction(body)  # type: ignore[arg-type]
    assert await store.list() == {}


async def test_sync_is_refused_inside_a_transaction(store: Storage) -> None:
    async def body() -> None:
        await store.sync()

    with pytest.raises(TransactionError):
        await store.transaction(body)


async def test_sync_commits_durably(store: Storage, db_path: Path) -> None:
    await store.put("a", 1)
    assert committed_keys(db_path) == []
    await store.sync()
    assert committed_keys(db_path) == ["a"]
    assert not store.has_uncommitted_writes


async def test_storage_is_off_limits_while_sync_runs_in_a_thread(store: Storage) -> None:
    await store.put("a", 1)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(store.sync)
        await trio.testing.wait_all_tasks_blocked()
        with pytest.raises(TransactionError, match="committing in a worker thread"):
            store.kv.get("a")
    assert store.kv.get("a") == 1


def test_closed_storage_says_so(db_path: Path) -> None:
    storage = open_storage(db_path)
    storage.close()
    storage.close()  # closing twice is fine
    assert storage.closed
    for call in (lambda: storage.kv.get("a"), lambda: storage.kv.put("a", 1),
                 lambda: storage.sql.exec("SELECT 1"), storage.commit):
        with pytest.raises(StorageClosedError, match="was closed"):
            call()


# -- delete_all --------------------------------------------------------------------------------


def fill(store: Storage) -> None:
    store.kv.put({"a": 1, "b": 2})
    store.sql.exec(
        "CREATE TABLE parent (id INTEGER PRIMARY KEY);"
        "CREATE TABLE child (id INTEGER PRIMARY KEY AUTOINCREMENT, "
        "  parent INTEGER REFERENCES parent(id));"
        "CREATE INDEX child_parent ON child (parent);"
        "CREATE VIEW kids AS SELECT * FROM child;"
        "CREATE TRIGGER t AFTER DELETE ON parent BEGIN DELETE FROM child; END;"
        "CREATE VIRTUAL TABLE docs USING fts5(body);"
        "INSERT INTO parent VALUES (1); INSERT INTO child (parent) VALUES (1);"
        "INSERT INTO docs VALUES ('text')"
    )
    store.set_alarm_sync(123)


async def test_delete_all_clears_kv_tables_and_alarm(store: Storage) -> None:
    fill(store)
    store.commit()
    await store.delete_all()
    store.commit()
    assert await store.list() == {}
    assert await store.get_alarm() is None
    names = store.sql.exec(
        "SELECT name FROM sqlite_master WHERE name NOT LIKE 'sqlite%'"
    ).raw().to_list()
    assert names == [("_dobox_kv",), ("_dobox_meta",)]
    # The object is usable afterwards, and keeps its identity.
    fill(store)
    store.commit()


def test_delete_all_is_atomic(store: Storage) -> None:
    fill(store)
    store.commit()
    before = store.sql.exec("SELECT type, name FROM sqlite_master ORDER BY name").to_list()
    store.delete_all_sync()
    store.rollback()
    assert store.kv.list() == {"a": 1, "b": 2}
    assert store.get_alarm_sync() == 123
    assert store.sql.exec("SELECT type, name FROM sqlite_master ORDER BY name").to_list() == before


# -- the alarm record ----------------------------------------------------------------------


async def test_alarm_set_replace_delete(store: Storage) -> None:
    assert await store.get_alarm() is None
    await store.set_alarm(1_000.5)
    await store.set_alarm(2_000)
    assert await store.get_alarm() == 2_000.0
    await store.delete_alarm()
    assert await store.get_alarm() is None


async def test_alarm_accepts_aware_datetimes(store: Storage) -> None:
    when = dt.datetime(2030, 1, 1, tzinfo=dt.UTC)
    await store.set_alarm(when)
    assert await store.get_alarm() == when.timestamp()


@pytest.mark.parametrize(
    ("when", "error", "message"),
    [
        pytest.param(0, ValueError, "alarm time <= 0", id="zero"),
        pytest.param(-5.0, ValueError, "alarm time <= 0", id="negative"),
        pytest.param(float("nan"), ValueError, "alarm time <= 0", id="nan"),
        pytest.param(float("inf"), ValueError, "alarm time <= 0", id="inf"),
        pytest.param(dt.datetime(2030, 1, 1), ValueError, "aware datetime", id="naive"),
        pytest.param("soon", TypeError, "epoch seconds or a datetime", id="str"),
    ],
)
async def test_bad_alarm_times_are_refused(
    store: Storage, when: object, error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=message):
        await store.set_alarm(when)  # type: ignore[arg-type]
    assert await store.get_alarm() is None
    assert not store.has_uncommitted_writes


def test_alarm_survives_reopen_and_rolls_back_with_a_transaction(db_path: Path) -> None:
    with open_storage(db_path) as storage:
        storage.set_alarm_sync(50)

        def body() -> None:
            storage.set_alarm_sync(60)
            raise RuntimeError

        with pytest.raises(RuntimeError):
            storage.transaction_sync(body)
    with open_storage(db_path) as storage:
        assert storage.get_alarm_sync() == 50
        assert storage.metadata.alarm == 50


# -- suspending the connection -------------------------------------------------------------


def test_suspend_frees_the_connection_and_the_next_use_reconnects(
    store: Storage, db_path: Path
) -> None:
    store.kv.put("a", 1)
    store.sql.exec("CREATE TABLE t (x)")
    with pytest.raises(TransactionError, match="uncommitted"):
        store.suspend()
    store.commit()
    assert store.can_suspend
    store.suspend()
    assert store.suspended
    assert not store.has_uncommitted_writes
    store.commit()  # nothing to do, and no reconnect needed
    store.rollback()
    assert store.suspended
    assert store.kv.get("a") == 1  # reconnects
    assert not store.suspended
    with pytest.raises(ForbiddenSqlError):  # the authorizer is back on the new connection
        store.sql.exec("SELECT * FROM _dobox_kv")
    assert not store.can_suspend  # object SQL opened a (read) transaction
    store.commit()
    store.suspend()
    # Still locked while suspended: the file has one owner throughout.
    with pytest.raises(ObjectLockedError):
        open_storage(db_path)
    store.close()
    open_storage(db_path).close()


async def test_sync_and_transactions_reconnect_a_suspended_storage(store: Storage) -> None:
    store.suspend()

    async def body() -> None:
        await store.put("b", 2)

    await store.transaction(body)
    await store.sync()
    store.suspend()
    assert store.transaction_sync(lambda: store.kv.get("b")) == 2
