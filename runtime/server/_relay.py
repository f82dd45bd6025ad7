"""The cluster's one hop, lean: HTTP/1.1 over kept-alive asyncio connections, responses
parsed by httptools (the parser uvicorn itself uses).

A forwarded request is a plain request to another node; httpx handled it correctly but
spent about 2 ms of CPU on each, so a node forwarding half its requests served less than
one that forwarded none. This does only what a forward needs: send the request as it came,
read the answer, keep the connection for the next one.
"""

from __future__ import annotations

import asyncio
import urllib.parse
from collections.abc import Awaitable, Callable, MutableMapping, Sequence

import anyio
import attrs
import httptools

from actors._websocket import MAX_MESSAGE_SIZE
from storage import DoboxError

from ._cluster import HOP_BY_HOP, SERVERS_OWN, forwarded_headers


class RelayError(DoboxError):
    """The connection failed after the request was sent: it may have run."""


class RelayConnectError(RelayError):
    """The node could not be connected to: nothing was sent."""


class RelayRefused(RelayError):
    """The owner answered a WebSocket upgrade with ``status`` (relayed as it came)."""

    def __init__(self, status: int, body: bytes, headers: dict[str, str]) -> None:
        super().__init__(f"the owner refused the upgrade with {status}")
        self.status = status
        self.body = body
        self.headers = headers


@attrs.frozen
class Relayed:
    status: int
    headers: list[tuple[bytes, bytes]]
    body: bytes


class _Response:
    """httptools' callbacks, collecting one response."""

    def __init__(self) -> None:
        self.headers: list[tuple[bytes, bytes]] = []
        self.body = bytearray()
        self.complete = False
        self.keep_alive = False
        self.parser = httptools.HttpResponseParser(self)

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers.append((name, value))

    def on_body(self, body: bytes) -> None:
        self.body += body

    def on_message_complete(self) -> None:
        # Asked here, not after feed_data returns: by then the parser has reset for the
        # next message and says False for every response.
        self.keep_alive = self.parser.should_keep_alive()
        self.complete = True


Connection = tuple[asyncio.StreamReader, asyncio.StreamWriter]


class Relay:
    """Kept-alive connections to the other nodes, by address (``http://host:port``)."""

    def __init__(self, timeout: float) -> None:
        self.timeout = timeout
        self._idle: dict[tuple[str, int], list[Connection]] = {}

    async def request(self, address: str, method: str, target: str,
                      headers: Sequence[tuple[str, str]], body: bytes) -> Relayed:
        """Send ``method target`` with ``headers`` and ``body`` to the node at ``address``.

        Raises:
            RelayConnectError: it could not be connected to (nothing was sent).
            RelayError: the connection failed after sending, or the answer took longer than
                the timeout.
        """
        url = urllib.parse.urlsplit(address)
        where = (url.hostname or "127.0.0.1", url.port or 80)
        head = [f"{method} {target} HTTP/1.1", f"host: {where[0]}:{where[1]}",
                f"content-length: {len(body)}"]
        head += [f"{name}: {value}" for name, value in headers]
        payload = ("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + body
        idle = self._idle.setdefault(where, [])
        while idle:  # a kept-alive connection the node may have closed meanwhile
            connection = idle.pop()
            try:
                return await self._exchange(where, connection, payload, reused=True)
            except _Stale:
                continue
        try:
            connection = await asyncio.wait_for(asyncio.open_connection(*where), self.timeout)
        except (OSError, TimeoutError) as exc:
            raise RelayConnectError(f"cannot connect to {address}: {exc}") from exc
        try:
            return await self._exchange(where, connection, payload, reused=False)
        except _Stale as exc:
            if not exc.sent:
                raise RelayConnectError(f"{address} closed the connection at once") from exc
            raise RelayError(f"{address} closed the connection without answering") from exc

    async def _exchange(self, where: tuple[str, int], connection: Connection, payload: bytes,
                        *, reused: bool) -> Relayed:
        reader, writer = connection
        response = _Response()
        parser = response.parser
        received = False
        if writer.is_closing():  # closed since it was kept: writing would raise, unsent
            writer.close()
            raise _Stale(sent=False)
        try:
            writer.write(payload)
            async with asyncio.timeout(self.timeout):
                while not response.complete:
                    data = await reader.read(65536)
                    if not data:
                        if not received:  # closed before answering: not read, if reused
                            raise _Stale(sent=True)
                        raise RelayError("the connection closed in the middle of an answer")
                    received = True
                    parser.feed_data(data)
        except (OSError, TimeoutError, httptools.HttpParserError) as exc:
            writer.close()
            if reused and not received and isinstance(exc, ConnectionResetError):
                raise _Stale(sent=True) from exc
            raise RelayError(f"the forwarded request failed: {exc!r}") from exc
        except BaseException:  # stale, cut short, or the forward cancelled: never reused
            writer.close()
            raise
        if response.keep_alive:
            self._idle.setdefault(where, []).append(connection)
        else:
            writer.close()
        return Relayed(parser.get_status_code(), response.headers, bytes(response.body))

    async def aclose(self) -> None:
        for connections in self._idle.values():
            for _, writer in connections:
                writer.close()
        self._idle.clear()


WEBSOCKET_HANDSHAKE = frozenset({"sec-websocket-key", "sec-websocket-version",
                                 "sec-websocket-extensions", "sec-websocket-protocol"})


async def relay_websocket(address: str, scope: MutableMapping[str, object],
                          headers: dict[str, str],
                          receive: Callable[[], Awaitable[MutableMapping[str, object]]],
                          send: Callable[[MutableMapping[str, object]], Awaitable[None]],
                          *, node: str, open_timeout: float) -> None:
    """Carry a WebSocket to the node at ``address`` that serves its object: open the same
    upgrade there, accept the client with the subprotocol the owner chose, and copy frames
    both ways until one side closes, with its code. A client lost without a close frame is a
    connection aborted upstream, so the object sees 1006 there too. Runs under asyncio
    (``dobox serve``).

    Raises (before accepting the client):
        RelayRefused: the owner answered the upgrade with another status.
        RelayConnectError: the owner could not be reached.
    """
    from websockets.asyncio.client import connect
    from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus
    from websockets.typing import Subprotocol

    raw = scope.get("raw_path")
    path = raw.decode("latin-1") if isinstance(raw, bytes) else str(scope["path"])
    query = scope.get("query_string", b"")
    if isinstance(query, bytes) and query:
        path += "?" + query.decode("latin-1")
    url = "ws" + address[len("http"):] + path
    kept = [(name, value) for name, value in forwarded_headers(headers, node).items()
            if name not in WEBSOCKET_HANDSHAKE]
    offered = scope.get("subprotocols")
    subprotocols = [p for p in offered if isinstance(p, str)] if isinstance(offered, list) else []
    try:
        upstream = await connect(url, additional_headers=kept,
                                 subprotocols=[Subprotocol(p) for p in subprotocols] or None,
                                 proxy=None, compression=None, max_size=MAX_MESSAGE_SIZE,
                                 ping_interval=None, open_timeout=open_timeout)
    except InvalidStatus as exc:  # the owner refused the upgrade: say what it said
        refusal = exc.response
        raise RelayRefused(refusal.status_code, bytes(refusal.body or b""),
                           {k.lower(): v for k, v in refusal.headers.raw_items()
                            if k.lower() not in SERVERS_OWN | HOP_BY_HOP}) from exc
    except (OSError, TimeoutError, InvalidHandshake) as exc:
        raise RelayConnectError(f"cannot open a WebSocket at {address}: {exc!r}") from exc
    accept: dict[str, object] = {"type": "websocket.accept"}
    if upstream.subprotocol is not None:
        accept["subprotocol"] = upstream.subprotocol
    await send(accept)

    async def downstream() -> None:
        try:
            async for message in upstream:
                key = "text" if isinstance(message, str) else "bytes"
                await send({"type": "websocket.send", key: message})
        except ConnectionClosed:
            pass
        code = upstream.close_code if upstream.close_code is not None else 1006
        if code in (1005, 1006):
            code = 1011 if code == 1006 else 1000
        await send({"type": "websocket.close", "code": code,
                    "reason": upstream.close_reason or ""})

    async def client_side() -> None:
        while True:
            message = await receive()
            if message["type"] == "websocket.receive":
                text, binary = message.get("text"), message.get("bytes")
                data = text if isinstance(text, str) else (
                    binary if isinstance(binary, bytes) else b"")
                try:
                    await upstream.send(data)
                except ConnectionClosed:
                    return
            elif message["type"] == "websocket.disconnect":
                code = message.get("code", 1005)
                if isinstance(code, int) and (code == 1000 or 3000 <= code <= 4999):
                    await upstream.close(code, str(message.get("reason") or ""))
                else:  # lost, not closed: the owner's side must see a lost connection
                    upstream.transport.abort()
                return

    async with anyio.create_task_group() as tasks:
        async def first_done(fn: Callable[[], Awaitable[None]]) -> None:
            await fn()
            tasks.cancel_scope.cancel()

        tasks.start_soon(first_done, downstream)
        tasks.start_soon(first_done, client_side)


class _Stale(Exception):
    """A kept-alive connection the other end had closed: retry on a new one. ``sent`` says
    whether the request was written before that was found out."""

    def __init__(self, *, sent: bool) -> None:
        super().__init__()
        self.sent = sent
