"""The examples, each served by the real server as its docstring says."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
import trio
import trio.testing

from actors import DurableObject, RemoteError
from examples.rate_limiter.app import CAPACITY, TokenBucket
from harness import ServerProcess, open_server_process, open_test_runtime
from runtime import Client, WebSocketRejected
from runtime.cli._load import load_objects
from storage import field

ROOT = Path(__file__).parent.parent.parent


async def test_counter_over_http(tmp_path: Path) -> None:
    async with open_server_process(tmp_path, "examples.counter.app:OBJECTS", cwd=ROOT) as server:
        assert await server.call("COUNTER", "visits", "increment", 2) == 2
        assert await server.call("COUNTER", "visits", "increment") == 3
        async with httpx.AsyncClient(base_url=server.base_url) as client:
            assert (await client.get("/default/COUNTER/visits/")).text == "3\n"
            assert (await client.delete("/default/COUNTER/visits/")).status_code == 405
        with pytest.raises(ValueError, match="positive int"):
            await server.call("COUNTER", "visits", "increment", -1)
        server.kill()
        await server.restart()
        assert await server.call("COUNTER", "visits", "count") == 3
        await server.call("COUNTER", "visits", "reset")
        assert await server.call("COUNTER", "visits", "count") == 0


async def test_rate_limiter_over_http(tmp_path: Path) -> None:
    async with open_server_process(tmp_path, "examples.rate_limiter.app:OBJECTS",
                                   cwd=ROOT) as server:
        answers = [await server.call("LIMITER", "client-7", "take") for _ in range(11)]
        assert [a["allowed"] for a in answers] == [True] * 10 + [False]  # type: ignore[index]
        assert answers[-1]["retry_after"] > 0  # type: ignore[index]
        other = await server.call("LIMITER", "client-8", "take")
        assert other["allowed"] is True  # type: ignore[index]


async def test_chat_room_over_websockets(tmp_path: Path) -> None:
    """Two members chat; the room hibernates with both sockets open and wakes knowing who
    is who; the history survives a SIGKILL of the server."""
    async with open_server_process(tmp_path, "examples.chat_room.app:OBJECTS", cwd=ROOT,
                                   options=["--idle-timeout", "0.5"]) as server, \
            Client(server.base_url) as client:
        room = client.namespace("CHAT").get_by_name("lobby")
        async with room.websocket("/ws?name=ann") as ann:
            assert await ann.receive() == "* ann joined"
            async with room.websocket("/ws?name=bob") as bob:
                assert await bob.receive() == "* bob joined"
                assert await ann.receive() == "* bob joined"
                await ann.send("hello")
                assert await ann.receive() == await bob.receive() == "ann: hello"
                assert sorted(await room.members()) == ["ann", "bob"]
                await wait_until_evicted(server)
                await ann.send("ping")
                assert await ann.receive() == "pong"  # answered while it sleeps
                await bob.send("still here")  # wakes it: names come from attachments
                assert await ann.receive() == await bob.receive() == "bob: still here"
            assert await ann.receive() == "* bob left"
        server.kill()
        await server.restart()
        async with room.websocket("/ws?name=cy") as cy:
            replayed = [await cy.receive() for _ in range(3)]
            assert replayed == ["ann: hello", "bob: still here", "* cy joined"]
        with pytest.raises(WebSocketRejected) as refused:
            async with room.websocket("/ws"):
                pass
        assert refused.value.status == 400


async def wait_until_evicted(server: ServerProcess) -> None:
    """Poll the server's metrics until no object is live (its idle timer is real time)."""
    with trio.fail_after(20):
        async with httpx.AsyncClient(base_url=server.base_url) as http:
            while 'dobox_live_objects{tenant="default"} 0.0' not in (  # noqa: ASYNC110
                    await http.get("/metrics")).text:
                await trio.sleep(0.05)


async def test_todos_with_a_live_view_per_tenant(tmp_path: Path) -> None:
    tokens = tmp_path / "tokens.toml"
    tokens.write_text('[tenants.acme]\ntoken = "a"\n[tenants.globex]\ntoken = "g"\n')
    async with open_server_process(tmp_path / "data", "examples.todos.app:OBJECTS",
                                   cwd=ROOT, tokens=tokens) as server, \
            Client(server.base_url, tenant="acme", token="a") as acme, \
            Client(server.base_url, tenant="globex", token="g") as globex:
        home = acme.namespace("TODOS").get_by_name("home")
        milk = await home.add("buy milk")
        async with home.subscribe("todos", field("done") == False,  # noqa: E712
                                  order_by="created") as feed:
            snapshot = await feed.__anext__()
            assert [t["title"] for t in snapshot["records"]] == ["buy milk"]
            await globex.namespace("TODOS").get_by_name("home").add("another tenant's")
            bread = await home.add("bake bread")
            change = await feed.__anext__()  # globex's todo never shows up here
            assert [t["title"] for t in change["inserted"]] == ["bake bread"]
            await home.set_done(milk["id"])
            assert (await feed.__anext__())["removed"] == [milk["id"]]
            with pytest.raises(RemoteError, match="1 to 200 characters"):
                await home.add("   ")
            assert [t["title"] for t in await home.open_todos()] == ["bake bread"]
            assert bread["done"] is False


async def test_rate_limiter_refills_on_virtual_time(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    async with open_test_runtime(tmp_path, {"LIMITER": TokenBucket}) as rt:
        bucket = rt.namespace("LIMITER").get_by_name("k")
        assert (await bucket.take(CAPACITY))["remaining"] == 0
        refused = await bucket.take(3)
        assert (refused["allowed"], refused["retry_after"]) == (False, 3.0)
        await trio.sleep(3)
        assert (await bucket.take(3))["allowed"] is True


@pytest.mark.parametrize("example", ["counter", "chat_room", "todos", "rate_limiter"])
def test_each_example_loads_by_its_file(example: str) -> None:
    """As its README says, for a checkout that is not on the import path."""
    objects = load_objects(str(ROOT / "examples" / example / "app.py") + ":OBJECTS")
    assert objects
    assert all(issubclass(cls, DurableObject) for cls in objects.values())
