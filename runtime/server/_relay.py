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
from collections.abc import Sequence

import attrs
import httptools

from storage import DoboxError


class RelayError(DoboxError):
    """The connection failed after the request was sent: it may have run."""


class RelayConnectError(RelayError):
    """The node could not be connected to: nothing was sent."""


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

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers.append((name, value))

    def on_body(self, body: bytes) -> None:
        self.body += body

    def on_message_complete(self) -> None:
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
            raise RelayError(f"{address} closed the connection without answering") from exc

    async def _exchange(self, where: tuple[str, int], connection: Connection, payload: bytes,
                        *, reused: bool) -> Relayed:
        reader, writer = connection
        response = _Response()
        parser = httptools.HttpResponseParser(response)
        received = False
        try:
            writer.write(payload)
            async with asyncio.timeout(self.timeout):
                while not response.complete:
                    data = await reader.read(65536)
                    if not data:
                        if not received:
                            raise _Stale  # closed before answering: the request was not read
                        raise RelayError("the connection closed in the middle of an answer")
                    received = True
                    parser.feed_data(data)
        except _Stale:
            writer.close()
            raise
        except (OSError, TimeoutError, httptools.HttpParserError) as exc:
            writer.close()
            if reused and not received and isinstance(exc, ConnectionResetError):
                raise _Stale from exc
            raise RelayError(f"the forwarded request failed: {exc!r}") from exc
        if parser.should_keep_alive():
            self._idle.setdefault(where, []).append(connection)
        else:
            writer.close()
        return Relayed(parser.get_status_code(), response.headers, bytes(response.body))

    async def aclose(self) -> None:
        for connections in self._idle.values():
            for _, writer in connections:
                writer.close()
        self._idle.clear()


class _Stale(Exception):
    """A kept-alive connection the other end had closed: retry on a new one."""
