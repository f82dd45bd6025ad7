"""Activation, eviction, rehydration, resets, overload and shutdown, on virtual time."""

from __future__ import annotations

import functools
import time
from pathlib import Path

import pytest
import trio
import trio.testing

import runtime._engine._actor
import runtime._engine._closing
import runtime._engine._memory
from actors import DurableObject, ObjectResetError, OverloadedError, RuntimeClosedError
from runtime import open_runtime
from storage import Storage, StorageError
from tests.helpers import Counter, concurrent_outcomes, immutable, open_descriptors_under

# Inline commits: worker threads are invisible to MockClock (see docs/how-to/testing).
FAST = {"durability": "normal"}


async def test_idle_objects_are_evicted_and_rehydrated(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    Counter.starts = 0
    async with open_runtime(tmp_path, objects={"COUNTER": Counter}, idle_timeout=60,
                            **FAST) as rt:
        counter = rt.namespace("COUNTER").get_by_name("a")
        await counter.increment(7)
        await trio.sleep_until(59.999)
        assert rt.statistics().live_objects == 1
        await trio.sleep_until(60)
        await trio.testing.wait_all_tasks_blocked()
        assert trio.current_time() == 60
        stats = rt.statistics()
        assert (stats.live_objects, stats.evictions) == (0, 1)
        assert await counter.value() == 7  # rehydrated from its file
        assert rt.statistics().activations == 2
        assert Counter.starts == 2


async def test_activity_postpones_eviction(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    async with open_runtime(tmp_path, objects={"COUNTER": Counter}, idle_timeout=60,
                            **FAST) as rt:
        counter = rt.namespace("COUNTER").get_by_name("a")
        await counter.value()
        await trio.sleep_until(50)
        await counter.value()
        await trio.sleep_until(109.999)
        assert rt.statistics().evictions == 0
        await trio.sleep_until(110)
        await trio.testing.wait_all_tasks_blocked()
        assert rt.statistics().evictions == 1


async def test_least_recently_used_idle_object_is_evicted(tmp_path: Path) -> None:
    Counter.starts = 0
    async with open_runtime(tmp_path, objects={"COUNTER": Counter}, max_live_objects=2,
                            **FAST) as rt:
        namespace = rt.namespace("COUNTER")
        for name in ("a", "b", "c", "b"):
            await namespace.get_by_name(name).increment()
        await trio.testing.wait_all_tasks_blocked()
        stats = rt.statistics()
        assert (stats.live_objects, stats.activations, stats.evictions) == (2, 3, 1)
        # "a" was evicted; touching it again evicts "c", the least recently used of c and b.
        assert await namespace.get_by_name("a").value() == 1
        assert await namespace.get_by_name("b").value() == 2
        await trio.testing.wait_all_tasks_blocked()
        stats = rt.statistics()
        assert (stats.live_objects, stats.activations, stats.evictions) == (2, 4, 2)
        assert Counter.starts == 4


async def test_failing_on_start_resets_and_the_next_call_recovers(tmp_path: Path) -> None:
    class Flaky(DurableObject):
        failures_left = 1

        async def on_start(self) -> None:
            if type(self).failures_left:
                type(self).failures_left -= 1
                raise ConnectionError("upstream not ready")

        async def hello(self) -> str:
            return "hello"

    async with open_runtime(tmp_path, objects={"F": Flaky}, **FAST) as rt:
        stub = rt.namespace("F").get_by_name("f")
        errors = await concurrent_outcomes(3, stub.hello)
        # Every call queued behind the failed start fails alike.
        assert all(isinstance(e, ObjectResetError) for e in errors)
        assert all("ConnectionError: upstream not ready" in str(e) for e in errors)
        assert all(isinstance(e.__cause__, ConnectionError) for e in errors)
        assert await stub.hello() == "hello"
        stats = rt.statistics()
        assert (stats.resets, stats.activations) == (1, 2)


class Sleeper(Counter):
    async def sleep_exclusively(self, seconds: float) -> float:
        await self.ctx.block_concurrency_while(functools.partial(trio.sleep, seconds))
        return trio.current_time()


async def test_event_timeout_resets_at_the_deadline(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    """The limit counts while an event keeps the gate closed: inside
    block_concurrency_while, or its whole run under the strict gate. A handler merely
    waiting on the outside world keeps nobody out, and is not limited (as in DO, whose
    limit is on CPU time)."""
    for gate in ("open_on_await", "strict"):
        start = trio.current_time()
        async with open_runtime(tmp_path / gate, objects={"COUNTER": Sleeper},
                                event_timeout=5, input_gate=gate, **FAST) as rt:
            counter = rt.namespace("COUNTER").get_by_name("a")
            await counter.increment()
            with pytest.raises(ObjectResetError, match="exceeded event execution time"):
                await counter.sleep_exclusively(100)
            assert trio.current_time() - start == 5
            assert await counter.value() == 1
            if gate == "strict":
                with pytest.raises(ObjectResetError, match="exceeded event execution time"):
                    await counter.sleep(100)
                assert trio.current_time() - start == 10
            else:
                assert await counter.sleep(100) - start == 105
            assert rt.statistics().resets == (1 if gate == "open_on_await" else 2)


async def test_abort_resets_and_cannot_be_caught_by_the_object(tmp_path: Path) -> None:
    class Stubborn(DurableObject):
        async def try_to_survive(self) -> str:
            try:
                self.ctx.abort("time to go")
            except Exception:
                return "survived"
            return "not reached"

        async def hello(self) -> str:
            return "hello"

    async with open_runtime(tmp_path, objects={"S": Stubborn}, **FAST) as rt:
        stub = rt.namespace("S").get_by_name("s")
        with pytest.raises(ObjectResetError, match="time to go"):
            await stub.try_to_survive()
        assert await stub.hello() == "hello"


async def test_a_reset_fails_queued_calls_and_spares_other_objects(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    # Strict: the increment waits behind the sleep (by default it would run meanwhile).
    async with open_runtime(tmp_path, objects={"COUNTER": Counter}, event_timeout=5,
                            input_gate="strict", **FAST) as rt:
        doomed = rt.namespace("COUNTER").get_by_name("doomed")
        healthy = rt.namespace("COUNTER").get_by_name("healthy")
        outcomes: dict[str, object] = {}

        async def run(label: str, call: object) -> None:
            try:
                outcomes[label] = await call  # type: ignore[misc]
            except ObjectResetError as exc:
                outcomes[label] = f"reset at {trio.current_time()}: {exc.reset}"

        async with trio.open_nursery() as nursery:
            nursery.start_soon(run, "stuck", doomed.sleep(100))
            nursery.start_soon(run, "queued", doomed.increment())
            nursery.start_soon(run, "other", healthy.sleep(3))
        assert outcomes == {"stuck": "reset at 5.0: True", "queued": "reset at 5.0: True",
                            "other": 3.0}


async def test_full_queue_is_overloaded_at_once(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    async with open_runtime(tmp_path, objects={"COUNTER": Counter},
                            max_queued_per_object=3, **FAST) as rt:
        counter = rt.namespace("COUNTER").get_by_name("a")
        async with trio.open_nursery() as nursery:
            for _ in range(3):
                nursery.start_soon(counter.sleep, 10)
            await trio.testing.wait_all_tasks_blocked()
            with pytest.raises(OverloadedError, match="Too many requests queued") as info:
                await counter.value()
            assert trio.current_time() == 0
            assert (info.value.overloaded, info.value.retryable) == (True, False)
        assert await counter.value() == 0
        assert rt.statistics().overloads == 1


async def test_wait_until_keeps_the_object_alive(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    class Background(DurableObject):
        async def start(self) -> None:
            async def upload_logs() -> None:
                await trio.sleep(100)

            self.ctx.wait_until(upload_logs())

    async with open_runtime(tmp_path, objects={"B": Background}, idle_timeout=10,
                            **FAST) as rt:
        await rt.namespace("B").get_by_name("b").start()
        await trio.sleep_until(109.999)
        assert rt.statistics().evictions == 0
        await trio.sleep_until(110)
        await trio.testing.wait_all_tasks_blocked()
        assert rt.statistics().evictions == 1


async def test_now_advances_with_trio_clock(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    async with open_runtime(tmp_path, objects={"COUNTER": Counter}, **FAST) as rt:
        counter = rt.namespace("COUNTER").get_by_name("a")
        first = await counter.now()
        await trio.sleep(30)
        assert await counter.now() == pytest.approx(first + 30)
        assert rt.now() == pytest.approx(first + 30)


async def test_shutdown_lets_admitted_events_finish(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    results: list[object] = []
    async with (
        trio.open_nursery() as nursery,
        open_runtime(tmp_path, objects={"COUNTER": Counter}, **FAST) as rt,
    ):
        counter = rt.namespace("COUNTER").get_by_name("a")

        async def slow_then_write() -> None:
            results.append(await counter.sleep(5))
            try:
                await counter.increment()
            except RuntimeClosedError as exc:
                results.append(type(exc))

        nursery.start_soon(slow_then_write)
        await trio.testing.wait_all_tasks_blocked()
        # The sleep was admitted before shutdown and finished; the increment came after.
    assert results == [5, RuntimeClosedError]
    assert trio.current_time() == 5
    async with open_runtime(tmp_path, objects={"COUNTER": Counter}, **FAST) as rt:
        assert await rt.namespace("COUNTER").get_by_name("a").value() == 0


async def test_shutdown_grace_ends_with_reset_errors(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    failures: list[BaseException] = []
    async with (
        trio.open_nursery() as nursery,
        open_runtime(tmp_path, objects={"COUNTER": Counter}, shutdown_grace=2, **FAST) as rt,
    ):
        counter = rt.namespace("COUNTER").get_by_name("a")

        async def too_slow() -> None:
            try:
                await counter.sleep(100)
            except ObjectResetError as exc:
                failures.append(exc)

        nursery.start_soon(too_slow)
        await trio.testing.wait_all_tasks_blocked()
    assert len(failures) == 1
    assert trio.current_time() == 2


async def test_calls_after_close_are_refused(tmp_path: Path) -> None:
    async with open_runtime(tmp_path, objects={"COUNTER": Counter}, **FAST) as rt:
        counter = rt.namespace("COUNTER").get_by_name("a")
        await counter.increment()
    with pytest.raises(RuntimeClosedError, match="shutting down"):
        await counter.increment()


async def test_idle_live_objects_let_their_connection_go(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    Counter.starts = 0
    async with open_runtime(tmp_path, objects={"COUNTER": Counter}, idle_timeout=60,
                            idle_connection_timeout=10, **FAST) as rt:
        counter = rt.namespace("COUNTER").get_by_name("a")
        await counter.increment()
        await trio.sleep_until(9.999)
        assert rt.statistics().open_connections == 1
        await trio.sleep_until(10)
        await trio.testing.wait_all_tasks_blocked()
        stats = rt.statistics()
        assert (stats.live_objects, stats.open_connections) == (1, 0)
        # The instance is still live: the next call reconnects, without a new activation.
        assert await counter.increment() == 2
        stats = rt.statistics()
        assert (stats.open_connections, stats.activations, Counter.starts) == (1, 1, 1)


async def test_connections_are_let_go_in_a_thread_with_full_durability(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    async with open_runtime(tmp_path, objects={"COUNTER": Counter},
                            idle_connection_timeout=10) as rt:
        counter = rt.namespace("COUNTER").get_by_name("a")
        await counter.increment()
        # The close runs in a worker thread, which MockClock cannot see: poll on virtual time.
        while rt.statistics().open_connections:  # noqa: ASYNC110 - a thread, not a task
            await trio.sleep(1)
        assert trio.current_time() >= 10
        assert await counter.increment() == 2


async def test_activations_wait_while_too_many_evicted_objects_are_closing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With full durability, evicted objects close in worker threads; if new objects
    opened their files regardless, closing ones would pile up (and their file descriptors
    with them) whenever activations outpace closes."""
    monkeypatch.setattr(runtime._engine._closing, "MAX_CLOSING", 2)
    slow_close = Storage.close

    def close_slowly(self: Storage) -> None:
        time.sleep(0.02)  # a slow disk: the close runs in a worker thread
        slow_close(self)

    monkeypatch.setattr(Storage, "close", close_slowly)
    closing_at_open: list[int] = []
    real_open = runtime._engine._actor.open_storage

    def recording_open(*args: object, **kwargs: object) -> Storage:
        closing_at_open.append(len(rt._router.closing))
        return real_open(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(runtime._engine._actor, "open_storage", recording_open)
    async with open_runtime(tmp_path, objects={"COUNTER": Counter}, max_live_objects=1) as rt:
        namespace = rt.namespace("COUNTER")

        async def touch(first: int) -> None:
            for i in range(first, 24, 6):
                await namespace.get_by_name(f"o{i}").value()

        async with trio.open_nursery() as nursery:
            for first in range(6):
                nursery.start_soon(touch, first)
    assert len(closing_at_open) == 24
    assert max(closing_at_open) < 2
    assert rt.statistics().evictions >= 20


async def test_freed_memory_is_given_back_once_per_sweep(
    tmp_path: Path, autojump_clock: trio.testing.MockClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Connections let go by idle objects are followed, a second later, by one release of
    the allocator's free memory to the operating system, not one per object."""
    releases: list[str] = []
    monkeypatch.setattr(runtime._engine._memory, "release_freed_memory",  # in a worker thread
                        lambda: releases.append("released"))
    monkeypatch.setattr(runtime._engine._memory, "can_release_memory", lambda: True)
    async with open_runtime(tmp_path, objects={"COUNTER": Counter}, idle_timeout=1000,
                            idle_connection_timeout=10, **FAST) as rt:
        for name in ("a", "b", "c"):
            await rt.namespace("COUNTER").get_by_name(name).increment()
        await trio.sleep(10.5)
        assert rt.statistics().open_connections == 0
        assert releases == []  # not yet: a second after the frees
        await trio.sleep(1)
        # MockClock cannot see the worker thread; the release happens before the runtime
        # closes, which waits for it.
    assert releases == ["released"]


@pytest.mark.parametrize("where", ["immutable", "under-immutable", "a-file"])
async def test_an_unusable_data_directory_is_one_clear_error(tmp_path: Path, where: str) -> None:
    """The error names the directory, is not an ExceptionGroup, and leaves nothing open."""
    locked = tmp_path / "locked"
    locked.mkdir()
    data = {"immutable": locked, "under-immutable": locked / "data",
            "a-file": tmp_path / "a-file"}[where]
    if where == "a-file":
        data.write_text("not a directory")
    with immutable(locked), pytest.raises(StorageError) as info:
        async with open_runtime(data, objects={"COUNTER": Counter}):
            pytest.fail("the runtime opened")  # pragma: no cover
    assert type(info.value) is StorageError
    assert f"cannot use the data directory {data}" in str(info.value)
    assert open_descriptors_under(tmp_path) == []
