"""WebSockets through the real server (uvicorn, the runtime as trio's guest) on a loopback
port, with the Python client: hibernation and wake-up, auto-response, closes both ways,
refusals, tenants, and a graceful shutdown with sockets open."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
import trio

from harness import ServerProcess, open_server_process
from runtime import Client, WebSocketClosed, WebSocketRejected

ROOT = Path(__file__).parent.parent.parent
OBJECTS = "tests.runtime.server_objects:OBJECTS"


@pytest.fixture
async def server(tmp_path: Path) -> AsyncIterator[ServerProcess]:
    async with open_server_process(tmp_path, OBJECTS, cwd=ROOT,
                                   options=["--idle-timeout", "0.5"]) as running:
        yield running


async def metric(server: ServerProcess, name: str) -> float:
    async with httpx.AsyncClient(base_url=server.base_url) as http:
        text = (await http.get("/metrics")).text
    found = re.search(rf'^{name}{{tenant="default"}} (\S+)$', text, re.MULTILINE)
    return float(found.group(1)) if found else 0.0


async def wait_for_metric(server: ServerProcess, name: str, value: float) -> None:
    """Poll /metrics until ``name`` reads ``value`` (the server's idle timer is real time)."""
    with trio.fail_after(20):
        while await metric(server, name) != value:  # noqa: ASYNC110  # another process's state
            await trio.sleep(0.05)


async def test_messages_both_ways_and_broadcast(server: ServerProcess) -> None:
    async with Client(server.base_url) as client:
        room = client.namespace("ROOM").get_by_name("lobby")
        async with room.websocket("/chat?user=ann") as ann, \
                room.websocket("/chat?user=bob") as bob:
            await ann.send("hello")
            assert (await ann.receive(), await bob.receive()) == ("hello", "hello")
            await bob.send(b"\x00bytes")
            assert await ann.receive() == b"\x00bytes"
            assert await room.last() == {"$bytes": "AGJ5dGVz"}


async def test_hibernation_and_wake_up(server: ServerProcess) -> None:
    """The object is evicted after the idle time while its socket stays open; the next
    message wakes a new instance, which finds the socket's attachment."""
    async with Client(server.base_url) as client:
        room = client.namespace("ROOM").get_by_name("lobby")
        async with room.websocket("/chat?user=ann") as ws:
            await ws.send("whoami")
            assert await ws.receive() == "ann (start 1)"
            await wait_for_metric(server, "dobox_live_objects", 0)
            assert await metric(server, "dobox_websockets") == 1
            await ws.send("ping")  # the auto-response does not wake it
            assert await ws.receive() == "pong"
            assert await metric(server, "dobox_live_objects") == 0
            await ws.send("whoami")
            assert await ws.receive() == "ann (start 2)"


async def test_closes_reach_the_other_side(server: ServerProcess) -> None:
    async with Client(server.base_url) as client:
        room = client.namespace("ROOM").get_by_name("lobby")
        async with room.websocket("/chat") as ws:
            await ws.close(4001, "leaving")
        async with room.websocket("/chat") as ws:
            await ws.send("bye")
            with pytest.raises(WebSocketClosed) as closed:
                await ws.receive()
            assert (closed.value.code, closed.value.reason) == (4000, "bye")
        with trio.fail_after(10):
            # The close event runs in the server after the client has left.
            while await room.closes() != [[4001, "leaving", True]]:  # noqa: ASYNC110
                await trio.sleep(0.02)
        assert await metric(server, "dobox_websockets") == 0


async def test_a_client_that_does_not_read_is_cut_off(server: ServerProcess) -> None:
    """What waits for a slow client is bounded (16 MiB): past it the socket is closed with
    1011 and the object's websocket_error is told, instead of the server buffering on."""
    async with Client(server.base_url) as client:
        room = client.namespace("ROOM").get_by_name("lobby")
        async with room.websocket("/chat") as ws:
            await ws.send("flood 64")  # 64 MB, and this client reads nothing meanwhile
            with trio.fail_after(20):
                while await room.error() is None:  # noqa: ASYNC110  # the server's state
                    await trio.sleep(0.05)
            assert await room.error() == (
                "ClientTooSlowError: over 16,777,216 bytes were waiting for a slow client")
            async for _ in ws:  # what was sent before the cut, then the close
                pass
            with pytest.raises(WebSocketClosed) as closed:
                await ws.receive()
            assert (closed.value.code, closed.value.reason) == (
                1011, "the client is not reading fast enough")


async def test_refusals(server: ServerProcess) -> None:
    async with Client(server.base_url) as client:
        with pytest.raises(WebSocketRejected) as rejected:
            async with client.namespace("WEB").get_by_name("x").websocket():
                pass
        assert rejected.value.status == 201  # the object answered without upgrading
        with pytest.raises(WebSocketRejected) as rejected:
            async with client.namespace("NOPE").get_by_name("x").websocket():
                pass
        assert rejected.value.status == 404
        assert b'"type": "NotFound"' in rejected.value.body
    async with Client(server.base_url, tenant="other") as client:
        with pytest.raises(WebSocketRejected) as rejected:
            async with client.namespace("ROOM").get_by_name("x").websocket():
                pass
        assert rejected.value.status == 404


async def test_tokens_guard_websockets(tmp_path: Path) -> None:
    tokens = tmp_path / "tokens.toml"
    tokens.write_text('[tenants.acme]\ntoken = "a"\n[tenants.globex]\ntoken = "g"\n')
    async with open_server_process(tmp_path / "data", OBJECTS, cwd=ROOT,
                                   tokens=tokens) as server:
        for token, status in ((None, 401), ("g", 403)):
            async with Client(server.base_url, tenant="acme", token=token) as client:
                with pytest.raises(WebSocketRejected) as rejected:
                    async with client.namespace("ROOM").get_by_name("x").websocket():
                        pass
                assert rejected.value.status == status
        async with Client(server.base_url, tenant="acme", token="a") as client, \
                client.namespace("ROOM").get_by_name("x").websocket() as ws:
            await ws.send("hi")
            assert await ws.receive() == "hi"
    assert sorted(p.name for p in (tmp_path / "data" / "tenants").iterdir()) == ["acme"]


async def test_sigterm_closes_open_sockets_and_exits_cleanly(server: ServerProcess) -> None:
    async with Client(server.base_url) as client:
        room = client.namespace("ROOM").get_by_name("lobby")
        async with room.websocket("/chat") as ws:
            await ws.send("kept")
            assert await ws.receive() == "kept"
            exit_codes = []

            async def terminate() -> None:
                exit_codes.append(await server.terminate())

            async with trio.open_nursery() as nursery:
                nursery.start_soon(terminate)
                with pytest.raises(WebSocketClosed) as closed:
                    await ws.receive()
            assert closed.value.code in (1001, 1012)  # going away / service restart
    assert exit_codes == [0]
    await server.restart()
    async with Client(server.base_url) as client:
        assert await client.namespace("ROOM").get_by_name("lobby").last() == "kept"
