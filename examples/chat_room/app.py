"""A chat room per name and tenant, over WebSockets that hibernate with their room.

    dobox serve examples.chat_room.app:OBJECTS --data ./chat-data

    # in Python (or any WebSocket client: ws://127.0.0.1:8787/default/CHAT/lobby/ws?name=ann)
    async with Client("http://127.0.0.1:8787") as client:
        async with client.namespace("CHAT").get_by_name("lobby").websocket("/ws?name=ann") as ws:
            await ws.send("hello")        # everyone in the room gets "ann: hello"

A joiner first receives the last messages (kept in the room's SQLite table), then everyone's
new ones. Each socket remembers its member's name in its attachment, so when the room has
been idle long enough to be evicted, the next message wakes a fresh instance that still
knows who sent it. "ping" is answered "pong" by the runtime without waking the room.
"""

from __future__ import annotations

import httpx

from dobox import DurableObject, WebSocket, WebSocketPair, WebSocketRequestResponsePair

HISTORY = 50
"""Messages a joiner is sent, and kept in the room."""

MAX_NAME = 32


class ChatRoom(DurableObject):
    async def on_start(self) -> None:
        self.ctx.storage.sql.exec(
            "CREATE TABLE IF NOT EXISTS messages ("
            " id INTEGER PRIMARY KEY, at REAL NOT NULL, name TEXT NOT NULL, text TEXT NOT NULL)"
        )
        self.ctx.set_websocket_auto_response(WebSocketRequestResponsePair("ping", "pong"))

    async def fetch(self, request: httpx.Request) -> httpx.Response:
        if request.url.path == "/history" and request.method == "GET":
            return httpx.Response(200, json=await self.history())
        if request.url.path != "/ws" or request.headers.get("upgrade") != "websocket":
            return httpx.Response(404, text="open a WebSocket at /ws?name=..., "
                                  "or GET /history\n")
        name = request.url.params.get("name", "").strip()
        if not name or len(name) > MAX_NAME:
            return httpx.Response(400, text=f"?name= must be 1 to {MAX_NAME} characters\n")
        client, server = WebSocketPair()
        self.ctx.accept_websocket(server, tags=[f"name:{name}"])
        server.serialize_attachment({"name": name})
        for line in await self.history():
            server.send(f"{line['name']}: {line['text']}")
        self._broadcast(f"* {name} joined")
        return httpx.Response(101, extensions={"websocket": client})

    async def websocket_message(self, ws: WebSocket, message: str | bytes) -> None:
        if not isinstance(message, str):
            ws.send("* only text messages, please")
            return
        name = _name_of(ws)
        self.ctx.storage.sql.exec(
            "INSERT INTO messages (at, name, text) VALUES (?, ?, ?)",
            self.ctx.now(), name, message,
        )
        self.ctx.storage.sql.exec(
            "DELETE FROM messages WHERE id <= (SELECT max(id) FROM messages) - ?", HISTORY
        )
        self._broadcast(f"{name}: {message}")  # leaves once the insert is durable

    async def websocket_close(self, ws: WebSocket, code: int, reason: str,
                              was_clean: bool) -> None:
        self._broadcast(f"* {_name_of(ws)} left")

    async def history(self, limit: int = HISTORY) -> list[dict[str, object]]:
        """The last ``limit`` messages, oldest first."""
        rows = self.ctx.storage.sql.exec(
            "SELECT name, text, at FROM (SELECT * FROM messages ORDER BY id DESC LIMIT ?)"
            " ORDER BY id", limit,
        )
        return [dict(row) for row in rows]

    async def members(self) -> list[str]:
        """Who is in the room now."""
        return [_name_of(ws) for ws in self.ctx.get_websockets()]

    def _broadcast(self, line: str) -> None:
        for ws in self.ctx.get_websockets():
            ws.send(line)


def _name_of(ws: WebSocket) -> str:
    attachment = ws.deserialize_attachment()
    return str(attachment["name"]) if isinstance(attachment, dict) else "?"


OBJECTS = {"CHAT": ChatRoom}

