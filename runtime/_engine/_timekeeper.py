"""The timekeeper: one task per runtime that evicts idle objects, lets idle connections
go, and resets objects whose event runs past ``event_timeout``.

One task and three ordered tables, instead of a timer per event or per object: a cancel
scope per wait on the hot path would cost more than the rest of a call.
"""

from __future__ import annotations

import logging
import math
from collections import OrderedDict
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

import trio

from ._options import RuntimeOptions

if TYPE_CHECKING:
    from ._actor import Actor
    from ._event import Event

log = logging.getLogger("dobox.runtime")


def _pop_idle_since(order: OrderedDict[Actor, None], cutoff: float) -> Iterator[Actor]:
    """Remove and yield, oldest first, the actors of ``order`` idle since before ``cutoff``."""
    while order:
        actor = next(iter(order))
        if actor.last_active > cutoff:
            return
        del order[actor]
        yield actor


class Timekeeper:
    """When each running event started and since when each idle object has been idle."""

    def __init__(self, options: RuntimeOptions, evict: Callable[[Actor], None]) -> None:
        self._evict = evict
        self.idle_timeout = options.idle_timeout
        self.connection_timeout = options.connection_time_limit
        self.event_timeout = options.event_time_limit
        self.idle_order: OrderedDict[Actor, None] = OrderedDict()
        """Running objects with nothing to do, the longest idle first."""
        self.connected_idle: OrderedDict[Actor, None] = OrderedDict()
        """Idle objects whose SQLite connection is still open, the longest idle first."""
        self.running: OrderedDict[Event, tuple[Actor, float]] = OrderedDict()
        """Events whose handler is running, the oldest first, with their actor and start."""
        self._timer: trio.CancelScope | None = None

    def busy(self, actor: Actor) -> None:
        self.idle_order.pop(actor, None)
        self.connected_idle.pop(actor, None)

    forget = busy  # a retired actor leaves the idle tables the same way

    def idle(self, actor: Actor) -> None:
        """``actor`` has had nothing to do since ``actor.last_active``."""
        self.idle_order[actor] = None
        self._wake_by(actor.last_active + self.idle_timeout)
        if actor.storage is not None and not actor.storage.suspended:
            self.connected_idle[actor] = None
            self._wake_by(actor.last_active + self.connection_timeout)

    def started(self, event: Event, actor: Actor) -> None:
        start = trio.current_time()
        self.running[event] = (actor, start)
        self._wake_by(start + self.event_timeout)

    def ended(self, event: Event) -> None:
        self.running.pop(event, None)

    def least_recently_idle(self) -> Actor | None:
        """The object idle the longest, removed from the tables (for eviction)."""
        if not self.idle_order:
            return None
        actor, _ = self.idle_order.popitem(last=False)
        self.connected_idle.pop(actor, None)
        return actor

    def idle_since(self) -> float | None:
        """Since when the object idle the longest has been idle (trio time), or None."""
        return next(iter(self.idle_order)).last_active if self.idle_order else None

    def _wake_by(self, deadline: float) -> None:
        # The deadline may be early (the task then just looks and sleeps again) but never
        # late; moving a cancel scope's deadline costs, so only ever bring it forward.
        timer = self._timer
        if timer is not None and deadline < timer.deadline:
            timer.deadline = deadline

    async def run(self) -> None:
        while True:
            with trio.CancelScope() as timer:
                self._timer = timer
                timer.deadline = self._next_deadline()
                await trio.sleep_forever()
            self._timer = None
            now = trio.current_time()
            while self.running:
                event, (actor, start) = next(iter(self.running.items()))
                if start + self.event_timeout > now:
                    break
                self.ended(event)
                actor.timed_out(event)
            for actor in _pop_idle_since(self.idle_order, now - self.idle_timeout):
                if actor.idle:
                    log.debug("evicting %s (idle for %s s)", actor.label, self.idle_timeout)
                    self._evict(actor)
            for actor in _pop_idle_since(self.connected_idle, now - self.connection_timeout):
                actor.suspend_connection()

    def _next_deadline(self) -> float:
        deadline = math.inf
        if self.running:
            _, start = next(iter(self.running.values()))
            deadline = start + self.event_timeout
        if self.idle_order:
            oldest = next(iter(self.idle_order))
            deadline = min(deadline, oldest.last_active + self.idle_timeout)
        if self.connected_idle:
            oldest = next(iter(self.connected_idle))
            deadline = min(deadline, oldest.last_active + self.connection_timeout)
        return deadline
