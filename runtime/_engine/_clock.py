"""The runtime's wall clock: epoch seconds that advance with trio's clock.

Every runtime of one trio run shares one origin, so runtimes restarted in one run (a
test's, under ``MockClock``) agree on what time it is and on when alarms are due.
"""

from __future__ import annotations

import time

import trio

_ORIGIN: trio.lowlevel.RunVar[tuple[float, float]] = trio.lowlevel.RunVar("dobox_clock_origin")


class Clock:
    """``now()`` in epoch seconds, and the trio time of an epoch reading."""

    __slots__ = ("_trio_start", "_wall_start")

    def __init__(self) -> None:
        try:
            self._wall_start, self._trio_start = _ORIGIN.get()
        except LookupError:
            self._wall_start, self._trio_start = time.time(), trio.current_time()
            _ORIGIN.set((self._wall_start, self._trio_start))

    def now(self) -> float:
        return self._wall_start + (trio.current_time() - self._trio_start)

    def epoch_of(self, trio_time: float) -> float:
        """What this clock showed (or will show) at trio's reading ``trio_time``."""
        return self._wall_start + (trio_time - self._trio_start)

    def trio_time_of(self, epoch: float) -> float:
        """The trio clock's reading when this clock shows ``epoch``."""
        return self._trio_start + (epoch - self._wall_start)
