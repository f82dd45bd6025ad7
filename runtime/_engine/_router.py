"""The router: which object is live, where each event goes, and who is evicted.

Everything here is synchronous and runs in the runtime's trio thread, so "is this object
live?" and "make it live" happen with no checkpoint in between: a thousand callers racing
to a cold object create one :class:`Actor`, whose first event starts its activation, and
queue behind it.
"""

from __future__ import annotations

import logging
import math
import time
from collections import OrderedDict
from collections.abc import Iterator
from pathlib import Path

import trio

from actors import DurableObject, ObjectId, RuntimeClosedError
from storage._files import object_path

from ._actor import Actor
from ._alarms import AlarmScheduler
from ._coordinator import Coordinator
from ._descriptors import DescriptorBudget, process_budget
from ._event import Event
from ._memory import can_release_memory, release_freed_memory
from ._options import RuntimeOptions
from ._sockets import SocketRegistry

log = logging.getLogger("dobox.runtime")


_CLOCK_ORIGIN: trio.lowlevel.RunVar[tuple[float, float]] = trio.lowlevel.RunVar(
    "dobox_clock_origin"
)


def _clock_origin() -> tuple[float, float]:
    """(epoch seconds, trio time) at the first runtime of this trio run."""
    try:
        return _CLOCK_ORIGIN.get()
    except LookupError:
        origin = (time.time(), trio.current_time())
        _CLOCK_ORIGIN.set(origin)
        return origin


def _pop_idle_since(order: OrderedDict[Actor, None], cutoff: float) -> Iterator[Actor]:
    """Remove and yield, oldest first, the actors of ``order`` idle since before ``cutoff``."""
    while order:
        actor = next(iter(order))
        if actor.last_active > cutoff:
            return
        del order[actor]
        yield actor


TRIM_DELAY = 1.0
"""Seconds between memory being freed and its release to the operating system."""

MAX_CLOSING = 64
"""Objects whose files may be closing at once before new activations wait."""


class Router:
    """Routes events to live objects, activating and evicting them (see module docstring)."""

    def __init__(
        self,
        *,
        nursery: trio.Nursery,
        data_dir: Path,
        options: RuntimeOptions,
        coordinator: Coordinator,
        env: dict[str, object],
        id_scope: str = "",
        descriptors: DescriptorBudget | None = None,
    ) -> None:
        self.nursery = nursery
        self.descriptors = descriptors or process_budget()
        """Room for open object files, shared by the process's runtimes (see _descriptors)."""
        self.descriptors.register(self)
        self.id_scope = id_scope
        """Mixed into every namespace's id key: the server gives each tenant its own, so the
        same name in two tenants is two different ids."""
        self.data_dir = data_dir
        self.options = options
        self.coordinator = coordinator
        self.env = env
        self.idle_timeout = options.idle_timeout
        self.idle_connection_timeout = options.connection_time_limit
        self.max_live_objects = options.max_live_objects
        self.event_timeout = options.event_time_limit
        self.live: OrderedDict[str, Actor] = OrderedDict()
        """Live (activating, running or stopping-but-routable) objects, least recent first."""
        self.closing: dict[str, trio.Event] = {}
        """Objects no longer routed to whose files are not closed yet: a new activation of the
        same id waits for its predecessor's ``closed``."""
        self._closing_room = trio.lowlevel.ParkingLot()
        self.accepting = True
        self.idle_order: OrderedDict[Actor, None] = OrderedDict()
        """Running objects with nothing to do, the longest idle first."""
        self.connected_idle: OrderedDict[Actor, None] = OrderedDict()
        """Idle objects whose SQLite connection is still open, the longest idle first."""
        self.running: OrderedDict[Event, tuple[Actor, float]] = OrderedDict()
        """Events whose handler is running, the oldest first, with their actor and start."""
        self._timer: trio.CancelScope | None = None
        self._trim_pending = not can_release_memory()  # True: never schedule one
        self._made_dirs: set[Path] = set()
        self.sockets = SocketRegistry(self, max_per_object=options.max_websockets_per_object)
        """Accepted WebSockets: they outlive their objects' activations."""
        self.alarms: AlarmScheduler | None = None
        """Set by open_runtime once the alarm index is open."""
        self.activations = 0
        self.evictions = 0
        self.resets = 0
        self.overloads = 0
        self.commits = 0
        self.commit_seconds = 0.0
        """Wall seconds spent committing (real time, for metrics: not trio's clock)."""
        # The runtime's wall clock: epoch seconds, advancing with trio's clock, from one
        # origin per trio run, so that runtimes restarted in one run (a test's, under
        # MockClock) agree on what time it is and on when alarms are due.
        self._wall_start, self._trio_start = _clock_origin()

    def now(self) -> float:
        return self._wall_start + (trio.current_time() - self._trio_start)

    def trio_time_of(self, epoch: float) -> float:
        """The trio clock's reading when the runtime's wall clock shows ``epoch``."""
        return self._trio_start + (epoch - self._wall_start)

    def path_of(self, binding: str, object_id: ObjectId) -> Path:
        return object_path(self.data_dir, binding, object_id.hex)

    def submit(
        self, binding: str, cls: type[DurableObject], object_id: ObjectId, event: Event
    ) -> None:
        """Queue ``event`` for the object, activating it if it is not live."""
        if not self.accepting:
            event.reply.fail(
                RuntimeClosedError("the runtime is shutting down and admits no more events")
            )
            return
        key = f"{binding}/{object_id.hex}"
        actor = self.live.get(key)
        if actor is None:
            path = self.path_of(binding, object_id)
            if path.parent not in self._made_dirs:  # a syscall or two saved per activation
                path.parent.mkdir(parents=True, exist_ok=True)
                self._made_dirs.add(path.parent)
            actor = Actor(self, binding, cls, object_id, path)
            self.live[key] = actor
            self.activations += 1
            self.nursery.start_soon(actor.run, name=f"dobox object {actor.label}")
            self._evict_beyond_limit()
        else:
            self.live.move_to_end(key)
        actor.submit(event)

    def _evict_beyond_limit(self) -> None:
        """Evict least recently used idle objects until at most ``max_live_objects`` are live.

        Busy objects are never evicted, so the limit can be exceeded while every live object
        is busy; it is restored as they go idle and new objects activate.
        """
        while len(self.live) > self.max_live_objects and self.idle_order:
            actor, _ = self.idle_order.popitem(last=False)
            log.debug("evicting %s (least recently used)", actor.label)
            self.evict(actor)

    def evict_least_recently_used(self) -> None:
        """Evict the idle object idle the longest (the descriptor budget needs room)."""
        actor, _ = self.idle_order.popitem(last=False)
        log.debug("evicting %s (open files are scarce)", actor.label)
        self.evict(actor)

    def evict(self, actor: Actor) -> None:
        """Route nothing more to ``actor``; it finishes what it admitted and closes."""
        self.evictions += 1
        self.retire(actor)
        actor.stop()

    # -- the timekeeper: idle eviction and event timeouts -----------------------------------

    def busy(self, actor: Actor) -> None:
        self.idle_order.pop(actor, None)
        self.connected_idle.pop(actor, None)

    def idle(self, actor: Actor) -> None:
        """``actor`` has nothing to do since ``actor.last_active``."""
        if actor.state != "running":
            return
        self.idle_order[actor] = None
        self._wake_by(actor.last_active + self.idle_timeout)
        if actor.storage is not None and not actor.storage.suspended:
            self.connected_idle[actor] = None
            self._wake_by(actor.last_active + self.idle_connection_timeout)
        if len(self.live) > self.max_live_objects:
            self._evict_beyond_limit()

    def started(self, event: Event, actor: Actor) -> None:
        start = trio.current_time()
        self.running[event] = (actor, start)
        self._wake_by(start + self.event_timeout)

    def ended(self, event: Event) -> None:
        self.running.pop(event, None)

    def _wake_by(self, deadline: float) -> None:
        # The timekeeper's deadline may be early (it then just looks and sleeps again) but
        # never late; moving a cancel scope's deadline costs, so only ever bring it forward.
        timer = self._timer
        if timer is not None and deadline < timer.deadline:
            timer.deadline = deadline

    async def keep_time(self) -> None:
        """Evict objects idle for ``idle_timeout`` and reset those whose event runs past
        ``event_timeout``: one task for the whole runtime, instead of a timer per event."""
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
                    self.evict(actor)
            for actor in _pop_idle_since(self.connected_idle, now - self.idle_connection_timeout):
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
            deadline = min(deadline, oldest.last_active + self.idle_connection_timeout)
        return deadline

    def memory_freed(self) -> None:
        """An object let its connection or its instance go: give the freed memory back to
        the operating system soon (see ``_memory``)."""
        if not self._trim_pending:
            self._trim_pending = True
            self.nursery.start_soon(self._release_memory_soon, name="dobox memory release")

    async def _release_memory_soon(self) -> None:
        await trio.sleep(TRIM_DELAY)  # let the rest of an idle sweep's frees arrive first
        try:
            await trio.to_thread.run_sync(release_freed_memory)
        finally:
            self._trim_pending = False

    def retire(self, actor: Actor) -> None:
        """Route no more events to ``actor`` (it is stopping, evicted or reset)."""
        self.idle_order.pop(actor, None)
        self.connected_idle.pop(actor, None)
        if self.live.get(actor.key) is actor:
            del self.live[actor.key]
            self.closing[actor.key] = actor.closed

    def finished(self, actor: Actor) -> None:
        """``actor``'s file is closed."""
        if self.closing.get(actor.key) is actor.closed:
            del self.closing[actor.key]
        self.sockets.forget_if_unused(actor.key)
        self.descriptors.wake()
        self.memory_freed()
        if len(self.closing) < MAX_CLOSING:
            self._closing_room.unpark()

    async def wait_for_closing_room(self) -> None:
        """Hold a new activation while too many evicted objects are still closing their
        files: closes (a checkpoint and fsync each, in worker threads) must not fall behind
        activations without bound, or open files pile up until the process runs out."""
        while len(self.closing) >= MAX_CLOSING:
            await self._closing_room.park()

    async def drain(self) -> None:
        """Stop admitting, let every live object finish what it admitted, and wait for their
        files to close. The caller bounds this with a deadline."""
        self.accepting = False
        self.sockets.close_everything(1001, "the server is shutting down")
        for actor in list(self.live.values()):
            self.retire(actor)
            actor.stop()
        for closed in list(self.closing.values()):
            await closed.wait()

    @property
    def open_connections(self) -> int:
        return sum(
            1 for actor in self.live.values()
            if actor.storage is not None and not actor.storage.suspended
            and not actor.storage.closed
        )

    @property
    def queued_events(self) -> int:
        return sum(len(actor.events) for actor in self.live.values())
