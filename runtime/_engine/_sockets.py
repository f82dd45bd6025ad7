"""Hibernatable WebSockets: the sockets objects accepted, kept by the runtime.

The registry belongs to the router, not to an activation, so an object's accepted sockets
(with their tags and attachments, and its auto-response) stay open while the object is
evicted. A frame arriving on one becomes an event of its object, routed like any call: it
activates the object if it is not live and waits its turn under the input gate. Text equal
to the object's auto-response request is answered here, without waking the object.

An object's sockets are closed when it is reset (Durable Objects: "Durable Object
connection closed because the object was reset.") and when the runtime shuts down.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Protocol

import attrs

from actors import DurableObject, ObjectId
from actors._websocket import (
    MAX_MESSAGE_SIZE,
    Frame,
    MessageTooBigError,
    ReadyState,
    WebSocket,
    WebSocketRequestResponsePair,
    message_size,
)

from ._event import Event, EventKind
from ._lowlevel import EventSink

if TYPE_CHECKING:
    from ._actor import Actor


class SocketsHost(EventSink, Protocol):
    """What the registry uses of its runtime (a router): where events go, and these."""

    def now(self) -> float: ...

    def is_live(self, key: str) -> bool:
        """Whether the object of ``key`` (``BINDING/<id hex>``) is live."""


log = logging.getLogger("dobox.runtime")

MAX_TAGS = 10
MAX_TAG_LENGTH = 256

RESET_REASON = "Durable Object connection closed because the object was reset."


@attrs.define(eq=False)
class ObjectSockets:
    """One object's accepted sockets, in the order they were accepted, with their tags."""

    binding: str
    cls: type[DurableObject]
    object_id: ObjectId
    sockets: dict[WebSocket, tuple[str, ...]] = attrs.Factory(dict)
    auto_response: WebSocketRequestResponsePair | None = None


class SocketRegistry:
    """Every object's hibernatable sockets, for one runtime."""

    def __init__(self, host: SocketsHost, *, max_per_object: int) -> None:
        self._router = host
        self.max_per_object = max_per_object
        self._objects: dict[str, ObjectSockets] = {}

    @property
    def open_count(self) -> int:
        return sum(len(entry.sockets) for entry in self._objects.values())

    # -- what ctx offers (the calling object is ``actor``) -------------------------------------

    def accept(self, actor: Actor, ws: object, tags: Iterable[str]) -> None:
        if not isinstance(ws, WebSocket):
            raise TypeError(f"accept_websocket() takes a WebSocket (the server end of a "
                            f"WebSocketPair), not {type(ws).__name__}")
        tag_tuple = tuple(tags)
        if len(tag_tuple) > MAX_TAGS:
            raise ValueError(f"a Hibernatable WebSocket cannot have more than {MAX_TAGS} tags")
        for tag in tag_tuple:
            if not isinstance(tag, str):
                raise TypeError(f"a tag is a str, not {type(tag).__name__}")
            if len(tag) > MAX_TAG_LENGTH:
                raise ValueError(f'"{tag[:40]}..." is longer than the max tag length '
                                 f"({MAX_TAG_LENGTH} characters)")
        if ws._listener is not None:
            raise ValueError("this WebSocket was accepted already")
        if ws.ready_state is not ReadyState.OPEN:
            raise ValueError("this WebSocket is closed; it cannot be accepted")
        entry = self._entry(actor)
        if len(entry.sockets) >= self.max_per_object:
            raise ValueError(f"{actor.label} has {len(entry.sockets):,} WebSockets open, the "
                             f"limit per object; close some before accepting more")
        entry.sockets[ws] = tag_tuple
        ws._listen(functools.partial(self._on_frame, actor.key, entry))

    def websockets(self, actor: Actor, tag: str | None) -> list[WebSocket]:
        entry = self._objects.get(actor.key)
        if entry is None:
            return []
        return [ws for ws, tags in entry.sockets.items()
                if ws.ready_state is not ReadyState.CLOSED and (tag is None or tag in tags)]

    def tags(self, actor: Actor, ws: WebSocket) -> list[str]:
        entry = self._objects.get(actor.key)
        tags = None if entry is None else entry.sockets.get(ws)
        if tags is None:
            raise ValueError("this WebSocket was not accepted by this object with "
                             "ctx.accept_websocket() (or it has closed)")
        return list(tags)

    def set_auto_response(self, actor: Actor, pair: WebSocketRequestResponsePair | None) -> None:
        if pair is not None and not isinstance(pair, WebSocketRequestResponsePair):
            raise TypeError("set_websocket_auto_response() takes a "
                            f"WebSocketRequestResponsePair or None, not {type(pair).__name__}")
        if pair is None and actor.key not in self._objects:
            return
        self._entry(actor).auto_response = pair

    def auto_response(self, actor: Actor) -> WebSocketRequestResponsePair | None:
        entry = self._objects.get(actor.key)
        return None if entry is None else entry.auto_response

    def accepted(self, key: str) -> list[tuple[WebSocket, tuple[str, ...]]]:
        """The sockets the object of ``key`` accepted, with their tags, whether or not it
        is live (for the server's inspector)."""
        entry = self._objects.get(key)
        return [] if entry is None else list(entry.sockets.items())

    # -- the runtime's side ---------------------------------------------------------------------

    def close_object(self, key: str, code: int = 1011, reason: str = RESET_REASON) -> None:
        """Close every socket of one object (it was reset, or cannot start)."""
        entry = self._objects.pop(key, None)
        if entry is not None:
            _close_all(entry.sockets, code, reason)

    def close_everything(self, code: int, reason: str) -> None:
        """Close every socket (the runtime is shutting down)."""
        entries, self._objects = list(self._objects.values()), {}
        for entry in entries:
            _close_all(entry.sockets, code, reason)

    def forget_if_unused(self, key: str) -> None:
        """Drop the entry of an object that is not live and has no socket left."""
        entry = self._objects.get(key)
        if entry is not None and not entry.sockets and not self._router.is_live(key):
            del self._objects[key]

    def _entry(self, actor: Actor) -> ObjectSockets:
        entry = self._objects.get(actor.key)
        if entry is None:
            entry = ObjectSockets(actor.binding, actor.cls, actor.id)
            self._objects[actor.key] = entry
        return entry

    def _on_frame(self, key: str, entry: ObjectSockets, ws: WebSocket, frame: Frame) -> None:
        """A frame from the client of ``ws``, an accepted socket of the object ``key``."""
        kind, data, reason = frame
        if kind == "message":
            if message_size(data) > MAX_MESSAGE_SIZE:
                self._drop(key, entry, ws)
                ws._close_now(1009, "message too big")
                error = MessageTooBigError(f"a WebSocket message of {message_size(data):,} "
                                           f"bytes is over the limit of {MAX_MESSAGE_SIZE:,}")
                self._submit(entry, ws, "websocket_error", (ws, error))
                return
            pair = entry.auto_response
            if pair is not None and data == pair.request:
                ws.auto_response_at = self._router.now()
                ws._deliver(("message", pair.response, None))  # the object is not involved
                return
            self._submit(entry, ws, "websocket_message", (ws, data))
        elif kind == "closed":  # closed by the object itself (or by the runtime)
            self._drop(key, entry, ws)
        elif kind == "close":
            self._drop(key, entry, ws)
            self._submit(entry, ws, "websocket_close", (ws, data, reason, data != 1006))
        else:
            self._drop(key, entry, ws)
            self._submit(entry, ws, "websocket_error", (ws, data))

    def _drop(self, key: str, entry: ObjectSockets, ws: WebSocket) -> None:
        entry.sockets.pop(ws, None)
        if self._objects.get(key) is entry:
            self.forget_if_unused(key)

    def _submit(self, entry: ObjectSockets, ws: WebSocket, kind: EventKind,
                payload: Sequence[object]) -> None:
        if not hasattr(entry.cls, kind):
            # No handler: nothing to run, so do not wake the object for it.
            if kind == "websocket_message":
                log.warning("%s/%s has no websocket_message() handler; message dropped",
                            entry.binding, entry.object_id.name or entry.object_id.hex)
            return
        event = Event(kind, kind, tuple(payload))
        self._router.submit(entry.binding, entry.cls, entry.object_id, event)
        if event.reply.done and ws.ready_state is ReadyState.OPEN:
            # Refused at once: the object's queue is full, or the runtime is closing.
            ws._close_now(1013, "the object is overloaded; try again later")
            entry.sockets.pop(ws, None)


def _close_all(sockets: dict[WebSocket, tuple[str, ...]], code: int, reason: str) -> None:
    for ws in list(sockets):
        ws._close_now(code, reason)
    sockets.clear()
