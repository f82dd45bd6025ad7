"""A full disk: cold and warm objects say so, lose nothing committed, and recover as soon
as a little space is freed."""

from __future__ import annotations

from pathlib import Path

import pytest

from actors import DurableObject, ObjectResetError
from runtime import open_runtime
from storage import StorageFullError
from storage._database import WAL_SIZE_LIMIT
from tests.helpers import fill_disk, small_filesystem


class Ledger(DurableObject):
    async def add(self, entry: str) -> int:
        entries: list[str] = await self.ctx.storage.get("entries", [])
        await self.ctx.storage.put("entries", [*entries, entry])
        return len(entries) + 1

    async def entries(self) -> list[str]:
        return await self.ctx.storage.get("entries", [])  # type: ignore[no-any-return]

    async def write_big(self) -> None:
        self.ctx.storage.sql.exec("CREATE TABLE IF NOT EXISTS big(x)")
        for _ in range(3000):
            self.ctx.storage.sql.exec("INSERT INTO big VALUES (?)", "x" * 4000)


async def test_a_full_disk_is_named_and_recovered_from(tmp_path: Path) -> None:
    with small_filesystem(tmp_path / "disk", "4m") as disk:
        async with open_runtime(disk / "data", objects={"LEDGER": Ledger}) as rt:
            ledger = rt.namespace("LEDGER")
            warm = ledger.get_by_name("warm")
            assert await warm.add("kept") == 1
            filler = fill_disk(disk)

            with pytest.raises(StorageFullError, match="the disk is full"):
                await ledger.get_by_name("cold").add("lost")
            with pytest.raises(ObjectResetError) as warm_error:
                await warm.add("lost")
            assert warm_error.value.type_name == "StorageFullError"
            assert warm_error.value.retryable
            assert "the disk is full" in str(warm_error.value)

            filler.unlink()  # free the space: the next calls just work
            assert await warm.entries() == ["kept"]
            assert await warm.add("after") == 2
            assert await ledger.get_by_name("cold").add("first") == 1


async def test_the_wal_is_cut_back_after_a_checkpoint(tmp_path: Path) -> None:
    async with open_runtime(tmp_path, objects={"LEDGER": Ledger}, durability="normal") as rt:
        stub = rt.namespace("LEDGER").get_by_name("big")
        await stub.write_big()  # about 12 MB through the WAL, checkpointed on the way
        await stub.add("x")  # one more commit after the checkpoints
        (wal,) = (tmp_path / "LEDGER").glob("*/*.sqlite-wal")
        assert wal.stat().st_size <= WAL_SIZE_LIMIT + 65536
