"""The coordinator interface and its one-process case."""

from __future__ import annotations

import pytest

from runtime import Coordinator, Lease, SingleProcessCoordinator


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
