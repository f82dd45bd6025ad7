"""The router: which object is live, where each event goes, and who is evicted.

Everything here is synchronous and runs in the runtime's trio thread, so "is this object
live?" and "make it live" happen with no checkpoint in between: a thousand callers racing
to a cold object create one :class:`Actor`, whose first event starts its activation, and
queue behind it.

The router owns the live table and the least-recently-used eviction, and holds what its
actors share (they see it through ``_actor.Site``): the options, the clock, the counters,
the timekeeper, the files still closing, the WebSocket registry and the alarms.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from pathlib import Path

import trio

from actors import DurableObject, ObjectId, RuntimeClosedError
from storage._files import object_path

from ._actor import Actor
from ._alarms import AlarmScheduler
from ._clock import Clock
from ._closing import ClosingFiles
from ._coordinator import Coordinator
from ._descriptors import DescriptorBudget, process_budget
from ._event import Event
from ._memory import MemoryRelease
from ._options import RuntimeOptions
from ._sockets import SocketRegistry
from ._statistics import Counters
from ._timekeeper import Timekeeper

log = logging.getLogger("dobox.runtime")


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
        self.data_dir = data_dir
        self.options = options
        self.coordinator = coordinator
        self.env = env
        self.id_scope = id_scope
        """Mixed into every namespace's id key: the server gives each tenant its own, so the
        same name in two tenants is two different ids."""
        self.clock = Clock()
        self.counters = Counters()
        self.timekeeper = Timekeeper(options, self.evict)
        self.closing = ClosingFiles()
        self.memory = MemoryRelease(lambda: nursery)
        self.descriptors = descriptors or process_budget()
        """Room for open object files, shared by the process's runtimes (see _descriptors)."""
        self.descriptors.register(self)
        self.live: OrderedDict[str, Actor] = OrderedDict()
        """Live (activating, running or stopping-but-routable) objects, least recent first."""
        self.accepting = True
        self._made_dirs: set[Path] = set()
        self.sockets = SocketRegistry(self, max_per_object=options.max_websockets_per_object)
        """Accepted WebSockets: they outlive their objects' activations."""
        self.alarms: AlarmScheduler | None = None
        """Set by open_runtime once the alarm index is open."""

    def now(self) -> float:
        return self.clock.now()

    def trio_time_of(self, epoch: float) -> float:
        return self.clock.trio_time_of(epoch)

    def is_live(self, key: str) -> bool:
        return key in self.live

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
            path = object_path(self.data_dir, binding, object_id.hex)
            if path.parent not in self._made_dirs:  # a syscall or two saved per activation
                path.parent.mkdir(parents=True, exist_ok=True)
                self._made_dirs.add(path.parent)
            actor = Actor(self, binding, cls, object_id, path)
            self.live[key] = actor
            self.counters.activations += 1
            self.nursery.start_soon(actor.run, name=f"dobox object {actor.label}")
            self._evict_beyond_limit()
        else:
            self.live.move_to_end(key)
        actor.submit(event)

    # -- eviction -------------------------------------------------------------------------

    def idle(self, actor: Actor) -> None:
        """``actor`` has had nothing to do since ``actor.last_active``."""
        if actor.state != "running":
            return
        self.timekeeper.idle(actor)
        if len(self.live) > self.options.max_live_objects:
            self._evict_beyond_limit()

    def _evict_beyond_limit(self) -> None:
        """Evict least recently used idle objects until at most ``max_live_objects`` are live.

        Busy objects are never evicted, so the limit can be exceeded while every live object
        is busy; it is restored as they go idle and new objects activate.
        """
        while len(self.live) > self.options.max_live_objects:
            actor = self.timekeeper.least_recently_idle()
            if actor is None:
                return
            log.debug("evicting %s (least recently used)", actor.label)
            self.evict(actor)

    def oldest_idle(self) -> float | None:
        return self.timekeeper.idle_since()

    def evict_least_recently_used(self) -> None:
        """Evict the object idle the longest (the descriptor budget needs room)."""
        actor = self.timekeeper.least_recently_idle()
        if actor is not None:
            log.debug("evicting %s (open files are scarce)", actor.label)
            self.evict(actor)

    def evict(self, actor: Actor) -> None:
        """Route nothing more to ``actor``; it finishes what it admitted and closes."""
        self.counters.evictions += 1
        self.retire(actor)
        actor.stop()

    # -- an activation's end --------------------------------------------------------------

    def retire(self, actor: Actor) -> None:
        """Route no more events to ``actor`` (it is stopping, evicted or reset)."""
        self.timekeeper.forget(actor)
        if self.live.get(actor.key) is actor:
            del self.live[actor.key]
            self.closing.add(actor.key, actor.closed)

    def finished(self, actor: Actor) -> None:
        """``actor``'s file is closed."""
        self.closing.done(actor.key, actor.closed)
        self.sockets.forget_if_unused(actor.key)
        self.descriptors.wake()
        self.memory.soon()

    async def drain(self) -> None:
        """Stop admitting, let every live object finish what it admitted, and wait for their
        files to close. The caller bounds this with a deadline."""
        self.accepting = False
        self.sockets.close_everything(1001, "the server is shutting down")
        for actor in list(self.live.values()):
            self.retire(actor)
            actor.stop()
        await self.closing.wait_all()

    # -- statistics -----------------------------------------------------------------------

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
