"""File descriptors: the process's limit, and the share of it that object files may use.

A live object holds ``FILES_PER_OBJECT`` descriptors (its lock, its database and its WAL;
there is no ``-shm``: see ``storage._database``), and so does each runtime's alarm index.
Every runtime of a process draws from one :class:`DescriptorBudget`, because descriptors
are the process's: a server with many tenants has one budget for all of them. When it is
spent, the least recently used idle object of any runtime is evicted to make room; when no
object is idle, the activation fails at once with an ``OverloadedError`` that names the
limit, instead of every later first request failing with "unable to open database file".

The rest of the limit (a quarter, and at least ``MIN_RESERVE``) is left for what is not an
object file: client connections, WebSockets, the server's own files.
"""

from __future__ import annotations

import resource
import weakref
from typing import Protocol

import trio

from actors import OverloadedError


class Evictable(Protocol):
    """A runtime whose idle objects the budget may evict to make room (a router)."""

    @property
    def closing(self) -> object:
        """Its files still closing: true while there are any."""

    def oldest_idle(self) -> float | None:
        """Since when its object idle the longest has been idle (trio time), or None."""

    def evict_least_recently_used(self) -> None: ...

FILES_PER_OBJECT = 3
MIN_RESERVE = 64
CEILING = 1 << 20
"""The most descriptors dobox asks for when the hard limit is unlimited."""


def raise_open_file_limit() -> int:
    """Raise this process's soft limit of open files to its hard limit, as servers do (the
    common default soft limit, 1,024, allows a few hundred objects); the new soft limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = CEILING if hard == resource.RLIM_INFINITY else hard
    if soft == resource.RLIM_INFINITY or soft >= target:
        return CEILING if soft == resource.RLIM_INFINITY else soft
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    except (ValueError, OSError):  # a hard limit the kernel caps lower: keep what we have
        return soft
    return target


def open_file_limit() -> int:
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    return CEILING if soft == resource.RLIM_INFINITY else soft


class DescriptorBudget:
    """How many object files (``FILES_PER_OBJECT`` descriptors each) may be open at once."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        """The process's open-file limit the budget was derived from."""
        self.files = max(1, (limit - max(MIN_RESERVE, limit // 4)) // FILES_PER_OBJECT)
        self.open = 0
        self._routers: weakref.WeakSet[Evictable] = weakref.WeakSet()
        self._room = trio.lowlevel.ParkingLot()

    def register(self, router: Evictable) -> None:
        """``router``'s idle objects may be evicted to make room for another's."""
        self._routers.add(router)

    async def acquire(self, label: str) -> None:
        """Take room for one open object file, evicting idle objects (of any runtime) and
        waiting for their files to close while the budget is spent.

        Raises:
            OverloadedError: every open object is busy; the message names the limit.
        """
        while self.open >= self.files:
            if not self._evict_least_recently_used():
                raise OverloadedError(
                    f"Durable Object is overloaded: {label} cannot be opened, because "
                    f"{self.open:,} object files are open and busy: all that this process's "
                    f"limit of {self.limit:,} open files allows (ulimit -n). Raise the "
                    "limit (ulimit -n, or LimitNOFILE= for a systemd service) or lower "
                    "max_live_objects; retry later.")
            await self._room.park()
        self.open += 1

    def release(self) -> None:
        self.open -= 1
        self._room.unpark()

    def wake(self) -> None:
        """An object finished closing: whoever waits for room looks again."""
        self._room.unpark_all()

    def _evict_least_recently_used(self) -> bool:
        """Evict the idle object idle the longest, across runtimes; whether there was one.
        Objects already closing count as room on the way: wait for them first."""
        if any(router.closing for router in self._routers):
            return True  # Router.finished wakes the waiters
        oldest: tuple[float, Evictable] | None = None
        for router in self._routers:
            since = router.oldest_idle()
            if since is not None and (oldest is None or since < oldest[0]):
                oldest = (since, router)
        if oldest is None:
            return False
        oldest[1].evict_least_recently_used()
        return True


_process_budget: DescriptorBudget | None = None


def process_budget() -> DescriptorBudget:
    """The budget every runtime of this process shares (made from the limit in force when
    the first runtime opened)."""
    global _process_budget
    if _process_budget is None:
        _process_budget = DescriptorBudget(open_file_limit())
    return _process_budget
