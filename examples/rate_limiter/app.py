"""A rate limiter: one token bucket per client key, each a Durable Object.

    dobox serve examples.rate_limiter.app:OBJECTS --data ./limiter-data

    curl -X POST localhost:8787/default/LIMITER/client-7/rpc/take -d '{}'
    # {"result": {"allowed": true, "remaining": 9.0, "retry_after": 0.0}}

Each bucket holds up to ``CAPACITY`` tokens and refills at ``REFILL_PER_SECOND``; a call
takes ``cost`` tokens or is refused with the seconds to wait. Being one single-threaded
object per key, the bucket needs no locks; being durable, a restart forgets nothing.
"""

from __future__ import annotations

from dobox import DurableObject

CAPACITY = 10.0
REFILL_PER_SECOND = 1.0


class TokenBucket(DurableObject):
    async def take(self, cost: float = 1.0) -> dict[str, object]:
        if not isinstance(cost, int | float) or not 0 < cost <= CAPACITY:
            raise ValueError(f"cost must be in (0, {CAPACITY}], not {cost!r}")
        now = self.ctx.now()
        state = await self.ctx.storage.get("bucket", {"tokens": CAPACITY, "at": now})
        tokens = min(CAPACITY, state["tokens"] + (now - state["at"]) * REFILL_PER_SECOND)
        allowed = tokens >= cost
        if allowed:
            tokens -= cost
        await self.ctx.storage.put("bucket", {"tokens": tokens, "at": now})
        return {
            "allowed": allowed,
            "remaining": round(tokens, 6),
            "retry_after": 0.0 if allowed else round((cost - tokens) / REFILL_PER_SECOND, 6),
        }


OBJECTS = {"LIMITER": TokenBucket}
