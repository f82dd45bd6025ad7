"""The coordinator interface and its one-process case."""

from __future__ import annotations

from pathlib import Path

import attrs
import pytest

from actors import ObjectResetError
from runtime import Coordinator, Lease, SingleProcessCoordinator, open_runtime
from runtime.cluster import NotOwnerError
from tests.helpers import Counter


async def test_one_owner_at_a_time_with_increasing_fencing_tokens() -> None:
    coordinator: Coordinator = SingleProcessCoordinator()
    first = await coordinator.acquire("ROOM/ab")
    assert coordinator.owns("ROOM/ab")
    with pytest.raises(RuntimeError, match="already active in this process"):
        await coordinator.acquire("ROOM/ab")
    other = await coordinator.acquire("ROOM/cd")
    coordinator.release(first)
    assert not coordinator.owns("ROOM/ab")
    second = await coordinator.acquire("ROOM/ab")
    assert second.fencing_token > first.fencing_token > 0
    assert other.fencing_token != first.fencing_token


async def test_releasing_a_stale_lease_does_not_release_the_current_one() -> None:
    coordinator = SingleProcessCoordinator()
    stale = await coordinator.acquire("ROOM/ab")
    coordinator.release(stale)
    current = await coordinator.acquire("ROOM/ab")
    coordinator.release(stale)  # a late release from the old owner
    assert coordinator.owns("ROOM/ab")
    coordinator.release(current)
    assert coordinator.owned == 0
    assert isinstance(current, Lease)


@attrs.define
class Elsewhere(SingleProcessCoordinator):
    """Refuses some keys, as a cluster coordinator does for objects another node holds."""

    refused: set[str] = attrs.field(factory=set)

    async def acquire(self, key: str) -> Lease:
        if key in self.refused:
            raise NotOwnerError(f"{key} is active on node b", owner="b",
                                address="http://127.0.0.1:2")
        return await super().acquire(key)


async def test_a_refused_claim_fails_the_call_and_activates_nothing(tmp_path: Path) -> None:
    coordinator = Elsewhere()
    async with open_runtime(tmp_path, {"COUNTER": Counter}, coordinator=coordinator) as rt:
        stub = rt.namespace("COUNTER").get_by_name("a")
        coordinator.refused.add(f"COUNTER/{stub.id.hex}")
        with pytest.raises(NotOwnerError) as refused:
            await stub.increment()
        assert refused.value.owner == "b"
        assert rt.statistics().live_objects == 0
        assert coordinator.owned == 0
        coordinator.refused.clear()  # the other node let it go
        assert await stub.increment() == 1


@attrs.define
class Lapsing(SingleProcessCoordinator):
    """Owns nothing any more once ``lapsed``, as a cluster node past its lease deadline."""

    lapsed: bool = False

    def owns(self, key: str) -> bool:
        return not self.lapsed and super().owns(key)


async def test_a_node_that_lost_ownership_acknowledges_no_write(tmp_path: Path) -> None:
    coordinator = Lapsing()
    async with open_runtime(tmp_path, {"COUNTER": Counter}, coordinator=coordinator) as rt:
        stub = rt.namespace("COUNTER").get_by_name("a")
        assert await stub.increment() == 1
        coordinator.lapsed = True
        with pytest.raises(ObjectResetError, match="no longer owns") as refused:
            await stub.increment()
        assert refused.value.retryable
        coordinator.lapsed = False
        assert await stub.value() == 1  # the refused write was never committed
        assert rt.lowlevel.reset_all("this node lost its lease") == 1
        assert rt.statistics().live_objects == 0
        assert await stub.increment() == 2
