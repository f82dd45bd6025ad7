"""The HTTP face of dobox: an ASGI application serving objects per tenant.

Routes (DESIGN.md, "The server"):

- ``GET /healthz``: ``ok``.
- ``POST /{tenant}/{namespace}/{name}/rpc/{method}`` with a JSON body
  ``{"args": [...], "kwargs": {...}}``: calls the method; answers ``{"result": ...}``.
- ``/{tenant}/{namespace}/{name}/subscribe/{collection}``, a WebSocket: a live query of
  one of the object's collections (see ``_live_socket``).
- ``/{tenant}/{namespace}/{name}/{path...}``, any method: forwarded to the object's
  ``fetch`` with the path after the name and the query string, headers and body intact
  (a WebSocket upgrade too).

Each tenant has its own runtime over ``<data>/tenants/<tenant>/`` and its own id keys, so
one name in two tenants is two objects. With a tokens file, a request must carry
``Authorization: Bearer <that tenant's token>`` (401 without one, 403 with another
tenant's); without one, the only tenant is ``default``. Nothing is activated for a request
refused by authentication or routing. Errors are JSON, ``{"error": {"type", "message",
"remote", "retryable", "overloaded", "reset"}}``, with a fitting status.

The runtimes run in trio, a guest of the server's asyncio loop (see ``_guest``).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import datetime as dt
import hmac
import json
import logging
import math
import urllib.parse
from collections.abc import Awaitable, Callable, Mapping, MutableMapping
from contextlib import AbstractAsyncContextManager, AsyncExitStack
from pathlib import Path
from typing import TypeAlias

import anyio
import httpx
import trio

from actors import (
    MAX_NAME_BYTES,
    DurableObject,
    InvalidArgumentsError,
    InvalidObjectId,
    InvalidObjectName,
    ObjectResetError,
    OverloadedError,
    RemoteError,
    RuntimeClosedError,
    UnknownMethodError,
)
from actors._ids import check_name
from actors._websocket import WebSocket
from runtime._engine import Call, Runtime, RuntimeOptions, check_objects, open_runtime
from runtime._names import SERVED_BY, TENANT
from runtime.cluster import EtcdError, NotOwnerError
from storage import DoboxError, StorageFullError, UnsupportedValueError

from ._cluster import (
    FORWARDED_BY,
    OWNER,
    ClusterFront,
    ClusterSettings,
    forwarded_headers,
    relayed_headers,
)
from ._guest import DEFAULT_BUSY_POLL, TrioPortal, log_errors, open_trio_guest
from ._inspector import PREFIX as INSPECTOR_PREFIX
from ._inspector import Inspector
from ._inspector import check_policy as check_inspector_policy
from ._live_socket import open_live_socket
from ._metrics import ServerMetrics
from ._relay import Relay, RelayConnectError, RelayError, RelayRefused, relay_websocket
from ._tenants import Tenants
from ._websocket_bridge import bridge_websocket

log = logging.getLogger("dobox.server")

Scope: TypeAlias = MutableMapping[str, object]
Message: TypeAlias = MutableMapping[str, object]
Receive: TypeAlias = Callable[[], Awaitable[Message]]
Send: TypeAlias = Callable[[Message], Awaitable[None]]

DEFAULT_TENANT = "default"


class HttpError(DoboxError):
    """An error answered with ``status`` and dobox's JSON error body."""

    def __init__(self, status: int, type_name: str, message: str, *,
                 headers: Mapping[str, str] | None = None, remote: bool = False,
                 retryable: bool = False, overloaded: bool = False, reset: bool = False) -> None:
        super().__init__(message)
        self.status = status
        self.headers = dict(headers or {})
        self.body: dict[str, dict[str, object]] = {"error": {
            "type": type_name, "message": message, "remote": remote, "retryable": retryable,
            "overloaded": overloaded, "reset": reset,
        }}


class _NotOpen(Exception):
    """The tenant's runtime is not open: the request takes the way that opens it."""


class DoboxApp:
    """The ASGI application (``dobox serve`` runs it under uvicorn)."""

    def __init__(
        self,
        data_dir: Path,
        objects: Mapping[str, type[DurableObject]],
        *,
        tokens: Mapping[str, str] | None = None,
        max_body: int = 1 << 20,
        request_timeout: float = 30.0,
        runtime_options: RuntimeOptions | None = None,
        tenant_idle_timeout: float | None = None,
        cluster: ClusterSettings | None = None,
        busy_poll: float = DEFAULT_BUSY_POLL,
        metrics_token: str | None = None,
        inspector: bool = False,
        inspector_token: str | None = None,
    ) -> None:
        check_objects(objects)
        if inspector:
            check_inspector_policy(inspector_token, tenant_tokens=tokens is not None)
        self.metrics_token = metrics_token
        """The bearer token ``/metrics`` wants (tenant tokens never open it): see
        :meth:`_authorize_metrics`."""  # now, not at a tenant's first request: a 500 for each
        self.data_dir = data_dir
        self.busy_poll = busy_poll
        """Under asyncio: seconds trio keeps polling after a request (``_guest``)."""
        self.objects = dict(objects)
        self.tokens = dict(tokens) if tokens is not None else None
        self.max_body = max_body
        self.request_timeout = request_timeout
        self.runtime_options = runtime_options or RuntimeOptions()
        self._exit_stack = AsyncExitStack()
        self._portal: TrioPortal | None = None
        self._trio_nursery: trio.Nursery | None = None
        """Set when the app runs inside trio itself (hypercorn's trio worker): no bridge."""
        self.tenants = Tenants(
            self._open_tenant,
            idle_timeout=tenant_idle_timeout if tenant_idle_timeout is not None
            else self.runtime_options.idle_timeout,
            nursery=self._nursery)
        self.metrics = ServerMetrics(lambda: self.tenants.open)
        self.cluster = ClusterFront(cluster, Path(data_dir)) if cluster is not None else None
        """This server's node, when it is one of a cluster (see ``_cluster``)."""
        self._relay = Relay(timeout=request_timeout)
        self.inspector = Inspector(
            data_dir=Path(data_dir), bindings=self.objects,
            open_runtimes=lambda: self.tenants.open,
            requests_answered=self.metrics.requests_answered, token=inspector_token,
            in_trio=self._in_trio_as_is) if inspector else None
        """The web pages under /_dobox/ (``--inspector``), or None."""

    # -- ASGI -------------------------------------------------------------------------------

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
        elif scope["type"] == "websocket":
            await self._websocket(scope, receive, send)
        elif scope["type"] == "http":
            route = _route_kind(str(scope["path"]), str(scope["method"]))
            try:
                await self._http(scope, receive, send)
            except asyncio.CancelledError:
                # The server is stopping at once (a second Ctrl-C, or uvicorn's graceful
                # timeout) and the loop cancels what is in flight: answer that, instead of
                # letting uvicorn log a traceback and answer 500.
                stopping = HttpError(503, "Unavailable", "the server is stopping",
                                     retryable=True)
                with contextlib.suppress(Exception):  # the connection may be gone already
                    await _send_json(send, stopping.status, stopping.body)
                return
            except HttpError as error:
                self.metrics.requests.labels(route, str(error.status)).inc()
                self.metrics.errors.labels(error.body["error"]["type"]).inc()
                if error.status == 500:  # the object's code, or dobox: the operator's to see
                    detail = error.body["error"]
                    log.warning("500 for %s %s: %s: %s", scope["method"],
                                _shown_path(str(scope["path"])), detail["type"],
                                detail["message"])
                await _send_json(send, error.status, error.body, error.headers)
            else:
                self.metrics.requests.labels(route, "200").inc()

    def run_in_trio(self, nursery: trio.Nursery) -> None:
        """Serve from inside trio (hypercorn's trio worker): calls run directly, and tenant
        runtimes live in ``nursery``, which the caller cancels to shut them down."""
        self._trio_nursery = nursery

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            try:
                message = await receive()
            except asyncio.CancelledError:
                # A forced stop (a second Ctrl-C): uvicorn skips "lifespan.shutdown" and
                # cancels this task as the loop ends. Every acknowledged write is already
                # on disk; the runtimes are not drained (that is what was asked), and this
                # is no error to report with a traceback.
                return
            if message["type"] == "lifespan.startup":
                if self._trio_nursery is None:  # under asyncio: trio as a guest
                    self._portal = await self._exit_stack.enter_async_context(
                        open_trio_guest(busy_poll=self.busy_poll))
                if self.cluster is not None:
                    try:
                        await self._in_trio(self._join_cluster)
                    except HttpError as error:
                        await send({"type": "lifespan.startup.failed",
                                    "message": f"cannot join the cluster: {error}"})
                        return
                else:  # (a cluster node's tenants wait for a request: docs/cluster.md)
                    await self._in_trio(self.tenants.wake_for_alarms,
                                        self.data_dir / "tenants")
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self._exit_stack.aclose()  # trio drains every runtime, then stops
                await self._relay.aclose()
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = str(scope["path"])
        if path == "/healthz":
            await _send_text(send, 200, "ok")
            return
        if path == "/_dobox" or path.startswith(INSPECTOR_PREFIX):
            await self._inspect(scope, receive, send)
            return
        if path == "/metrics":
            self._authorize_metrics(_bearer_token(scope))
            await send({"type": "http.response.start", "status": 200,
                        "headers": [(b"content-type", b"text/plain; version=0.0.4")]})
            await send({"type": "http.response.body", "body": self.metrics.render()})
            return
        tenant, binding, name, rest, rest_as_sent = self._target(scope)
        body = await _read_body(receive, self.max_body)
        if self.cluster is not None and _header(scope, FORWARDED_BY.encode()) is None:
            claim_key, address = await self._served_at(tenant, binding, name)
            if address is not None:
                await self._forward(address, claim_key, scope, body, send)
                return
            try:
                await self._serve_here(scope, send, tenant, binding, name, rest, rest_as_sent,
                                       body)
            except HttpError as error:
                owner = error.headers.get(OWNER)
                if owner is None:
                    raise
                self.cluster.remember(claim_key, owner)  # lost a race for a cold object
                await self._forward(owner, claim_key, scope, body, send)
            return
        await self._serve_here(scope, send, tenant, binding, name, rest, rest_as_sent, body)

    async def _serve_here(self, scope: Scope, send: Send, tenant: str, binding: str, name: str,
                          rest: list[str], rest_as_sent: str, body: bytes) -> None:
        if self.cluster is not None:
            send = _stamped(send, self.cluster.node.address)
        portal = self._portal
        if len(rest) == 2 and rest[0] == "rpc" and scope["method"] == "POST":
            args, kwargs = _rpc_arguments(body)
            if portal is not None:
                result = await self._submit(portal, self._begin_rpc, tenant, binding, name,
                                            rest[1], args, kwargs)
            else:
                result = await self._in_trio(self._rpc, tenant, binding, name, rest[1], args,
                                             kwargs, time_limit=self.request_timeout)
            await _send_json(send, 200, {"result": _to_json(result)})
            return
        if len(rest) == 2 and rest[0] == "rpc" and not hasattr(self.objects[binding], "fetch"):
            raise HttpError(405, "MethodNotAllowed", f"RPC takes POST, not {scope['method']}: "
                            f"POST .../rpc/{rest[1][:80]} with a JSON body "
                            '{"args": [...], "kwargs": {...}}', headers={"allow": "POST"})
        request = _forwarded_request(scope, str(scope["method"]), rest_as_sent, body)
        if portal is not None:
            response = await self._submit(portal, self._begin_fetch, tenant, binding, name,
                                          request)
        else:
            response = await self._in_trio(self._fetch, tenant, binding, name, request,
                                           time_limit=self.request_timeout)
        assert isinstance(response, httpx.Response)
        await send({"type": "http.response.start", "status": response.status_code,
                    "headers": [(key.lower(), value) for key, value in response.headers.raw]})
        await send({"type": "http.response.body", "body": response.content})

    def _target(self, scope: Scope) -> tuple[str, str, str, list[str], str]:
        """``(tenant, namespace, name, rest of the path, rest as sent)`` of an authorized
        request: ``rest`` decoded (for routing), ``rest as sent`` still percent-encoded (for
        the object's ``fetch``).

        Raises:
            HttpError: a path that is not canonical, no such route, tenant or namespace, an
                invalid name, or a missing or wrong token.
        """
        raw = scope.get("raw_path")
        raw_path = raw if isinstance(raw, bytes) else str(scope["path"]).encode()
        raw_parts = raw_path.split(b"?", 1)[0].split(b"/")
        parts = [_segment(part) for part in raw_parts]  # one encoded "/" stays in its part
        if len(parts) < 4 or parts[0] != "":
            raise HttpError(404, "NotFound", "use /{tenant}/{namespace}/{name}/rpc/{method} "
                            "or /{tenant}/{namespace}/{name}/{path}")
        tenant, binding, name = parts[1], parts[2], parts[3]
        self._authorize(tenant, _bearer_token(scope))
        if binding not in self.objects:
            raise HttpError(404, "NotFound", f"tenant {tenant!r} has no namespace {binding!r:.80}")
        try:
            check_name(name)
        except InvalidObjectName as exc:
            status = 414 if len(name.encode()) > MAX_NAME_BYTES else 400
            raise HttpError(status, "InvalidObjectName", str(exc)) from None
        rest_as_sent = b"/".join(raw_parts[4:]).decode()  # UTF-8: checked by _segment
        return tenant, binding, name, parts[4:], rest_as_sent

    # -- the cluster --------------------------------------------------------------------------

    async def _served_at(self, tenant: str, binding: str, name: str) -> tuple[str, str | None]:
        """The object's claim key, and the address of the node that serves it (None: this
        one), known here or asked of etcd."""
        assert self.cluster is not None
        claim_key = self.cluster.claim_key(tenant, binding, name)
        known, address = self.cluster.known_owner(claim_key)
        if not known:
            found = await self._in_trio(self.cluster.owner_of, claim_key)
            address = found if isinstance(found, str) else None
        return claim_key, address

    async def _join_cluster(self) -> None:
        assert self.cluster is not None
        node = self.cluster.node
        node.on_lost.append(self._drop_activations)
        node.before_leave = self._tenants_closed
        await self._nursery().start(self.cluster.run)

    def _drop_activations(self, why: str) -> None:
        for runtime in list(self.tenants.open.values()):
            runtime.lowlevel.reset_all(f"this node lost its lease in the cluster ({why})")

    async def _tenants_closed(self) -> None:
        """Wait (within the shutdown grace) until every tenant's runtime has closed: the
        node must not give its objects up while their last writes are committing."""
        with trio.move_on_after(self.runtime_options.shutdown_grace + 1):
            while self.tenants.open:  # noqa: ASYNC110  # closes end in other tasks
                await trio.sleep(0.02)

    async def _forward(self, address: str, claim_key: str, scope: Scope, body: bytes,
                       send: Send) -> None:
        """Send the request on to the node at ``address`` and relay its answer: the one
        hop. A node that cannot be connected to (it just died) is asked again who serves
        the object, until its claim expires and another node takes it over."""
        assert self.cluster is not None
        raw = scope.get("raw_path")
        path = raw.decode() if isinstance(raw, bytes) else str(scope["path"])
        query = scope.get("query_string", b"")
        if isinstance(query, bytes) and query:
            path += "?" + query.decode()
        headers = list(forwarded_headers(_headers(scope), self.cluster.node.name).items())
        give_up = anyio.current_time() + self.request_timeout
        while True:
            self.metrics.forwards.inc()
            log.debug("forwarding %s %s to %s", scope["method"], path, address)
            try:
                response = await self._relay.request(address, str(scope["method"]), path,
                                                     headers, body)
            except RelayConnectError as exc:  # nothing was sent: safe to send elsewhere
                log.debug("%s cannot be reached: %s", address, exc)
                self.cluster.remember(claim_key, None)
                if anyio.current_time() > give_up:
                    raise HttpError(503, "Unavailable", f"the node at {address} that serves "
                                    f"this object cannot be reached: {exc}", retryable=True,
                                    headers={"retry-after": "1"}) from exc
                await anyio.sleep(0.1)
                found = await self._in_trio(self.cluster.owner_of, claim_key)
                if not isinstance(found, str):
                    await self._serve_here_after_takeover(scope, send, body)
                    return
                address = found
                continue
            except RelayError as exc:  # sent, perhaps run: the caller decides
                raise HttpError(503, "Unavailable", f"the node at {address} that serves this "
                                f"object did not answer: {exc}", retryable=True) from exc
            owner = next((value.decode("latin-1") for name, value in response.headers
                          if name.lower() == OWNER.encode()), None)
            if (response.status == 503 and owner is not None and owner != address
                    and anyio.current_time() < give_up):
                address = owner  # it lost a race for a cold object: once more, to the winner
                self.cluster.remember(claim_key, owner)
                continue
            break
        await send({"type": "http.response.start", "status": response.status,
                    "headers": relayed_headers(response.headers, len(response.body))})
        await send({"type": "http.response.body", "body": response.body})

    async def _serve_here_after_takeover(self, scope: Scope, send: Send, body: bytes) -> None:
        tenant, binding, name, rest, rest_as_sent = self._target(scope)
        await self._serve_here(scope, send, tenant, binding, name, rest, rest_as_sent, body)

    # -- WebSockets -----------------------------------------------------------------------------

    async def _websocket(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Forward an upgrade to the object's ``fetch``; if it answers 101, carry frames
        between the connection and the client end of the object's ``WebSocketPair``."""
        if (await receive())["type"] != "websocket.connect":
            return
        try:
            tenant, binding, name, rest, rest_as_sent = self._target(scope)
            headers = _headers(scope)
            if self.cluster is not None and FORWARDED_BY not in headers:
                _, address = await self._served_at(tenant, binding, name)
                if address is not None:
                    self.metrics.forwards.inc()
                    try:
                        await relay_websocket(address, scope, headers, receive, send,
                                              node=self.cluster.node.name,
                                              open_timeout=self.request_timeout)
                    except RelayRefused as refused:
                        await _deny(scope, send, refused.status, refused.body,
                                    refused.headers)
                    except RelayConnectError as exc:
                        raise HttpError(503, "Unavailable", str(exc), retryable=True,
                                        headers={"retry-after": "1"}) from exc
                    return
            if len(rest) == 2 and rest[0] == "subscribe":  # a live query of a collection
                live = await self._in_trio(self._live_query, tenant, binding, name, rest[1])
                assert isinstance(live, WebSocket)
                self.metrics.requests.labels("subscribe", "101").inc()
                await send({"type": "websocket.accept"})
                await bridge_websocket(live, receive, send, self._to_trio)
                return
            request = _forwarded_request(scope, "GET", rest_as_sent, b"")
            response = await self._in_trio(self._fetch, tenant, binding, name, request,
                                           time_limit=self.request_timeout)
        except HttpError as error:
            self.metrics.requests.labels("websocket", str(error.status)).inc()
            self.metrics.errors.labels(error.body["error"]["type"]).inc()
            await _deny(scope, send, error.status, json.dumps(error.body).encode(),
                        {"content-type": "application/json", **error.headers})
            return
        assert isinstance(response, httpx.Response)
        self.metrics.requests.labels("websocket", str(response.status_code)).inc()
        client = response.extensions.get("websocket")
        if response.status_code != 101 or not isinstance(client, WebSocket):
            await _deny(scope, send, response.status_code, response.content,
                        dict(response.headers))
            return
        accept: Message = {"type": "websocket.accept"}
        if "sec-websocket-protocol" in response.headers:
            accept["subprotocol"] = response.headers["sec-websocket-protocol"]
        elif _offered(scope, "dobox") and _offered(scope, BEARER_PROTOCOL):
            # Browsers fail a handshake that offered protocols and got none back; the token
            # entry must not be echoed, so its companion "dobox" is (as Kubernetes does).
            accept["subprotocol"] = "dobox"
        await send(accept)
        await bridge_websocket(client, receive, send, self._to_trio)

    def _to_trio(self, fn: Callable[[], None]) -> None:
        """Run ``fn()`` in trio soon (at once when already there); its errors are logged,
        never raised into trio's scheduler."""
        if self._portal is None:
            log_errors(fn)
        else:
            self._portal.run_sync_soon(fn)

    def _authorize(self, tenant: str, token: bytes | None) -> None:
        if not TENANT.fullmatch(tenant):
            raise HttpError(404, "NotFound", f"no tenant {tenant[:80]!r}")
        if self.tokens is None:
            if tenant != DEFAULT_TENANT:
                raise HttpError(404, "NotFound",
                                f"no tenant {tenant!r}: this server serves only 'default'")
            return
        if token is None:
            raise HttpError(401, "Unauthorized", "send Authorization: Bearer <tenant token> "
                            f"(or, on a WebSocket, the subprotocol {BEARER_PROTOCOL}<token "
                            "in base64url>)", headers={"www-authenticate": "Bearer"})
        expected = self.tokens.get(tenant)
        if expected is None or not hmac.compare_digest(token, expected.encode()):
            raise HttpError(403, "Forbidden", f"this token does not open tenant {tenant!r}")

    def _authorize_metrics(self, token: bytes | None) -> None:
        """``/metrics`` names the tenants and what they do: with a metrics token, only it
        opens the page; without one, only a server without tenant tokens serves it (such a
        server listens on 127.0.0.1 only)."""
        if self.metrics_token is None:
            if self.tokens is not None:
                raise HttpError(403, "Forbidden", "this server has tenant tokens, so /metrics "
                                "needs its own: start it with --metrics-token")
            return
        if token is None:
            raise HttpError(401, "Unauthorized", "send Authorization: Bearer <metrics token>",
                            headers={"www-authenticate": "Bearer"})
        if not hmac.compare_digest(token, self.metrics_token.encode()):
            raise HttpError(403, "Forbidden", "this token does not open /metrics")

    # -- inside trio ----------------------------------------------------------------------------

    async def _inspect(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.inspector is None:
            raise HttpError(404, "NotFound", "the inspector is off: start the server with "
                            "--inspector (docs/inspector.md)")
        if scope["path"] == "/_dobox":
            await send({"type": "http.response.start", "status": 308,
                        "headers": [(b"location", INSPECTOR_PREFIX.encode())]})
            await send({"type": "http.response.body", "body": b""})
            return
        await self.inspector.handle(scope, receive, send, _bearer_token(scope),
                                    _header(scope, b"cookie"))

    async def _in_trio_as_is(self, fn: Callable[..., Awaitable[object]], *args: object,  # type: ignore[explicit-any]  # forwards fn's arguments
                             time_limit: float | None = None) -> object:
        """``await fn(*args)`` in trio, within ``time_limit`` seconds (then
        ``trio.TooSlowError``); its errors are raised here unchanged."""
        if self._portal is None and self._trio_nursery is None:
            raise HttpError(503, "Unavailable", "the server is starting", retryable=True)
        if self._portal is None:  # already in trio
            if time_limit is None:
                return await fn(*args)
            with trio.fail_after(time_limit):
                return await fn(*args)
        return await self._portal.call(fn, *args, time_limit=time_limit)

    async def _in_trio(self, fn: Callable[..., Awaitable[object]], *args: object,  # type: ignore[explicit-any]  # forwards fn's arguments
                       time_limit: float | None = None) -> object:
        """``await fn(*args)`` in trio, within ``time_limit`` seconds (then a 504); its
        errors become HTTP answers."""
        try:
            return await self._in_trio_as_is(fn, *args, time_limit=time_limit)
        except HttpError:
            raise
        except Exception as exc:  # not BaseException: cancellation is not the request's error
            raise _http_error(exc) from exc

    async def _submit(self, portal: TrioPortal, begin: Callable[..., Call],  # type: ignore[explicit-any]  # forwards begin's arguments
                      tenant: str, *args: object) -> object:
        """A request's call, begun in trio by ``begin(runtime, *args)`` and awaited here
        (``TrioPortal.submit``: no trio task per request), within the request time limit;
        through ``_in_trio`` when the tenant's runtime must be opened first."""
        try:
            return await portal.submit(self._begin, begin, tenant, *args,
                                       time_limit=self.request_timeout)
        except _NotOpen:
            async def open_then_call() -> object:
                return await begin(await self._runtime(tenant), *args)

            return await self._in_trio(open_then_call, time_limit=self.request_timeout)
        except HttpError:
            raise
        except Exception as exc:  # not BaseException: cancellation is not the request's error
            raise _http_error(exc) from exc

    def _begin(self, begin: Callable[..., Call], tenant: str,  # type: ignore[explicit-any]  # forwards begin's arguments
               *args: object) -> Call:
        runtime = self.tenants.runtime_now(tenant)
        if runtime is None:
            raise _NotOpen
        return begin(runtime, *args)

    @staticmethod
    def _begin_rpc(runtime: Runtime, binding: str, name: str, method: str,
                   args: list[object], kwargs: dict[str, object]) -> Call:
        return runtime.namespace(binding).get_by_name(name).call(method, *args, **kwargs)

    @staticmethod
    def _begin_fetch(runtime: Runtime, binding: str, name: str, request: httpx.Request) -> Call:
        return runtime.namespace(binding).get_by_name(name).fetch_handing_over(request)

    async def _runtime(self, tenant: str) -> Runtime:
        return await self.tenants.runtime(tenant)

    def _open_tenant(self, tenant: str) -> AbstractAsyncContextManager[Runtime]:
        coordinator = (self.cluster.node.coordinator(f"{tenant}/")
                       if self.cluster is not None else None)
        return open_runtime(self.data_dir / "tenants" / tenant, self.objects,
                            options=self.runtime_options, id_scope=f"{tenant}/",
                            coordinator=coordinator)

    async def _rpc(self, tenant: str, binding: str, name: str, method: str,
                   args: list[object], kwargs: dict[str, object]) -> object:
        stub = (await self._runtime(tenant)).namespace(binding).get_by_name(name)
        return await stub.call(method, *args, **kwargs)  # the method table, never getattr

    async def _live_query(self, tenant: str, binding: str, name: str,
                          collection: str) -> WebSocket:
        stub = (await self._runtime(tenant)).namespace(binding).get_by_name(name)
        return open_live_socket(self._nursery(), stub, collection, _to_json)

    def _nursery(self) -> trio.Nursery:
        """Where the server's trio tasks live: the caller's (hypercorn) or the guest's."""
        nursery = self._trio_nursery or (self._portal._nursery if self._portal else None)
        assert nursery is not None, "the app was not started"
        return nursery

    async def _fetch(self, tenant: str, binding: str, name: str,
                     request: httpx.Request) -> httpx.Response:
        stub = (await self._runtime(tenant)).namespace(binding).get_by_name(name)
        response: httpx.Response = await stub.fetch(request)
        return response


BEARER_PROTOCOL = "dobox.bearer."
"""A WebSocket subprotocol entry ``dobox.bearer.<token in base64url>`` carries the tenant
token on an upgrade, for clients that cannot set headers (browsers), as Kubernetes does.
The client offers ``"dobox"`` beside it, which the server selects when the object selects
no protocol of its own (a browser fails a handshake whose offer got no protocol back)."""
_BEARER_PROTOCOL_BYTES = BEARER_PROTOCOL.encode()


def _bearer_token(scope: Scope) -> bytes | None:
    """The token a request carries: ``Authorization: Bearer``, or on a WebSocket upgrade a
    ``dobox.bearer.`` subprotocol entry; None if neither."""
    given = _header(scope, b"authorization") or ""
    if given.startswith("Bearer "):
        return given[len("Bearer "):].encode()
    subprotocols = scope.get("subprotocols")
    for entry in subprotocols if isinstance(subprotocols, list) else ():
        if isinstance(entry, str) and entry.startswith(BEARER_PROTOCOL):
            encoded = entry[len(BEARER_PROTOCOL):]
            try:
                return base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4))
            except ValueError:
                return b""  # a malformed token opens nothing
    return None


def _offered(scope: Scope, protocol: str) -> bool:
    """Whether a WebSocket upgrade offered ``protocol`` (or, ending in ".", an entry
    starting with it)."""
    subprotocols = scope.get("subprotocols")
    return isinstance(subprotocols, list) and any(
        isinstance(entry, str)
        and (entry.startswith(protocol) if protocol.endswith(".") else entry == protocol)
        for entry in subprotocols)


def _segment(raw: bytes) -> str:
    """One path segment, percent-decoded.

    Raises:
        HttpError: 400 for a dot segment (``.``, ``..``, raw or percent-encoded), which a
            proxy in front would resolve to another path than dobox sees, or for bytes that
            are not UTF-8 (two such names would otherwise decode to the same object).
    """
    try:
        text = urllib.parse.unquote_to_bytes(raw).decode("utf-8") if b"%" in raw else raw.decode()
    except UnicodeDecodeError:
        raise HttpError(400, "InvalidPath", f"the path segment {raw[:80]!r} is not UTF-8 once "
                        "percent-decoded; encode names as UTF-8") from None
    if text in (".", ".."):
        raise HttpError(400, "InvalidPath", "dot segments ('.' and '..', raw or "
                        "percent-encoded) are not allowed in a dobox path")
    return text


def _forwarded_request(scope: Scope, method: str, rest: str, body: bytes) -> httpx.Request:
    """The request an object's ``fetch`` gets: the path after the name (as sent, still
    percent-encoded), the query string, the headers (each as sent) and the body.

    Built for speed (it is on every fetch): the URL of a path seen recently is reused (an
    ``httpx.URL`` is immutable), and the body is handed over as a stream and read at once,
    so ``request.content`` works, without httpx encoding it again."""
    query = scope.get("query_string", b"")
    raw_headers: list[tuple[bytes, bytes]] = scope["headers"]  # type: ignore[assignment]  # ASGI's type
    # One pass over the raw headers (ASGI gives their names in lower case): an
    # httpx.Headers lookup first decodes every header to learn their encoding, which cost
    # more than the rest of this function; the object's own lookups pay that only if made.
    carries_token = has_host = False
    for name, value in raw_headers:
        if name == b"sec-websocket-protocol" and _BEARER_PROTOCOL_BYTES in value:
            carries_token = True
        elif name == b"host":
            has_host = True
    headers: httpx.Headers | list[tuple[bytes, bytes]] = raw_headers
    if carries_token or not has_host:
        headers = httpx.Headers(raw_headers)
        if carries_token:  # the token is the server's, not the object's
            offered = headers.get("sec-websocket-protocol", "")
            kept = [entry.strip() for entry in offered.split(",")
                    if not entry.strip().startswith(BEARER_PROTOCOL)]
            del headers["sec-websocket-protocol"]
            if kept:
                headers["sec-websocket-protocol"] = ", ".join(kept)
        if not has_host:  # an HTTP/1.0 client: as httpx would have set it
            headers["host"] = "dobox"
    request = httpx.Request(method, _object_url(rest, query if isinstance(query, bytes) else b""),
                            headers=headers, stream=httpx.ByteStream(body))
    request.read()
    return request


_RECENT_URLS: dict[tuple[str, bytes], httpx.URL] = {}
MAX_RECENT_URLS = 4096


def _object_url(rest: str, query: bytes) -> httpx.URL:
    """``http://dobox/<rest>?<query>``: parsing one costs more than the rest of a fetch's
    request, so the URLs of recent paths are kept (all of them dropped when full)."""
    key = (rest, query)
    url = _RECENT_URLS.get(key)
    if url is None:
        if len(_RECENT_URLS) >= MAX_RECENT_URLS:
            _RECENT_URLS.clear()
        # Without a query string, no "?" (httpx keeps an empty one: "http://dobox/a?").
        url = _RECENT_URLS[key] = (httpx.URL("http://dobox/" + rest, query=query) if query
                                   else httpx.URL("http://dobox/" + rest))
    return url


async def _deny(scope: Scope, send: Send, status: int, body: bytes,
                headers: Mapping[str, str]) -> None:
    """Refuse a WebSocket upgrade with an HTTP response (or a bare 403 where the server
    cannot send one)."""
    extensions = scope.get("extensions")
    if isinstance(extensions, dict) and "websocket.http.response" in extensions:
        await send({"type": "websocket.http.response.start", "status": status,
                    "headers": [(k.encode(), v.encode()) for k, v in headers.items()
                                if k.lower() != "content-length"]})
        await send({"type": "websocket.http.response.body", "body": body})
    else:
        await send({"type": "websocket.close", "code": 1008})


def _shown_path(path: str) -> str:
    """A request's path for a log line (``/tenant/BINDING/name/...``), cut short and with
    control characters escaped, so that a client cannot forge lines."""
    shown = path if len(path) <= 300 else path[:300] + "..."
    return shown.encode("unicode_escape").decode("ascii")


def _route_kind(path: str, method: str) -> str:  # an approximation, for the metrics only
    """The metrics label of a request's route."""
    if path in ("/healthz", "/metrics"):
        return path[1:]
    if path.startswith("/_dobox"):
        return "inspector"
    parts = path.split("/")
    if len(parts) == 6 and parts[4] == "rpc" and method == "POST":
        return "rpc"
    return "fetch" if len(parts) >= 4 else "other"


def _http_error(exc: BaseException) -> HttpError:
    """The HTTP answer for an error raised while serving a request."""
    message = str(exc)
    if isinstance(exc, OverloadedError):
        return HttpError(503, "OverloadedError", message, headers={"retry-after": "1"},
                         remote=True, overloaded=True)
    if isinstance(exc, ObjectResetError):
        if not exc.retryable:  # a damaged file: the same answer until someone repairs it
            return HttpError(500, exc.type_name, message, remote=True, reset=True)
        return HttpError(503, exc.type_name, message, headers={"retry-after": "1"},
                         remote=True, retryable=True, reset=True)
    if isinstance(exc, RemoteError):
        return HttpError(500, exc.type_name, message, remote=True, retryable=exc.retryable)
    if isinstance(exc, UnknownMethodError):
        return HttpError(404, "UnknownMethodError", message)
    if isinstance(exc, InvalidArgumentsError):
        return HttpError(400, "InvalidArgumentsError", message)
    if isinstance(exc, InvalidObjectId | UnsupportedValueError | TypeError):
        return HttpError(400, type(exc).__name__, message)
    if isinstance(exc, trio.TooSlowError):
        return HttpError(504, "Timeout", "the request ran past the server's time limit")
    if isinstance(exc, trio.RunFinishedError):
        return HttpError(503, "Unavailable", "the server is stopping", retryable=True)
    if isinstance(exc, RuntimeClosedError):
        return HttpError(503, "RuntimeClosedError", message, retryable=True)
    if isinstance(exc, NotOwnerError):  # a cluster node lost a race for a cold object
        owner = {OWNER: exc.address} if exc.address is not None else {}
        return HttpError(503, "NotOwnerError", message, headers={"retry-after": "1", **owner},
                         retryable=True)
    if isinstance(exc, EtcdError):
        return HttpError(503, "EtcdError", message, headers={"retry-after": "1"},
                         retryable=True)
    if isinstance(exc, StorageFullError):  # a cold object on a full disk: space may come back
        return HttpError(503, "StorageFullError", message, headers={"retry-after": "1"},
                         retryable=True)
    if isinstance(exc, DoboxError):
        return HttpError(500, type(exc).__name__, message)
    return HttpError(500, "InternalError", f"{type(exc).__name__}: {message}")


def _rpc_arguments(body: bytes) -> tuple[list[object], dict[str, object]]:
    try:
        payload = json.loads(body or b"{}")
    except (ValueError, UnicodeDecodeError) as exc:
        raise HttpError(400, "MalformedJSON", f"the body is not JSON: {exc}") from exc
    if not isinstance(payload, dict):
        raise HttpError(400, "MalformedJSON", 'the body must be {"args": [...], "kwargs": {}}')
    args, kwargs = payload.get("args", []), payload.get("kwargs", {})
    if not isinstance(args, list) or not isinstance(kwargs, dict):
        raise HttpError(400, "MalformedJSON", '"args" must be a list and "kwargs" an object')
    return args, kwargs


def _to_json(value: object) -> object:
    """Codec values as JSON: tuples as lists, bytes as {"$bytes": base64}, dates ISO 8601,
    timedeltas as seconds, non-finite floats as strings."""
    if isinstance(value, list | tuple):
        return [_to_json(item) for item in value]
    if isinstance(value, dict):
        return {key: _to_json(item) for key, item in value.items()}
    if isinstance(value, bytes):
        return {"$bytes": base64.b64encode(value).decode()}
    if isinstance(value, dt.datetime | dt.date):
        return value.isoformat()
    if isinstance(value, dt.timedelta):
        return value.total_seconds()
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    return value


def _header(scope: Scope, name: bytes) -> str | None:
    """The last value of the header ``name`` (in lower case, as ASGI gives header names),
    or None: one lookup, without decoding every header as :func:`_headers` does."""
    found = None
    for key, value in scope["headers"]:  # type: ignore[attr-defined]
        if key == name:
            found = value
    return None if found is None else bytes(found).decode("latin-1")


def _headers(scope: Scope) -> dict[str, str]:
    return {bytes(k).decode("latin-1").lower(): bytes(v).decode("latin-1")
            for k, v in scope["headers"]}  # type: ignore[attr-defined]


async def _read_body(receive: Receive, limit: int) -> bytes:
    body = bytearray()
    while True:
        message = await receive()
        chunk = message.get("body", b"")
        if isinstance(chunk, bytes):
            body += chunk
        if len(body) > limit:
            raise HttpError(413, "PayloadTooLarge", f"the body is over {limit:,} bytes")
        if not message.get("more_body"):
            return bytes(body)


def _stamped(send: Send, address: str) -> Send:
    """``send``, adding to the answer's headers the node that served it (``SERVED_BY``)."""
    stamp = (SERVED_BY.encode(), address.encode())

    async def stamped(message: Message) -> None:
        if message["type"] == "http.response.start":
            headers = message.get("headers", [])
            assert isinstance(headers, list)
            message = {**message, "headers": [*headers, stamp]}
        await send(message)

    return stamped


async def _send_json(send: Send, status: int, payload: object,
                     headers: Mapping[str, str] | None = None) -> None:
    body = json.dumps(payload).encode()
    header_list = [(b"content-type", b"application/json"),
                   (b"content-length", str(len(body)).encode()),
                   *((k.encode(), v.encode()) for k, v in (headers or {}).items())]
    await send({"type": "http.response.start", "status": status, "headers": header_list})
    await send({"type": "http.response.body", "body": body})


async def _send_text(send: Send, status: int, text: str) -> None:
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"text/plain")]})
    await send({"type": "http.response.body", "body": text.encode()})
