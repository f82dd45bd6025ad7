"""Read by mypy in tests/test_typed_stubs.py: every call here fits (never run)."""

import trio

from dobox import DurableObject, open_runtime


class Counter(DurableObject):
    async def increment(self, by: int = 1) -> int:
        n: int = await self.ctx.storage.get("n", 0) + by
        await self.ctx.storage.put("n", n)
        return n


async def main() -> None:
    async with open_runtime("./data", objects={"COUNTER": Counter}) as rt:
        counters = rt.namespace("COUNTER", Counter)
        stub = counters.get_by_name("a")
        n: int = await stub.increment(2)
        print(n, stub.id, stub.name)
        loose = rt.namespace("COUNTER").get_by_name("a")
        await loose.anything()  # unchecked: made without its class


trio.run(main)
