"""Hibernatable WebSockets in-process: accept, tags, attachments, auto-response, limits,
eviction with sockets open, wake-up, closes, errors and resets, on virtual time."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import ClassVar

import httpx
import pytest
import trio
import trio.testing

from actors import DurableObject
from harness import open_test_runtime
from runtime import (
    MessageTooBigError,
    ReadyState,
    WebSocket,
    WebSocketClosed,
    WebSocketPair,
    WebSocketRejected,
    WebSocketRequestResponsePair,
)


class Room(DurableObject):
    """Echoes, broadcasts, and records what its handlers saw."""

    starts = 0
    closes: ClassVar[list[tuple[int, str, bool]]] = []
    errors: ClassVar[list[BaseException]] = []

    async def on_start(self) -> None:
        type(self).starts += 1
        self.ctx.set_websocket_auto_response(WebSocketRequestResponsePair("ping", "pong"))

    async def fetch(self, request: httpx.Request) -> httpx.Response:
        if request.headers.get("upgrade") != "websocket":
            return httpx.Response(426, text="expected a WebSocket upgrade")
        client, server = WebSocketPair()
        tags = request.url.params.get_list("tag")
        self.ctx.accept_websocket(server, tags)
        server.serialize_attachment({"user": request.url.params.get("user"), "seen": 0})
        return httpx.Response(101, extensions={"websocket": client})

    async def websocket_message(self, ws: WebSocket, message: str | bytes) -> None:
        if message == "count":
            ws.send(str(await self.ctx.storage.get("count", 0)))
        elif message == "write":
            await self.ctx.storage.put("count", await self.ctx.storage.get("count", 0) + 1)
            ws.send("written")
        elif message == "whoami":
            attachment = ws.deserialize_attachment()
            assert isinstance(attachment, dict)
            attachment["seen"] += 1
            ws.serialize_attachment(attachment)
            ws.send(f"{attachment['user']} {attachment['seen']} {self.ctx.get_tags(ws)}")
        elif isinstance(message, str) and message.startswith("to "):
            tag = message[3:]
            for peer in self.ctx.get_websockets(tag):
                peer.send(f"for {tag}")
        elif message == "raise":
            raise ValueError("the handler failed")
        elif message == "abort":
            self.ctx.abort("asked to")
        elif message == "bye":
            ws.close(4000, "you asked")
        elif message == "big attachment":
            try:
                ws.serialize_attachment("x" * 20_000)
            except ValueError as exc:
                ws.send(str(exc))
        elif message == "when":
            ws.send(repr(self.ctx.get_websocket_auto_response_timestamp(ws)))
        else:
            ws.send(message)

    async def websocket_close(self, ws: WebSocket, code: int, reason: str,
                              was_clean: bool) -> None:
        type(self).closes.append((code, reason, was_clean))

    async def websocket_error(self, ws: WebSocket, error: BaseException) -> None:
        type(self).errors.append(error)

    async def open_sockets(self, tag: str | None = None) -> int:
        return len(self.ctx.get_websockets(tag))


class Silent(DurableObject):
    """Accepts sockets but has no handlers."""

    starts = 0

    async def on_start(self) -> None:
        type(self).starts += 1

    async def fetch(self, request: httpx.Request) -> httpx.Response:
        client, server = WebSocketPair()
        self.ctx.accept_websocket(server)
        return httpx.Response(101, extensions={"websocket": client})


class Broken(DurableObject):
    async def fetch(self, request: httpx.Request) -> httpx.Response:
        return httpx.Response(101)


@pytest.fixture(autouse=True)
def _reset_records() -> None:
    Room.starts = 0
    Room.closes = []
    Room.errors = []
    Silent.starts = 0


OBJECTS = {"ROOM": Room, "SILENT": Silent, "BROKEN": Broken}


async def test_messages_reach_the_handler_and_replies_come_back(tmp_path: Path) -> None:
    async with open_test_runtime(tmp_path, OBJECTS) as rt:
        room = rt.namespace("ROOM").get_by_name("lobby")
        async with room.websocket("/?user=ann") as ws:
            for word in ("one", "two", "three"):
                ws.send(word)
            assert [await ws.receive() for _ in range(3)] == ["one", "two", "three"]
            ws.send(b"\x00\x01")
            assert await ws.receive() == b"\x00\x01"
            assert await room.open_sockets() == 1


async def test_tags_select_sockets(tmp_path: Path) -> None:
    async with open_test_runtime(tmp_path, OBJECTS) as rt:
        room = rt.namespace("ROOM").get_by_name("lobby")
        async with room.websocket("/?tag=red&tag=all") as red, \
                room.websocket("/?tag=blue&tag=all") as blue:
            assert (await room.open_sockets("red"), await room.open_sockets("all")) == (1, 2)
            red.send("to blue")
            assert await blue.receive() == "for blue"
            blue.send("to all")
            assert (await red.receive(), await blue.receive()) == ("for all", "for all")
            red.send("whoami")
            assert await red.receive() == "None 1 ['red', 'all']"


@pytest.mark.parametrize(
    ("query", "message"),
    [
        pytest.param("&".join(f"tag=t{i}" for i in range(11)), "more than 10 tags",
                     id="eleven-tags"),
        pytest.param("tag=" + "x" * 257, "longer than the max tag length", id="long-tag"),
    ],
)
async def test_bad_tags_are_refused(tmp_path: Path, query: str, message: str) -> None:
    async with open_test_runtime(tmp_path, OBJECTS) as rt:
        room = rt.namespace("ROOM").get_by_name("lobby")
        with pytest.raises(ValueError, match=message):
            async with room.websocket("/?" + query):
                pass
        assert await room.open_sockets() == 0


async def test_the_per_object_socket_limit(tmp_path: Path) -> None:
    async with open_test_runtime(tmp_path, OBJECTS, max_websockets_per_object=2) as rt:
        room = rt.namespace("ROOM").get_by_name("lobby")
        async with room.websocket(), room.websocket():
            with pytest.raises(ValueError, match="2 WebSockets open, the limit per object"):
                async with room.websocket():
                    pass
        async with room.websocket():  # closed sockets free their places
            assert await room.open_sockets() == 1


async def test_sockets_stay_open_while_the_object_hibernates(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    """Evicted after the idle time with its sockets open; the next message wakes it, and
    the attachment and tags survived."""
    async with open_test_runtime(tmp_path, OBJECTS, idle_timeout=10) as rt:
        room = rt.namespace("ROOM").get_by_name("lobby")
        async with room.websocket("/?user=ann&tag=a") as ws:
            ws.send("whoami")
            assert await ws.receive() == "ann 1 ['a']"
            start = trio.current_time()
            await trio.sleep(10)
            await trio.testing.wait_all_tasks_blocked()
            stats = rt.statistics()
            assert (stats.live_objects, stats.evictions, stats.websockets) == (0, 1, 1)
            assert ws.ready_state is ReadyState.OPEN
            ws.send("whoami")
            assert await ws.receive() == "ann 2 ['a']"
            assert Room.starts == 2
            assert trio.current_time() == start + 10


async def test_auto_response_does_not_wake_the_object(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    async with open_test_runtime(tmp_path, OBJECTS, idle_timeout=10) as rt:
        room = rt.namespace("ROOM").get_by_name("lobby")
        async with room.websocket() as ws:
            await trio.sleep(11)
            assert rt.statistics().live_objects == 0
            sent_at = rt.now()
            ws.send("ping")
            assert await ws.receive() == "pong"
            assert rt.statistics().live_objects == 0
            assert Room.starts == 1
            ws.send("when")  # wakes it: the timestamp was kept while it slept
            assert await ws.receive() == repr(sent_at)
            assert Room.starts == 2


async def test_the_client_closing_calls_websocket_close(tmp_path: Path) -> None:
    async with open_test_runtime(tmp_path, OBJECTS) as rt:
        room = rt.namespace("ROOM").get_by_name("lobby")
        async with room.websocket() as ws:
            ws.close(4001, "leaving")
            assert ws.ready_state is ReadyState.CLOSED
            with pytest.raises(WebSocketClosed):
                ws.send("too late")
        assert await room.open_sockets() == 0
        assert Room.closes == [(4001, "leaving", True)]


async def test_a_lost_connection_is_an_unclean_close(tmp_path: Path) -> None:
    async with open_test_runtime(tmp_path, OBJECTS) as rt:
        room = rt.namespace("ROOM").get_by_name("lobby")
        async with room.websocket() as ws:
            ws._close_now(1006)  # what the server's bridge does when the TCP link drops
        assert await room.open_sockets() == 0
        assert Room.closes == [(1006, "", False)]


async def test_the_object_closing_reaches_the_client(tmp_path: Path) -> None:
    async with open_test_runtime(tmp_path, OBJECTS) as rt:
        room = rt.namespace("ROOM").get_by_name("lobby")
        async with room.websocket() as ws:
            ws.send("bye")
            with pytest.raises(WebSocketClosed) as closed:
                await ws.receive()
            assert (closed.value.code, closed.value.reason) == (4000, "you asked")
            assert await room.open_sockets() == 0
        assert Room.closes == []  # the object closed it: it is not told again


async def test_a_raising_handler_leaves_the_socket_open(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    async with open_test_runtime(tmp_path, OBJECTS) as rt:
        room = rt.namespace("ROOM").get_by_name("lobby")
        async with room.websocket() as ws:
            with caplog.at_level(logging.WARNING, "dobox.runtime"):
                ws.send("raise")
                ws.send("still here")
                assert await ws.receive() == "still here"
            assert "websocket_message() raised in ROOM/lobby" in caplog.text
            assert "the handler failed" in caplog.text


async def test_a_reset_closes_the_objects_sockets(tmp_path: Path) -> None:
    async with open_test_runtime(tmp_path, OBJECTS) as rt:
        room = rt.namespace("ROOM").get_by_name("lobby")
        other = rt.namespace("ROOM").get_by_name("other")
        async with room.websocket() as first, room.websocket() as second, \
                other.websocket() as elsewhere:
            first.send("abort")
            for ws in (first, second):
                with pytest.raises(WebSocketClosed) as closed:
                    await ws.receive()
                assert closed.value.code == 1011
                assert closed.value.reason == (
                    "Durable Object connection closed because the object was reset.")
            elsewhere.send("unaffected")
            assert await elsewhere.receive() == "unaffected"
            assert await room.open_sockets() == 0


async def test_sends_wait_for_the_output_gate(tmp_path: Path) -> None:
    """A message sent after a write leaves only once the write is durable; if the commit
    fails, it never leaves and the socket is closed by the reset."""
    async with open_test_runtime(tmp_path, OBJECTS) as rt:
        room = rt.namespace("ROOM").get_by_name("lobby")
        async with room.websocket() as ws:
            ws.send("write")
            assert await ws.receive() == "written"
            await rt.fail_next_commit(room)
            ws.send("write")
            with pytest.raises(WebSocketClosed) as closed:
                await ws.receive()  # no "written": the reset came first
            assert closed.value.code == 1011
        async with room.websocket() as ws:
            ws.send("count")
            assert await ws.receive() == "1"


async def test_an_oversized_message_is_an_error(tmp_path: Path) -> None:
    async with open_test_runtime(tmp_path, OBJECTS) as rt:
        room = rt.namespace("ROOM").get_by_name("lobby")
        async with room.websocket() as ws:
            ws.send(b"x" * (32 * 1024 * 1024 + 1))
            with pytest.raises(WebSocketClosed) as closed:
                await ws.receive()
            assert closed.value.code == 1009
        await room.open_sockets()  # the error event ran before this call
        assert len(Room.errors) == 1
        assert isinstance(Room.errors[0], MessageTooBigError)


async def test_attachments_are_limited_to_16_kib(tmp_path: Path) -> None:
    async with open_test_runtime(tmp_path, OBJECTS) as rt:
        room = rt.namespace("ROOM").get_by_name("lobby")
        async with room.websocket() as ws:
            ws.send("big attachment")
            assert "cannot be larger than 16,384 bytes" in str(await ws.receive())


async def test_shutdown_closes_sockets_as_going_away(tmp_path: Path) -> None:
    async with open_test_runtime(tmp_path, OBJECTS) as rt, \
            rt.namespace("ROOM").get_by_name("lobby").websocket() as ws:
        await rt.restart()
        with pytest.raises(WebSocketClosed) as closed:
            await ws.receive()
        assert closed.value.code == 1001


async def test_a_message_without_a_handler_does_not_wake_the_object(
    tmp_path: Path, autojump_clock: trio.testing.MockClock,
    caplog: pytest.LogCaptureFixture,
) -> None:
    async with open_test_runtime(tmp_path, OBJECTS, idle_timeout=10) as rt:
        async with rt.namespace("SILENT").get_by_name("quiet").websocket() as ws:
            await trio.sleep(11)
            ws.send("anyone?")
            await trio.testing.wait_all_tasks_blocked()
        assert Silent.starts == 1
        assert "has no websocket_message() handler" in caplog.text


async def test_refusals_and_bad_upgrades(tmp_path: Path) -> None:
    async with open_test_runtime(tmp_path, OBJECTS) as rt:
        room = rt.namespace("ROOM").get_by_name("lobby")
        with pytest.raises(WebSocketRejected) as rejected:
            async with room.websocket(headers={"upgrade": "h2c"}):
                pass
        assert (rejected.value.status, rejected.value.body) == (
            426, b"expected a WebSocket upgrade")
        with pytest.raises(TypeError, match="must carry the client end of a WebSocketPair"):
            async with rt.namespace("BROKEN").get_by_name("b").websocket():
                pass


async def test_accepting_twice_or_a_closed_socket_is_refused(tmp_path: Path) -> None:
    async with open_test_runtime(tmp_path, OBJECTS) as rt:
        room = rt.namespace("ROOM").get_by_name("lobby")

        def accept_twice(obj: DurableObject, ctx: object) -> str:
            _, server = WebSocketPair()
            obj.ctx.accept_websocket(server)
            errors = []
            for ws in (server, WebSocketPair()[1]):
                if ws is not server:
                    ws.close()
                try:
                    obj.ctx.accept_websocket(ws)
                except ValueError as exc:
                    errors.append(str(exc))
            try:
                obj.ctx.accept_websocket("socket")  # type: ignore[arg-type]  # on purpose
            except TypeError as exc:
                errors.append(str(exc))
            return " | ".join(errors)

        errors = await rt.run_in_object(room, accept_twice)
        assert "accepted already" in errors
        assert "is closed; it cannot be accepted" in errors
        assert "takes a WebSocket" in errors
