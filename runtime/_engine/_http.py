"""Copies of httpx requests and responses, so a fetch crosses into an object by value."""

from __future__ import annotations

import httpx

from actors._websocket import WebSocket


def copy_request(request: httpx.Request) -> httpx.Request:
    """A by-value copy, so the object and the caller never share a request."""
    if not isinstance(request, httpx.Request):
        raise TypeError(f"fetch() takes an httpx.Request, not {type(request).__name__}")
    return httpx.Request(
        request.method, request.url, headers=request.headers.copy(), content=request.read()
    )


def copy_response(response: object, *, copy: bool = True) -> httpx.Response:
    """A by-value copy of what a ``fetch`` handler returned (or, with ``copy=False``, the
    response itself, checked and read, for a caller that only reads it).

    A 101 (WebSocket upgrade) response keeps its ``extensions["websocket"]``, the client end
    of the object's ``WebSocketPair``: a connection is not a value, it is handed over.

    Raises:
        TypeError: the handler returned something other than an ``httpx.Response``, or a
            101 without a WebSocket.
    """
    if not isinstance(response, httpx.Response):
        raise TypeError(f"fetch() must return an httpx.Response, not {type(response).__name__}")
    if response.status_code == 101:
        client = response.extensions.get("websocket")
        if not isinstance(client, WebSocket) or client._peer is None:
            raise TypeError("a 101 response must carry the client end of a WebSocketPair "
                            "in extensions['websocket']")
        if not copy:
            return response
        return httpx.Response(101, headers=response.headers.copy(),
                              extensions={"websocket": client})
    if not copy:
        response.read()
        return response
    return httpx.Response(
        response.status_code, headers=response.headers.copy(), content=response.read()
    )
