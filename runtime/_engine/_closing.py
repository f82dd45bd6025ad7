"""Objects no longer routed to whose files are still closing.

A new activation of the same id waits for its predecessor's file to close, and new
activations of any id wait while too many files are closing: closes (a checkpoint and an
fsync each, in worker threads) must not fall behind activations without bound, or open
files pile up until the process runs out.
"""

from __future__ import annotations

import trio

MAX_CLOSING = 64
"""Objects whose files may be closing at once before new activations wait."""


class ClosingFiles:
    """The closing objects of one runtime, by key, with their ``closed`` events."""

    __slots__ = ("_closing", "_room")

    def __init__(self) -> None:
        self._closing: dict[str, trio.Event] = {}
        self._room = trio.lowlevel.ParkingLot()

    def __len__(self) -> int:
        return len(self._closing)

    def previous(self, key: str) -> trio.Event | None:
        """The ``closed`` event of the activation of ``key`` still closing, if any."""
        return self._closing.get(key)

    def add(self, key: str, closed: trio.Event) -> None:
        self._closing[key] = closed

    def done(self, key: str, closed: trio.Event) -> None:
        """The activation whose ``closed`` event this is has closed its file."""
        if self._closing.get(key) is closed:
            del self._closing[key]
        if len(self._closing) < MAX_CLOSING:
            self._room.unpark()

    async def wait_for_room(self) -> None:
        """Hold a new activation while ``MAX_CLOSING`` files are closing."""
        while len(self._closing) >= MAX_CLOSING:
            await self._room.park()

    async def wait_all(self) -> None:
        for closed in list(self._closing.values()):
            await closed.wait()
