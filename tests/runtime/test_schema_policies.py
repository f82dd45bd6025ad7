"""Schema mismatch policies, applied when a restarted runtime meets files of another version."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import ClassVar

import pytest

from actors import DurableObject, ObjectResetError
from runtime import open_runtime
from storage import Migration, MigrationError, SchemaMismatchError, Storage
from tests.helpers import concurrent_outcomes

FAST = {"durability": "normal"}


class NotesV1(DurableObject):
    """Sync-absent: its storage is the truth."""

    schema_version = 1

    async def add(self, text: str) -> None:
        notes = await self.ctx.storage.get("notes", [])
        await self.ctx.storage.put("notes", [*notes, text])

    async def notes(self) -> object:
        return await self.ctx.storage.get("notes", [])


class NotesV2(NotesV1):
    schema_version = 2


def to_dicts(storage: Storage) -> None:
    notes = storage.kv.get("notes", [])
    storage.kv.put("notes", [{"text": text} for text in notes])


class NotesV2Migrating(NotesV1):
    schema_version = 2
    migrations: ClassVar[Mapping[int, Migration]] = {2: to_dicts}


def broken_step(storage: Storage) -> None:
    storage.kv.put("notes", ["half migrated"])
    raise RuntimeError("step 2 is broken")


class NotesV2Broken(NotesV1):
    schema_version = 2
    migrations: ClassVar[Mapping[int, Migration]] = {2: broken_step}


async def restart_with(path: Path, cls: type[DurableObject]) -> object:
    async with open_runtime(path, objects={"NOTES": cls}, **FAST) as rt:
        return await rt.namespace("NOTES").get_by_name("n").notes()


@pytest.fixture
async def notes_v1(tmp_path: Path) -> Path:
    async with open_runtime(tmp_path, objects={"NOTES": NotesV1}, **FAST) as rt:
        stub = rt.namespace("NOTES").get_by_name("n")
        await stub.add("first")
        await stub.add("second")
    return tmp_path


async def test_sync_absent_throws_and_keeps_the_data(notes_v1: Path) -> None:
    async with open_runtime(notes_v1, objects={"NOTES": NotesV2}, **FAST) as rt:
        stub = rt.namespace("NOTES").get_by_name("n")
        errors = await concurrent_outcomes(5, stub.notes)
        for error in errors:
            assert isinstance(error, SchemaMismatchError)
            assert "stores schema version 1 but its class declares 2" in str(error)
            assert (error.stored, error.declared) == (1, 2)
        with pytest.raises(SchemaMismatchError):  # and again on the next call
            await stub.add("third")
    assert await restart_with(notes_v1, NotesV1) == ["first", "second"]


async def test_migrations_migrate_and_leave_a_backup(notes_v1: Path) -> None:
    assert await restart_with(notes_v1, NotesV2Migrating) == [
        {"text": "first"}, {"text": "second"}]
    (backup,) = (notes_v1 / ".backups" / "NOTES").iterdir()
    assert ".v1." in backup.name
    assert await restart_with(notes_v1, NotesV2Migrating) == [
        {"text": "first"}, {"text": "second"}]


async def test_a_failing_migration_keeps_version_1(notes_v1: Path) -> None:
    with pytest.raises(MigrationError, match="step 2 is broken") as info:
        await restart_with(notes_v1, NotesV2Broken)
    # The runtime names the copy relative to the data directory (its errors may be a
    # server's answers); the full path is the error's backup_path.
    assert str(notes_v1) not in str(info.value)
    assert " in the data directory" in str(info.value)
    assert Path(info.value.backup_path).is_file()  # noqa: ASYNC240  # a test's look
    assert await restart_with(notes_v1, NotesV1) == ["first", "second"]


class Upstream:
    """Stands in for the source of truth a sync-present object rebuilds from."""

    notes: ClassVar[list[str]] = ["from upstream"]
    fail_next_syncs = 0
    syncs = 0


class CacheV1(DurableObject):
    """Sync-present: its storage is a cache of Upstream."""

    schema_version = 1

    async def sync(self) -> None:
        Upstream.syncs += 1
        if Upstream.fail_next_syncs:
            Upstream.fail_next_syncs -= 1
            raise ConnectionError("upstream unreachable")
        await self.ctx.storage.put("notes", list(Upstream.notes))

    async def notes(self) -> object:
        return await self.ctx.storage.get("notes", "empty")

    async def add(self, text: str) -> None:
        notes = await self.ctx.storage.get("notes", [])
        await self.ctx.storage.put("notes", [*notes, text])

    async def keep_local(self) -> None:
        """State that sync() does not write: a clear must drop it all."""
        await self.ctx.storage.put("local", "kept only here")
        self.ctx.storage.sql.exec("CREATE TABLE drafts (text)")
        self.ctx.storage.sql.exec("INSERT INTO drafts VALUES ('draft')")
        await self.ctx.storage.set_alarm(self.ctx.now() + 3600)

    async def local_state(self) -> list[object]:
        tables = self.ctx.storage.sql.exec(
            "SELECT name FROM sqlite_master WHERE name = 'drafts'").to_list()
        return [await self.ctx.storage.get("local"), tables,
                await self.ctx.storage.get_alarm()]

    async def alarm(self, info: object) -> None:
        pass


class CacheV2(CacheV1):
    schema_version = 2


async def test_sync_present_clears_and_resyncs(tmp_path: Path) -> None:
    Upstream.syncs = 0
    async with open_runtime(tmp_path, objects={"CACHE": CacheV1}, **FAST) as rt:
        await rt.namespace("CACHE").get_by_name("c").add("local only")
        await rt.namespace("CACHE").get_by_name("c").keep_local()
    assert Upstream.syncs == 0  # a first start is not a mismatch
    async with open_runtime(tmp_path, objects={"CACHE": CacheV2}, **FAST) as rt:
        stub = rt.namespace("CACHE").get_by_name("c")
        # All queued while the reset runs: none sees a half-reset state.
        assert await concurrent_outcomes(5, stub.notes) == [["from upstream"]] * 5
        # Everything sync() does not write is gone: KV, tables and the alarm.
        assert await stub.local_state() == [None, [], None]
    assert Upstream.syncs == 1


async def test_a_failing_sync_fails_everyone_and_is_retried(tmp_path: Path) -> None:
    Upstream.syncs = 0
    async with open_runtime(tmp_path, objects={"CACHE": CacheV1}, **FAST) as rt:
        await rt.namespace("CACHE").get_by_name("c").add("local only")
    Upstream.fail_next_syncs = 1
    async with open_runtime(tmp_path, objects={"CACHE": CacheV2}, **FAST) as rt:
        stub = rt.namespace("CACHE").get_by_name("c")
        failures = await concurrent_outcomes(3, stub.notes)
        assert all(isinstance(f, ObjectResetError) for f in failures)
        assert all("upstream unreachable" in str(f) for f in failures)
        assert await stub.notes() == ["from upstream"]  # the next call synced again
    assert Upstream.syncs == 2
    # Synced for good: a restart at the same version does not sync again.
    async with open_runtime(tmp_path, objects={"CACHE": CacheV2}, **FAST) as rt:
        assert await rt.namespace("CACHE").get_by_name("c").notes() == ["from upstream"]
    assert Upstream.syncs == 2


async def test_explicit_policy_overrides_inference(notes_v1: Path) -> None:
    class NotesV2Clearing(NotesV1):
        schema_version = 2
        on_schema_mismatch = "clear"

    assert await restart_with(notes_v1, NotesV2Clearing) == []
