"""Objects for the integration suite (importable by the server process too)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import ClassVar

from actors import DurableObject
from storage import Migration, Storage


class LedgerV1(DurableObject):
    """Sync-absent: its storage is the truth."""

    schema_version = 1

    async def on_start(self) -> None:
        self.ctx.storage.sql.exec(
            "CREATE TABLE IF NOT EXISTS entries (id INTEGER PRIMARY KEY, amount INTEGER)"
        )

    async def add(self, amount: int) -> int:
        self.ctx.storage.sql.exec("INSERT INTO entries (amount) VALUES (?)", amount)
        return await self.total()

    async def total(self) -> int:
        row = self.ctx.storage.sql.exec("SELECT coalesce(sum(amount), 0) AS t FROM entries")
        total: int = row.one()["t"]
        return total

    async def columns(self) -> list[str]:
        return [c["name"] for c in self.ctx.storage.sql.exec("PRAGMA table_info(entries)")]


class LedgerV2(LedgerV1):
    schema_version = 2


def add_currency(storage: Storage) -> None:
    storage.sql.exec("ALTER TABLE entries ADD COLUMN currency TEXT DEFAULT 'EUR'")


def broken_step(storage: Storage) -> None:
    storage.sql.exec("ALTER TABLE entries ADD COLUMN currency TEXT")
    raise RuntimeError("the migration to 2 is broken")


class LedgerV2Migrating(LedgerV1):
    schema_version = 2
    migrations: ClassVar[Mapping[int, Migration]] = {2: add_currency}


class LedgerV2Broken(LedgerV1):
    schema_version = 2
    migrations: ClassVar[Mapping[int, Migration]] = {2: broken_step}


class Upstream:
    """The source of truth sync-present objects rebuild from."""

    rows: ClassVar[list[int]] = [10, 20, 30]
    failures_left: ClassVar[int] = 0


class MirrorV1(DurableObject):
    """Sync-present: its storage is a cache of Upstream."""

    schema_version = 1

    async def sync(self) -> None:
        if Upstream.failures_left:
            Upstream.failures_left -= 1
            raise ConnectionError("upstream unreachable")
        for index, value in enumerate(Upstream.rows):
            await self.ctx.storage.put(f"row:{index:04}", value)

    async def rows(self) -> list[int]:
        return list((await self.ctx.storage.list(prefix="row:")).values())

    async def scribble(self, value: int) -> None:
        await self.ctx.storage.put("row:9999", value)


class MirrorV2(MirrorV1):
    schema_version = 2


class Fragile(DurableObject):
    """Fails on demand: its start fails while `broken` is set."""

    broken: ClassVar[bool] = False

    async def on_start(self) -> None:
        if Fragile.broken:
            raise RuntimeError("cannot start")

    async def ping(self) -> str:
        return "pong"


OBJECTS = {"LEDGER": LedgerV1}
