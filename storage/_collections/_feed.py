"""Live queries: ``records.subscribe(where, order_by=..., limit=...)``.

A subscription first yields a :class:`Snapshot` of the subset, then, after every commit
that changes it, a :class:`Change` (records inserted into and updated in the subset, keys
removed from it), in commit order. Everything a subscriber sees was committed: changes are
found after the commit, from the row versions the commit made durable (a write rolled back
never got one), and a snapshot asked for while writes are uncommitted waits for the commit.

Each subscription queues at most ``max_queued`` messages. A subscriber that falls further
behind loses its queue and gets one ``Snapshot(resync=True)`` of the subset as it is at
that commit instead: memory stays bounded by the subset, never by how far behind it is.
"""

from __future__ import annotations

from collections import deque
from collections.abc import AsyncIterator, Sequence
from types import TracebackType
from typing import TYPE_CHECKING, Any

import attrs
import trio

from ._query import Expr, Field, OrderTerm, order_terms
from ._values import decode_key

if TYPE_CHECKING:
    from ._collection import Collection

MAX_QUEUED = 1_000


@attrs.frozen
class Snapshot:  # type: ignore[explicit-any]  # records as the collection gives them
    """The whole subset at ``row_version`` (first, and after a resync)."""

    records: list[Any]  # type: ignore[explicit-any]  # records as the collection gives them
    row_version: int
    resync: bool = False


@attrs.frozen
class Change:  # type: ignore[explicit-any]  # as Snapshot
    """What one commit changed in the subset."""

    row_version: int
    inserted: list[Any]  # type: ignore[explicit-any]  # as Snapshot.records
    updated: list[Any]  # type: ignore[explicit-any]  # as above
    removed: list[str | int]


Message = Snapshot | Change


class Subscription:
    """An async iterator of :class:`Snapshot` and :class:`Change` messages; ``close()`` it
    (or use ``async with``) to stop."""

    def __init__(self, feed: CollectionFeed, where: Expr | None,
                 order_by: tuple[OrderTerm, ...], limit: int | None, max_queued: int,
                 since: int | None = None) -> None:
        self._feed = feed
        self.since = since
        self.where = where
        self.order_by = order_by
        self.limit = limit
        self.max_queued = max_queued
        self._queue: deque[Message] = deque()
        self._lot = trio.lowlevel.ParkingLot()
        self._versions: dict[str, int] = {}
        """What the subscriber has (as of the last message queued): stored key -> version."""
        self.closed = False
        self._closed_event = trio.Event()
        self.resyncs = 0

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self._closed_event.set()
            self._feed.remove(self)
            self._lot.unpark_all()

    async def wait_closed(self) -> None:
        await self._closed_event.wait()

    async def __aenter__(self) -> Subscription:
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None,
                        exc: BaseException | None, tb: TracebackType | None) -> None:
        self.close()

    def __aiter__(self) -> AsyncIterator[Message]:
        return self

    async def __anext__(self) -> Message:
        while not self._queue:
            if self.closed:
                raise StopAsyncIteration
            await self._lot.park()
        await trio.lowlevel.checkpoint()
        return self._queue.popleft()

    # -- the feed's side ------------------------------------------------------------------

    def _push(self, message: Message) -> None:
        if len(self._queue) >= self.max_queued:
            # Too far behind: replace the backlog by the subset as it is now.
            self._queue.clear()
            self.resyncs += 1
            message = self._snapshot(resync=True)
        self._queue.append(message)
        self._lot.unpark_all()

    def _start(self) -> None:
        """The first message: a snapshot, or, resuming an unlimited subset from
        ``since``, a change holding only what changed after it."""
        records = self._feed.records
        changed = deleted = None
        if self.since is not None and self.limit is None:
            _, changed, deleted = records._changes_since(self.since)
        if changed is None or deleted is None:
            self._push(self._snapshot(resync=self.since is not None))
            return
        rows = records._select(self.where, self.order_by, None)
        self._versions = {key: version for key, version, _ in rows}
        changed_set = set(changed)
        updated = [record for key, _, record in rows if key in changed_set]
        removed = [key for key in changed if key not in self._versions] + deleted
        self._push(Change(self._feed.row_version, [], updated,
                          [decode_key(key) for key in removed]))

    def _snapshot(self, *, resync: bool = False) -> Snapshot:
        rows = self._feed.records._select(self.where, self.order_by, self.limit)
        self._versions = {key: version for key, version, _ in rows}
        return Snapshot([record for _, _, record in rows], self._feed.row_version, resync)

    def _changed(self, changed: list[str], deleted: list[str]) -> None:
        records = self._feed.records
        if self.limit is None:
            touched = changed + deleted
            rows = records._select(self.where, self.order_by, None, keys=changed)
            now = {key: (version, record) for key, version, record in rows}
            removed = [key for key in touched if key in self._versions and key not in now]
        else:  # a window of the subset: changes elsewhere can move records in or out
            rows = records._select(self.where, self.order_by, self.limit)
            now = {key: (version, record) for key, version, record in rows}
            removed = [key for key in self._versions if key not in now]
        inserted = [record for key, (_, record) in now.items() if key not in self._versions]
        updated = [record for key, (version, record) in now.items()
                   if key in self._versions and self._versions[key] != version]
        for key in removed:
            del self._versions[key]
        self._versions.update({key: version for key, (version, _) in now.items()})
        if inserted or updated or removed:
            self._push(Change(self._feed.row_version, inserted, updated,
                              [decode_key(key) for key in removed]))


class CollectionFeed:
    """The subscriptions of one collection, told after each commit (by its Storage)."""

    def __init__(self, records: Collection[Any], committed: bool) -> None:  # type: ignore[explicit-any]  # any record type
        self.records = records
        self.subscriptions: list[Subscription] = []
        self._waiting: list[Subscription] = []
        """Subscribed while writes were uncommitted: their snapshot waits for the commit."""
        self.row_version = records.row_version if committed else -1

    def subscribe(self, where: Expr | None, order_by: str | Field | OrderTerm | Sequence[
            str | Field | OrderTerm], limit: int | None, max_queued: int,
                  committed: bool, since: int | None = None) -> Subscription:
        subscription = Subscription(self, where, order_terms(order_by), limit, max_queued,
                                    since)
        if committed and self.row_version >= 0:
            self.subscriptions.append(subscription)
            subscription._start()
        else:
            self._waiting.append(subscription)
        return subscription

    def remove(self, subscription: Subscription) -> None:
        for group in (self.subscriptions, self._waiting):
            if subscription in group:
                group.remove(subscription)

    @property
    def idle(self) -> bool:
        return not self.subscriptions and not self._waiting

    def after_commit(self) -> None:
        """Tell every subscription what the commit changed in its subset."""
        if self.row_version < 0:
            self.row_version = self.records.row_version
        else:
            self.row_version, changed, deleted = self.records._changes_since(self.row_version)
            if changed is None or deleted is None:  # the history is gone: the data was reset
                for subscription in self.subscriptions:
                    subscription._push(subscription._snapshot(resync=True))
            elif changed or deleted:
                for subscription in self.subscriptions:
                    subscription._changed(changed, deleted)
        waiting, self._waiting = self._waiting, []
        for subscription in waiting:
            self.subscriptions.append(subscription)
            subscription._start()

