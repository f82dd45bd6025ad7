"""Nodes of a cluster, as real ``dobox serve`` processes on one etcd, sharing one data
directory (the one-machine deployment: a process per core; replicas come with Litestream)."""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import pytest
import trio

from actors import RemoteError
from actors._ids import id_from_name, namespace_key
from harness import EtcdProcess, ServerProcess, open_etcd
from runtime import Client, RetryPolicy, WebSocketClosed, WebSocketRejected
from runtime.cluster import Etcd
from tests.runtime.test_server import OBJECTS, ROOT

TTL = 3


def node(data: Path, etcd: EtcdProcess, name: str, log: Path) -> ServerProcess:
    server = ServerProcess(data, OBJECTS, cwd=ROOT, log=log)
    server.options = ["--cluster", etcd.endpoint, "--node", name,
                      "--advertise", server.base_url, "--lease-ttl", str(TTL)]
    return server


@pytest.fixture
async def etcd(tmp_path: Path) -> AsyncIterator[EtcdProcess]:
    async with open_etcd(tmp_path / "etcd") as server:
        yield server


@pytest.fixture
async def nodes(tmp_path: Path, etcd: EtcdProcess) -> AsyncIterator[list[ServerProcess]]:
    data = tmp_path / "data"
    async with all_running([node(data, etcd, name, tmp_path / f"{name}.log")
                            for name in ("a", "b")]) as started:
        yield started


@asynccontextmanager
async def all_running(servers: list[ServerProcess]) -> AsyncIterator[list[ServerProcess]]:
    """Start each server; at the end, stop (SIGTERM) each one still running, paused or not."""
    try:
        for server in servers:
            await server.start()
        yield servers
    finally:
        for server in servers:
            server.resume()  # a paused process would not act on SIGTERM
            if server.running:
                await server.terminate()


async def claims(etcd: EtcdProcess) -> dict[str, str]:
    """Object key -> the node holding its claim."""
    client = Etcd([etcd.endpoint])
    try:
        found = await client.get_prefix("dobox/objects/")
    finally:
        await client.aclose()
    return {kv.key: json.loads(kv.value)["node"] for kv in found}


async def metric(server: ServerProcess, name: str) -> int:
    """The sum of a counter's samples in the node's ``/metrics``."""
    async with httpx.AsyncClient() as http:
        text = (await http.get(f"{server.base_url}/metrics")).text
    return sum(int(float(n)) for n in re.findall(rf"^{name}(?:\{{[^}}]*\}})? (\S+)$",
                                                  text, re.MULTILINE))


async def test_any_node_serves_any_object_and_each_lives_on_one_node(
    nodes: list[ServerProcess], etcd: EtcdProcess
) -> None:
    a, b = nodes
    async with Client(a.base_url) as via_a, Client(b.base_url) as via_b:
        for i in range(20):
            name = f"o{i}"
            assert await via_a.namespace("COUNTER").get_by_name(name).increment() == 1
            assert await via_b.namespace("COUNTER").get_by_name(name).increment() == 2
            assert await via_a.namespace("COUNTER").get_by_name(name).value() == 2
    held = await claims(etcd)
    assert len(held) == 20
    assert set(held.values()) == {"a", "b"}  # placement spreads them (odds of not: 2^-19)
    assert await metric(a, "dobox_activations_total") + await metric(
        b, "dobox_activations_total") == 20  # none activated twice
    # One hop for each call through the node that does not hold the object: an object on
    # a was called once through b, one on b twice through a.
    on_b = sum(holder == "b" for holder in held.values())
    assert await metric(a, "dobox_forwards_total") + await metric(
        b, "dobox_forwards_total") == 20 + on_b


async def test_errors_and_fetch_cross_the_hop_unchanged(nodes: list[ServerProcess]) -> None:
    a, b = nodes
    async with Client(a.base_url, retry=RetryPolicy(attempts=1)) as via_a:
        for i in range(8):  # some of these live on b: their calls go through a, one hop
            counter = via_a.namespace("COUNTER").get_by_name(f"e{i}")
            with pytest.raises(ValueError, match="no good") as error:
                await counter.fail("no good")
            assert isinstance(error.value, RemoteError)
            assert error.value.remote
            response = await via_a.namespace("WEB").get_by_name(f"w{i}").fetch(
                httpx.Request("POST", "http://ignored/x/y?q=1", content=b"body"))
            assert response.status_code == 201
            assert response.json()["path"] == "/x/y"
            assert response.json()["body"] == "body"
    assert a.running
    assert b.running


async def test_a_killed_nodes_objects_are_taken_over_by_the_others(
    nodes: list[ServerProcess], etcd: EtcdProcess
) -> None:
    a, b = nodes
    async with Client(b.base_url, retry=RetryPolicy(attempts=1)) as via_b:
        names = [f"k{i}" for i in range(10)]
        for name in names:
            await via_b.namespace("COUNTER").get_by_name(name).increment(5)
        on_a = [key for key, holder in (await claims(etcd)).items() if holder == "a"]
        assert on_a  # some lived on a
        a.kill()  # SIGKILL: its lease expires within TTL, its claims with it
        with trio.fail_after(10 * TTL):
            for name in names:  # each answered by its new owner once a's claims are gone
                assert await via_b.namespace("COUNTER").get_by_name(name).increment() == 6
    assert set((await claims(etcd)).values()) == {"b"}


async def test_a_paused_node_past_its_lease_gives_its_objects_up_and_acknowledges_nothing(
    nodes: list[ServerProcess], etcd: EtcdProcess
) -> None:
    """SIGSTOP past the lease: the other node claims the object (it can open the file once
    the paused node, resumed, has dropped its activations); the resumed node answers for the
    object only by forwarding, and refuses to serve it itself."""
    a, b = nodes
    async with Client(a.base_url, retry=RetryPolicy(attempts=1)) as via_a, \
            Client(b.base_url, retry=RetryPolicy(attempts=1)) as via_b:
        names = [f"p{i}" for i in range(10)]
        for name in names:
            await via_a.namespace("COUNTER").get_by_name(name).increment(10)
        held = await claims(etcd)
        a_keys = {key for key, holder in held.items() if holder == "a"}
        assert a_keys
        a.pause()
        try:
            with trio.fail_after(10 * TTL):
                while a_keys & set(await claims(etcd)):  # noqa: ASYNC110  # etcd's clock
                    await trio.sleep(0.1)
        finally:
            a.resume()
        with trio.fail_after(10 * TTL):
            for name in names:  # answered by whichever node holds it now
                while True:
                    try:
                        n = await via_b.namespace("COUNTER").get_by_name(name).increment()
                        break
                    except Exception:  # b cannot open a's files until a let them go
                        await trio.sleep(0.1)
                assert n == 11  # nothing lost, nothing applied twice
        now_held = await claims(etcd)
        taken = [key for key in a_keys if now_held.get(key) == "b"]
        assert taken  # some of a's objects now live on b
        async with httpx.AsyncClient() as http:  # force a to serve one of them itself
            name = next(n for n in names if claim_of(n) in taken)
            refused = await http.post(
                f"{a.base_url}/default/COUNTER/{name}/rpc/increment", json={},
                headers={"dobox-forwarded-by": "test"})
        assert refused.status_code == 503
        assert refused.json()["error"]["type"] == "NotOwnerError"
        assert refused.headers["dobox-owner"] == b.base_url
        assert await via_a.namespace("COUNTER").get_by_name(name).value() == 11  # forwarded


def claim_of(name: str) -> str:
    object_id = id_from_name(namespace_key("default/COUNTER"), name)
    return f"dobox/objects/default/COUNTER/{object_id.hex}"


async def test_a_stopped_node_drains_then_leaves_and_its_objects_move_at_once(
    nodes: list[ServerProcess], etcd: EtcdProcess
) -> None:
    a, b = nodes
    async with Client(b.base_url, retry=RetryPolicy(attempts=1)) as via_b:
        for i in range(200):  # many objects closing while the node leaves
            await via_b.namespace("COUNTER").get_by_name(f"s{i}").increment()
        assert "a" in set((await claims(etcd)).values())
        assert await a.terminate() == 0  # SIGTERM: drained, committed, lease revoked
        assert set((await claims(etcd)).values()) == {"b"}  # no waiting for a TTL
        for i in range(0, 200, 10):
            assert await via_b.namespace("COUNTER").get_by_name(f"s{i}").increment() == 2


async def test_a_relayed_answer_is_the_owners_with_one_set_of_server_headers(
    nodes: list[ServerProcess], etcd: EtcdProcess
) -> None:
    a, b = nodes
    async with httpx.AsyncClient() as http:
        for i in range(6):  # some of these are forwarded: compare both kinds of answer
            for server in (a, b):
                response = await http.post(
                    f"{server.base_url}/default/WEB/r{i}/x?q=1", content=b"body",
                    headers={"x-test": "kept"})
                assert response.status_code == 201
                assert response.json() == {
                    "method": "POST", "path": "/x", "url": "http://dobox/x?q=1", "query": "q=1",
                    "header": "kept", "body": "body", "repeated": []}
                names = [name.lower() for name, _ in response.headers.raw]
                assert names.count(b"date") == names.count(b"server") == 1
                assert names.count(b"content-length") == 1
    assert await metric(a, "dobox_forwards_total") + await metric(b, "dobox_forwards_total") == 6


async def test_a_client_given_every_node_goes_on_when_one_dies(
    nodes: list[ServerProcess],
) -> None:
    a, b = nodes
    async with Client([a.base_url, b.base_url], retry=RetryPolicy(attempts=1)) as client:
        counters = [client.namespace("COUNTER").get_by_name(f"f{i}") for i in range(6)]
        for counter in counters:
            assert await counter.increment() == 1
        a.kill()  # the client's current node: the next calls cannot connect, nothing sent
        with trio.fail_after(10 * TTL):
            for counter in counters:
                while True:  # b answers; a's objects once their claims expire
                    try:
                        assert await counter.increment() == 2
                        break
                    except RemoteError as exc:  # 503 while a's claim lingers
                        if not exc.retryable:
                            raise
                        await trio.sleep(0.1)


async def test_websockets_and_live_queries_take_the_hop(
    nodes: list[ServerProcess], etcd: EtcdProcess
) -> None:
    a, b = nodes
    async with Client(a.base_url) as via_a, Client(b.base_url) as via_b:
        for i in range(6):  # some rooms live on a, some on b: each is opened through both
            name = f"room{i}"
            room_a, room_b = (c.namespace("ROOM").get_by_name(name) for c in (via_a, via_b))
            async with room_a.websocket("/chat?user=ann") as ann, \
                    room_b.websocket("/chat?user=bob") as bob:
                await ann.send("whoami")
                assert await ann.receive() == "ann (start 1)"
                await bob.send("hello")  # stored, then sent to every socket of the room
                assert await ann.receive() == "hello"
                assert await bob.receive() == "hello"
                await bob.send("bye")  # the object closes bob's socket: 4000 crosses the hop
                with pytest.raises(WebSocketClosed) as closed:
                    await bob.receive()
                assert (closed.value.code, closed.value.reason) == (4000, "bye")
            assert await room_b.call("last") == "hello"
            with pytest.raises(WebSocketRejected) as rejected:  # a refusal crosses the hop too
                async with via_b.namespace("WEB").get_by_name(name).websocket():
                    pass
            assert rejected.value.status == 201
        board = via_b.namespace("BOARD").get_by_name("team")
        await via_a.namespace("BOARD").get_by_name("team").add(1, "first", True)
        with trio.fail_after(30):
            async with board.subscribe("notes", order_by="id") as feed:
                snapshot = await feed.__anext__()
                assert snapshot["records"] == [{"id": 1, "text": "first", "pinned": True}]
                await via_a.namespace("BOARD").get_by_name("team").add(2, "second")
                change = await feed.__anext__()
                assert change["inserted"] == [{"id": 2, "text": "second", "pinned": False}]
    assert await metric(a, "dobox_forwards_total") + await metric(b, "dobox_forwards_total") > 6


async def test_a_client_given_every_node_sends_each_objects_calls_to_its_node(
    nodes: list[ServerProcess], etcd: EtcdProcess
) -> None:
    """Each answer names the node that served the object (``dobox-node``); a client given
    every node sends that object's next calls, RPC and fetch, there: no hop."""
    a, b = nodes
    async with Client([a.base_url, b.base_url]) as client:
        counters = [client.namespace("COUNTER").get_by_name(f"home{i}") for i in range(10)]
        pages = [client.namespace("WEB").get_by_name(f"home{i}") for i in range(10)]
        for counter, page in zip(counters, pages, strict=True):  # these may take the hop
            assert await counter.increment() == 1
            assert (await page.fetch(httpx.Request("POST", "http://o/x"))).status_code == 201
        assert set((await claims(etcd)).values()) == {"a", "b"}  # odds of not: 2^-19
        forwarded = await metric(a, "dobox_forwards_total") + await metric(
            b, "dobox_forwards_total")
        for counter, page in zip(counters, pages, strict=True):
            assert await counter.increment() == 2
            assert (await page.fetch(httpx.Request("POST", "http://o/x"))).status_code == 201
        assert await metric(a, "dobox_forwards_total") + await metric(
            b, "dobox_forwards_total") == forwarded
    async with httpx.AsyncClient() as http:  # what the client reads: the owner's address
        for server in (a, b):
            answer = await http.post(f"{server.base_url}/default/COUNTER/home0/rpc/value",
                                     json={})
            owner = a if (await claims(etcd))[claim_of("home0")] == "a" else b
            assert answer.headers.get_list("dobox-node") == [owner.base_url]


async def test_a_node_restarted_at_once_waits_out_the_claims_of_its_earlier_run(
    nodes: list[ServerProcess], etcd: EtcdProcess
) -> None:
    """Its earlier run's claims outlive it by up to a TTL: calls for those objects are
    refused as retryable, saying so, until the claims expire; then it serves them."""
    a, _ = nodes
    async with Client(a.base_url, retry=RetryPolicy(attempts=1)) as via_a:
        names = [f"r{i}" for i in range(10)]
        for name in names:
            await via_a.namespace("COUNTER").get_by_name(name).increment()
        mine = [name for name in names if (await claims(etcd)).get(claim_of(name)) == "a"]
        assert mine
        a.kill()
        await a.restart()  # usually well within the TTL: the old claims are still there
        refusals = []
        with trio.fail_after(10 * TTL):
            while True:
                try:
                    assert await via_a.namespace("COUNTER").get_by_name(mine[0]).value() == 1
                    break
                except RemoteError as exc:
                    refusals.append(exc)
                    await trio.sleep(0.1)
        assert all(exc.retryable and "earlier run of node a" in str(exc) for exc in refusals)
