"""Where durable commits run: on the runtime's thread when nothing else is ready to run,
in worker threads otherwise (runtime/_engine/_commit_placement.py)."""

from __future__ import annotations

from pathlib import Path

import trio

from runtime import open_runtime
from runtime._engine._commit_placement import INLINE_LIMIT, commit_placement, polling
from tests.helpers import Counter


async def test_a_lone_durable_write_commits_on_the_runtimes_thread(tmp_path: Path) -> None:
    async with open_runtime(tmp_path, objects={"COUNTER": Counter}) as rt:
        assert await rt.namespace("COUNTER").get_by_name("a").increment(2) == 2
        stats = rt.statistics()
    assert (stats.commits, stats.inline_commits) == (1, 1)
    async with open_runtime(tmp_path, objects={"COUNTER": Counter}) as rt:  # it is durable
        assert await rt.namespace("COUNTER").get_by_name("a").increment(0) == 2


async def test_a_commit_goes_to_a_thread_while_other_work_is_ready() -> None:
    placement = commit_placement()
    assert placement.inline()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(trio.sleep, 0)  # runnable until it first runs
        assert not placement.inline()
        polling(True)  # ... unless it is a server's task polling for its next request
        assert placement.inline()
        polling(False)
        assert not placement.inline()


async def test_a_commit_goes_to_a_thread_while_another_is_in_one() -> None:
    placement = commit_placement()
    placement.in_threads = 1
    assert not placement.inline()
    placement.in_threads = 0
    assert placement.inline()


async def test_slow_commits_go_to_threads_until_commits_are_quick_again() -> None:
    placement = commit_placement()
    placement.took(INLINE_LIMIT * 20)  # a stalled disk: the runtime must not freeze with it
    assert not placement.inline()
    while not placement.inline():  # commits in threads keep the average current
        placement.took(INLINE_LIMIT / 10)
    assert placement.recent_seconds <= INLINE_LIMIT


async def test_many_callers_of_many_objects_lose_nothing(tmp_path: Path) -> None:
    """Inline and threaded commits mixed: every write is acknowledged and durable."""
    async with open_runtime(tmp_path, objects={"COUNTER": Counter}) as rt:
        ns = rt.namespace("COUNTER")

        async def caller(k: int) -> None:
            for _ in range(5):
                await ns.get_by_name(f"c{k % 8}").increment(1)

        async with trio.open_nursery() as nursery:
            for k in range(32):
                nursery.start_soon(caller, k)
    async with open_runtime(tmp_path, objects={"COUNTER": Counter}) as rt:
        totals = [await rt.namespace("COUNTER").get_by_name(f"c{k}").increment(0)
                  for k in range(8)]
    assert totals == [20] * 8
