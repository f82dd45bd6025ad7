"""Schema versions: the clear, throw and migrate mechanics."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from storage import (
    MigrationError,
    SchemaMismatchError,
    SchemaOutcome,
    Storage,
    StorageError,
    TransactionError,
    open_storage,
)


@pytest.fixture
def v1(db_path: Path) -> Path:
    """An object file at schema version 1 holding KV pairs, a table and an alarm."""
    with open_storage(db_path, name="room-1", namespace="ROOM", class_name="Room") as storage:
        assert storage.apply_schema(1, policy="throw") is SchemaOutcome.RECORDED
        storage.kv.put({"title": "lobby", "count": 2})
        storage.sql.exec("CREATE TABLE messages (text TEXT); INSERT INTO messages VALUES ('hi')")
        storage.set_alarm_sync(99)
    return db_path


def contents(storage: Storage) -> tuple[dict[str, object], list[str], float | None]:
    tables = [
        row["name"]
        for row in storage.sql.exec(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE '\\_%' "
            "ESCAPE '\\' ORDER BY name"
        )
    ]
    return storage.kv.list(), tables, storage.get_alarm_sync()


V1_CONTENTS = ({"count": 2, "title": "lobby"}, ["messages"], 99.0)


def test_same_version_is_unchanged(v1: Path) -> None:
    with open_storage(v1) as storage:
        assert storage.apply_schema(1, policy="throw") is SchemaOutcome.UNCHANGED
        assert contents(storage) == V1_CONTENTS


def test_throw_names_both_versions_and_touches_nothing(v1: Path) -> None:
    with open_storage(v1) as storage:
        with pytest.raises(SchemaMismatchError, match=None) as info:
            storage.apply_schema(2, policy="throw")
        message = str(info.value)
        assert "stores schema version 1 but its class declares 2" in message
        assert "'room-1' of Room" in message
        assert (info.value.stored, info.value.declared) == (1, 2)
        assert contents(storage) == V1_CONTENTS
        assert storage.metadata.schema_version == 1
    with open_storage(v1) as storage:
        assert storage.apply_schema(1, policy="throw") is SchemaOutcome.UNCHANGED
        assert contents(storage) == V1_CONTENTS


def test_clear_empties_everything_and_records_the_version(v1: Path) -> None:
    with open_storage(v1) as storage:
        assert storage.apply_schema(2, policy="clear") is SchemaOutcome.CLEARED
        assert not storage.has_uncommitted_writes
    with open_storage(v1) as storage:
        assert contents(storage) == ({}, [], None)
        assert storage.metadata.schema_version == 2
        assert storage.metadata.name == "room-1"


def test_clear_also_goes_down(v1: Path) -> None:
    with open_storage(v1) as storage:
        storage.apply_schema(3, policy="clear")
        storage.kv.put("a", 1)
        storage.commit()
        assert storage.apply_schema(2, policy="clear") is SchemaOutcome.CLEARED
        assert storage.kv.list() == {}


def add_authors(storage: Storage) -> None:
    storage.sql.exec("ALTER TABLE messages ADD COLUMN author TEXT DEFAULT 'anon'")


def rename_title(storage: Storage) -> None:
    storage.kv.put("name", storage.kv.get("title"))
    storage.kv.delete("title")


def test_migrate_runs_every_step_and_keeps_a_backup(v1: Path) -> None:
    with open_storage(v1) as storage:
        outcome = storage.apply_schema(
            3, policy="migrate", migrations={2: add_authors, 3: rename_title}
        )
        assert outcome is SchemaOutcome.MIGRATED
        assert storage.metadata.schema_version == 3
    with open_storage(v1) as storage:
        assert storage.kv.list() == {"count": 2, "name": "lobby"}
        assert storage.sql.exec("SELECT * FROM messages").to_list() == [
            {"text": "hi", "author": "anon"}
        ]
    (backup,) = (v1.parent / ".backups").iterdir()
    assert backup.name.startswith("object.v1.")
    with sqlite3.connect(backup) as copy:
        version = "SELECT value FROM _dobox_meta WHERE key = 'schema_version'"
        assert copy.execute(version).fetchone() == (1,)
        assert copy.execute("SELECT count(*) FROM messages").fetchone() == (1,)


def test_failing_migration_rolls_back_every_step(v1: Path, tmp_path: Path) -> None:
    def broken(storage: Storage) -> None:
        storage.kv.put("half", "done")
        raise LookupError("step 3 is broken")

    with open_storage(v1) as storage:
        with pytest.raises(MigrationError, match="to version 3 raised LookupError") as info:
            storage.apply_schema(
                3, policy="migrate", migrations={2: add_authors, 3: broken},
                backup_dir=tmp_path / "backups",
            )
        error = info.value
        assert (error.stored, error.failed_step) == (1, 3)
        assert isinstance(error.__cause__, LookupError)
        assert error.backup_path is not None
        assert Path(error.backup_path).parent == tmp_path / "backups"
        assert Path(error.backup_path).exists()
        assert storage.metadata.schema_version == 1
        assert contents(storage) == V1_CONTENTS
        columns = [c["name"] for c in storage.sql.exec("PRAGMA table_info(messages)")]
        assert columns == ["text"]


def test_async_migration_is_refused(v1: Path) -> None:
    async def step(storage: Storage) -> None:
        storage.kv.put("x", 1)

    with open_storage(v1) as storage:
        with pytest.raises(MigrationError) as info:
            storage.apply_schema(2, policy="migrate", migrations={2: step})
        assert isinstance(info.value.__cause__, TypeError)
        assert contents(storage) == V1_CONTENTS


def test_migrate_without_every_step_touches_nothing(v1: Path) -> None:
    with open_storage(v1) as storage:
        with pytest.raises(SchemaMismatchError, match="no step for versions 3, 4"):
            storage.apply_schema(4, policy="migrate", migrations={2: add_authors})
        assert contents(storage) == V1_CONTENTS
    assert not (v1.parent / ".backups").exists()


def test_a_failed_backup_migrates_nothing(v1: Path, tmp_path: Path) -> None:
    blocked = tmp_path / "not-a-directory"
    blocked.write_text("a file where the backup directory should go")
    with open_storage(v1) as storage:
        with pytest.raises(StorageError, match="could not back up"):
            storage.apply_schema(2, policy="migrate", migrations={2: add_authors},
                                 backup_dir=blocked)
        assert storage.metadata.schema_version == 1
        assert contents(storage) == V1_CONTENTS


def test_migrate_does_not_go_down(v1: Path) -> None:
    with open_storage(v1) as storage:
        storage.apply_schema(2, policy="clear")
        with pytest.raises(SchemaMismatchError, match="migrations only run upwards"):
            storage.apply_schema(1, policy="migrate", migrations={1: add_authors})


def test_apply_schema_needs_nothing_uncommitted(v1: Path) -> None:
    with open_storage(v1) as storage:
        storage.kv.put("pending", 1)
        with pytest.raises(TransactionError, match="nothing uncommitted"):
            storage.apply_schema(2, policy="clear")
        assert storage.kv.get("pending") == 1


@pytest.mark.parametrize(
    ("version", "policy", "message"),
    [
        pytest.param(-1, "throw", "schema_version must be an int >= 0", id="negative"),
        pytest.param("2", "throw", "schema_version must be an int >= 0", id="str"),
        pytest.param(2, "drop", "on_schema_mismatch must be", id="bad-policy"),
    ],
)
def test_bad_arguments(v1: Path, version: object, policy: str, message: str) -> None:
    with open_storage(v1) as storage, pytest.raises(ValueError, match=message):
        storage.apply_schema(version, policy=policy)  # type: ignore[arg-type]


def test_identity_is_recorded(v1: Path) -> None:
    with open_storage(v1) as storage:
        meta = storage.metadata
        assert (meta.name, meta.namespace, meta.class_name) == ("room-1", "ROOM", "Room")
        assert meta.created_at is not None
        storage.record_identity(class_name="Room2")
    with open_storage(v1) as storage:
        assert storage.metadata.class_name == "Room2"
        assert storage.metadata.name == "room-1"
