"""The Python client: the stub interface over HTTP, typed errors, retries."""

from __future__ import annotations

import gc
import json
import socket
import struct
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
import trio
import trio.testing

from actors import (
    InvalidArgumentsError,
    InvalidObjectName,
    ObjectResetError,
    OverloadedError,
    RemoteError,
    UnknownMethodError,
)
from harness import ServerProcess, open_server_process
from runtime import Client, ClientError, RetryPolicy
from storage import UnsupportedValueError
from tests.runtime.test_server import OBJECTS, ROOT


@pytest.fixture
async def server(tmp_path: Path) -> AsyncIterator[ServerProcess]:
    async with open_server_process(tmp_path, OBJECTS, cwd=ROOT) as running:
        yield running


async def test_calls_and_typed_errors_against_the_real_server(server: ServerProcess) -> None:
    async with Client(server.base_url) as client:
        counter = client.namespace("COUNTER").get_by_name("a/b c")  # any name
        assert await counter.increment(2) == 2
        assert await counter.idempotent.value() == 2
        with pytest.raises(ValueError, match="no good") as info:
            await counter.fail("no good")
        assert isinstance(info.value, RemoteError)
        assert info.value.remote
        with pytest.raises(UnknownMethodError):
            await counter.nope()
        with pytest.raises(TypeError, match=r"key 'stored'\['inner'\]\[0\] is of type") as typed:
            await counter.store_unsupported()  # dobox's own errors keep their builtin base
        assert isinstance(typed.value, RemoteError)
        assert typed.value.type_name == "UnsupportedValueError"
        response = await client.namespace("WEB").get_by_name("w").fetch(
            httpx.Request("POST", "http://ignored/x/y?q=1", content=b"body"))
        assert response.status_code == 201
        assert response.json()["path"] == "/x/y"
        assert response.json()["query"] == "q=1"
    async with Client(server.base_url, tenant="elsewhere") as client:
        with pytest.raises(ClientError) as refused:
            await client.namespace("COUNTER").get_by_name("a").value()
        assert refused.value.status == 404


async def test_the_client_refuses_to_build_paths_the_server_would_refuse() -> None:
    """Names, tenants and segments are checked before a request is sent."""
    transport, seen = scripted((200, {"result": None}))
    with pytest.raises(ValueError, match="not a tenant name"):
        Client("http://dobox", tenant="../other")
    async with Client("http://dobox", transport=transport) as client:
        for name in ("", ".", "..", "x" * 1025, "\udcff"):
            stub = client.namespace("COUNTER").get_by_name(name)
            with pytest.raises(InvalidObjectName):
                await stub.value()
            with pytest.raises(InvalidObjectName):
                await stub.fetch(httpx.Request("GET", "http://dobox/"))
        with pytest.raises(ValueError, match="not a binding name"):
            await client.namespace("../x").get_by_name("a").value()
        with pytest.raises(ValueError, match="cannot be a path segment"):
            await client.namespace("COUNTER").get_by_name("a").call("..")
        assert await client.namespace("COUNTER").get_by_name("é" * 512).value() is None
    assert seen == [1]  # only the valid call was sent


async def test_the_client_says_what_cannot_be_called_or_sent() -> None:
    """Before: a bare AttributeError: _private, and json's own TypeError for a set."""
    transport, seen = scripted((200, {"result": None}))
    async with Client("http://dobox", transport=transport) as client:
        stub = client.namespace("COUNTER").get_by_name("a")
        with pytest.raises(UnknownMethodError, match="'_private' is not an RPC method"):
            await stub._private()
        with pytest.raises(AttributeError):  # an UnknownMethodError is one: hasattr works
            stub.__deepcopy__  # noqa: B018
        with pytest.raises(UnsupportedValueError, match=r"increment\(\) cannot cross the "
                                                        r"call: over HTTP they travel as JSON"):
            await stub.increment({1, 2})
        assert await stub.increment([1, 2]) is None
    assert seen == [1]  # only the last call was sent


async def test_the_clients_call_reaches_methods_named_like_its_attributes(
    server: ServerProcess,
) -> None:
    async with Client(server.base_url) as client:
        stub = client.namespace("GUARDED").get_by_name("g")
        assert stub.name == "g"
        assert await stub.call("name") == "the name method"
        assert await stub.call("subscribe", "news") == "subscribed to news"
        with pytest.raises(InvalidArgumentsError, match=r"Guarded\.add\(a: int, b: int = 0, \*"):
            await stub.add(1, 2, 3)


def scripted(*answers: tuple[int, dict[str, object]]) -> tuple[httpx.MockTransport, list[int]]:
    """A transport answering the given (status, body) in turn; it counts the requests."""
    seen: list[int] = []

    def handle(request: httpx.Request) -> httpx.Response:
        seen.append(1)
        status, body = answers[min(len(seen), len(answers)) - 1]
        return httpx.Response(status, content=json.dumps(body).encode())

    return httpx.MockTransport(handle), seen


RESET = (503, {"error": {"type": "ObjectResetError", "message": "reset", "remote": True,
                         "retryable": True, "overloaded": False, "reset": True}})
OVERLOADED = (503, {"error": {"type": "OverloadedError", "message": "busy", "remote": True,
                              "retryable": False, "overloaded": True, "reset": False}})
OK = (200, {"result": 7})


async def test_idempotent_calls_are_retried_with_backoff(
    autojump_clock: trio.testing.MockClock,
) -> None:
    transport, seen = scripted(RESET, RESET, OK)
    async with Client("http://dobox", transport=transport) as client:
        stub = client.namespace("C").get_by_name("x")
        assert await stub.idempotent.value() == 7
    assert len(seen) == 3
    assert trio.current_time() == pytest.approx(0.1 + 0.2)  # 0.1 s, then doubled


async def test_other_calls_are_not_retried() -> None:
    transport, seen = scripted(RESET, OK)
    async with Client("http://dobox", transport=transport) as client:
        with pytest.raises(ObjectResetError):
            await client.namespace("C").get_by_name("x").increment()
    assert len(seen) == 1


async def test_overloaded_is_never_retried_and_attempts_are_bounded(
    autojump_clock: trio.testing.MockClock,
) -> None:
    transport, seen = scripted(OVERLOADED)
    async with Client("http://dobox", transport=transport) as client:
        with pytest.raises(OverloadedError):
            await client.namespace("C").get_by_name("x").idempotent.value()
    assert len(seen) == 1
    transport, seen = scripted(RESET)
    async with Client("http://dobox", transport=transport,
                      retry=RetryPolicy(attempts=4)) as client:
        with pytest.raises(ObjectResetError):
            await client.namespace("C").get_by_name("x").idempotent.value()
    assert len(seen) == 4


def test_retry_delays_double_up_to_the_cap() -> None:
    policy = RetryPolicy(attempts=10, base_delay=0.1, max_delay=1.0)
    assert [policy.delay(n) for n in range(1, 7)] == [0.1, 0.2, 0.4, 0.8, 1.0, 1.0]


async def test_a_client_with_several_servers_uses_the_next_when_one_refuses_connections(
    server: ServerProcess,
) -> None:
    dead = "http://127.0.0.1:9"  # discard: nothing listens
    async with Client([dead, server.base_url]) as client:
        counter = client.namespace("COUNTER").get_by_name("failover")
        assert await counter.increment(2) == 2
        assert await counter.value() == 2
    async with Client([dead]) as nowhere:
        with pytest.raises(httpx.ConnectError):
            await nowhere.namespace("COUNTER").get_by_name("x").value()
    with pytest.raises(ValueError, match="at least one"):
        Client([])


async def test_a_server_that_hangs_up_during_the_request_leaves_nothing_unfinished() -> None:
    """The write fails halfway through a large body; the client raises, and nothing it
    started is left for the garbage collector (trio would warn: the suite makes warnings
    errors)."""

    async def hang_up(stream: trio.SocketStream) -> None:
        await stream.receive_some(1024)
        stream.socket.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        await stream.aclose()  # a reset, not a polite close

    async with trio.open_nursery() as nursery:
        listeners = await nursery.start(trio.serve_tcp, hang_up, 0)
        port = listeners[0].socket.getsockname()[1]
        async with Client(f"http://127.0.0.1:{port}", retry=RetryPolicy(attempts=1)) as client:
            with pytest.raises(httpx.TransportError):
                await client.namespace("COUNTER").get_by_name("x").increment("y" * 8_000_000)
        gc.collect()
        await trio.testing.wait_all_tasks_blocked()
        nursery.cancel_scope.cancel()


async def test_after_a_node_does_not_answer_the_next_calls_go_to_the_next_node() -> None:
    """A node that times out may be paused or cut off, its objects about to move: the call
    that timed out is not sent again (it may have run), but the object's next call goes to
    the next node, which forwards it or now serves it, and its answer teaches the client the
    object's new home."""
    paused = {"n1"}
    seen: list[str] = []

    def handle(request: httpx.Request) -> httpx.Response:
        host = request.url.host
        seen.append(host)
        if host in paused:
            raise httpx.ReadTimeout("no answer", request=request)
        return httpx.Response(200, json={"result": 1}, headers={"dobox-node": f"http://{host}"})

    async with Client(["http://n1", "http://n2", "http://n3"], retry=RetryPolicy(attempts=1),
                      transport=httpx.MockTransport(handle)) as client:
        ledger = client.namespace("LEDGER").get_by_name("a")
        paused.clear()
        await ledger.append("x")  # served by n1: its home
        await ledger.append("x")
        assert seen == ["n1", "n1"]
        paused.add("n1")
        with pytest.raises(httpx.ReadTimeout):
            await ledger.append("x")
        assert seen == ["n1", "n1", "n1"]  # not sent again
        await ledger.append("x")
        await client.namespace("LEDGER").get_by_name("b").append("x")  # no home yet
        assert seen == ["n1", "n1", "n1", "n2", "n2"]
