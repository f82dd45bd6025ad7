"""A Python client for ``dobox serve``: the stub interface, over HTTP.

::

    async with Client("http://127.0.0.1:8787", tenant="acme", token="s3cret-acme") as client:
        room = client.namespace("ROOM").get_by_name("lobby")
        await room.post("hello")                  # a call: never retried
        await room.idempotent.messages(limit=10)  # safe to repeat: retried when retryable

Errors arrive as the same types an in-process stub raises: ``RemoteError`` (and, for
builtin exceptions, a subclass of the builtin), ``OverloadedError``, ``ObjectResetError``,
``UnknownMethodError``, ``InvalidArgumentsError``; authentication and routing failures as
``ClientError``. Calls made through ``stub.idempotent`` are retried on ``retryable`` errors
and on lost connections, with exponential backoff (0.1 s doubling, at most 20 s, 3 attempts
by default, as the Durable Objects docs suggest); nothing else is retried, and
``overloaded`` never is.
"""

from __future__ import annotations

import functools
import json
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable, Coroutine, Mapping, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from types import TracebackType
from typing import Any

import anyio
import attrs
import httpx

from actors import (
    InvalidArgumentsError,
    ObjectResetError,
    OverloadedError,
    RemoteError,
    UnknownMethodError,
)
from actors._errors import remote_error_class
from runtime._names import SERVED_BY, check_tenant, object_path, quote_segment
from storage import DoboxError, Expr, UnsupportedValueError, Value

from ._live import LiveQuery
from ._websocket import RemoteWebSocket, connect_websocket


class ClientError(DoboxError):
    """The server refused the request itself (authentication, routing, a malformed call).
    ``status`` is the HTTP status, ``type_name`` the server's error type."""

    def __init__(self, message: str, *, status: int, type_name: str) -> None:
        super().__init__(message)
        self.status = status
        self.type_name = type_name


@attrs.frozen
class RetryPolicy:
    """How idempotent calls are retried."""

    attempts: int = 3
    base_delay: float = 0.1
    max_delay: float = 20.0

    def delay(self, attempt: int) -> float:
        """Seconds to wait after failed attempt number ``attempt`` (1-based)."""
        return float(min(self.max_delay, self.base_delay * 2 ** (attempt - 1)))


MAX_HOMES = 10_000
"""Objects whose node a client remembers."""


class Client:
    """Calls objects served by ``dobox serve``; close it (or use ``async with``)."""

    def __init__(
        self,
        base_url: str | Sequence[str],
        *,
        tenant: str = "default",
        token: str | None = None,
        retry: RetryPolicy = RetryPolicy(),
        timeout: float = 30.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        headers = {"authorization": f"Bearer {token}"} if token is not None else {}
        self._headers = headers
        self.tenant = check_tenant(tenant)
        urls = [base_url] if isinstance(base_url, str) else list(base_url)
        if not urls:
            raise ValueError("Client needs at least one server URL")
        self._bases = [httpx.URL(url) for url in urls]
        """The servers (a cluster's nodes) this client may send to; it uses one until it
        cannot connect to it, then the next."""
        self._node_index = {str(base).rstrip("/"): i for i, base in enumerate(self._bases)}
        self._current = 0
        self._homes: OrderedDict[tuple[str, str], int] = OrderedDict()
        """Of a cluster's objects: the index in ``_bases`` of the node that last served
        each (its ``dobox-node`` answer header), to send its next calls there directly
        instead of through a hop. A hint: a node that no longer holds the object forwards."""
        self._http = httpx.AsyncClient(headers=headers, timeout=timeout, transport=transport)
        self.retry = retry

    def namespace(self, binding: str) -> ClientNamespace:
        return ClientNamespace(self, binding)

    async def aclose(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> Client:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def call(self, binding: str, name: str, method: str, args: tuple[object, ...],
                   kwargs: dict[str, object], *, idempotent: bool) -> Value:
        """One RPC call, retried as the module docstring says when ``idempotent``."""
        path = f"{object_path(self.tenant, binding, name)}/rpc/{quote_segment(method)}"
        body = _json_body(method, args, kwargs)
        attempts = self.retry.attempts if idempotent else 1
        for attempt in range(1, attempts + 1):
            try:
                response = await self._send(
                    lambda base: self._http.build_request(
                        "POST", _at(base, path), content=body,
                        headers={"content-type": "application/json"}),
                    home=(binding, name))
                return _result_of(response)
            except (RemoteError, httpx.TransportError) as exc:
                retryable = (isinstance(exc, httpx.TransportError)
                             or (exc.retryable and not exc.overloaded))
                if not retryable or attempt == attempts:
                    raise
                await anyio.sleep(self.retry.delay(attempt))
        raise AssertionError("unreachable")  # pragma: no cover

    async def fetch(self, binding: str, name: str, request: httpx.Request) -> httpx.Response:
        """Send ``request`` to the object's ``fetch``: its URL's path and query become the
        path and query after the object's name."""
        url = request.url
        path = f"{object_path(self.tenant, binding, name)}{url.raw_path.decode()}"
        content = request.read()
        return await self._send(lambda base: httpx.Request(
            request.method, _at(base, path), headers=request.headers, content=content),
            home=(binding, name))

    async def _send(self, build: Callable[[httpx.URL], httpx.Request],
                    home: tuple[str, str] | None = None) -> httpx.Response:
        """Send the request ``build`` makes for a server's URL: to the node that last served
        the object ``home`` (binding, name), if known, else to the current server; then,
        each time a server cannot be connected to (nothing was sent: safe whatever the
        call), to the next.

        A server that was connected to but did not answer (a timeout, a dropped connection)
        may have run the request, so it is not sent again here; but the calls after it start
        from the next server, since that one may be paused or cut off: the next node
        forwards to the object's owner if it is alive, and its answer says where to go.

        Raises:
            httpx.ConnectError: no server could be connected to.
            httpx.TransportError: the server did not answer.
        """
        first = self._homes.get(home, self._current) if home is not None else self._current
        for tried in range(len(self._bases)):
            index = (first + tried) % len(self._bases)
            try:
                request = build(self._bases[index])
                request.stream = _WholeBody(request.read())
                response = await self._http.send(request)
            except httpx.ConnectError:
                if home is not None:
                    self._homes.pop(home, None)
                if tried == len(self._bases) - 1:
                    raise
                continue
            except httpx.TransportError:
                if home is not None:
                    self._homes.pop(home, None)
                if index == self._current:
                    self._current = (index + 1) % len(self._bases)
                raise
            if tried:  # failed over: the next calls start from here
                self._current = index
            if home is not None and len(self._bases) > 1:
                self._remember_home(home, response.headers.get(SERVED_BY))
            return response
        raise AssertionError("unreachable")  # pragma: no cover

    def _remember_home(self, home: tuple[str, str], served_by: str | None) -> None:
        index = self._node_index.get(served_by.rstrip("/")) if served_by else None
        if index is None:  # not a cluster, or a node this client was not given
            return
        self._homes[home] = index
        self._homes.move_to_end(home)
        while len(self._homes) > MAX_HOMES:
            self._homes.popitem(last=False)


    def websocket(self, binding: str, name: str, path: str = "/", *,
                  headers: Mapping[str, str] | None = None
                  ) -> AbstractAsyncContextManager[RemoteWebSocket]:
        """Open a WebSocket to the object's ``fetch`` at ``path`` (see ``ClientStub``)."""
        base = self._bases[self._current]
        scheme = "wss" if base.scheme == "https" else "ws"
        url = _at(base.copy_with(scheme=scheme),
                  f"{object_path(self.tenant, binding, name)}/{path.lstrip('/')}")
        return connect_websocket(str(url), {**self._headers, **(headers or {})})


class ClientNamespace:
    def __init__(self, client: Client, binding: str) -> None:
        self._client = client
        self.binding = binding

    def get_by_name(self, name: str) -> ClientStub:
        return ClientStub(self._client, self.binding, name, idempotent=False)


class ClientStub:
    """``await stub.method(*args, **kwargs)``; ``stub.idempotent`` for calls safe to retry."""

    def __init__(self, client: Client, binding: str, name: str, *, idempotent: bool) -> None:
        self._client = client
        self._binding = binding
        self.name = name
        self._idempotent = idempotent

    @property
    def idempotent(self) -> ClientStub:
        """The same object, with calls retried on retryable errors."""
        return ClientStub(self._client, self._binding, self.name, idempotent=True)

    async def fetch(self, request: httpx.Request) -> httpx.Response:
        return await self._client.fetch(self._binding, self.name, request)

    @asynccontextmanager
    async def subscribe(  # type: ignore[explicit-any, misc]  # JSON messages
        self, collection: str, where: Expr | None = None, *,
        order_by: str | Sequence[str] = (), limit: int | None = None,
    ) -> AsyncIterator[AsyncIterator[dict[str, Any]]]:
        """``async with stub.subscribe("todos", field("done") == False) as feed``: a live
        query of one of the object's collections, over a WebSocket that is reopened with
        exponential backoff when it drops, resuming where it left off (see
        ``_client_live``). Iterate ``feed`` for the messages, as dicts.

        Raises (while iterating):
            LiveQueryError: the server refused the query (an unknown collection, say).
        """
        terms = [order_by] if isinstance(order_by, str) else list(order_by)
        query = LiveQuery(
            lambda: self.websocket(f"/subscribe/{quote_segment(collection)}"), where, terms, limit,
            lambda failures: self._client.retry.delay(min(failures, 16)))
        messages = query.messages()
        try:
            yield messages
        finally:
            await messages.aclose()

    def websocket(self, path: str = "/", *, headers: Mapping[str, str] | None = None
                  ) -> AbstractAsyncContextManager[RemoteWebSocket]:
        """``async with stub.websocket("/chat") as ws``: a WebSocket to the object (its
        ``fetch`` gets the upgrade request for ``path``), closed on exit.

        Raises:
            WebSocketRejected: the object (or the server) refused the upgrade.
        """
        return self._client.websocket(self._binding, self.name, path, headers=headers)

    async def call(self, method: str, /, *args: object, **kwargs: object) -> Value:
        """Call the RPC method named ``method``, whatever its name (also one that is an
        attribute of this stub, such as ``name`` or ``subscribe``)."""
        return await self._client.call(self._binding, self.name, method, args, kwargs,
                                       idempotent=self._idempotent)

    def __getattr__(self, method: str) -> Callable[..., Coroutine[object, object, Value]]:  # type: ignore[explicit-any]  # any RPC signature
        if method.startswith("_"):
            raise UnknownMethodError(
                f"{method[:100]!r} is not an RPC method: RPC methods are an object's public "
                "async methods (no leading _)")
        return functools.partial(self.call, method)


def _json_body(method: str, args: tuple[object, ...], kwargs: dict[str, object]) -> bytes:
    """The call as the server reads it.

    Raises:
        UnsupportedValueError: an argument is not a JSON value (a set, bytes, a
            datetime...): over HTTP, arguments and results are JSON.
    """
    try:
        return json.dumps({"args": list(args), "kwargs": kwargs},
                          separators=(",", ":")).encode()
    except (TypeError, ValueError) as exc:
        raise UnsupportedValueError(
            f"the arguments of {method[:100]}() cannot cross the call: over HTTP they travel "
            f"as JSON, and {exc} (pass lists, dicts, strings, numbers, booleans or None)"
        ) from None


class _WholeBody(httpx.AsyncByteStream):
    """A request body sent in one piece. httpx's own iterates with an async generator,
    which trio reports (a ResourceWarning) when a write to a dying server abandons it."""

    def __init__(self, data: bytes) -> None:
        self._data = data

    def __aiter__(self) -> AsyncIterator[bytes]:
        return _OneChunk(self._data)


class _OneChunk:
    def __init__(self, data: bytes) -> None:
        self._data: bytes | None = data

    def __aiter__(self) -> _OneChunk:
        return self

    async def __anext__(self) -> bytes:
        if self._data is None:
            raise StopAsyncIteration
        data, self._data = self._data, None
        return data


def _at(base: httpx.URL, path: str) -> httpx.URL:
    """``path`` (percent-encoded, with its query) under the server's URL, keeping any path
    the URL has (a server behind a proxy's prefix)."""
    prefix = base.raw_path.split(b"?")[0]
    if not prefix.endswith(b"/"):
        prefix += b"/"
    return base.copy_with(raw_path=prefix + path.lstrip("/").encode("ascii"))


def _result_of(response: httpx.Response) -> Value:
    try:
        payload = response.json()
    except ValueError as exc:
        raise ClientError(f"the server answered {response.status_code} without JSON",
                          status=response.status_code, type_name="NotJSON") from exc
    if response.status_code == 200:
        return payload["result"]
    error = payload.get("error", {}) if isinstance(payload, dict) else {}
    type_name = str(error.get("type", "Error"))
    message = str(error.get("message", response.text))
    if error.get("overloaded"):
        raise OverloadedError(message)
    if error.get("reset"):
        raise ObjectResetError(message, type_name=type_name)
    if error.get("remote"):
        raise remote_error_class(type_name)(message, type_name=type_name,
                                            retryable=bool(error.get("retryable")))
    if type_name == "UnknownMethodError":
        raise UnknownMethodError(message)
    if type_name == "InvalidArgumentsError":
        raise InvalidArgumentsError(message)
    if error.get("retryable"):  # the server is starting or shutting down
        raise RemoteError(message, type_name=type_name, remote=False, retryable=True)
    raise ClientError(message, status=response.status_code, type_name=type_name)
