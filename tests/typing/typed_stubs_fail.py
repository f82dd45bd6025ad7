"""Read by mypy in tests/test_typed_stubs.py: four lines mypy must refuse (never run)."""

from dobox import DurableObject, open_runtime


class Counter(DurableObject):
    async def increment(self, by: int = 1) -> int:
        return by

    def helper(self) -> int:
        return 1


async def main() -> None:
    async with open_runtime("./data", objects={"COUNTER": Counter}) as rt:
        stub = rt.namespace("COUNTER", Counter).get_by_name("a")
        n: str = await stub.increment(2)  # noqa: F841  # the wrong type is the point
        await stub.incremnt()
        await stub.increment("two")
        await stub.helper()
