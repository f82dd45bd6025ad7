"""One object failing over and over never delays or breaks another's calls."""

from __future__ import annotations

import contextlib
from pathlib import Path

import trio
import trio.testing

from actors import ObjectResetError
from harness import open_test_runtime
from tests.helpers import Counter
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
