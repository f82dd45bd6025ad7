"""The etcd client and a node's lease and claims, against a real etcd."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import trio

from actors import OverloadedError
from harness import EtcdProcess, open_etcd
from runtime.cluster import ClusterNode, Etcd, EtcdError, NotOwnerError


@pytest.fixture
async def etcd_server(tmp_path: Path) -> AsyncIterator[EtcdProcess]:
    async with open_etcd(tmp_path / "etcd") as server:
        yield server


@pytest.fixture
async def etcd(etcd_server: EtcdProcess) -> AsyncIterator[Etcd]:
    client = Etcd([etcd_server.endpoint])
    try:
        yield client
    finally:
        await client.aclose()


async def test_keys_prefixes_and_the_create_transaction(etcd: Etcd) -> None:
    assert await etcd.get("dobox/x") is None
    revision = await etcd.put("dobox/x", b"one")
    got = await etcd.get("dobox/x")
    assert got is not None
    assert (got.value, got.create_revision, got.mod_revision) == (b"one", revision, revision)
    await etcd.put("dobox/y", b"two")
    await etcd.put("dobox0", b"outside the prefix")
    assert [kv.key for kv in await etcd.get_prefix("dobox/")] == ["dobox/x", "dobox/y"]
    lease = await etcd.grant(10)
    created, first = await etcd.create("dobox/claim", b"a", lease=lease)
    assert created
    assert first.lease == lease
    created, second = await etcd.create("dobox/claim", b"b", lease=lease)
    assert not created
    assert (second.value, second.create_revision) == (b"a", first.create_revision)
    assert not await etcd.delete_if_created_at("dobox/claim", first.create_revision - 1)
    assert await etcd.delete_if_created_at("dobox/claim", first.create_revision)
    assert await etcd.get("dobox/claim") is None


async def test_a_lease_takes_its_keys_with_it(etcd: Etcd) -> None:
    lease = await etcd.grant(10)
    await etcd.put("dobox/leased", b"v", lease=lease)
    assert await etcd.keepalive(lease) == 10
    await etcd.revoke(lease)
    assert await etcd.get("dobox/leased") is None
    assert await etcd.keepalive(lease) is None  # answered 200, without a TTL
    await etcd.revoke(lease)  # revoking twice is not an error


async def test_endpoints_fail_over_and_say_when_none_answers(etcd_server: EtcdProcess) -> None:
    dead = "http://127.0.0.1:9"  # discard: nothing listens
    async with trio.open_nursery():
        client = Etcd([dead, etcd_server.endpoint])
        try:
            await client.put("dobox/k", b"v")
            assert client.endpoints[client._current] == etcd_server.endpoint
        finally:
            await client.aclose()
        nobody = Etcd([dead])
        try:
            with pytest.raises(EtcdError, match="no etcd endpoint answered"):
                await nobody.get("dobox/k")
        finally:
            await nobody.aclose()


async def test_one_claim_per_object_across_nodes_with_growing_tokens(etcd: Etcd) -> None:
    a = ClusterNode(etcd, name="a", address="http://127.0.0.1:1", ttl=5)
    b = ClusterNode(etcd, name="b", address="http://127.0.0.1:2", ttl=5)
    async with trio.open_nursery() as nursery:
        await nursery.start(a.run)
        await nursery.start(b.run)
        assert {m.name for m in await a.members()} == {"a", "b"}
        on_a, on_b = a.coordinator("acme/"), b.coordinator("acme/")
        first = await on_a.acquire("COUNTER/abc")
        assert on_a.owns("COUNTER/abc")
        with pytest.raises(NotOwnerError) as elsewhere:
            await on_b.acquire("COUNTER/abc")
        assert (elsewhere.value.owner, elsewhere.value.address) == ("a", "http://127.0.0.1:1")
        other_tenant = await b.coordinator("globex/").acquire("COUNTER/abc")  # another key
        on_a.release(first)
        assert not on_a.owns("COUNTER/abc")
        with trio.fail_after(5):
            while True:  # the release is on its way to etcd
                try:
                    second = await on_b.acquire("COUNTER/abc")
                    break
                except NotOwnerError:
                    await trio.sleep(0.01)
        assert second.fencing_token > first.fencing_token
        assert other_tenant.fencing_token != second.fencing_token
        nursery.cancel_scope.cancel()
    # Leaving revokes the leases: every claim is gone with them.
    assert await etcd.get_prefix("dobox/") == []


async def test_a_node_cut_off_from_etcd_stops_owning_before_its_claims_expire(
    etcd_server: EtcdProcess, tmp_path: Path
) -> None:
    """The node's deadline passes before etcd lets the claim go: no moment with two owners.
    Once etcd is back, the node joins again with a new lease and claims with new tokens."""
    etcd = Etcd([etcd_server.endpoint])
    watcher = Etcd([etcd_server.endpoint])
    node = ClusterNode(etcd, name="a", address="http://127.0.0.1:1", ttl=2, margin=0.5)
    losses: list[str] = []
    node.on_lost.append(losses.append)
    try:
        async with trio.open_nursery() as nursery:
            await nursery.start(node.run)
            coordinator = node.coordinator()
            lease = await coordinator.acquire("COUNTER/abc")
            await etcd_server.stop()  # a partition, as this node sees it
            with trio.fail_after(10):
                while coordinator.owns("COUNTER/abc"):  # noqa: ASYNC110  # the deadline passes
                    await trio.sleep(0.05)
            assert losses
            with pytest.raises(NotOwnerError):
                await coordinator.acquire("COUNTER/other")
            await etcd_server.start()
            # etcd restores a lease to its full TTL when it restarts: the old claim lingers
            # until it expires there; the node does not treat it as its own meanwhile.
            with trio.fail_after(20):
                while await watcher.get("dobox/objects/COUNTER/abc") is not None:  # noqa: ASYNC110
                    await trio.sleep(0.1)  # etcd expires it on its own clock
                while not node.holds_lease():  # noqa: ASYNC110  # it joins again
                    await trio.sleep(0.05)
            assert node.joins >= 2  # more if etcd, just restarted, was slow to answer
            assert not coordinator.owns("COUNTER/abc")
            again = await coordinator.acquire("COUNTER/abc")
            assert again.fencing_token > lease.fencing_token
            nursery.cancel_scope.cancel()
    finally:
        await etcd.aclose()
        await watcher.aclose()


async def test_claims_refused_while_etcd_is_down_are_retryable(
    etcd_server: EtcdProcess,
) -> None:
    etcd = Etcd([etcd_server.endpoint], timeout=0.5)
    node = ClusterNode(etcd, name="a", address="http://127.0.0.1:1", ttl=10)
    try:
        async with trio.open_nursery() as nursery:
            await nursery.start(node.run)
            await etcd_server.stop()
            with pytest.raises(OverloadedError, match="cannot be reached"):
                await node.coordinator().acquire("COUNTER/abc")
            await etcd_server.start()
            assert (await node.coordinator().acquire("COUNTER/abc")).fencing_token > 0
            nursery.cancel_scope.cancel()
    finally:
        await etcd.aclose()
