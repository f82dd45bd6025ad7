"""WebSockets through the real server (uvicorn, the runtime as trio's guest) on a loopback
port, with the Python client: hibernation and wake-up, auto-response, closes both ways,
refusals, tenants, and a graceful shutdown with sockets open."""

from __future__ import annotations

import re
import shutil
import struct
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import httpx
import pytest
import trio

from harness import ServerProcess, open_server_process
from runtime import Client, WebSocketClosed, WebSocketRejected
from runtime.server._asgi import _forwarded_request
from tests.helpers import client_frame, raw_websocket, reset_connection

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


async def lost_by_reset(stream: trio.SocketStream) -> None:
    reset_connection(stream)


async def lost_by_fin(stream: trio.SocketStream) -> None:
    await stream.aclose()


async def lost_mid_message(stream: trio.SocketStream) -> None:
    await stream.send_all(client_frame(1, b"half a mess", fin=False))
    await stream.aclose()


async def close_frame_without_code(stream: trio.SocketStream) -> None:
    await stream.send_all(client_frame(8, b""))
    await stream.receive_some()  # the server's close frame: the handshake is complete
    await stream.aclose()


async def close_frame_1000(stream: trio.SocketStream) -> None:
    await stream.send_all(client_frame(8, struct.pack("!H", 1000) + b"done"))
    await stream.receive_some()
    await stream.aclose()


ENDINGS = [
    pytest.param(lost_by_reset, [1006, "", False], id="reset"),
    pytest.param(lost_by_fin, [1006, "", False], id="fin"),
    pytest.param(lost_mid_message, [1006, "", False], id="mid-message"),
    pytest.param(close_frame_without_code, [1005, "", True], id="close-without-code"),
    pytest.param(close_frame_1000, [1000, "done", True], id="close-1000"),
]


async def wait_for_closes(server: ServerProcess, expected: list[list[object]]) -> None:
    async with Client(server.base_url) as client:
        room = client.namespace("ROOM").get_by_name("lobby")
        with trio.fail_after(10):
            # The close event runs in the server after the client has gone.
            while await room.closes() != expected:  # noqa: ASYNC110  # another process's state
                await trio.sleep(0.02)


@pytest.mark.parametrize(("end", "seen"), ENDINGS)
async def test_a_lost_connection_is_1006_and_a_close_frame_is_clean(
    server: ServerProcess, end: Callable[[trio.SocketStream], Awaitable[None]],
    seen: list[object],
) -> None:
    """websocket_close gets 1006 and was_clean False when the client vanished without a
    close frame (reset, FIN, mid-message); 1005 (clean) for a close frame without a code."""
    await end(await raw_websocket(server.base_url, "/default/ROOM/lobby/chat"))
    await wait_for_closes(server, [seen])


async def test_invalid_utf8_closes_with_1007_without_a_traceback(tmp_path: Path) -> None:
    log = tmp_path / "server.log"
    async with open_server_process(tmp_path, OBJECTS, cwd=ROOT, log=log) as server:
        stream = await raw_websocket(server.base_url, "/default/ROOM/lobby/chat")
        await stream.send_all(client_frame(1, b"\xff\xfe not UTF-8"))
        answer = await stream.receive_some()
        assert answer[:4] == b"\x88\x02" + struct.pack("!H", 1007)  # a close frame, 1007
        await stream.aclose()
        await wait_for_closes(server, [[1007, "", True]])
    text = log.read_text()
    assert "Invalid UTF-8 sequence received from client" in text
    assert "Traceback" not in text


NODE_CLIENT = """
const [url, token] = process.argv.slice(1);
const protocols = token ? ["dobox", "dobox.bearer." + Buffer.from(token).toString("base64url")]
                        : [];
const ws = new WebSocket(url, protocols);  // the WHATWG API: no way to set a header
ws.onopen = () => ws.send("whoami");
ws.onmessage = (event) => {
  console.log(`message: ${event.data} (protocol ${ws.protocol})`);
  ws.close(1000, "done");
};
ws.onerror = () => { console.log("refused"); };
ws.onclose = () => process.exit(0);
"""


async def node_websocket(url: str, token: str | None) -> str:
    """What a client that cannot set headers (Node's WebSocket, as browsers') gets."""
    node = shutil.which("node")
    if node is None:
        pytest.skip("Node.js is not installed (the machine's image provides it)")
    done = await trio.run_process(
        [node, "--experimental-websocket", "--no-warnings", "-e", NODE_CLIENT, url,
         token or ""], capture_stdout=True)
    return done.stdout.decode().strip()


async def test_a_client_that_cannot_set_headers_sends_its_token_as_a_subprotocol(
    tmp_path: Path,
) -> None:
    tokens = tmp_path / "tokens.toml"
    tokens.write_text('[tenants.acme]\ntoken = "s3cret/acme+="\n'
                      '[tenants.globex]\ntoken = "s3cret-globex"\n')
    async with open_server_process(tmp_path / "data", OBJECTS, cwd=ROOT,
                                   tokens=tokens) as server:
        url = server.base_url.replace("http", "ws") + "/acme/ROOM/lobby/chat?user=ann"
        assert await node_websocket(url, "s3cret/acme+=") == (
            "message: ann (start 1) (protocol dobox)")
        assert await node_websocket(url, None) == "refused"  # 401
        assert await node_websocket(url, "s3cret-globex") == "refused"  # 403: another tenant
        assert await node_websocket(url, "wrong") == "refused"


def test_the_token_entry_never_reaches_the_object() -> None:
    scope = {"type": "websocket", "path": "/t/ROOM/r/chat", "query_string": b"",
             "headers": [(b"sec-websocket-protocol", b"chat, dobox, dobox.bearer.c2VjcmV0")]}
    request = _forwarded_request(scope, "GET", "chat", b"")
    assert request.headers["sec-websocket-protocol"] == "chat, dobox"


def test_a_forwarded_request_has_the_headers_as_sent_and_a_host() -> None:
    """The object sees every header as the client sent it (repeats kept, in order), the
    token's protocol entry removed wherever it is, and a host even from an HTTP/1.0 client."""
    scope = {"type": "http", "path": "/t/ROOM/r/x", "query_string": b"",
             "headers": [(b"host", b"example"), (b"x-dup", b"1"), (b"x-dup", b"2"),
                         (b"sec-websocket-protocol", b"chat"),
                         (b"sec-websocket-protocol", b"dobox.bearer.c2VjcmV0")]}
    request = _forwarded_request(scope, "GET", "x", b"")
    assert request.headers.get_list("x-dup") == ["1", "2"]
    assert request.headers["host"] == "example"
    assert request.headers["sec-websocket-protocol"] == "chat"
    bare = {"type": "http", "path": "/t/ROOM/r/x", "query_string": b"q=1",
            "headers": [(b"x-a", b"b")]}
    request = _forwarded_request(bare, "POST", "x", b"body")
    assert request.headers["host"] == "dobox"
    assert request.headers["x-a"] == "b"
    assert (request.url.query, request.content) == (b"q=1", b"body")


async def test_an_object_awaiting_an_outside_call_keeps_answering_its_sockets(
    server: ServerProcess, tmp_path: Path
) -> None:
    """One socket asks the object to think: it awaits an HTTP call that the test holds open.
    Meanwhile its other socket's messages are answered: the gate is open while it waits."""
    release = tmp_path / "release"
    async with Client(server.base_url) as client:
        agent = client.namespace("AGENT").get_by_name("a")
        async with agent.websocket("/") as thinker, agent.websocket("/") as chatter:
            await thinker.send(f"think {server.base_url} {release}")
            with trio.fail_after(30):  # an answer comes at once; the bound only ends a hang
                for number in range(3):
                    await chatter.send(f"hi {number}")
                    assert await chatter.receive() == f"echo hi {number}"
            assert not release.exists()  # so the thinker was still waiting throughout
            release.touch()
            assert await thinker.receive() == "thought: released"
