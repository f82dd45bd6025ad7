"""What an object's author writes against: ``DurableObject``, ``ObjectContext``, ``Env``.

The runtime implements :class:`~actors.ObjectHost` for each live object and hands the object an
:class:`ObjectContext` over it; nothing here knows how events are scheduled.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping
from typing import TYPE_CHECKING, ClassVar, Literal, NoReturn, TypeVar

from storage import Migration, SchemaPolicy, Storage

from ._host import ObjectHost
from ._ids import ObjectId
from ._websocket import WebSocket, WebSocketRequestResponsePair

if TYPE_CHECKING:
    from storage import Value

T = TypeVar("T")



class ObjectContext:
    """``self.ctx`` inside an object: its id, its storage, the clock, and the concurrency
    controls (Durable Objects' ``DurableObjectState``)."""

    __slots__ = ("_host", "id", "storage")

    def __init__(self, object_id: ObjectId, storage: Storage, host: ObjectHost) -> None:
        self.id = object_id
        """The object's id; ``id.name`` is its name when it was made from one."""
        self.storage = storage
        """The object's storage: see docs/reference/storage.md."""
        self._host = host

    def now(self) -> float:
        """The runtime's wall clock in epoch seconds. It advances with trio's clock, so a
        test under ``trio.testing.MockClock`` moves it; use it, not ``time.time()``."""
        return self._host.now()

    async def block_concurrency_while(self, fn: Callable[[], Awaitable[T]]) -> T:
        """Run ``await fn()`` while no other event of this object runs, even across awaits
        on other objects. If ``fn`` raises, the object is reset (and the error re-raised)."""
        return await self._host.block_concurrency_while(fn)

    def wait_until(self, awaitable: Awaitable[object]) -> None:
        """Run ``awaitable`` in the background; the object is not evicted until it ends."""
        self._host.wait_until(awaitable)

    def abort(self, reason: str | None = None) -> NoReturn:
        """Reset the object now: the current and queued events fail with a reset error and
        the next event starts a fresh instance. The object's own code cannot catch it."""
        self._host.abort(reason)

    # -- WebSockets (the hibernation API; see docs/reference/websockets.md) ------------------

    def accept_websocket(self, ws: WebSocket, tags: Iterable[str] = ()) -> None:
        """Accept the server end of a ``WebSocketPair``: its messages arrive as
        ``websocket_message(ws, message)`` events, ``websocket_close(ws, code, reason,
        was_clean)`` and ``websocket_error(ws, error)``, and it stays open while this object
        is evicted (the next message wakes it).

        Raises:
            ValueError: over 10 tags, a tag over 256 characters, a socket already accepted
                or closed, or the object's socket limit reached.
            TypeError: ``ws`` is not a WebSocket, or a tag not a str.
        """
        self._host.accept_websocket(ws, tags)

    def get_websockets(self, tag: str | None = None) -> list[WebSocket]:
        """This object's accepted sockets that are not closed (with ``tag``, if given), in
        the order they were accepted."""
        return self._host.get_websockets(tag)

    def get_tags(self, ws: WebSocket) -> list[str]:
        """The tags ``ws`` was accepted with.

        Raises:
            ValueError: ``ws`` is not an open socket accepted by this object.
        """
        return self._host.get_tags(ws)

    def set_websocket_auto_response(
        self, pair: WebSocketRequestResponsePair | None = None
    ) -> None:
        """Answer a text message equal to ``pair.request`` with ``pair.response`` on any of
        this object's sockets, without waking the object; ``None`` removes it."""
        self._host.set_websocket_auto_response(pair)

    def get_websocket_auto_response(self) -> WebSocketRequestResponsePair | None:
        """The auto-response set with ``set_websocket_auto_response``, or None."""
        return self._host.get_websocket_auto_response()

    def get_websocket_auto_response_timestamp(self, ws: WebSocket) -> float | None:
        """When ``ws`` was last answered by the auto-response (epoch seconds), or None."""
        return ws.auto_response_at


class Env:
    """``self.env``: every namespace by its binding name, plus the runtime's ``env`` values.

    Read them as attributes (``self.env.COUNTER``) or items (``self.env["COUNTER"]``).
    """

    __slots__ = ("_values",)

    def __init__(self, values: Mapping[str, object]) -> None:
        self._values = dict(values)

    def __getattr__(self, name: str) -> Value:
        try:
            return self._values[name]
        except KeyError:
            raise AttributeError(
                f"env has no {name!r}; it has {', '.join(sorted(self._values)) or 'nothing'}"
            ) from None

    def __getitem__(self, name: str) -> Value:
        return self._values[name]

    def __contains__(self, name: object) -> bool:
        return name in self._values

    def __iter__(self) -> Iterator[str]:
        return iter(self._values)


class DurableObject:
    """Base class of objects. Subclass it; every public ``async def`` becomes an RPC method.

    Class attributes:

    - ``schema_version``: the version of the object's stored data (default 1);
    - ``migrations``: ``{version: fn(storage)}`` steps up to ``schema_version``;
    - ``on_schema_mismatch``: ``"clear"``, ``"throw"`` or ``"migrate"``, overriding the
      inferred policy (``clear`` if the class defines ``sync``, ``migrate`` if it declares
      migrations, else ``throw``);
    - ``input_gate``: ``"open_on_await"`` (other events run while a handler awaits anything
      but its storage, as in Durable Objects) or ``"strict"`` (only while it awaits another
      object); ``None``, the default, takes the runtime's ``input_gate`` option.

    Handlers the runtime calls: ``on_start()`` on every activation before any event,
    ``sync()`` after a clear, ``fetch(request)``, ``alarm(info)``, and for accepted
    WebSockets ``websocket_message(ws, message)``, ``websocket_close(ws, code, reason,
    was_clean)`` and ``websocket_error(ws, error)``.
    """

    schema_version: ClassVar[int] = 1
    migrations: ClassVar[Mapping[int, Migration]] = {}
    on_schema_mismatch: ClassVar[SchemaPolicy | None] = None
    input_gate: ClassVar[Literal["open_on_await", "strict"] | None] = None

    def __init__(self, ctx: ObjectContext, env: Env) -> None:
        self.ctx = ctx
        self.env = env

    async def on_start(self) -> None:
        """Runs on every activation, before any event, with other events held."""

    def _collections_storage(self) -> Storage:
        """Where the collections the class declares live (``storage.collection`` specs
        ask for it: storage knows nothing else of objects)."""
        return self.ctx.storage


def schema_policy(cls: type[DurableObject]) -> SchemaPolicy:
    """The mismatch policy of ``cls``: explicit, else inferred from ``sync``/``migrations``."""
    if cls.on_schema_mismatch is not None:
        return cls.on_schema_mismatch
    if is_sync_present(cls):
        return "clear"
    if cls.migrations:
        return "migrate"
    return "throw"


def is_sync_present(cls: type[DurableObject]) -> bool:
    """Whether the class's storage is a cache of an upstream truth (it defines ``sync``)."""
    return inspect.iscoroutinefunction(getattr(cls, "sync", None))
