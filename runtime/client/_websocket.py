"""WebSockets from the Python client to objects behind ``dobox serve`` (trio-websocket).

``async with client.namespace("ROOM").get_by_name("lobby").websocket("/chat") as ws``
connects through the server's fetch route; the object accepts (or refuses) the upgrade.
Closes and refusals arrive as the same errors an in-process socket raises:
``WebSocketClosed`` (with the close code and reason) and ``WebSocketRejected``. This part of
the client runs under trio.
"""

from __future__ import annotations

import ssl
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import TypeVar

import httpx
import trio
import trio_websocket

from actors._websocket import (
    MAX_MESSAGE_SIZE,
    Message,
    MessageStream,
    WebSocketClosed,
    WebSocketRejected,
)


class RemoteWebSocket(MessageStream):
    """A client's WebSocket to an object: ``await send()``, ``await receive()``,
    ``async for message in ws``, ``await close()``."""

    def __init__(self, connection: trio_websocket.WebSocketConnection) -> None:
        self._connection = connection

    async def send(self, message: Message) -> None:
        """Raises ``WebSocketClosed`` if the connection is closed."""
        try:
            await self._connection.send_message(message)
        except trio_websocket.ConnectionClosed as exc:
            raise _closed(exc) from exc

    async def receive(self) -> Message:
        """The next message from the object.

        Raises:
            WebSocketClosed: the connection closed; ``code`` and ``reason`` say how.
        """
        try:
            return await self._connection.get_message()
        except trio_websocket.ConnectionClosed as exc:
            raise _closed(exc) from exc

    async def close(self, code: int = 1000, reason: str = "") -> None:
        await self._connection.aclose(code, reason)


def _closed(exc: trio_websocket.ConnectionClosed) -> WebSocketClosed:
    code = exc.reason.code if exc.reason is not None else 1006
    reason = (exc.reason.reason if exc.reason is not None else None) or ""
    return WebSocketClosed(code, reason, was_clean=code != 1006)


@asynccontextmanager
async def connect_websocket(
    url: str, headers: Mapping[str, str]
) -> AsyncIterator[RemoteWebSocket]:
    """Open a WebSocket to ``url`` (``ws://`` or ``wss://``) with ``headers``; closed on
    exit.

    Raises:
        WebSocketRejected: the server or the object answered with another status than 101.
        OSError: the server could not be reached.
    """
    target = httpx.URL(url)
    port = target.port or (443 if target.scheme == "wss" else 80)
    resource = target.raw_path.decode()
    extra = [(k.encode(), v.encode()) for k, v in headers.items()]
    # Errors are kept out of the nursery (which holds trio-websocket's reader task) and
    # raised as they were, not wrapped in an ExceptionGroup the caller did not ask for.
    error: BaseException | None = None
    try:
        async with trio.open_nursery() as nursery:
            # The TCP stream is opened here, not by trio-websocket's open_websocket_url,
            # which leaves the socket open when the server refuses the upgrade.
            stream: trio.abc.Stream
            if target.scheme == "wss":
                stream = await trio.open_ssl_over_tcp_stream(
                    target.host, port, ssl_context=ssl.create_default_context())
            else:
                stream = await trio.open_tcp_stream(target.host, port)
            try:
                connection = await trio_websocket.wrap_client_stream(
                    nursery, stream, f"{target.host}:{port}", resource, extra_headers=extra,
                    max_message_size=MAX_MESSAGE_SIZE)
            except BaseException as exc:
                await stream.aclose()
                error = exc
            else:
                try:
                    yield RemoteWebSocket(connection)
                except BaseException as exc:
                    error = exc
                finally:
                    await connection.aclose()
                    await stream.aclose()  # trio-websocket may leave it open after a close
    except BaseExceptionGroup as group:  # the reader task saw the refusal too
        error = error or group
    rejected = _find(error, trio_websocket.ConnectionRejected)
    if rejected is not None:
        raise WebSocketRejected(rejected.status_code, rejected.body or b"") from rejected
    if error is not None:
        raise error


E = TypeVar("E", bound=BaseException)


def _find(error: BaseException | None, kind: type[E]) -> E | None:
    """``error`` if it is a ``kind``, else the first ``kind`` inside it (a group)."""
    if isinstance(error, kind):
        return error
    if isinstance(error, BaseExceptionGroup):
        for inner in error.exceptions:
            found = _find(inner, kind)
            if found is not None:
                return found
    return None
