"""Live queries on a storage: a snapshot, then one change per commit that changes the
subset, never for uncommitted or rolled-back writes; bounded queues resync."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import trio

import storage._collections._collection
from storage import (
    Change,
    Collection,
    Insert,
    Snapshot,
    Storage,
    Subscription,
    Update,
    collection,
    field,
    open_storage,
)

ITEMS = collection("items")


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Storage]:
    with open_storage(tmp_path / "object.sqlite", durability="off") as opened:
        opened.prepare_collection(ITEMS)
        opened.commit()
        yield opened


@pytest.fixture
def items(store: Storage) -> Collection[Any]:
    return store.collection(ITEMS)


def received(subscription: Subscription) -> list[object]:
    """The messages queued for ``subscription`` so far."""
    return list(subscription._queue)


async def test_a_snapshot_then_a_change_per_commit(store: Storage,
                                                   items: Collection[Any]) -> None:
    items.insert({"id": 1, "n": 1})
    store.commit()
    feed = items.subscribe(order_by="id")
    assert await feed.__anext__() == Snapshot([{"id": 1, "n": 1}], 1)
    items.insert({"id": 2, "n": 2})
    items.update(1, {"n": 10})
    assert received(feed) == []  # nothing leaves before the commit
    store.commit()
    assert await feed.__anext__() == Change(3, [{"id": 2, "n": 2}], [{"id": 1, "n": 10}], [])
    items.delete(2)
    store.commit()
    assert await feed.__anext__() == Change(4, [], [], [2])
    store.commit()  # nothing written: no message
    assert received(feed) == []


async def test_rolled_back_writes_are_never_seen(store: Storage,
                                                 items: Collection[Any]) -> None:
    feed = items.subscribe()
    assert isinstance(await feed.__anext__(), Snapshot)
    items.insert({"id": 1})
    store.rollback()
    store.commit()
    with pytest.raises(KeyError):
        store.transaction_sync(lambda: (items.insert({"id": 2}), {}["boom"]))
    items.insert({"id": 3})
    store.commit()
    assert received(feed) == [Change(1, [{"id": 3}], [], [])]


async def test_records_move_in_and_out_of_a_filtered_subset(
        store: Storage, items: Collection[Any]) -> None:
    items.apply([Insert({"id": 1, "done": False}), Insert({"id": 2, "done": True})])
    store.commit()
    feed = items.subscribe(field("done") == False)  # noqa: E712
    assert (await feed.__anext__()).records == [{"id": 1, "done": False}]
    items.apply([Update(1, {"done": True}), Update(2, {"done": False})])
    items.insert({"id": 3, "done": True})  # outside the subset: not mentioned
    store.commit()
    assert await feed.__anext__() == Change(3, [{"id": 2, "done": False}], [], [1])


async def test_a_limited_window_follows_its_order(store: Storage,
                                                  items: Collection[Any]) -> None:
    items.apply([Insert({"id": i, "rank": i * 10}) for i in range(1, 4)])
    store.commit()
    feed = items.subscribe(order_by="rank", limit=2)
    assert [r["id"] for r in (await feed.__anext__()).records] == [1, 2]
    items.insert({"id": 9, "rank": 5})  # sorts first: pushes 2 out of the window
    store.commit()
    assert await feed.__anext__() == Change(2, [{"id": 9, "rank": 5}], [], [2])


async def test_a_subscription_made_with_uncommitted_writes_waits_for_the_commit(
        store: Storage, items: Collection[Any]) -> None:
    items.insert({"id": 1})
    feed = items.subscribe()
    assert received(feed) == []
    store.commit()
    assert received(feed) == [Snapshot([{"id": 1}], 1)]


async def test_a_slow_subscriber_is_resynced_not_buffered(
        store: Storage, items: Collection[Any]) -> None:
    feed = items.subscribe(max_queued=3)
    for i in range(10):
        items.insert({"id": i})
        store.commit()
    queued = received(feed)
    assert len(queued) <= 3
    assert feed.resyncs >= 1
    assert any(isinstance(m, Snapshot) and m.resync for m in queued)
    # Replaying what is queued gives the subset as it is.
    state: dict[object, object] = {}
    for message in queued:
        if isinstance(message, Snapshot):
            state = {r["id"]: r for r in message.records}
        else:
            assert isinstance(message, Change)
            state.update({r["id"]: r for r in message.inserted + message.updated})
    assert sorted(state) == list(range(10))


async def test_a_lost_history_resyncs_subscribers(
        store: Storage, items: Collection[Any], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(storage._collections._collection, "MAX_TOMBSTONES", 1)
    items.apply([Insert({"id": i}) for i in range(3)])
    store.commit()
    feed = items.subscribe()
    await feed.__anext__()
    items.delete(0)
    items.delete(1)  # prunes the first tombstone: the feed's resume point is gone
    store.commit()
    assert received(feed) == [Snapshot([{"id": 2}], 3, resync=True)]


async def test_closing_ends_the_iteration(store: Storage, items: Collection[Any]) -> None:
    seen: list[object] = []

    async def follow(feed: Subscription) -> None:
        seen.extend([message async for message in feed])

    feed = items.subscribe()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(follow, feed)
        await trio.testing.wait_all_tasks_blocked()
        items.insert({"id": 1})
        store.commit()
        await trio.testing.wait_all_tasks_blocked()
        feed.close()
    assert seen == [Snapshot([], 0), Change(1, [{"id": 1}], [], [])]
    other = items.subscribe()
    store.close()  # closing the storage ends every live query
    assert [m async for m in other] == [Snapshot([{"id": 1}], 1)]


async def test_a_feed_that_cannot_read_ends_without_failing_the_commit(
        store: Storage, items: Collection[Any], monkeypatch: pytest.MonkeyPatch) -> None:
    feed = items.subscribe()
    await feed.__anext__()

    def broken(*args: object, **kwargs: object) -> object:
        raise storage.StorageIOError("the disk failed a read")

    monkeypatch.setattr(items, "_changes_since", broken)
    items.insert({"id": 1})
    store.commit()  # durable, and not reported as failed
    assert [m async for m in feed] == []  # the live query ended: its subscriber resumes
    monkeypatch.undo()
    assert items.get(1) == {"id": 1}
