"""The object file itself: one owner, damaged files, a full disk, durability settings."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from storage import (
    CodecError,
    DatabaseCorruptError,
    ObjectLockedError,
    StorageError,
    StorageFullError,
    TransactionAbortedError,
    open_storage,
)

OPEN_IN_CHILD = """
import sys
from storage import ObjectLockedError, open_storage
try:
    open_storage(sys.argv[1]).close()
except ObjectLockedError as exc:
    print("locked:", exc)
else:
    print("opened")
"""


def open_in_child(path: Path) -> str:
    result = subprocess.run(
        [sys.executable, "-c", OPEN_IN_CHILD, str(path)],
        capture_output=True, text=True, check=True, timeout=60,
    )
    return result.stdout.strip()


def test_a_second_process_is_refused_at_once(db_path: Path) -> None:
    with open_storage(db_path) as storage:
        storage.kv.put("a", 1)
        answer = open_in_child(db_path)
        assert answer.startswith("locked:")
        assert "held by another process" in answer
        assert storage.kv.get("a") == 1
    assert open_in_child(db_path) == "opened"


def test_a_second_open_in_this_process_is_refused(db_path: Path) -> None:
    with open_storage(db_path):
        with pytest.raises(ObjectLockedError, match="already open in this process"):
            open_storage(db_path)
        with pytest.raises(ObjectLockedError):  # through another spelling of the path
            open_storage(db_path.parent / "." / db_path.name)
    open_storage(db_path).close()


def test_a_process_that_ignored_the_lock_can_neither_read_nor_write(db_path: Path) -> None:
    """A connection that bypassed the flock meets SQLite's exclusive lock, held by the
    storage for as long as it is open (its WAL index lives in its own memory, not in a
    -shm file others could map), and the storage goes on unharmed."""
    with open_storage(db_path) as storage:
        storage.kv.put("a", 1)
        storage.commit()
        rogue = sqlite3.connect(db_path, isolation_level=None, timeout=0)
        try:
            with pytest.raises(sqlite3.OperationalError, match="locked"):
                rogue.execute("BEGIN IMMEDIATE")
            with pytest.raises(sqlite3.OperationalError, match="locked"):
                rogue.execute("SELECT count(*) FROM sqlite_master").fetchone()
        finally:
            rogue.close()
        storage.kv.put("b", 2)
        storage.commit()
        assert storage.kv.list() == {"a": 1, "b": 2}
    assert not Path(f"{db_path}-shm").exists()  # the WAL index was never in a file


def test_a_directory_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(StorageError, match="cannot open"):
        open_storage(tmp_path)
    with pytest.raises(StorageError, match="No such file or directory"):
        open_storage(tmp_path / "missing" / "object.sqlite")


@pytest.mark.parametrize(
    "content",
    [
        pytest.param(b"this is a text file, not a database\n" * 200, id="text"),
        pytest.param(os.urandom(8192), id="random"),
        pytest.param(b"SQLite format 3\x00" + os.urandom(4080), id="bad-header"),
    ],
)
def test_not_a_database_is_left_untouched(db_path: Path, content: bytes) -> None:
    db_path.write_bytes(content)
    for _ in range(2):  # the failed open released its lock: the same error again
        with pytest.raises(DatabaseCorruptError, match="not a SQLite database or is damaged"):
            open_storage(db_path)
    assert db_path.read_bytes() == content


def test_damaged_pages_are_reported_and_left_untouched(db_path: Path) -> None:
    with open_storage(db_path) as storage:
        storage.kv.put({f"key-{i}": "x" * 500 for i in range(100)})
    with sqlite3.connect(db_path) as conn:  # fold the WAL into the file, then damage it
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        (root,) = conn.execute(
            "SELECT rootpage FROM sqlite_master WHERE name = '_dobox_kv'"
        ).fetchone()
    conn.close()
    data = bytearray(db_path.read_bytes())
    page = 4096 * (root - 1)
    data[page:page + 4096] = b"\xa5" * 4096
    db_path.write_bytes(bytes(data))

    with open_storage(db_path) as storage, pytest.raises(DatabaseCorruptError, match="damaged"):
        storage.kv.list()
    assert db_path.read_bytes() == bytes(data)


def test_a_full_disk_loses_nothing_committed(db_path: Path) -> None:
    with open_storage(db_path) as storage:
        storage.kv.put("kept", "committed before the disk filled")
    with open_storage(db_path) as storage:
        storage.sql.set_max_page_count_for_test(storage.sql.database_size // 4096 + 2)
        storage.kv.put("small", 1)

        def fill_up() -> None:
            for i in range(100):
                storage.kv.put(f"big-{i}", b"x" * 100_000)

        with pytest.raises(StorageFullError, match="full"):
            fill_up()
        # The turn that hit the full disk commits nothing, not even its early writes.
        with pytest.raises(TransactionAbortedError, match="nothing was committed"):
            storage.commit()
        assert storage.kv.list() == {"kept": "committed before the disk filled"}
        # ... and the storage goes on working for what fits.
        storage.kv.put("after", 2)
        storage.commit()
    with open_storage(db_path) as storage:
        assert storage.kv.list() == {"after": 2, "kept": "committed before the disk filled"}
    with sqlite3.connect(db_path) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    conn.close()


@pytest.mark.parametrize(
    ("durability", "synchronous"),
    [("full", 2), ("normal", 1), ("off", 0)],
)
def test_durability_sets_synchronous_and_wal(
    db_path: Path, durability: str, synchronous: int
) -> None:
    for _ in ("a new file, once it has begun its first transaction", "an existing file"):
        with open_storage(db_path, durability=durability) as storage:  # type: ignore[arg-type]
            storage.kv.put("k", 1)
            conn = storage._db.conn
            assert conn.execute("PRAGMA synchronous").fetchone() == (synchronous,)
            assert conn.execute("PRAGMA journal_mode").fetchone() == ("wal",)
            assert storage.durability == durability
            storage.commit()


def test_a_new_files_setup_is_synced_with_its_first_transaction(db_path: Path) -> None:
    """A new file is switched to WAL and given the engine's tables without a sync each (six
    of them); its first transaction syncs the file once and turns synchronous on, so the
    first commit carries the setup to the disk with it."""
    with open_storage(db_path, name="n") as storage:
        db = storage._db
        assert db.unsettled
        assert db.conn.execute("PRAGMA synchronous").fetchone() == (0,)
        assert not db_path.with_name(db_path.name + "-journal").exists()  # no rollback journal
        storage.kv.put("k", 1)
        assert not db.unsettled
        assert db.conn.execute("PRAGMA synchronous").fetchone() == (2,)
        storage.commit()
    with open_storage(db_path) as storage:
        assert not storage._db.unsettled  # an existing file is synced from the start
        assert (storage.kv.get("k"), storage.metadata.name) == (1, "n")


def test_an_empty_file_left_by_a_crash_in_its_setup_opens_as_new(db_path: Path) -> None:
    """Were a crash to leave a new file empty (its setup was never synced), SQLite drops its
    WAL, and the file opens as a new object again."""
    db_path.write_bytes(b"")
    db_path.with_name(db_path.name + "-wal").write_bytes(b"not synced, never read")
    with open_storage(db_path, name="again") as storage:
        assert storage._db.unsettled
        storage.kv.put("k", 2)
        storage.commit()
    with open_storage(db_path) as storage:
        assert (storage.kv.get("k"), storage.metadata.name) == (2, "again")


def test_bad_durability_is_refused(db_path: Path) -> None:
    with pytest.raises(ValueError, match="durability must be"):
        open_storage(db_path, durability="fast")  # type: ignore[arg-type]
    open_storage(db_path).close()  # and the file was not left locked


def test_a_file_from_a_newer_engine_is_refused(db_path: Path) -> None:
    open_storage(db_path).close()
    with sqlite3.connect(db_path) as conn:
        conn.execute("UPDATE _dobox_meta SET value = 99 WHERE key = 'format'")
    conn.close()
    with pytest.raises(StorageError, match="written by a newer dobox"):
        open_storage(db_path)


@pytest.mark.parametrize(
    ("key", "value"),
    [
        pytest.param(b"k", 42, id="integer-value"),
        pytest.param(b"k", "text value", id="text-value"),
        pytest.param(b"k", b"\x80\x04\x95 pickle", id="pickle-bytes"),
        pytest.param("k", b"N", id="text-key"),
        pytest.param(b"\xff\xfe", b"N", id="key-not-utf8"),
    ],
)
def test_tampered_rows_raise_codec_error(db_path: Path, key: object, value: object) -> None:
    open_storage(db_path).close()
    with sqlite3.connect(db_path) as conn:
        conn.execute("INSERT INTO _dobox_kv VALUES (?, ?)", (key, value))
    conn.close()
    with open_storage(db_path) as storage:
        if key == b"k":  # a damaged value: reading that key says so
            with pytest.raises(CodecError, match="damaged"):
                storage.kv.get("k")
        with pytest.raises(CodecError, match="damaged"):
            storage.kv.list()


def test_a_tampered_schema_version_is_reported(db_path: Path) -> None:
    open_storage(db_path).close()
    with sqlite3.connect(db_path) as conn:
        conn.execute("INSERT INTO _dobox_meta VALUES ('schema_version', 'two')")
    conn.close()
    with open_storage(db_path) as storage, pytest.raises(CodecError, match="schema version"):
        storage.apply_schema(2, policy="throw")
