"""The harness's test runtime and its levers."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import pytest
import trio
import trio.testing

from actors import AlarmInfo, DurableObject, ObjectContext, ObjectResetError
from harness import TestRuntime, open_test_runtime
from tests.helpers import Counter


class Reminder(Counter):
    reminded = 0

    async def remind_in(self, seconds: float) -> None:
        await self.ctx.storage.set_alarm(self.ctx.now() + seconds)

    async def alarm(self, info: AlarmInfo) -> None:
        type(self).reminded += 1


OBJECTS = {"COUNTER": Reminder}


async def test_stubs_survive_restarts(tmp_path: Path) -> None:
    Reminder.starts = 0
    async with open_test_runtime(tmp_path, OBJECTS) as rt:
        counter = rt.namespace("COUNTER").get_by_name("a")
        assert await counter.increment() == 1
        await rt.restart()
        assert await counter.increment() == 2
        await rt.restart()
        assert await counter.value() == 2
        assert rt.restarts == 2
        assert Reminder.starts == 3  # on_start once per runtime
        assert rt.statistics().activations == 1  # this runtime's


async def test_restart_lets_admitted_calls_finish(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    async with open_test_runtime(tmp_path, OBJECTS) as rt:
        counter = rt.namespace("COUNTER").get_by_name("a")
        results: list[float] = []

        async def slow() -> None:
            results.append(await counter.sleep(5))

        async with trio.open_nursery() as nursery:
            nursery.start_soon(slow)
            await trio.testing.wait_all_tasks_blocked()
            await rt.restart()
        assert results == [5]


async def test_crash_fails_in_flight_calls_and_the_object_recovers(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    async with open_test_runtime(tmp_path, OBJECTS) as rt:
        counter = rt.namespace("COUNTER").get_by_name("a")
        await counter.increment()
        assert not rt.crash(rt.namespace("COUNTER").get_by_name("never-called"))
        failures: list[BaseException] = []

        async def in_flight() -> None:
            try:
                await counter.sleep(10)
            except ObjectResetError as exc:
                failures.append(exc)

        async with trio.open_nursery() as nursery:
            nursery.start_soon(in_flight)
            await trio.testing.wait_all_tasks_blocked()
            assert rt.crash(counter)
        (failure,) = failures
        assert "crashed by the test harness" in str(failure)
        assert trio.current_time() == 0
        assert await counter.increment() == 2
        assert rt.statistics().resets == 1


async def test_evict_and_rehydrate(tmp_path: Path) -> None:
    async with open_test_runtime(tmp_path, OBJECTS) as rt:
        counter = rt.namespace("COUNTER").get_by_name("a")
        await counter.increment()
        await rt.evict(counter)
        assert rt.statistics().live_objects == 0
        with pytest.raises(LookupError, match="is not live"):
            await rt.evict(counter)
        assert await counter.increment() == 2
        assert rt.statistics().activations == 2


async def test_run_in_object_sees_the_instance(tmp_path: Path) -> None:
    async with open_test_runtime(tmp_path, OBJECTS) as rt:
        counter = rt.namespace("COUNTER").get_by_name("a")
        await counter.increment(5)

        def peek(instance: DurableObject, ctx: ObjectContext) -> tuple[str, object]:
            return type(instance).__name__, ctx.storage.kv.get("n")

        async def write(instance: DurableObject, ctx: ObjectContext) -> None:
            await ctx.storage.put("n", 41)

        assert await rt.run_in_object(counter, peek) == ("Reminder", 5)
        await rt.run_in_object(counter, write)
        assert await counter.increment() == 42
        assert await rt.run_in_object(counter, lambda instance, ctx: b"raw") == b"raw"


async def test_run_alarm_fires_a_pending_alarm_now(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    Reminder.reminded = 0
    async with open_test_runtime(tmp_path, OBJECTS) as rt:
        stub = rt.namespace("COUNTER").get_by_name("a")
        assert await rt.run_alarm(stub) is False
        await stub.remind_in(3600)
        assert await rt.run_alarm(stub) is True
        assert Reminder.reminded == 1
        assert trio.current_time() == 0
        await trio.sleep(7200)
        assert Reminder.reminded == 1  # consumed: it does not fire again


async def test_list_object_ids(tmp_path: Path) -> None:
    async with open_test_runtime(tmp_path, OBJECTS) as rt:
        namespace = rt.namespace("COUNTER")
        assert rt.list_object_ids("COUNTER") == []
        for name in ("a", "b", "c"):
            await namespace.get_by_name(name).value()
        ids = rt.list_object_ids("COUNTER")
        assert sorted(ids, key=str) == sorted((namespace.id_from_name(n) for n in "abc"), key=str)


async def test_fail_next_commit(tmp_path: Path) -> None:
    async with open_test_runtime(tmp_path, OBJECTS) as rt:
        counter = rt.namespace("COUNTER").get_by_name("a")
        await counter.increment()
        await rt.fail_next_commit(counter)
        assert await counter.value() == 1  # reads commit nothing: still armed
        with pytest.raises(ObjectResetError, match="made to fail by the test harness"):
            await counter.increment()
        assert await counter.value() == 1
        assert await counter.increment() == 2


async def test_errors_in_the_body_are_not_wrapped(tmp_path: Path) -> None:
    with pytest.raises(KeyError, match="nope"):
        async with open_test_runtime(tmp_path, OBJECTS):
            raise KeyError("nope")


@pytest.fixture
def dobox_objects() -> Mapping[str, type[DurableObject]]:
    return OBJECTS


async def test_the_pytest_plugin_provides_a_runtime(dobox_runtime: TestRuntime) -> None:
    counter = dobox_runtime.namespace("COUNTER").get_by_name("plugged")
    assert await counter.increment() == 1
    assert dobox_runtime.data_dir.name == "dobox"
