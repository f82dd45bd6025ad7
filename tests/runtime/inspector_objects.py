"""Objects the inspector tests serve (importable by the server process)."""

from __future__ import annotations

import httpx

from actors import DurableObject, WebSocket, WebSocketPair
from storage import collection


class Shop(DurableObject):
    """Keeps whatever a test gives it: KV pairs, a table, records, an alarm, sockets."""

    items = collection("items", key="id")

    async def stock(self, key: str, value: object) -> None:
        await self.ctx.storage.put(key, value)

    async def stock_many(self, count: int) -> None:
        await self.ctx.storage.put({f"key-{i:04d}": i for i in range(count)})

    async def make_table(self, name: str, value: str) -> None:
        quoted = '"' + name.replace('"', '""') + '"'
        self.ctx.storage.sql.exec(f"CREATE TABLE IF NOT EXISTS {quoted} (v TEXT)")
        self.ctx.storage.sql.exec(f"INSERT INTO {quoted} VALUES (?)", value)

    async def add_item(self, key: str, label: str) -> None:
        self.items.insert({"id": key, "label": label})

    async def schedule(self, seconds: float, fail: bool = False) -> None:
        await self.ctx.storage.put("fail_alarm", fail)
        await self.ctx.storage.set_alarm(self.ctx.now() + seconds)

    async def alarm(self, info: object) -> None:
        if await self.ctx.storage.get("fail_alarm", False):
            raise RuntimeError("the alarm fails, as the test asked")

    async def count(self) -> int:
        return len(await self.ctx.storage.list())

    async def fetch(self, request: httpx.Request) -> httpx.Response:
        client, server = WebSocketPair()
        self.ctx.accept_websocket(server, request.url.params.get_list("tag"))
        server.serialize_attachment({"user": request.url.params.get("user")})
        return httpx.Response(101, extensions={"websocket": client})

    async def websocket_message(self, ws: WebSocket, message: str | bytes) -> None:
        ws.send(message)


OBJECTS = {"SHOP": Shop}
