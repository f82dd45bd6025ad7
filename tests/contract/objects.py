"""The objects of the contract suite: each exercises one part of the Durable Objects
contract, the same way whether it is called in-process or through ``dobox serve``."""

from __future__ import annotations

import datetime
import os

import trio

from actors import DurableObject, Env, ObjectContext
from storage import collection


class Kv(DurableObject):
    async def put(self, key: str, value: object) -> None:
        await self.ctx.storage.put(key, value)

    async def put_many(self, entries: dict[str, object]) -> None:
        await self.ctx.storage.put(entries)

    async def get(self, key: str) -> object:
        return await self.ctx.storage.get(key)

    async def get_many(self, keys: list[str]) -> dict[str, object]:
        return await self.ctx.storage.get(keys)

    async def list(self, prefix: str | None = None, reverse: bool = False,
                   limit: int | None = None) -> list[list[object]]:
        listed = await self.ctx.storage.list(prefix=prefix, reverse=reverse, limit=limit)
        return [[key, value] for key, value in listed.items()]

    async def delete(self, key: str) -> bool:
        return await self.ctx.storage.delete(key)

    async def delete_all(self) -> None:
        await self.ctx.storage.delete_all()


class Sql(DurableObject):
    async def on_start(self) -> None:
        self.ctx.storage.sql.exec(
            "CREATE TABLE IF NOT EXISTS notes (id INTEGER PRIMARY KEY, text TEXT NOT NULL)")

    async def add(self, text: str) -> int:
        cursor = self.ctx.storage.sql.exec("INSERT INTO notes (text) VALUES (?)", text)
        return cursor.rows_written

    async def rows(self) -> list[dict[str, object]]:
        return self.ctx.storage.sql.exec("SELECT id, text FROM notes ORDER BY id").to_list()

    async def run(self, query: str) -> list[dict[str, object]]:
        return self.ctx.storage.sql.exec(query).to_list()


class Ledger(DurableObject):
    """Transactions, and what a reset keeps (storage) and drops (the instance)."""

    def __init__(self, ctx: ObjectContext, env: Env) -> None:
        super().__init__(ctx, env)
        self.calls = 0

    async def transfer(self, amount: int, fail: bool) -> int:
        async def move() -> None:
            await self.ctx.storage.put("balance", await self.balance() + amount)
            if fail:
                raise ValueError("the transfer failed after its write")

        await self.ctx.storage.transaction(move)
        return await self.balance()

    async def balance(self) -> int:
        return int(await self.ctx.storage.get("balance", 0))

    async def count_call(self) -> int:
        self.calls += 1
        return self.calls

    async def abort(self, reason: str) -> None:
        self.ctx.abort(reason)


class Refusal(Exception):
    """An application's own error type."""


class Raiser(DurableObject):
    async def value_error(self, message: str) -> None:
        raise ValueError(message)

    async def own_error(self, message: str) -> None:
        raise Refusal(message)

    async def add(self, a: int, b: int = 0) -> int:
        return a + b

    async def unstorable(self) -> None:
        await self.ctx.storage.put("s", {1, 2})  # a set: the codec refuses it


class Holder(DurableObject):
    """Holds its input gate until a file appears: a full queue at a known moment."""

    async def hold_until(self, path: str) -> str:
        open(path + ".holding", "w").close()  # noqa: ASYNC230  # tells the test it runs
        while not os.path.exists(path):  # noqa: ASYNC110, ASYNC240  # released by the test
            await trio.sleep(0.01)
        return "released"

    async def increment(self) -> int:
        n = int(await self.ctx.storage.get("n", 0)) + 1
        await self.ctx.storage.put("n", n)
        return n


class Alarmed(DurableObject):
    async def remind_in(self, seconds: float) -> None:
        await self.ctx.storage.set_alarm(self.ctx.now() + seconds)

    async def pending(self) -> float | None:
        return await self.ctx.storage.get_alarm()

    async def alarm(self, info: object) -> None:
        await self.ctx.storage.put("fired", int(await self.ctx.storage.get("fired", 0)) + 1)

    async def fired(self) -> int:
        return int(await self.ctx.storage.get("fired", 0))


class Board(DurableObject):
    notes = collection("notes", indexes=["pinned"])

    async def add(self, key: int, text: str, pinned: bool = False) -> None:
        self.notes.insert({"id": key, "text": text, "pinned": pinned})


class Values(DurableObject):
    """Values that cross a call in-process but change shape as JSON."""

    async def of_type(self, kind: str) -> object:
        values: dict[str, object] = {
            "bytes": b"\x00\xff",
            "tuple": (1, "two"),
            "datetime": datetime.datetime(2026, 12, 2, 12, 0, tzinfo=datetime.UTC),
            "timedelta": datetime.timedelta(seconds=90),
        }
        return values[kind]


OBJECTS: dict[str, type[DurableObject]] = {
    "KV": Kv, "SQL": Sql, "LEDGER": Ledger, "RAISER": Raiser, "HOLDER": Holder,
    "ALARMED": Alarmed, "BOARD": Board, "VALUES": Values,
}
