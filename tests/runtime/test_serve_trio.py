"""runtime.serve: the same HTTP app inside a trio program, on hypercorn's trio worker."""

from __future__ import annotations

import sys
from functools import partial
from pathlib import Path

import httpx
import pytest
import trio
import trio.testing

from runtime import Client, WebSocketClosed, WebSocketRejected, open_runtime, serve
from runtime.server import DoboxApp
from tests.helpers import Counter, raw_websocket, reset_connection
from tests.runtime.server_objects import OBJECTS


async def test_serve_inside_a_trio_program(tmp_path: Path) -> None:
    async with trio.open_nursery() as nursery:
        (address, *_) = await nursery.start(partial(serve, OBJECTS, tmp_path, port=0))
        async with httpx.AsyncClient(base_url=address) as client:
            answer = await client.post("/default/COUNTER/a/rpc/increment", json={"args": [5]})
            assert answer.json() == {"result": 5}
            failed = await client.post("/default/COUNTER/a/rpc/fail", json={"args": ["x"]})
            assert (failed.status_code, failed.json()["error"]["type"]) == (500, "ValueError")
            fetched = await client.get("/default/WEB/w/p?q=1")
            assert fetched.json()["path"] == "/p"
        nursery.cancel_scope.cancel()  # the runtime drains and commits
    async with open_runtime(tmp_path / "tenants" / "default", objects={"COUNTER": Counter},
                            id_scope="default/") as runtime:
        assert await runtime.namespace("COUNTER").get_by_name("a").value() == 5


async def test_websockets_inside_a_trio_program(tmp_path: Path) -> None:
    async with trio.open_nursery() as nursery:
        (address, *_) = await nursery.start(partial(serve, OBJECTS, tmp_path, port=0))
        async with Client(address) as client:
            room = client.namespace("ROOM").get_by_name("lobby")
            async with room.websocket("/chat?user=ann") as ws:
                await ws.send("hello")
                assert await ws.receive() == "hello"
                await ws.send("whoami")
                assert await ws.receive() == "ann (start 1)"
                await ws.send("bye")
                with pytest.raises(WebSocketClosed) as closed:
                    await ws.receive()
                assert (closed.value.code, closed.value.reason) == (4000, "bye")
            with pytest.raises(WebSocketRejected) as rejected:
                async with client.namespace("WEB").get_by_name("w").websocket():
                    pass
            assert rejected.value.status == 201
        nursery.cancel_scope.cancel()


async def test_serve_refuses_to_listen_beyond_loopback_without_tokens(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"127\.0\.0\.1 only"):
        await serve(OBJECTS, tmp_path, host="0.0.0.0", port=0)


async def test_without_hypercorn_serve_says_which_extra_to_install(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Before, the bare ModuleNotFoundError reached the user inside an ExceptionGroup."""
    for module in ("hypercorn", "hypercorn.config", "hypercorn.trio"):
        monkeypatch.setitem(sys.modules, module, None)  # import raises ImportError
    with pytest.raises(ModuleNotFoundError, match=r"pip install 'dobox\[hypercorn\]'"):
        await serve(OBJECTS, tmp_path, port=0)


async def test_a_cancelled_request_is_not_answered_500(tmp_path: Path) -> None:
    """Cancellation propagates out of the app: it is not the request's error."""
    app = DoboxApp(tmp_path, OBJECTS)
    sent: list[dict[str, object]] = []

    async def receive() -> dict[str, object]:
        return {"type": "http.request", "body": b'{"args": [10]}', "more_body": False}

    async def send(message: dict[str, object]) -> None:
        sent.append(message)

    scope = {"type": "http", "method": "POST", "path": "/default/COUNTER/a/rpc/sleep",
             "raw_path": b"/default/COUNTER/a/rpc/sleep", "query_string": b"",
             "headers": []}
    async with trio.open_nursery() as runtimes:
        app.run_in_trio(runtimes)
        with trio.CancelScope() as request:
            async with trio.open_nursery() as requests:
                requests.start_soon(app, scope, receive, send)
                await trio.testing.wait_all_tasks_blocked()
                request.cancel()
        assert request.cancelled_caught
        runtimes.cancel_scope.cancel()
    assert sent == []


@pytest.mark.parametrize("ending", ["reset", "fin"])
async def test_a_lost_connection_is_1006_under_hypercorn(tmp_path: Path, ending: str) -> None:
    async with trio.open_nursery() as nursery:
        (address, *_) = await nursery.start(partial(serve, OBJECTS, tmp_path, port=0))
        stream = await raw_websocket(address, "/default/ROOM/lobby/chat")
        if ending == "reset":
            reset_connection(stream)
        else:
            await stream.aclose()
        async with Client(address) as client:
            room = client.namespace("ROOM").get_by_name("lobby")
            with trio.fail_after(10):
                while await room.closes() != [[1006, "", False]]:  # noqa: ASYNC110  # the server's own tasks
                    await trio.sleep(0.02)
        nursery.cancel_scope.cancel()
