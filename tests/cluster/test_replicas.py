"""Nodes on separate data directories (separate machines, as far as the objects can tell),
each object's file replicated with Litestream: a node's loss loses no acknowledged write
under ``--replication sync``, and a stale owner's replica is never read again."""

from __future__ import annotations

import json
import shutil
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import trio

from actors._ids import id_from_name, namespace_key
from harness import EtcdProcess, ServerProcess, open_etcd
from runtime import Client, RetryPolicy
from runtime.cluster import Etcd
from tests.cluster.test_nodes import claims
from tests.runtime.test_server import OBJECTS, ROOT

TTL = 3


def replicated_node(tmp_path: Path, etcd: EtcdProcess, name: str,
                    mode: str = "sync") -> ServerProcess:
    server = ServerProcess(tmp_path / f"data-{name}", OBJECTS, cwd=ROOT,
                           log=tmp_path / f"{name}.log")
    server.options = ["--cluster", etcd.endpoint, "--node", name,
                      "--advertise", server.base_url, "--lease-ttl", str(TTL),
                      "--replica", (tmp_path / "replicas").as_uri(), "--replication", mode]
    server.environment["DOBOX_TEST_NODE"] = name
    return server


@pytest.fixture
async def etcd(tmp_path: Path) -> AsyncIterator[EtcdProcess]:
    async with open_etcd(tmp_path / "etcd") as server:
        yield server


@pytest.fixture
async def nodes(tmp_path: Path, etcd: EtcdProcess) -> AsyncIterator[list[ServerProcess]]:
    started = [replicated_node(tmp_path, etcd, name) for name in ("a", "b")]
    try:
        for server in started:
            await server.start()
        await until_placement_sees_both(started[0], etcd)
        yield started
    finally:
        for server in started:
            if server.running:
                await server.terminate()


async def until_placement_sees_both(first: ServerProcess, etcd: EtcdProcess) -> None:
    """The first node learns of the second within TTL/3: until then it places every new
    object on itself. Activate throwaway objects through it until one lands on the other."""
    async with Client(first.base_url) as client:
        with trio.fail_after(10 * TTL):
            for i in range(10_000):
                await client.namespace("COUNTER").get_by_name(f"probe{i}").increment()
                if "b" in set((await claims(etcd)).values()):
                    return


def _ledger_hex(name: str) -> str:
    return id_from_name(namespace_key("default/LEDGER"), name).hex


async def pointer(etcd: EtcdProcess, name: str) -> dict[str, object]:
    client = Etcd([etcd.endpoint])
    try:
        kv = await client.get(f"dobox/replicas/default/LEDGER/{_ledger_hex(name)}")
    finally:
        await client.aclose()
    assert kv is not None
    found: dict[str, object] = json.loads(kv.value)
    return found


async def append_until_acknowledged(client: Client, name: str, entry: str,
                                    acknowledged: list[str]) -> None:
    """Append ``entry``; on a failure, append a new entry instead (never the same one twice:
    a failed call's outcome may be unknown)."""
    ledger = client.namespace("LEDGER").get_by_name(name)
    attempt = 0
    while True:
        try:
            await ledger.append(f"{entry}.{attempt}")
        except Exception:  # the node died, or the object is moving: try again, anew
            attempt += 1
            await trio.sleep(0.05)
            continue
        acknowledged.append(f"{entry}.{attempt}")
        return


async def test_sync_replication_loses_no_acknowledged_write_when_a_machine_is_lost(
    nodes: list[ServerProcess], etcd: EtcdProcess
) -> None:
    """SIGKILL a node during writes and delete its data directory: the other node restores
    each object from its replica, with every acknowledged write, each applied once."""
    a, b = nodes
    names = [f"m{i}" for i in range(6)]  # some live on a, some on b
    acknowledged: dict[str, list[str]] = {name: [] for name in names}
    async with Client([a.base_url, b.base_url], retry=RetryPolicy(attempts=1)) as client:

        async def writer(name: str) -> None:
            for i in range(40):
                await append_until_acknowledged(client, name, f"w{i}", acknowledged[name])

        with trio.fail_after(20 * TTL):
            async with trio.open_nursery() as nursery:
                for name in names:
                    nursery.start_soon(writer, name)
                while min(len(done) for done in acknowledged.values()) < 10:  # noqa: ASYNC110
                    await trio.sleep(0.01)
                held = await claims(etcd)
                assert {"a", "b"} <= set(held.values())  # odds of not: 2^-5
                a.kill()  # the machine is lost: its process and its disk
                shutil.rmtree(a.data_dir)
        assert not a.data_dir.exists()
        for name in names:
            ledger = client.namespace("LEDGER").get_by_name(name)
            entries = await ledger.entries()
            assert set(acknowledged[name]) <= set(entries), name  # nothing acknowledged lost
            assert await ledger.append("last") == len(entries) + 1  # each write applied once
