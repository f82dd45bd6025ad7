"""Namespaces (``rt.namespace("ROOM")``, ``env.ROOM``) and stubs.

A stub call queues its event in the object's mailbox at the moment the call is *made*
(``stub.method(...)`` returns an awaitable :class:`Call` after queueing), so calls are
delivered in the order they are made, as through a Durable Objects stub. Awaiting the call
waits for the reply. A call made by an object that has uncommitted writes is held until
those writes are durable (its object's next commit, or its own await, whichever comes
first): nothing leaves an object before its writes are on disk.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Coroutine, Generator, Mapping, Sequence
from contextlib import asynccontextmanager
from types import TracebackType
from typing import TYPE_CHECKING, Generic, TypeVar

import httpx

from actors import DurableObject, ObjectContext, ObjectId, UnknownMethodError
from actors._host import current_host
from actors._ids import id_from_name, id_from_string, namespace_key, new_unique_id
from actors._rpc import RpcMethod, rpc_method
from actors._websocket import WebSocket, WebSocketRejected
from storage import (
    Change,
    Expr,
    Snapshot,
    Subscription,
    Value,
    collection_specs,
    encode_value,
)
from storage._collections import expr_from_data

from ._event import NO_ARGUMENTS, Event, EventKind
from ._http import copy_request

if TYPE_CHECKING:
    from ._lowlevel import EventSink


MAX_CACHED_IDS = 10_000
"""Names whose ids a namespace keeps: an id costs two HMACs (5 µs), a lookup 0.06 µs."""


ObjectT = TypeVar("ObjectT", bound=DurableObject, covariant=True)
"""The class of a namespace's objects: what its stubs type-check as (``dobox.mypy``)."""


class Namespace(Generic[ObjectT]):
    """One binding's objects: make ids, and stubs to call them.

    Generic in the objects' class, for type checkers only: ``rt.namespace("C", Counter)``
    is a ``Namespace[Counter]``, whose stubs mypy checks against ``Counter``'s methods with
    dobox's plugin (docs/reference/runtime.md, "Typed stubs").
    """

    __slots__ = ("_ids", "_key", "_router", "binding", "cls")

    def __init__(self, router: EventSink, binding: str, cls: type[ObjectT]) -> None:
        self._router = router
        self.binding = binding
        self.cls = cls
        self._key = namespace_key(router.id_scope + binding)
        self._ids: dict[str, ObjectId] = {}
        """Ids of the names asked for lately, the oldest first (dropped beyond the cap)."""

    def __repr__(self) -> str:
        return f"<Namespace {self.binding} of {self.cls.__qualname__}>"

    def id_from_name(self, name: str) -> ObjectId:
        """The id for ``name``: always the same in this namespace, never in another."""
        found = self._ids.get(name)
        if found is None:
            found = self._ids[name] = id_from_name(self._key, name)  # checks the name
            if len(self._ids) > MAX_CACHED_IDS:
                del self._ids[next(iter(self._ids))]
        return found

    def new_unique_id(self) -> ObjectId:
        """A new random id, never returned twice."""
        return new_unique_id(self._key)

    def id_from_string(self, text: str) -> ObjectId:
        """Parse an id's 64 hex digits.

        Raises:
            InvalidObjectId: malformed, or made by another namespace.
        """
        return id_from_string(self._key, text)

    def get(self, object_id: ObjectId) -> Stub[ObjectT]:
        """A stub for the object (nothing is activated until the first call).

        Raises:
            InvalidObjectId: ``object_id`` was made by another namespace.
        """
        if not isinstance(object_id, ObjectId):
            raise TypeError(f"get() takes an ObjectId, not {type(object_id).__name__}")
        checked = id_from_string(self._key, object_id.hex)
        return Stub(self, ObjectId(checked.hex, object_id.name))

    def get_by_name(self, name: str) -> Stub[ObjectT]:
        """``get(id_from_name(name))``."""
        return Stub(self, self.id_from_name(name))

    def _submit(self, object_id: ObjectId, event: Event) -> None:
        self._router.submit(self.binding, self.cls, object_id, event)


def check_namespace_class(namespace: Namespace[DurableObject],
                          cls: type[DurableObject] | None) -> Namespace[DurableObject]:
    """``namespace``, once ``cls`` (if given) is its class or a base of it.

    Raises:
        TypeError: it is not.
    """
    if cls is not None and not (isinstance(cls, type) and issubclass(namespace.cls, cls)):
        raise TypeError(f"namespace {namespace.binding!r} hosts "
                        f"{namespace.cls.__qualname__}, not {cls!r}")
    return namespace


class Stub(Generic[ObjectT]):
    """Calls one object: ``await stub.method(*args, **kwargs)`` and ``await stub.fetch(req)``.

    Arguments and results cross by value through the storage codec. Raises, when awaited,
    :class:`~actors.RemoteError` (or a subclass) for what failed in the object.

    The stub's own attributes (``id``, ``name``, ``call``, ``fetch``, ``subscribe``,
    ``websocket``) come first; an RPC method with one of those names is called with
    ``stub.call(name, ...)`` (the server reaches it by its name as any other).
    """

    __slots__ = ("_namespace", "id")

    def __init__(self, namespace: Namespace[ObjectT], object_id: ObjectId) -> None:
        self._namespace = namespace
        self.id = object_id

    @property
    def name(self) -> str | None:
        return self.id.name

    def __repr__(self) -> str:
        return f"<Stub {self._namespace.binding}/{self.id.name or self.id.hex}>"

    def __getattr__(self, method: str) -> _Method:
        return _Method(self, rpc_method(self._namespace.cls, method))

    def call(self, method: str, /, *args: object, **kwargs: object) -> Call:
        """Call the RPC method named ``method``, whatever its name (also ``name``, ``id``,
        ``call``, ``subscribe`` or ``websocket``, which ``stub.<attribute>`` does not reach).

        Raises:
            UnknownMethodError: the class has no such RPC method (nothing is queued).
            InvalidArgumentsError: the arguments do not fit its signature (nothing is queued).
        """
        return _Method(self, rpc_method(self._namespace.cls, method))(*args, **kwargs)

    def fetch(self, request: httpx.Request) -> Call:
        """Send ``request`` to the object's ``fetch`` handler; await it for the response."""
        if not hasattr(self._namespace.cls, "fetch"):
            raise UnknownMethodError(f"{self._namespace.cls.__qualname__} has no fetch() handler")
        return Call(self, "fetch", "fetch", copy_request(request))

    def fetch_handing_over(self, request: httpx.Request) -> Call:
        """``fetch(request)`` for a caller that hands ``request`` over (it made it for this
        call and never touches it again) and only reads the response it gets back (the
        server's front door): neither is copied, since nobody could see the difference."""
        if not hasattr(self._namespace.cls, "fetch"):
            raise UnknownMethodError(f"{self._namespace.cls.__qualname__} has no fetch() handler")
        if not isinstance(request, httpx.Request):
            raise TypeError(f"fetch() takes an httpx.Request, not {type(request).__name__}")
        call = Call(self, "fetch", "fetch", request)
        call._event.by_reference = True
        return call

    @asynccontextmanager
    async def subscribe(
        self,
        collection: str,
        where: Expr | None = None,
        *,
        order_by: str | Sequence[str] = (),
        limit: int | None = None,
        since: int | None = None,
    ) -> AsyncIterator[AsyncIterator[Snapshot | Change]]:
        """A live query on one of the object's collections, from outside it: yields an
        async iterator of ``Snapshot``/``Change`` messages. Nothing in them is shared with
        the object: each subscription's records are decoded from the database for it. While
        it is open the object stays live. See docs/reference/collections.md.

        Raises:
            ValueError: the class declares no such collection, or a bad condition.
        """
        where_data = None if where is None else where.to_data()  # by value, as calls are
        terms = [order_by] if isinstance(order_by, str) else list(order_by)

        def start(obj: DurableObject, ctx: ObjectContext) -> Subscription:
            specs = {spec.name: spec for spec in collection_specs(type(obj))}
            if collection not in specs:
                raise ValueError(f"{type(obj).__qualname__} declares no collection "
                                 f"{collection!r} (it has: {', '.join(specs) or 'none'})")
            condition = None if where_data is None else expr_from_data(where_data)
            subscription = ctx.storage.collection(specs[collection]).subscribe(
                condition, order_by=terms, limit=limit, since=since)
            ctx.wait_until(subscription.wait_closed())  # live while someone listens
            return subscription

        subscription = await Call(self, "run", "subscribe", start)
        assert isinstance(subscription, Subscription)
        try:
            yield subscription
        finally:
            subscription.close()

    @asynccontextmanager
    async def websocket(
        self, path: str = "/", *, headers: Mapping[str, str] | None = None
    ) -> AsyncIterator[WebSocket]:
        """Open a WebSocket to the object: a ``GET path`` upgrade request through ``fetch``;
        yields the client end (``send``, ``await receive()``, ``async for``), closed on exit.

        Raises:
            WebSocketRejected: the object answered with another status than 101.
        """
        upgrade = {"upgrade": "websocket", "connection": "upgrade", **(headers or {})}
        response = await self.fetch(
            httpx.Request("GET", "http://dobox/" + path.lstrip("/"), headers=upgrade)
        )
        if response.status_code != 101:
            raise WebSocketRejected(response.status_code, response.content)
        client = response.extensions["websocket"]
        assert isinstance(client, WebSocket), "checked when the response crossed"
        try:
            yield client
        finally:
            client.close()


class _Method:
    __slots__ = ("_method", "_stub")

    def __init__(self, stub: Stub[DurableObject], method: RpcMethod) -> None:
        self._stub = stub
        self._method = method

    def __call__(self, /, *args: object, **kwargs: object) -> Call:
        method = self._method
        method.check_arguments(args, kwargs)
        if args or kwargs:
            payload = encode_value((args, kwargs), name=f"the arguments of {method.name}()")
        else:
            payload = NO_ARGUMENTS
        return Call(self._stub, "rpc", method.name, payload)


class Call(Coroutine[object, object, Value]):
    """A call on its way: made (and, normally, queued) already; await it for the result.

    It is a coroutine, so ``nursery.start_soon(stub.method, arg)`` works. A call that is
    never awaited still runs, as a Durable Objects call that is not awaited does; its
    result and errors are lost.
    """

    __slots__ = ("_coroutine", "_event", "_queued", "_stub")

    def __init__(self, stub: Stub[DurableObject], kind: EventKind, name: str,
                 payload: object) -> None:
        self._stub = stub
        self._event = Event(kind, name, payload)
        self._coroutine: Coroutine[object, object, Value] | None = None
        self._queued = False
        caller = current_host.get()
        if caller is None or not caller.hold_until_durable(self._queue):
            self._queue()

    def _inner(self) -> Coroutine[object, object, Value]:
        if self._coroutine is None:
            self._coroutine = self._result()
        return self._coroutine

    def __await__(self) -> Generator[object, None, Value]:
        return self._inner().__await__()

    def send(self, value: object) -> object:
        return self._inner().send(value)

    def throw(
        self,
        typ: type[BaseException] | BaseException,
        val: object = None,
        tb: TracebackType | None = None,
    ) -> object:
        if isinstance(typ, BaseException):
            return self._inner().throw(typ)
        return self._inner().throw(typ, val, tb)

    def close(self) -> None:
        if self._coroutine is not None:
            self._coroutine.close()

    async def _result(self) -> Value:
        caller = current_host.get()
        if caller is None:
            return await self._send()
        return await caller.call_out(self._send)

    def _queue(self) -> None:
        if not self._queued:
            self._queued = True
            self._stub._namespace._submit(self._stub.id, self._event)

    async def _send(self) -> Value:
        self._queue()
        return await self._event.reply.wait()

    def when_done(self, callback: Callable[[], None]) -> None:
        """For callers outside trio's tasks, instead of awaiting: ``callback()`` runs once
        the outcome is set (see :meth:`Reply.when_done`); then read it with ``outcome()``."""
        self._queue()
        self._event.reply.when_done(callback)

    def outcome(self) -> Value:
        """The result of a call that is done; raises its error."""
        return self._event.reply.outcome()

