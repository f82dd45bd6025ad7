"""Nodes on separate data directories (separate machines, as far as the objects can tell),
each object's file replicated with Litestream: a node's loss loses no acknowledged write
under ``--replication sync``, and a stale owner's replica is never read again."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
import trio

from actors._ids import id_from_name, namespace_key
from harness import EtcdProcess, ServerProcess, open_etcd
from runtime import Client, RetryPolicy
from runtime.cluster import Etcd
from tests.cluster.test_nodes import all_running, claims
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
    server.environment["DOBOX_LOG_LEVEL"] = "debug"  # claims, forwards, restores: to the log
    return server


@pytest.fixture
async def etcd(tmp_path: Path) -> AsyncIterator[EtcdProcess]:
    async with open_etcd(tmp_path / "etcd") as server:
        yield server


@pytest.fixture
async def nodes(tmp_path: Path, etcd: EtcdProcess) -> AsyncIterator[list[ServerProcess]]:
    async with all_running([replicated_node(tmp_path, etcd, name)
                            for name in ("a", "b")]) as started:
        await until_placement_sees_both(started[0], etcd)
        yield started


async def until_placement_sees_both(first: ServerProcess, etcd: EtcdProcess) -> None:
    """The first node learns of the second within TTL/3: until then it places every new
    object on itself. Activate throwaway objects through it until one lands on the other."""
    async with Client(first.base_url) as client:
        with trio.fail_after(10 * TTL):
            for i in range(10_000):
                await client.namespace("COUNTER").get_by_name(f"probe{i}").increment()
                if "b" in set((await claims(etcd)).values()):
                    return


async def lose_machine(node: ServerProcess) -> None:
    """SIGKILL the node's Litestream, then the node: a machine lost leaves no daemon behind
    to ship a last sync (killed alone, a node's daemon gets SIGTERM and does), nor to write
    into a data directory being deleted."""
    assert node.pid is not None
    children = await trio.Path(f"/proc/{node.pid}/task/{node.pid}/children").read_text()
    for child in children.split():
        with contextlib.suppress(ProcessLookupError):
            os.kill(int(child), signal.SIGKILL)
    node.kill()


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
                await lose_machine(a)  # its processes and its disk
                shutil.rmtree(a.data_dir)
        assert not a.data_dir.exists()
        for name in names:
            ledger = client.namespace("LEDGER").get_by_name(name)
            entries = await ledger.entries()
            assert set(acknowledged[name]) <= set(entries), name  # nothing acknowledged lost
            assert await ledger.append("last") == len(entries) + 1  # each write applied once
    assert b.log is not None
    said = b.log.read_text()  # --log-level debug (DOBOX_LOG_LEVEL): how the objects moved
    assert "INFO dobox.cluster: node b restored" in said
    assert "DEBUG dobox.cluster: node b claimed" in said


async def test_a_stale_owner_is_refused_and_its_replica_never_read_again(
    nodes: list[ServerProcess], etcd: EtcdProcess
) -> None:
    """Pause the owner past its lease: the other node restores the object from the owner's
    replica and continues it in a replica of its own. Resumed, the stale owner refuses to
    serve the object; and when the new owner is lost in turn, the old one restores the new
    owner's history instead of trusting its own older copy."""
    a, b = nodes
    async with Client(a.base_url, retry=RetryPolicy(attempts=1)) as via_a, \
            Client(b.base_url, retry=RetryPolicy(attempts=1)) as via_b:
        name = await an_object_on(via_a, etcd, "a")
        for i in range(5):
            await via_a.namespace("LEDGER").get_by_name(name).append(f"before{i}")
        first = await pointer(etcd, name)
        assert first["node"] == "a"
        a.pause()
        try:
            with trio.fail_after(10 * TTL):  # until etcd expires a's lease
                while _ledger_claim(name) in await claims(etcd):  # noqa: ASYNC110
                    await trio.sleep(0.1)
            ledger = via_b.namespace("LEDGER").get_by_name(name)
            for i in range(5):
                await ledger.append(f"after{i}")
        finally:
            a.resume()
        second = await pointer(etcd, name)
        assert second["node"] == "b"
        assert int(str(second["token"])) > int(str(first["token"]))
        async with httpx.AsyncClient() as http:  # a must not serve it itself any more
            refused = await http.post(
                f"{a.base_url}/default/LEDGER/{name}/rpc/append", json={"args": ["stale"]},
                headers={"dobox-forwarded-by": "test"})
        assert refused.status_code == 503
        assert refused.json()["error"]["type"] == "NotOwnerError"
        await lose_machine(b)  # the new owner's machine is lost
        shutil.rmtree(b.data_dir)
        with trio.fail_after(10 * TTL):
            while True:  # a takes the object back once b's claim has expired
                try:
                    entries = await via_a.namespace("LEDGER").get_by_name(name).entries()
                    break
                except Exception:
                    await trio.sleep(0.1)
    assert set(entries) == {f"before{i}" for i in range(5)} | {f"after{i}" for i in range(5)}
    assert "stale" not in entries
    assert (await pointer(etcd, name))["node"] == "a"


async def an_object_on(client: Client, etcd: EtcdProcess, node: str) -> str:
    """The name of a ledger that lives on ``node`` (activated through ``client``)."""
    for i in range(100):
        name = f"x{i}"
        await client.namespace("LEDGER").get_by_name(name).entries()
        if (await claims(etcd)).get(_ledger_claim(name)) == node:
            return name
    raise AssertionError(f"no object was placed on {node}")


def _ledger_claim(name: str) -> str:
    return f"dobox/objects/default/LEDGER/{_ledger_hex(name)}"


async def test_a_node_whose_litestream_dies_acknowledges_no_more_writes(
    tmp_path: Path, etcd: EtcdProcess
) -> None:
    """Without its daemon, an async node would acknowledge writes that no replica gets: it
    must own nothing from the moment the daemon exits."""
    node = replicated_node(tmp_path, etcd, "a", mode="async")
    await node.start()
    try:
        async with Client(node.base_url, retry=RetryPolicy(attempts=1)) as client:
            ledger = client.namespace("LEDGER").get_by_name("l")
            assert await ledger.append("before") == 1
            assert node.pid is not None
            children = (await trio.Path(f"/proc/{node.pid}/task/{node.pid}/children")
                        .read_text()).split()
            assert len(children) == 1  # the daemon
            os.kill(int(children[0]), signal.SIGKILL)
            with trio.fail_after(10 * TTL):
                while True:  # until the node notices (at once: it waits on the daemon)
                    try:
                        await ledger.append("after")
                    except Exception:
                        break
                    await trio.sleep(0.01)
            for _ in range(3):  # and it stays so
                with pytest.raises(Exception):  # noqa: B017, PT011  # refused or gone
                    await ledger.append("refused")
    finally:
        if node.running:
            await node.terminate()
