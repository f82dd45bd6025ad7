"""One object failing over and over never delays or breaks another's calls."""

from __future__ import annotations

import contextlib
from pathlib import Path

import pytest
import trio
import trio.testing

from actors import DurableObject, ObjectResetError
from harness import open_test_runtime
from storage import DatabaseCorruptError
from tests.helpers import Counter, damage_table
from tests.integration.objects import Fragile


async def test_a_failing_object_does_not_touch_its_neighbours(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    Fragile.broken = True
    async with open_test_runtime(tmp_path, {"F": Fragile, "COUNTER": Counter},
                                 event_timeout=5) as rt:
        fragile = rt.namespace("F").get_by_name("f")
        counter = rt.namespace("COUNTER").get_by_name("c")
        healthy_times: list[float] = []

        async def keep_failing() -> None:
            for _ in range(50):
                with contextlib.suppress(ObjectResetError):
                    await fragile.ping()
                await trio.sleep(0.1)

        async def keep_counting() -> None:
            for _ in range(50):
                start = trio.current_time()
                await counter.increment()
                healthy_times.append(trio.current_time() - start)
                await trio.sleep(0.1)

        async def crash_and_hang() -> None:
            for _ in range(5):  # resets by crash() and by event timeouts, too
                rt.crash(fragile)
                await trio.sleep(1)

        async with trio.open_nursery() as nursery:
            nursery.start_soon(keep_failing)
            nursery.start_soon(keep_counting)
            nursery.start_soon(crash_and_hang)
        assert await counter.value() == 50
        assert healthy_times == [0.0] * 50  # not one call of the neighbour waited
        assert rt.statistics().resets >= 50
        Fragile.broken = False
        assert await fragile.ping() == "pong"


class Careless(DurableObject):
    """Catches every storage error, damaged file included."""

    async def write(self) -> None:
        await self.ctx.storage.put({f"key-{i}": "x" * 500 for i in range(50)})

    async def read_quietly(self) -> str:
        try:
            return str(len(await self.ctx.storage.list()))
        except DatabaseCorruptError:
            return "swallowed"


async def test_a_damaged_file_resets_the_object_even_when_its_code_catches_the_error(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    """The handler's own except cannot hide a damaged file: the object is reset and its
    caller learns why (DatabaseCorruptError, not retryable); its neighbour goes on."""
    async with open_test_runtime(tmp_path, {"C": Careless, "COUNTER": Counter}) as rt:
        careless = rt.namespace("C").get_by_name("c")
        await careless.write()
        await rt.namespace("COUNTER").get_by_name("n").increment()
        await rt.evict(careless)
        (path,) = (tmp_path / "C").glob("*/*.sqlite")
        damage_table(path, "_dobox_kv")
        with pytest.raises(ObjectResetError) as info:
            await careless.read_quietly()
        error = info.value
        assert (error.type_name, error.retryable, error.reset) == (
            "DatabaseCorruptError", False, True)
        assert str(error).startswith("Durable Object C/c was reset: the file of C/c is not a "
                                     "SQLite database or is damaged")
        assert await rt.namespace("COUNTER").get_by_name("n").increment() == 2
