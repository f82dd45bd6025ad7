"""Live queries from the Python client, resumed across dropped connections.

``async with stub.subscribe("todos", where, order_by=..., limit=...) as feed`` yields an
async iterator of the server's messages (dicts: ``{"type": "snapshot", ...}`` and
``{"type": "change", ...}``, see ``_live_socket``). When the connection drops (the server
restarts, the network fails, the object is reset), it reconnects with exponential backoff
and resumes from the row version of the last message it delivered: the first message after
a reconnect is a ``change`` holding exactly what changed since (or, when that history is
gone or the subset has a limit, a ``snapshot`` with ``"resync": true``), so no change is
missed and none is repeated. It tries until the ``async with`` block ends.
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncGenerator, Callable
from contextlib import AbstractAsyncContextManager
from typing import Any

import trio

from actors._websocket import WebSocketClosed, WebSocketRejected
from storage import DoboxError, Expr

from ._websocket import RemoteWebSocket

log = logging.getLogger("dobox.client")

Connect = Callable[[], AbstractAsyncContextManager[RemoteWebSocket]]


class LiveQueryError(DoboxError):
    """The server refused the query itself (an unknown collection, a malformed
    condition): retrying cannot help."""


class LiveQuery:
    """The client side of one live query (see the module docstring)."""

    def __init__(self, connect: Connect, where: Expr | None, order_by: list[str],
                 limit: int | None, delay: Callable[[int], float]) -> None:
        self._connect = connect
        self._query: dict[str, Any] = {  # type: ignore[explicit-any]  # JSON
            "where": None if where is None else where.to_data(), "order_by": order_by,
            "limit": limit, "since": None}
        self._delay = delay
        self.row_version: int | None = None
        """The row version of the last message delivered: where a reconnect resumes."""

    async def messages(self) -> AsyncGenerator[dict[str, Any], None]:  # type: ignore[explicit-any]  # JSON
        failures = 0
        while True:
            try:
                async with self._connect() as ws:
                    await ws.send(json.dumps({**self._query, "since": self.row_version}))
                    async for text in ws:
                        message = json.loads(text)
                        if message.get("type") == "error":
                            raise LiveQueryError(message.get("message", "refused"))
                        failures = 0
                        self.row_version = message["row_version"]
                        yield message
            except (WebSocketClosed, WebSocketRejected, OSError) as exc:
                if isinstance(exc, WebSocketRejected) and 400 <= exc.status < 500 \
                        and exc.status != 429:
                    raise
                log.debug("live query connection lost (%s); reconnecting", exc)
            failures += 1
            await trio.sleep(self._delay(failures))

