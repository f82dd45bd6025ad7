"""Looking into a running runtime from outside its objects: what the server's inspector
shows of live objects, without sending them events.

Nothing here activates an object, counts as one of its events (so nothing delays its
eviction), or takes its file lock. A live object's database is read through its own
connection between its turns, when it holds nothing uncommitted; an object whose file the
runtime does not hold open (not live, or its connection closed while idle) is the
reader's to read from the file, as ``dobox inspect`` does.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from typing import TYPE_CHECKING, Literal, TypeVar

import attrs
import trio

from actors._websocket import ReadyState
from storage import DoboxError, Value

if TYPE_CHECKING:
    from ._router import Router

T = TypeVar("T")

READ_WAIT = 1.0
"""Seconds a read waits for a live object to finish a write in progress."""

_READ_RETRY = 0.01
"""Seconds between two looks at an object in the middle of a write."""


class ObjectBusyError(DoboxError):
    """A live object stayed in the middle of a write for longer than the read would wait."""


class NotHeld:
    """The runtime does not hold the object's file open: read the file itself."""

    def __repr__(self) -> str:
        return "NOT_HELD"


NOT_HELD = NotHeld()


@attrs.frozen
class LiveObject:
    """One live object, as the inspector lists it."""

    binding: str
    id: str
    """64 hex digits."""
    name: str | None
    state: Literal["activating", "running", "stopping", "dead"]
    queued_events: int
    """Admitted and not yet answered."""
    handled: int
    """Events it has taken since it was activated."""
    connection_open: bool
    """It holds its SQLite connection (an idle object lets it go; its file stays locked)."""
    last_active: float
    """Epoch seconds of its last event."""


@attrs.frozen
class SocketView:
    """One accepted WebSocket of an object."""

    tags: tuple[str, ...]
    attachment: Value
    open: bool
    """Open, not closing."""


def live_objects(router: Router) -> list[LiveObject]:
    """Every live object, least recently used first."""
    epoch_of = router.clock.epoch_of
    return [
        LiveObject(binding=actor.binding, id=actor.id.hex, name=actor.id.name,
                   state=actor.state, queued_events=len(actor.events), handled=actor.handled,
                   connection_open=actor.storage is not None and not actor.storage.suspended
                   and not actor.storage.closed,
                   last_active=epoch_of(actor.last_active))
        for actor in router.live.values()
    ]


async def read_held(router: Router, binding: str, object_hex: str,
                    read: Callable[[sqlite3.Connection], T], *,
                    wait: float = READ_WAIT) -> T | NotHeld:
    """``read(conn)`` on the live object's open connection, between its turns; or
    :data:`NOT_HELD` when the runtime does not hold the object's file open. ``read`` runs
    on trio's thread: it must be quick.

    Raises:
        ObjectBusyError: the object stayed in the middle of a write for ``wait`` seconds.
    """
    deadline = trio.current_time() + wait
    key = f"{binding}/{object_hex}"
    while True:
        actor = router.live.get(key)
        storage = None if actor is None else actor.storage
        if storage is None or storage.suspended or storage.closed:
            return NOT_HELD
        if storage.can_read_between_turns:
            return storage.read_between_turns(read)
        if trio.current_time() >= deadline:
            raise ObjectBusyError(f"{key} stayed in the middle of a write for {wait:g} s; "
                                  "try again")
        await trio.sleep(_READ_RETRY)


def object_sockets(router: Router, binding: str, object_hex: str) -> list[SocketView]:
    """The WebSockets the object accepted (live or hibernating), in the order it did."""
    views = []
    for ws, tags in router.sockets.accepted(f"{binding}/{object_hex}"):
        try:
            attachment = ws.deserialize_attachment()
        except ValueError as exc:  # a damaged attachment is shown as such
            attachment = f"<damaged: {exc}>"
        views.append(SocketView(tags=tags, attachment=attachment,
                                open=ws.ready_state is ReadyState.OPEN))
    return views
