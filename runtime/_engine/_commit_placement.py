"""Where a durable commit runs: on the runtime's thread, or in a worker thread.

A commit with ``durability="full"`` waits for an fsync, which blocks whichever thread runs
it. In a worker thread, trio runs other objects meanwhile; but the trip there and back
(waking the thread, its GIL handoffs, and ``run_sync_soon`` back into trio) costs about
0.35 ms on the development machine, more than the fsync itself. When nothing else is ready
to run, that trip buys nothing, so the commit runs on the runtime's thread. It does when:

- no other trio task is runnable (a server's busy-polling task, which only waits for the
  next request, does not count: see :func:`polling`) and no thread has a callback waiting
  to enter trio;
- no other commit is in a worker thread (its result would wait behind this one's fsync);
- recent fsyncs were quick: a slow disk (an average over recent commits above
  :data:`INLINE_LIMIT`) sends every commit to a thread, so that a stalled device never
  freezes the runtime for long.

A lone caller's durable write thus costs one fsync plus the call, and a loaded runtime
keeps committing in threads, where commits of many objects overlap.
"""

from __future__ import annotations

import trio

INLINE_LIMIT = 0.002
"""Seconds: commits run inline only while the recent average of ``commit()`` stays below."""

_WEIGHT = 0.2
"""How much the latest commit moves the recent average."""


class CommitPlacement:
    """One per trio run, shared by its runtimes (a server's tenants share the thread)."""

    def __init__(self) -> None:
        self.in_threads = 0
        """Commits running in worker threads now."""
        self.recent_seconds = 0.0
        """A moving average of how long ``commit()`` took, wherever it ran."""
        self.idle_pollers = 0
        """Tasks that are runnable only because they poll for work (see :func:`polling`)."""

    def inline(self) -> bool:
        """Whether the next durable commit should run on this thread."""
        if self.in_threads or self.recent_seconds > INLINE_LIMIT:
            return False
        stats = trio.lowlevel.current_statistics()
        return (stats.tasks_runnable <= self.idle_pollers
                and stats.run_sync_soon_queue_size == 0)

    def took(self, seconds: float) -> None:
        """A durable ``commit()`` took ``seconds``."""
        self.recent_seconds += (seconds - self.recent_seconds) * _WEIGHT


_PLACEMENT: trio.lowlevel.RunVar[CommitPlacement] = trio.lowlevel.RunVar("dobox_commits")


def commit_placement() -> CommitPlacement:
    """This trio run's :class:`CommitPlacement`."""
    try:
        return _PLACEMENT.get()
    except LookupError:
        placement = CommitPlacement()
        _PLACEMENT.set(placement)
        return placement


def polling(active: bool) -> None:
    """Say that the calling task is (or no longer is) busy-polling for work: while it is,
    it stays runnable without anything to do, and :meth:`CommitPlacement.inline` does not
    count it."""
    commit_placement().idle_pollers = 1 if active else 0
