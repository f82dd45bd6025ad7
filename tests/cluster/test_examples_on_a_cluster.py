"""The examples, unchanged, served by two replicated nodes: each scenario reaches its objects
through both nodes, so that wherever an object lives, one side's calls, WebSockets or live
queries take the hop."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import trio

from harness import EtcdProcess, ServerProcess, open_etcd
from runtime import Client
from tests.cluster.test_nodes import all_running
from tests.cluster.test_replicas import TTL
from tests.examples.test_examples import ROOT


@asynccontextmanager
async def two_nodes(tmp_path: Path, objects: str, options: tuple[str, ...] = (),
                    tokens: Path | None = None) -> AsyncIterator[list[ServerProcess]]:
    async with open_etcd(tmp_path / "etcd") as etcd, all_running(
            [_node(tmp_path, etcd, name, objects, options, tokens) for name in "ab"]) as nodes:
        yield nodes


def _node(tmp_path: Path, etcd: EtcdProcess, name: str, objects: str,
          options: tuple[str, ...], tokens: Path | None) -> ServerProcess:
    server = ServerProcess(tmp_path / f"data-{name}", objects, cwd=ROOT, tokens=tokens,
                           log=tmp_path / f"{name}.log")
    server.options = ["--cluster", etcd.endpoint, "--node", name,
                      "--advertise", server.base_url, "--lease-ttl", str(TTL),
                      "--replica", (tmp_path / "replicas").as_uri(), *options]
    return server


async def test_counter(tmp_path: Path) -> None:
    async with two_nodes(tmp_path, "examples.counter.app:OBJECTS") as (a, b), \
            Client(a.base_url) as via_a, Client(b.base_url) as via_b:
        for i in range(10):  # ten counters: some live on each node
            name = f"visits{i}"
            assert await via_a.namespace("COUNTER").get_by_name(name).increment(2) == 2
            assert await via_b.namespace("COUNTER").get_by_name(name).increment() == 3
            async with httpx.AsyncClient() as http:
                for node in (a, b):
                    answer = await http.get(f"{node.base_url}/default/COUNTER/{name}/")
                    assert answer.text == "3\n"


async def test_rate_limiter(tmp_path: Path) -> None:
    async with two_nodes(tmp_path, "examples.rate_limiter.app:OBJECTS") as (a, b), \
            Client(a.base_url) as via_a, Client(b.base_url) as via_b:
        for key in ("client-7", "client-8"):
            answers = [await (via_a, via_b)[i % 2].namespace("LIMITER").get_by_name(key).take()
                       for i in range(11)]
            assert [answer["allowed"] for answer in answers] == [True] * 10 + [False]


async def test_chat_room_hibernating_across_the_hop(tmp_path: Path) -> None:
    async with two_nodes(tmp_path, "examples.chat_room.app:OBJECTS",
                         options=("--idle-timeout", "0.5")) as (a, b), \
            Client(a.base_url) as via_a, Client(b.base_url) as via_b:
        for room_name in ("lobby", "kitchen"):  # both cross the hop one way or the other
            async with via_a.namespace("CHAT").get_by_name(room_name).websocket(
                    "/ws?name=ann") as ann:
                assert await ann.receive() == "* ann joined"
                room = via_b.namespace("CHAT").get_by_name(room_name)
                async with room.websocket("/ws?name=bob") as bob:
                    assert await bob.receive() == "* bob joined"
                    assert await ann.receive() == "* bob joined"
                    await ann.send("hello")
                    assert await ann.receive() == await bob.receive() == "ann: hello"
                    await trio.sleep(1.5)  # the room hibernates (idle 0.5 s) on its node
                    await ann.send("ping")
                    assert await ann.receive() == "pong"
                    await bob.send("still here")  # wakes it: names come from attachments
                    assert await ann.receive() == await bob.receive() == "bob: still here"
                    assert sorted(await room.members()) == ["ann", "bob"]
                assert await ann.receive() == "* bob left"


async def test_todos_with_a_live_view_per_tenant(tmp_path: Path) -> None:
    tokens = tmp_path / "tokens.toml"
    tokens.write_text('[tenants.acme]\ntoken = "a"\n[tenants.globex]\ntoken = "g"\n')
    async with two_nodes(tmp_path, "examples.todos.app:OBJECTS", tokens=tokens) as (a, b), \
            Client(a.base_url, tenant="acme", token="a") as acme_a, \
            Client(b.base_url, tenant="acme", token="a") as acme_b, \
            Client(b.base_url, tenant="globex", token="g") as globex:
        for list_name in ("home", "work", "garden"):
            writer = acme_a.namespace("TODOS").get_by_name(list_name)
            watched = acme_b.namespace("TODOS").get_by_name(list_name)
            milk = await writer.add("buy milk")
            async with watched.subscribe("todos", order_by="created") as feed:
                snapshot = await feed.__anext__()
                assert [t["title"] for t in snapshot["records"]] == ["buy milk"]
                await globex.namespace("TODOS").get_by_name(list_name).add("another tenant's")
                await writer.add("bake bread")
                change = await feed.__anext__()
                assert [t["title"] for t in change["inserted"]] == ["bake bread"]
                await writer.set_done(milk["id"])
                change = await feed.__anext__()
                assert [t["title"] for t in change["updated"]] == ["buy milk"]
