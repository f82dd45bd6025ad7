"""A per-tenant counter: one object per counter name, per tenant.

    dobox serve examples.counter.app:OBJECTS --data ./counter-data

    curl -X POST localhost:8787/default/COUNTER/visits/rpc/increment -d '{"args": [1]}'
    curl localhost:8787/default/COUNTER/visits/          # the count, as text
"""

from __future__ import annotations

import httpx

from dobox import DurableObject


class Counter(DurableObject):
    async def increment(self, by: int = 1) -> int:
        if not isinstance(by, int) or by < 1:
            raise ValueError(f"increment by a positive int, not {by!r}")
        count: int = await self.ctx.storage.get("count", 0) + by
        await self.ctx.storage.put("count", count)
        return count

    async def count(self) -> int:
        count: int = await self.ctx.storage.get("count", 0)
        return count

    async def reset(self) -> None:
        await self.ctx.storage.delete("count")

    async def fetch(self, request: httpx.Request) -> httpx.Response:
        if request.method != "GET":
            return httpx.Response(405, text="GET the count, or POST to rpc/increment\n")
        return httpx.Response(200, text=f"{await self.count()}\n")


OBJECTS = {"COUNTER": Counter}
