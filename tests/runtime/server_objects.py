"""Objects the server tests serve (importable by the server process)."""

from __future__ import annotations

import httpx

from actors import DurableObject
from tests.helpers import Counter


class Web(DurableObject):
    async def fetch(self, request: httpx.Request) -> httpx.Response:
        return httpx.Response(201, json={
            "method": request.method, "path": request.url.path,
            "query": request.url.query.decode(), "header": request.headers.get("x-test"),
            "body": request.read().decode(),
        })


OBJECTS = {"COUNTER": Counter, "WEB": Web}
