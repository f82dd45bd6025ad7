"""The one-hop relay against small asyncio servers that misbehave on purpose: kept-alive
connections the other node closed (before or after the relay noticed), refused connections,
answers cut short and answers that never come. What matters for each is whether the request
may have run: only a failure before sending is a RelayConnectError, which the front door
may send elsewhere.

The relay runs under uvicorn's loop (uvloop), so these do too.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, TypeVar

import pytest
import uvloop

from runtime.server._relay import Relay, RelayConnectError, RelayError

T = TypeVar("T")
Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]

OK = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok"


def run(main: Coroutine[Any, Any, T]) -> T:
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(main)


async def read_request(reader: asyncio.StreamReader) -> bytes:
    """One request's head and body (the relay always sends content-length)."""
    head = await reader.readuntil(b"\r\n\r\n")
    length = next(int(line.split(b":")[1]) for line in head.split(b"\r\n")
                  if line.lower().startswith(b"content-length:"))
    return head + await reader.readexactly(length)


class Node:
    """A server on a free loopback port that counts connections and requests."""

    def __init__(self, handler: Handler) -> None:
        self.handler = handler
        self.connections = 0
        self.requests: list[bytes] = []
        self.server: asyncio.Server | None = None

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            await self.handler(reader, writer)
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    async def __aenter__(self) -> str:
        self.server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        port = self.server.sockets[0].getsockname()[1]
        return f"http://127.0.0.1:{port}"

    async def __aexit__(self, *exc: object) -> None:
        assert self.server is not None
        self.server.close()


def test_requests_share_one_kept_alive_connection() -> None:
    async def main() -> None:
        async def answer_each(reader: asyncio.StreamReader,
                              writer: asyncio.StreamWriter) -> None:
            while True:
                node.requests.append(await read_request(reader))
                writer.write(OK)

        node = Node(answer_each)
        relay = Relay(timeout=5)
        async with node as address:
            for number in range(3):
                relayed = await relay.request(address, "POST", "/rpc/x", [("a", "b")],
                                              f"body{number}".encode())
                assert (relayed.status, relayed.body) == (200, b"ok")
            await relay.aclose()
        assert node.connections == 1
        assert [request.endswith(f"body{n}".encode()) for n, request
                in enumerate(node.requests)] == [True] * 3

    run(main())


@pytest.mark.parametrize("noticed", [True, False], ids=["noticed", "not-yet-noticed"])
def test_a_kept_connection_the_node_closed_is_replaced_without_losing_the_request(
    noticed: bool,
) -> None:
    """Whether the relay's loop has seen the close (its transport closed: writing would
    raise) or not (the write goes out, the read finds the end): the request goes again on a
    new connection, and runs once."""

    async def answer_once(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        node.requests.append(await read_request(reader))
        writer.write(OK)
        await writer.drain()
        if noticed:  # a reset, which closes the relay's transport when it arrives
            writer.transport.get_extra_info("socket").setsockopt(
                socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        closed.set()

    closed = asyncio.Event()
    node = Node(answer_once)
    relay = Relay(timeout=5)

    async def main() -> None:
        async with node as address:
            assert (await relay.request(address, "GET", "/", [], b"")).status == 200
            await closed.wait()
            await asyncio.sleep(0.05)  # for the close (or the reset) to arrive
            relayed = await relay.request(address, "POST", "/", [], b"second")
            assert (relayed.status, relayed.body) == (200, b"ok")
            await relay.aclose()
        assert node.connections == 2
        assert len(node.requests) == 2
        assert node.requests[1].endswith(b"second")

    run(main())


def test_a_node_that_refuses_connections_is_a_connect_error() -> None:
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]

    async def main() -> None:
        relay = Relay(timeout=5)
        with pytest.raises(RelayConnectError, match="cannot connect"):
            await relay.request(f"http://127.0.0.1:{port}", "GET", "/", [], b"")

    run(main())


def sent_and_failed(node: Node, *, timeout: float = 5) -> RelayError:
    """What the relay raises for one request to ``node``, which fails after reading it: a
    RelayError, never a RelayConnectError (the request may have run: it must not be sent
    elsewhere)."""

    async def main() -> RelayError:
        async with node as address:
            try:
                await Relay(timeout=timeout).request(address, "POST", "/", [], b"once")
            except RelayError as exc:
                return exc
        raise AssertionError("the relay answered")

    error = run(main())
    assert not isinstance(error, RelayConnectError)
    return error


def test_a_new_connection_closed_after_the_request_is_not_a_connect_error() -> None:
    async def read_and_hang_up(reader: asyncio.StreamReader,
                               writer: asyncio.StreamWriter) -> None:
        node.requests.append(await read_request(reader))

    node = Node(read_and_hang_up)
    assert "without answering" in str(sent_and_failed(node))
    assert len(node.requests) == 1


def test_an_answer_cut_short_is_a_relay_error() -> None:
    async def half_an_answer(reader: asyncio.StreamReader,
                             writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\nok")
        await writer.drain()

    assert "middle of an answer" in str(sent_and_failed(Node(half_an_answer)))


def test_an_answer_that_never_comes_times_out_as_a_relay_error() -> None:
    async def never_answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        await asyncio.Event().wait()

    assert "TimeoutError" in str(sent_and_failed(Node(never_answer), timeout=0.2))
