"""Objects the server tests serve (importable by the server process)."""

from __future__ import annotations

import os
import secrets

import httpx
import trio

from actors import DurableObject, WebSocket, WebSocketPair, WebSocketRequestResponsePair
from storage import collection
from tests.helpers import Counter


class Web(DurableObject):
    async def fetch(self, request: httpx.Request) -> httpx.Response:
        return httpx.Response(201, json={
            "method": request.method, "path": request.url.path, "url": str(request.url),
            "repeated": request.headers.get_list("x-repeated"),
            "query": request.url.query.decode(), "header": request.headers.get("x-test"),
            "body": request.read().decode(),
        }, headers=[("set-cookie", "a=1"), ("Set-Cookie", "b=2")])


class Room(DurableObject):
    """Accepts WebSockets: echoes, remembers who it is through hibernation, records closes."""

    async def on_start(self) -> None:
        self.ctx.set_websocket_auto_response(WebSocketRequestResponsePair("ping", "pong"))
        self.starts = await self.ctx.storage.get("starts", 0) + 1
        await self.ctx.storage.put("starts", self.starts)

    async def fetch(self, request: httpx.Request) -> httpx.Response:
        if request.headers.get("upgrade") != "websocket":
            return httpx.Response(426, text="WebSockets only")
        client, server = WebSocketPair()
        self.ctx.accept_websocket(server, [request.url.path])
        server.serialize_attachment(request.url.params.get("user"))
        return httpx.Response(101, extensions={"websocket": client})

    async def websocket_message(self, ws: WebSocket, message: str | bytes) -> None:
        if message == "whoami":
            ws.send(f"{ws.deserialize_attachment()} (start {self.starts})")
        elif message == "bye":
            ws.close(4000, "bye")
        elif isinstance(message, str) and message.startswith("flood "):
            for _ in range(int(message.split()[1])):
                ws.send(b"x" * 1_000_000)
        else:
            await self.ctx.storage.put("last", message)
            for peer in self.ctx.get_websockets():
                peer.send(message)

    async def websocket_close(self, ws: WebSocket, code: int, reason: str,
                              was_clean: bool) -> None:
        closes = await self.ctx.storage.get("closes", [])
        await self.ctx.storage.put("closes", [*closes, [code, reason, was_clean]])

    async def websocket_error(self, ws: WebSocket, error: BaseException) -> None:
        await self.ctx.storage.put("error", f"{type(error).__name__}: {error}")

    async def error(self) -> object:
        return await self.ctx.storage.get("error")

    async def closes(self) -> object:
        return await self.ctx.storage.get("closes", [])

    async def last(self) -> object:
        return await self.ctx.storage.get("last")


OBJECTS = {"COUNTER": Counter, "WEB": Web, "ROOM": Room}


class Board(DurableObject):
    """Notes in a collection, for live queries over the server."""

    notes = collection("notes", indexes=["pinned"])

    async def add(self, key: int, text: str, pinned: bool = False) -> None:
        self.notes.insert({"id": key, "text": text, "pinned": pinned})

    async def remove(self, key: int) -> bool:
        return self.notes.delete(key)


OBJECTS["BOARD"] = Board


class Guarded(DurableObject):
    """Private, dunder and handler methods that must stay out of reach, and public methods
    named like the stubs' attributes."""

    async def _secret(self) -> str:
        return "the secret"

    async def __aenter__(self) -> str:
        return "the dunder"

    async def alarm(self, info: object) -> None:
        pass

    async def name(self) -> str:
        return "the name method"

    async def id(self) -> str:
        return "the id method"

    async def subscribe(self, topic: str) -> str:
        return f"subscribed to {topic}"

    async def call(self, number: str) -> str:
        return f"calling {number}"

    async def add(self, a: int, b: int = 0, *, scale: int = 1) -> int:
        return (a + b) * scale

    async def anything(self, *args: int, **kwargs: int) -> int:
        return sum(args) + sum(kwargs.values())


OBJECTS["GUARDED"] = Guarded


class Bulk(DurableObject):
    """Writes tens of megabytes in one transaction: enough WAL to need several regions of
    a WAL index."""

    async def write(self, rows: int) -> int:
        self.ctx.storage.sql.exec("CREATE TABLE IF NOT EXISTS bulk(x)")
        for _ in range(rows):
            self.ctx.storage.sql.exec("INSERT INTO bulk VALUES (?)", "x" * 4000)
        return int(self.ctx.storage.sql.exec("SELECT count(*) AS n FROM bulk").one()["n"])


OBJECTS["BULK"] = Bulk


class Holder(DurableObject):
    """A call that runs until the test releases it (a file appears), with a write that
    queues behind it: in-flight work at a known moment, without a race against a timer.
    Strict, so that the write does wait (by default it would run while the call sleeps)."""

    input_gate = "strict"

    async def hold_until(self, path: str) -> str:
        while not os.path.exists(path):  # noqa: ASYNC110, ASYNC240  # released by the test
            await trio.sleep(0.01)
        return "released"

    async def increment(self, by: int) -> int:
        n: int = await self.ctx.storage.get("n", 0) + by
        await self.ctx.storage.put("n", n)
        return n


OBJECTS["HOLDER"] = Holder


class Agent(DurableObject):
    """Awaits the outside world (the server's own HTTP, which holds the answer until the
    test says) while its other events go on: the input gate's default."""

    async def fetch(self, request: httpx.Request) -> httpx.Response:
        if request.headers.get("upgrade") == "websocket":
            client, server = WebSocketPair()
            self.ctx.accept_websocket(server)
            return httpx.Response(101, extensions={"websocket": client})
        base = request.url.params.get("base", "")
        if request.url.path == "/self":  # a call to itself, over the network
            async with httpx.AsyncClient(base_url=base) as http:
                answer = await http.get(f"/default/AGENT/{self.ctx.id.name}/hello")
            return httpx.Response(200, text=f"it said: {answer.text}")
        return httpx.Response(200, text="hello")

    async def websocket_message(self, ws: WebSocket, message: str | bytes) -> None:
        words = str(message).split()
        if words[0] == "think":  # think BASE_URL RELEASE_FILE
            async with httpx.AsyncClient(base_url=words[1], timeout=60) as http:
                answer = await http.post("/default/HOLDER/agent/rpc/hold_until",
                                         json={"args": [words[2]]})
            ws.send(f"thought: {answer.json()['result']}")
        else:
            ws.send(f"echo {message}")


OBJECTS["AGENT"] = Agent


class Reminder(DurableObject):
    """An alarm, to see it fire while its tenant is closed."""

    async def remind_in(self, seconds: float) -> None:
        await self.ctx.storage.set_alarm(self.ctx.now() + seconds)

    async def alarm(self, info: object) -> None:
        await self.ctx.storage.put("fired", await self.ctx.storage.get("fired", 0) + 1)

    async def fired(self) -> int:
        return int(await self.ctx.storage.get("fired", 0))


OBJECTS["REMINDER"] = Reminder


class Ledger(DurableObject):
    """Entries appended one per call, each stamped with the node that acknowledged it (the
    server's ``DOBOX_TEST_NODE``): what the cluster's replication tests check."""

    async def append(self, entry: str) -> int:
        await self.ctx.storage.put(f"entry:{entry}", os.environ.get("DOBOX_TEST_NODE", ""))
        count: int = await self.ctx.storage.get("count", 0) + 1
        await self.ctx.storage.put("count", count)
        return count

    async def append_traced(self, entry: str) -> dict[str, object]:
        """``append``, answering which activation served it as well: its node and an id
        that each activation (each instance of the class) draws anew."""
        count = await self.append(entry)
        activation = self.__dict__.setdefault("_activation", secrets.token_hex(8))
        return {"count": count, "node": os.environ.get("DOBOX_TEST_NODE", ""),
                "activation": activation}

    async def entries(self) -> dict[str, str]:
        found = await self.ctx.storage.list(prefix="entry:")
        return {key.removeprefix("entry:"): str(node) for key, node in found.items()}


OBJECTS["LEDGER"] = Ledger
