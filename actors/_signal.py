"""``Signal``: wake one waiting task, the cheapest way trio offers.

A ``trio.Event`` or a ``ParkingLot`` would do, with more bookkeeping than an object's
driver (the only task that waits for its mailbox) or a call's caller (the only task that
waits for its reply) need. On the hot path of every call, that bookkeeping was measurable.
"""

from __future__ import annotations

import trio
from trio.lowlevel import Abort, RaiseCancelT, Task, current_task, reschedule


class Signal:
    """One task waits; ``set()`` wakes it, or makes its next ``wait()`` return at once."""

    __slots__ = ("_pending", "_waiter")

    def __init__(self) -> None:
        self._waiter: Task | None = None
        self._pending = False

    async def wait(self) -> None:
        """Wait for ``set()`` (since the last wait). Always a checkpoint."""
        if self._pending:
            self._pending = False
            await trio.lowlevel.checkpoint()
            return
        if self._waiter is not None:
            raise RuntimeError("only one task may wait on a Signal")
        self._waiter = current_task()

        def abort(_: RaiseCancelT) -> Abort:
            self._waiter = None
            return Abort.SUCCEEDED

        await trio.lowlevel.wait_task_rescheduled(abort)

    def set(self) -> None:
        waiter = self._waiter
        if waiter is None:
            self._pending = True
        else:
            self._waiter = None
            reschedule(waiter)
