"""The seam between an object and whatever hosts it: :class:`ObjectHost`, and
``current_host``, the host of the object whose event the running task serves.

Objects, stubs and WebSockets see the host only through this interface; the runtime's
engine implements it for each live object (``runtime._engine._actor.Actor``).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from contextvars import ContextVar
from typing import TYPE_CHECKING, NoReturn, Protocol, TypeVar

if TYPE_CHECKING:
    from ._websocket import WebSocket, WebSocketRequestResponsePair

T = TypeVar("T")


class ObjectHost(Protocol):
    """What the runtime provides to one live object."""

    def now(self) -> float: ...
    async def block_concurrency_while(self, fn: Callable[[], Awaitable[T]]) -> T: ...
    def wait_until(self, awaitable: Awaitable[object]) -> None: ...
    def abort(self, reason: str | None) -> NoReturn: ...
    def accept_websocket(self, ws: object, tags: Iterable[str]) -> None: ...
    def get_websockets(self, tag: str | None) -> list[WebSocket]: ...
    def get_tags(self, ws: WebSocket) -> list[str]: ...
    def set_websocket_auto_response(self, pair: WebSocketRequestResponsePair | None) -> None: ...
    def get_websocket_auto_response(self) -> WebSocketRequestResponsePair | None: ...

    # What stubs and WebSockets ask of the host of the object that uses them:

    def hold_until_durable(self, send: Callable[[], None]) -> bool:
        """Keep ``send`` (a message or call leaving the object) until the object's writes
        are durable, and return True; False if nothing is uncommitted (send it now)."""

    async def call_out(self, send: Callable[[], Awaitable[T]]) -> T:
        """Await ``send()``, a call leaving the object, the way the host's input gate
        wants (today: other events of the object may run meanwhile)."""


current_host: ContextVar[ObjectHost | None] = ContextVar("dobox_current_host", default=None)
"""The host of the object whose event the running task serves (tasks a handler starts
inherit it): what an object sends goes through its output gate, its calls out through
its input gate."""
