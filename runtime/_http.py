"""Copies of httpx requests and responses, so a fetch crosses into an object by value."""

from __future__ import annotations

import httpx


def copy_request(request: httpx.Request) -> httpx.Request:
    """A by-value copy, so the object and the caller never share a request."""
    if not isinstance(request, httpx.Request):
        raise TypeError(f"fetch() takes an httpx.Request, not {type(request).__name__}")
    return httpx.Request(
        request.method, request.url, headers=request.headers.copy(), content=request.read()
    )


def copy_response(response: object) -> httpx.Response:
    """A by-value copy of what a ``fetch`` handler returned.

    Raises:
        TypeError: the handler returned something other than an ``httpx.Response``.
    """
    if not isinstance(response, httpx.Response):
        raise TypeError(f"fetch() must return an httpx.Response, not {type(response).__name__}")
    return httpx.Response(
        response.status_code, headers=response.headers.copy(), content=response.read()
    )
