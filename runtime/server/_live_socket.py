"""Live queries over a WebSocket: ``/{tenant}/{namespace}/{name}/subscribe/{collection}``.

The client's first message is the query, as JSON::

    {"where": <Expr.to_data()> | null, "order_by": ["-rank", "title"], "limit": 20 | null,
     "since": <row version> | null}

and the server answers with one JSON text message per subscription message::

    {"type": "snapshot", "row_version": 7, "records": [...], "resync": false}
    {"type": "change", "row_version": 8, "inserted": [...], "updated": [...],
     "removed": [keys]}

A malformed query or an unknown collection gets ``{"type": "error", "message": ...}`` and
a close with 1008. The socket is served by a trio task that holds the server end of a
``WebSocketPair``; the connection is carried to its client end by the same bridge as an
object's own sockets.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable

import attrs
import trio

from actors import DurableObject
from actors._websocket import WebSocket, WebSocketClosed, WebSocketPair
from runtime._engine import Stub
from storage import Change, Expr, Snapshot
from storage._collections import expr_from_data

log = logging.getLogger("dobox.server")

ToJson = Callable[[object], object]


def open_live_socket(nursery: trio.Nursery, stub: Stub[DurableObject], collection: str,
                     to_json: ToJson) -> WebSocket:
    """Start serving a live query of ``stub``'s ``collection`` in ``nursery``; the client
    end of its socket."""
    client, server = WebSocketPair()
    nursery.start_soon(_serve, stub, collection, server, to_json,
                       name=f"dobox live query {stub!r}/{collection}")
    return client


async def _serve(stub: Stub[DurableObject], collection: str, ws: WebSocket,
                 to_json: ToJson) -> None:
    try:
        request = await ws.receive()
    except WebSocketClosed:
        return
    try:
        where, order_by, limit, since = _parse(request)
    except ValueError as exc:
        _refuse(ws, str(exc))
        return
    try:
        async with stub.subscribe(collection, where, order_by=order_by, limit=limit,
                                  since=since) as feed, trio.open_nursery() as nursery:
            nursery.start_soon(_until_closed, ws, nursery.cancel_scope)
            async for message in feed:
                ws.send(json.dumps(_message(message, to_json)))
            ws.close(1001, "the object stopped (evicted or reset): resubscribe")
    except WebSocketClosed:
        pass
    except (ValueError, TypeError) as exc:  # an unknown collection, a bad condition
        _refuse(ws, str(exc))
    except Exception as exc:
        log.warning("a live query of %r/%s failed: %s", stub, collection, exc)
        ws._close_now(1011, f"{type(exc).__name__}: {exc}"[:120])


async def _until_closed(ws: WebSocket, cancel_scope: trio.CancelScope) -> None:
    """The client sends nothing after its query; a close (or anything) ends the feed."""
    try:
        while True:
            await ws.receive()
    except WebSocketClosed:
        cancel_scope.cancel()


def _refuse(ws: WebSocket, message: str) -> None:
    try:
        ws.send(json.dumps({"type": "error", "message": message}))
    except WebSocketClosed:
        return
    ws._close_now(1008, "bad subscription")


def _parse(request: str | bytes) -> tuple[Expr | None, list[str], int | None, int | None]:
    try:
        query = json.loads(request)
    except ValueError as exc:
        raise ValueError(f"the first message must be the query as JSON: {exc}") from exc
    if not isinstance(query, dict):
        raise ValueError('the query is a JSON object: {"where", "order_by", "limit", "since"}')
    where = None if query.get("where") is None else expr_from_data(query["where"])
    order_by = query.get("order_by") or []
    if isinstance(order_by, str):
        order_by = [order_by]
    if not isinstance(order_by, list) or not all(isinstance(o, str) for o in order_by):
        raise ValueError('"order_by" is a list of field names ("-name" for descending)')
    limit, since = query.get("limit"), query.get("since")
    for name, value in (("limit", limit), ("since", since)):
        if value is not None and (not isinstance(value, int) or isinstance(value, bool)):
            raise ValueError(f'"{name}" is an int or null, not {value!r}')
    return where, order_by, limit, since


def _message(message: Snapshot | Change, to_json: ToJson) -> dict[str, object]:
    def records(items: list[object]) -> object:  # a record type's instances as dicts
        return to_json([attrs.asdict(r) if attrs.has(type(r)) else r  # type: ignore[arg-type]  # checked by has()
                        for r in items])

    if isinstance(message, Snapshot):
        return {"type": "snapshot", "row_version": message.row_version,
                "records": records(message.records), "resync": message.resync}
    return {"type": "change", "row_version": message.row_version,
            "inserted": records(message.inserted), "updated": records(message.updated),
            "removed": to_json(message.removed)}
