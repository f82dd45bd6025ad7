"""The asyncio-to-trio bridge: trio as a guest of an asyncio loop (as under uvicorn)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

import pytest
import trio

from runtime import open_runtime
from runtime.server._guest import TrioPortal, open_trio_guest
from tests.helpers import Counter


def run_asyncio(main: object) -> object:
    """asyncio.run, from a sync test (pytest-trio runs async tests in trio)."""
    return asyncio.run(main)  # type: ignore[arg-type]


def test_calls_return_results_and_raise_errors() -> None:
    async def main() -> list[object]:
        async with open_trio_guest() as portal:
            async def double(x: int) -> int:
                await trio.lowlevel.checkpoint()
                return 2 * x

            async def fail() -> None:
                raise KeyError("from trio")

            results: list[object] = [await portal.call(double, 21)]
            with pytest.raises(KeyError, match="from trio"):
                await portal.call(fail)
            results.append(await portal.call(double, 2))  # the portal outlives an error
            return results

    assert run_asyncio(main()) == [42, 4]


def test_a_call_past_its_time_limit_is_cancelled_in_trio_and_too_slow_here() -> None:
    """The limit is the trio task's own cancel scope: it is cancelled there (its cleanup
    runs), and the asyncio caller gets trio.TooSlowError, which the server answers 504."""
    cleaned: list[str] = []

    async def main() -> str:
        async with open_trio_guest() as portal:
            async def slow() -> str:
                try:
                    await trio.sleep(30)
                finally:
                    cleaned.append("cancelled in trio")
                return "never"

            async def quick() -> str:
                return "in time"

            with pytest.raises(trio.TooSlowError):
                await portal.call(slow, time_limit=0.05)
            return await portal.call(quick, time_limit=30)

    assert run_asyncio(main()) == "in time"
    assert cleaned == ["cancelled in trio"]


def test_cancelling_the_asyncio_caller_cancels_the_trio_task() -> None:
    state: dict[str, object] = {}

    async def main() -> None:
        async with open_trio_guest() as portal:
            async def slow() -> None:
                try:
                    await trio.sleep_forever()
                finally:
                    state["trio side cleaned up"] = True

            task = asyncio.create_task(portal.call(slow))
            await asyncio.sleep(0.05)
            task.cancel()  # a client disconnecting
            with pytest.raises(asyncio.CancelledError):
                await task
            await asyncio.sleep(0.05)

    run_asyncio(main())
    assert state == {"trio side cleaned up": True}


def test_the_runtime_serves_asyncio_callers_and_drains_on_exit(tmp_path: Path) -> None:
    async def main() -> list[int]:
        async with open_trio_guest() as portal:
            async def serve(task_status: trio.TaskStatus[object] = trio.TASK_STATUS_IGNORED
                            ) -> None:
                async with open_runtime(tmp_path, objects={"COUNTER": Counter}) as runtime:
                    task_status.started(runtime)
                    await trio.sleep_forever()

            runtime = await portal.start(serve)
            counter = runtime.namespace("COUNTER").get_by_name("a")  # type: ignore[attr-defined]
            return list(await asyncio.gather(*(portal.call(counter.increment)
                                               for _ in range(50))))

    assert sorted(run_asyncio(main())) == list(range(1, 51))  # type: ignore[arg-type]

    async def check() -> int:
        async with open_runtime(tmp_path, objects={"COUNTER": Counter}) as runtime:
            return await runtime.namespace("COUNTER").get_by_name("a").value()  # type: ignore[no-any-return]

    assert trio.run(check) == 50


def test_an_error_that_ends_the_trio_run_is_raised_on_exit() -> None:
    async def main() -> None:
        async with open_trio_guest() as portal:
            async def crash(task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
                            ) -> None:
                task_status.started()
                raise RuntimeError("trio broke")

            await portal.start(crash)
            await asyncio.sleep(0.05)

    with pytest.raises(BaseExceptionGroup) as info:
        run_asyncio(main())
    assert info.group_contains(RuntimeError, match="trio broke")


class Later:
    """Work a trio task finishes later: the shape of an object's ``Call``."""

    def __init__(self) -> None:
        self.callback: Callable[[], None] | None = None
        self.outcomes: list[int | Exception] = []

    def when_done(self, callback: Callable[[], None]) -> None:
        self.callback = callback

    def outcome(self) -> int:
        result = self.outcomes[0]
        if isinstance(result, Exception):
            raise result
        return result

    def finish(self, result: int | Exception) -> None:
        self.outcomes.append(result)
        assert self.callback is not None
        self.callback()


@pytest.mark.parametrize("busy_poll", [0.0, 0.001, 10.0])
def test_submitted_work_answers_here_with_its_result_or_error(busy_poll: float) -> None:
    """``submit`` runs ``begin`` in trio and waits here for the work it started: a
    result, an error of ``begin``, an error of the work; whether trio sleeps at once
    (busy_poll 0), soon, or polls throughout."""
    started: list[Later] = []
    arrived: list[trio.Event] = []

    def begin(fail_now: bool) -> Later:
        trio.lowlevel.current_task()  # raises outside trio
        if fail_now:
            raise LookupError("refused before starting")
        started.append(Later())
        arrived[-1].set()
        return started[-1]

    async def main() -> list[object]:
        async with open_trio_guest(busy_poll=busy_poll) as portal:
            results: list[object] = []
            for answer in [1, ValueError("from the work"), 2]:
                arrived.append(trio.Event())
                try:
                    result, _ = await asyncio.gather(
                        portal.submit(begin, False),
                        portal.call(finish_in_trio, answer))
                    results.append(result)
                except ValueError as exc:
                    results.append(str(exc))
            with pytest.raises(LookupError, match="refused before starting"):
                await portal.submit(begin, True)
            return results

    async def finish_in_trio(answer: int | Exception) -> None:
        await arrived[-1].wait()
        started.pop().finish(answer)

    assert run_asyncio(main()) == [1, "from the work", 2]


def test_submitted_work_past_its_time_limit_is_too_slow_here() -> None:
    """The caller gets trio.TooSlowError; the work goes on, and its late outcome is
    dropped without an error."""
    started: list[Later] = []
    second = asyncio.Event()

    def begin() -> Later:
        started.append(Later())
        if len(started) == 2:
            second.set()
        return started[-1]

    async def main() -> str:
        async with open_trio_guest() as portal:
            with pytest.raises(trio.TooSlowError):  # not asyncio's TimeoutError: no hang
                await asyncio.wait_for(portal.submit(begin, time_limit=0.05), 10)
            started[0].finish(7)  # late: nobody waits for it any more
            later = await asyncio.gather(portal.submit(begin, time_limit=30), finish_soon())
            return f"in time: {later[0]}"

    async def finish_soon() -> None:
        await second.wait()
        started[1].finish(8)

    assert run_asyncio(main()) == "in time: 8"


def test_calls_after_trio_has_ended_say_so() -> None:
    async def main() -> list[str]:
        async with open_trio_guest() as portal:
            pass
        errors = []
        for attempt in (portal.call(trio.lowlevel.checkpoint), portal.submit(Later)):
            with pytest.raises(trio.RunFinishedError) as info:
                await attempt
            errors.append(type(info.value).__name__)
        return errors

    assert run_asyncio(main()) == ["RunFinishedError", "RunFinishedError"]


def test_portal_type_is_exported_for_the_server() -> None:
    assert TrioPortal.__name__ == "TrioPortal"
