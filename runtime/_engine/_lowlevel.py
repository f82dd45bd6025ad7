"""``rt.lowlevel``: levers on a runtime's objects for test harnesses and tools.

What an application does goes through namespaces and stubs; what a harness does to prove
that the application survives (reset an object as a crash would, evict it as idleness
would, run code or its alarm inside it) goes through these, so that nothing outside the
engine reaches into the router or an actor.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Protocol, TypeVar

from actors import DurableObject, ObjectContext, ObjectId
from storage import Value
from storage._files import object_paths

from ._event import FORCE_ALARM, Event

if TYPE_CHECKING:
    from ._actor import Actor
    from ._namespace import Stub
    from ._router import Router

T = TypeVar("T")


class EventSink(Protocol):
    """Where a :class:`~runtime.Namespace` sends its stubs' events: a runtime's router, or
    something that forwards to one (the harness's namespaces outlive its runtimes)."""

    @property
    def id_scope(self) -> str:
        """Mixed into the namespace's id key (the server's tenant)."""

    def submit(self, binding: str, cls: type[DurableObject], object_id: ObjectId,
               event: Event) -> None:
        """Queue ``event`` for the object, activating it if it is not live."""


class RuntimeControls:
    """The levers (see the module docstring); get them as ``rt.lowlevel``."""

    __slots__ = ("_classes", "_router")

    def __init__(self, router: Router, classes: dict[str, type[DurableObject]]) -> None:
        self._router = router
        self._classes = classes

    @property
    def id_scope(self) -> str:
        return self._router.id_scope

    def submit(self, binding: str, cls: type[DurableObject], object_id: ObjectId,
               event: Event) -> None:
        """Queue ``event`` for the object (what a stub does when a call is made)."""
        self._router.submit(binding, cls, object_id, event)

    def stored_object_ids(self, binding: str) -> list[str]:
        """The ids (hex) of the objects of ``binding`` that have a file, in id order."""
        return [path.stem for path in object_paths(self._router.data_dir, binding)]

    def is_live(self, stub: Stub[DurableObject]) -> bool:
        """Whether the object ``stub`` calls is live (activated and not evicted)."""
        return self._actor(stub) is not None

    def reset(self, stub: Stub[DurableObject], why: str) -> bool:
        """Reset the object as a failure would (its calls fail with ``ObjectResetError``
        saying ``why``, its uncommitted writes are lost); whether it was live."""
        actor = self._actor(stub)
        if actor is None:
            return False
        actor.reset(why)
        return True

    def reset_all(self, why: str) -> int:
        """Reset every live object (a cluster node that lost its lease drops its
        activations); how many there were."""
        actors = list(self._router.live.values())
        for actor in actors:
            actor.reset(why)
        return len(actors)

    async def evict(self, stub: Stub[DurableObject]) -> None:
        """Evict the object as idleness would, and wait until its file is closed.

        Raises:
            LookupError: it is not live.
        """
        actor = self._actor(stub)
        if actor is None:
            raise LookupError(f"{stub!r} is not live, so it cannot be evicted")
        self._router.evict(actor)
        await actor.closed.wait()

    async def run_in_object(
        self, stub: Stub[DurableObject],
        fn: Callable[[DurableObject, ObjectContext], T | Awaitable[T]],
    ) -> T:
        """Run ``fn(instance, ctx)`` as one of the object's events (activating it if
        needed); what it returns, not copied."""
        result: T = await self._send(stub, Event("run", "run_in_object", fn))
        return result

    async def run_alarm(self, stub: Stub[DurableObject]) -> bool:
        """Run the object's pending alarm now, due or not; whether one ran."""
        ran: bool = await self._send(stub, Event("alarm", "alarm", FORCE_ALARM))
        return ran

    async def _send(self, stub: Stub[DurableObject], event: Event) -> Value:
        binding = stub._namespace.binding
        self._router.submit(binding, self._classes[binding], stub.id, event)
        return await event.reply.wait()

    def _actor(self, stub: Stub[DurableObject]) -> Actor | None:
        return self._router.live.get(f"{stub._namespace.binding}/{stub.id.hex}")
