"""The input gate: a strictly FIFO lock that hands itself to the next waiter on release.

``trio.Lock`` is fair too, but its ``acquire`` may yield before queueing. This gate queues
a waiter the moment ``acquire`` is called, so "the order events reach the gate" is the
order they were taken from the mailbox, and a release hands ownership straight to the
next waiter, so nobody can barge in between.
"""

from __future__ import annotations

import trio
from trio.lowlevel import ParkingLot


class InputGate:
    """One holder at a time, first come first served."""

    __slots__ = ("_held", "_lot")

    def __init__(self) -> None:
        self._held = False
        self._lot = ParkingLot()

    @property
    def held(self) -> bool:
        return self._held

    def try_acquire(self) -> bool:
        """Take the gate if it is free and nobody is queued; never waits."""
        if self._held or self._lot:
            return False
        self._held = True
        return True

    async def acquire(self) -> None:
        """Wait for the gate. Without a wait, this is not a checkpoint."""
        if self.try_acquire():
            return
        # release() passes ownership to the task it unparks: _held stays True throughout.
        await self._lot.park()

    async def acquire_shielded(self) -> None:
        """Take the gate back even when cancelled (a handler must hold it as it unwinds)."""
        with trio.CancelScope(shield=True):
            await self.acquire()

    def release(self) -> None:
        if not self._held:
            raise RuntimeError("the input gate was released without being held")
        if not self._lot.unpark():
            self._held = False
