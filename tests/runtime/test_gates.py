"""The Durable Objects concurrency contract: input gate, output gate, write coalescing."""

from __future__ import annotations

import functools
import random
from collections.abc import Awaitable
from pathlib import Path

import pytest
import trio
import trio.testing

from actors import DurableObject, ObjectResetError
from runtime import Runtime, open_runtime
from tests.helpers import Counter, committed_view


async def test_a_thousand_concurrent_increments_count_exactly(tmp_path: Path) -> None:
    async with open_runtime(tmp_path, objects={"COUNTER": Counter}) as rt:
        counter = rt.namespace("COUNTER").get_by_name("hot")
        results: list[int] = []

        async def increment() -> None:
            results.append(await counter.increment())

        async with trio.open_nursery() as nursery:
            for _ in range(1000):
                nursery.start_soon(increment)
        assert await counter.value() == 1000
        assert sorted(results) == list(range(1, 1001))
        stats = rt.statistics()
        # Turns queued together share commits: far fewer commits than writes.
        assert stats.commits < 1000
        assert stats.activations == 1


async def test_racing_first_calls_activate_once(tmp_path: Path) -> None:
    Counter.starts = 0
    async with open_runtime(tmp_path, objects={"COUNTER": Counter}) as rt:
        namespace = rt.namespace("COUNTER")
        async with trio.open_nursery() as nursery:
            for _ in range(1000):
                nursery.start_soon(namespace.get_by_name("cold").value)
        assert Counter.starts == 1
        assert rt.statistics().activations == 1


async def test_a_calls_b_calls_a(tmp_path: Path) -> None:
    """A's gate opens while it awaits B, so B's call back into A runs: no deadlock."""
    async with open_runtime(tmp_path, objects={"COUNTER": Counter}) as rt:
        a = rt.namespace("COUNTER").get_by_name("a")
        await a.increment(5)
        # a.relay -> b.relay -> a.value
        assert await a.relay("b", "relay", "a", "value") == 5
        # and a chain that writes on every hop
        assert await a.relay("b", "relay", "a", "increment") == 6


async def test_other_events_run_while_a_handler_awaits_another_object(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    class Slow(DurableObject):
        async def wait(self, seconds: float) -> None:
            await trio.sleep(seconds)

    class Front(DurableObject):
        async def via_slow(self) -> str:
            await self.env.SLOW.get_by_name("s").wait(5)
            return "slow done"

        async def quick(self) -> str:
            return "quick"

    async with open_runtime(tmp_path, objects={"FRONT": Front, "SLOW": Slow},
                            durability="normal") as rt:
        front = rt.namespace("FRONT").get_by_name("f")
        order: list[tuple[str, float]] = []

        async def record(call: object) -> None:
            order.append((await call, trio.current_time()))  # type: ignore[misc]

        async with trio.open_nursery() as nursery:
            nursery.start_soon(record, front.via_slow())
            nursery.start_soon(record, front.quick())
        assert order == [("quick", 0), ("slow done", 5)]


class Proxy(DurableObject):
    """Stands for an object that calls an outside service (the sleep is the call)."""

    async def call_out(self) -> float:
        await trio.sleep(0.1)
        return trio.current_time()


class StrictProxy(Proxy):
    input_gate = "strict"


class OpenProxy(Proxy):
    input_gate = "open_on_await"


async def ten_calls_at_once(rt: Runtime, binding: str) -> float:
    """Seconds (virtual) that ten concurrent ``call_out`` calls to one object take."""
    stub = rt.namespace(binding).get_by_name("p")
    start = trio.current_time()
    async with trio.open_nursery() as nursery:
        for _ in range(10):
            nursery.start_soon(stub.call_out)
    return trio.current_time() - start


async def test_other_events_run_while_a_handler_awaits_the_outside_world(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    """Durable Objects' model, the default: the gate opens at any await but storage."""
    async with open_runtime(tmp_path, objects={"PROXY": Proxy}, durability="normal") as rt:
        assert await ten_calls_at_once(rt, "PROXY") == pytest.approx(0.1)


async def test_the_strict_gate_holds_other_events_while_a_handler_sleeps(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    """``input_gate="strict"``, for the runtime or a class: only an await of another object
    opens the gate; a class's own setting wins over the runtime's."""
    objects = {"PROXY": Proxy, "STRICT": StrictProxy, "OPEN": OpenProxy}
    async with open_runtime(tmp_path / "a", objects=objects, durability="normal") as rt:
        assert await ten_calls_at_once(rt, "STRICT") == pytest.approx(1.0)
    async with open_runtime(tmp_path / "b", objects=objects, durability="normal",
                            input_gate="strict") as rt:
        assert await ten_calls_at_once(rt, "PROXY") == pytest.approx(1.0)
        assert await ten_calls_at_once(rt, "OPEN") == pytest.approx(0.1)


async def test_an_unknown_input_gate_mode_is_refused(tmp_path: Path) -> None:
    class Typo(DurableObject):
        input_gate = "open"  # type: ignore[assignment]

    with pytest.raises(ValueError, match=r"Typo\.input_gate must be 'open_on_await' or 'strict'"):
        async with open_runtime(tmp_path, objects={"T": Typo}):
            pass
    with pytest.raises(ValueError, match="input_gate must be 'open_on_await' or 'strict'"):
        async with open_runtime(tmp_path, objects={"P": Proxy},
                                input_gate="relaxed"):  # type: ignore[arg-type]
            pass


class Arrivals(DurableObject):
    """Each call notes when it started, then waits a while of its own."""

    async def on_start(self) -> None:
        self.started: list[int] = []

    async def arrive(self, number: int, wait: float) -> None:
        self.started.append(number)
        await trio.sleep(wait)

    async def order(self) -> list[int]:
        return self.started


async def test_events_that_arrive_while_a_handler_waits_start_in_arrival_order(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    async with open_runtime(tmp_path, objects={"A": Arrivals}, durability="normal") as rt:
        stub = rt.namespace("A").get_by_name("a")
        rng = random.Random(14)
        async with trio.open_nursery() as nursery:
            for number in range(50):  # made in this order; trio may start the tasks in any
                call = stub.arrive(number, rng.choice([0, 0.01, 1, 5]))
                nursery.start_soon(_awaited, call)
            await trio.testing.wait_all_tasks_blocked()
            assert trio.current_time() == 0  # every one started before any wait ended
            assert await stub.order() == list(range(50))


async def _awaited(call: Awaitable[object]) -> None:
    await call


class Account(DurableObject):
    """The read-modify-write race of Durable Objects' docs, and its two guards."""

    async def deposit_racy(self, amount: int) -> None:
        balance = await self.ctx.storage.get("balance", 0)
        await trio.sleep(1)  # an outside call: other events run, and may deposit too
        await self.ctx.storage.put("balance", balance + amount)

    async def deposit_rereading(self, amount: int) -> None:
        await trio.sleep(1)  # the outside call first, then read and write with no await
        balance = await self.ctx.storage.get("balance", 0)
        await self.ctx.storage.put("balance", balance + amount)

    async def deposit_blocking(self, amount: int) -> None:
        async def body() -> None:
            balance = await self.ctx.storage.get("balance", 0)
            await trio.sleep(1)
            await self.ctx.storage.put("balance", balance + amount)

        await self.ctx.block_concurrency_while(body)

    async def balance(self) -> int:
        return await self.ctx.storage.get("balance", 0)  # type: ignore[no-any-return]


@pytest.mark.parametrize(("method", "expected_balance", "seconds"), [
    ("deposit_racy", 10, 1),  # the race: all five read 0 before any wrote
    ("deposit_rereading", 50, 1),
    ("deposit_blocking", 50, 5),  # safe, but one at a time
])
async def test_a_read_before_an_await_may_be_stale(
    tmp_path: Path, autojump_clock: trio.testing.MockClock, method: str,
    expected_balance: int, seconds: float,
) -> None:
    async with open_runtime(tmp_path, objects={"ACCOUNT": Account}, durability="normal") as rt:
        account = rt.namespace("ACCOUNT").get_by_name("a")
        async with trio.open_nursery() as nursery:
            for _ in range(5):
                nursery.start_soon(account.call, method, 10)
        assert await account.balance() == expected_balance
        assert trio.current_time() == pytest.approx(seconds)


async def test_block_concurrency_while_holds_waiting_handlers_too(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    """As in Durable Objects, a closed gate holds every event, a handler's own wait ending
    included: a sleep that ends inside another handler's block_concurrency_while goes on
    only after it."""

    class Room(DurableObject):
        async def nap(self) -> float:
            await trio.sleep(1)
            return trio.current_time()

        async def exclusive(self) -> float:
            await self.ctx.block_concurrency_while(functools.partial(trio.sleep, 5))
            return trio.current_time()

    async with open_runtime(tmp_path, objects={"ROOM": Room}, durability="normal") as rt:
        room = rt.namespace("ROOM").get_by_name("r")
        ended: dict[str, float] = {}

        async def run(name: str) -> None:
            ended[name] = await room.call(name)

        async with trio.open_nursery() as nursery:
            nursery.start_soon(run, "nap")
            await trio.sleep(0.5)
            nursery.start_soon(run, "exclusive")
        assert ended == {"exclusive": 5.5, "nap": 5.5}


async def test_writes_before_an_await_are_committed_while_the_handler_waits(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    """A handler that writes, then waits on the outside world, leaves its writes to the
    implicit transaction; the object commits them while it waits (as Durable Objects commit
    at the end of each turn), and a read meanwhile answers only once they are durable."""

    class Agent(DurableObject):
        async def think(self) -> str:
            await self.ctx.storage.put("status", "thinking")
            await trio.sleep(60)  # the model's answer
            await self.ctx.storage.put("status", "done")
            return "answer"

        async def status(self) -> str:
            return await self.ctx.storage.get("status", "idle")  # type: ignore[no-any-return]

    async with open_runtime(tmp_path, objects={"AGENT": Agent}, durability="normal") as rt:
        agent = rt.namespace("AGENT").get_by_name("a")
        path = tmp_path / "AGENT" / agent.id.hex[:2] / f"{agent.id.hex}.sqlite"
        async with trio.open_nursery() as nursery:
            nursery.start_soon(agent.think)
            await trio.sleep(1)
            with committed_view(path) as view:  # committed with no other event to force it
                rows = view.execute("SELECT count(*) FROM _dobox_kv").fetchone()
            assert rows == (1,)
            assert await agent.status() == "thinking"
        assert await agent.status() == "done"
        assert rt.statistics().resets == 0


async def test_storage_sync_keeps_other_events_out_while_it_commits(tmp_path: Path) -> None:
    """``await storage.sync()`` waits for an fsync in a thread; other events must not use
    the storage meanwhile (it would refuse them), so sync keeps the gate."""

    class Diary(DurableObject):
        async def write_and_sync(self, n: int) -> None:
            await self.ctx.storage.put(f"entry{n}", n)
            await self.ctx.storage.sync()

        async def count(self) -> int:
            return len(await self.ctx.storage.list())

    async with open_runtime(tmp_path, objects={"DIARY": Diary}) as rt:
        diary = rt.namespace("DIARY").get_by_name("d")
        async with trio.open_nursery() as nursery:
            for n in range(50):
                nursery.start_soon(diary.write_and_sync, n)
                nursery.start_soon(diary.count)
        assert await diary.count() == 50
        assert rt.statistics().resets == 0


async def test_block_concurrency_while_holds_events_across_outbound_awaits(
    tmp_path: Path,
) -> None:
    class Guarded(DurableObject):
        async def guarded(self) -> list[str]:
            async def body() -> list[str]:
                await self.ctx.storage.put("log", ["guarded start"])
                await self.env.GUARDED.get_by_name("other").ping()
                log: list[str] = await self.ctx.storage.get("log")
                await self.ctx.storage.put("log", [*log, "guarded end"])
                return log

            return await self.ctx.block_concurrency_while(body)

        async def ping(self) -> str:
            return "pong"

        async def note(self) -> None:
            log = await self.ctx.storage.get("log", [])
            await self.ctx.storage.put("log", [*log, "note"])

        async def log(self) -> list[str]:
            return await self.ctx.storage.get("log", [])  # type: ignore[no-any-return]

    async with open_runtime(tmp_path, objects={"GUARDED": Guarded}, durability="normal") as rt:
        stub = rt.namespace("GUARDED").get_by_name("g")
        async with trio.open_nursery() as nursery:
            nursery.start_soon(stub.guarded)
            nursery.start_soon(stub.note)
        assert await stub.log() == ["guarded start", "guarded end", "note"]


async def test_failing_block_concurrency_while_resets(tmp_path: Path) -> None:
    class Fragile(DurableObject):
        async def break_it(self) -> None:
            async def body() -> None:
                await trio.sleep(0.01)  # across an outside await, the gate still closed
                raise RuntimeError("inside")

            await self.ctx.block_concurrency_while(body)

        async def hello(self) -> str:
            return "hello"

    async with open_runtime(tmp_path, objects={"F": Fragile}, durability="normal") as rt:
        stub = rt.namespace("F").get_by_name("f")
        with pytest.raises(ObjectResetError, match="block_concurrency_while"):
            await stub.break_it()
        assert await stub.hello() == "hello"
        assert rt.statistics().resets == 1


async def test_transaction_holds_other_events_and_rolls_back(tmp_path: Path) -> None:
    class Bank(DurableObject):
        async def transfer(self, fail: bool) -> None:
            async def body() -> None:
                await self.ctx.storage.put("a", 0)
                await self.env.BANK.get_by_name("audit").ping()
                await self.ctx.storage.put("b", 100)
                if fail:
                    raise ValueError("audit says no")

            await self.ctx.storage.put({"a": 100, "b": 0})
            await self.ctx.storage.transaction(body)

        async def ping(self) -> None:
            pass

        async def balances(self) -> dict[str, int]:
            return await self.ctx.storage.get(["a", "b"])  # type: ignore[no-any-return]

    async with open_runtime(tmp_path, objects={"BANK": Bank}, durability="normal") as rt:
        bank = rt.namespace("BANK").get_by_name("bank")
        with pytest.raises(ValueError, match="audit says no"):
            await bank.transfer(True)
        assert await bank.balances() == {"a": 100, "b": 0}
        await bank.transfer(False)
        assert await bank.balances() == {"a": 0, "b": 100}
        assert rt.statistics().resets == 0


async def test_a_failed_commit_fails_the_call_and_resets(tmp_path: Path) -> None:
    class Ledger(DurableObject):
        async def on_start(self) -> None:
            self.ctx.storage.sql.exec(
                "CREATE TABLE IF NOT EXISTS account (id INTEGER PRIMARY KEY);"
                "CREATE TABLE IF NOT EXISTS entry (account INTEGER REFERENCES account(id))"
            )
            self.calls = 0  # in memory only: a reset starts a new instance from zero

        async def count_call(self) -> int:
            self.calls += 1
            return self.calls

        async def bad_entry(self) -> str:
            self.ctx.storage.sql.exec("PRAGMA defer_foreign_keys = ON")
            self.ctx.storage.sql.exec("INSERT INTO entry VALUES (42)")
            return "the caller must never see this"

        async def entries(self) -> int:
            return self.ctx.storage.sql.exec("SELECT count(*) AS n FROM entry").one()["n"]  # type: ignore[no-any-return]

    async with open_runtime(tmp_path, objects={"L": Ledger}) as rt:
        ledger = rt.namespace("L").get_by_name("l")
        assert [await ledger.count_call() for _ in range(3)] == [1, 2, 3]
        with pytest.raises(ObjectResetError, match="could not be committed") as info:
            await ledger.bad_entry()
        assert (info.value.reset, info.value.retryable) == (True, True)
        assert await ledger.entries() == 0
        # The instance that saw the lost writes is gone: a new one starts from storage.
        assert await ledger.count_call() == 1
        assert rt.statistics().resets == 1


async def test_writes_then_outbound_call_are_durable_first(tmp_path: Path) -> None:
    """Nothing leaves an object before its writes are durable: when B gets A's call, what a
    crash would leave of A's file already holds A's write."""

    class A(DurableObject):
        async def write_then_tell(self, my_file: str) -> int:
            await self.ctx.storage.put("x", 1)
            return await self.env.B.get_by_name("b").rows_on_disk(my_file)  # type: ignore[no-any-return]

    class B(DurableObject):
        async def rows_on_disk(self, path: str) -> int:
            with committed_view(Path(path)) as view:
                (rows,) = view.execute("SELECT count(*) FROM _dobox_kv").fetchone()
            return int(rows)

    async with open_runtime(tmp_path, objects={"A": A, "B": B}) as rt:
        a = rt.namespace("A").get_by_name("a")
        path = tmp_path / "A" / a.id.hex[:2] / f"{a.id.hex}.sqlite"
        assert await a.write_then_tell(str(path)) == 1


class Recorder(DurableObject):
    async def record(self, item: str) -> None:
        log = await self.ctx.storage.get("log", [])
        await self.ctx.storage.put("log", [*log, item])

    async def log(self) -> list[str]:
        return await self.ctx.storage.get("log", [])  # type: ignore[no-any-return]


class Sender(DurableObject):
    async def on_start(self) -> None:
        self.ctx.storage.sql.exec(
            "CREATE TABLE IF NOT EXISTS parent (id INTEGER PRIMARY KEY);"
            "CREATE TABLE IF NOT EXISTS child (parent INTEGER REFERENCES parent(id))"
        )

    async def write_and_notify(self, commit_fails: bool) -> None:
        if commit_fails:
            self.ctx.storage.sql.exec("PRAGMA defer_foreign_keys = ON")
            self.ctx.storage.sql.exec("INSERT INTO child VALUES (7)")
        else:
            await self.ctx.storage.put("x", 1)
        # Not awaited: the call still goes, but only once the writes above are durable.
        self.env.RECORDER.get_by_name("r").record("notified")


async def test_a_call_made_after_writes_leaves_after_their_commit(tmp_path: Path) -> None:
    async with open_runtime(tmp_path, objects={"SENDER": Sender, "RECORDER": Recorder},
                            durability="normal") as rt:
        sender = rt.namespace("SENDER").get_by_name("s")
        recorder = rt.namespace("RECORDER").get_by_name("r")
        await sender.write_and_notify(False)
        assert await recorder.log() == ["notified"]
        with pytest.raises(ObjectResetError, match="could not be committed"):
            await sender.write_and_notify(True)
        await trio.testing.wait_all_tasks_blocked()
        assert await recorder.log() == ["notified"]  # the failed turn's call never left


class Tally(DurableObject):
    async def put(self, unconfirmed: bool, commit_fails: bool) -> str:
        if commit_fails:
            self.ctx.storage.fail_next_commit()
        await self.ctx.storage.put("n", 1, allow_unconfirmed=unconfirmed)
        return "answered"

    async def put_both(self, commit_fails: bool) -> str:
        if commit_fails:
            self.ctx.storage.fail_next_commit()
        await self.ctx.storage.put("a", 1, allow_unconfirmed=True)
        await self.ctx.storage.put("b", 1)
        return "answered"

    async def delete(self, unconfirmed: bool, commit_fails: bool) -> str:
        if commit_fails:
            self.ctx.storage.fail_next_commit()
        await self.ctx.storage.delete("n", allow_unconfirmed=unconfirmed)
        return "answered"

    async def keys(self) -> list[str]:
        return list(await self.ctx.storage.list())


async def test_an_unconfirmed_write_does_not_hold_the_result(tmp_path: Path) -> None:
    """``allow_unconfirmed``: the result leaves before the write is durable, so a commit
    that then fails cannot reach the caller; it resets the object, and the write is lost
    (Durable Objects' trade). Any other write in the same turn holds the result as usual."""
    async with open_runtime(tmp_path, objects={"TALLY": Tally}, durability="normal") as rt:
        tally = rt.namespace("TALLY").get_by_name("t")
        with pytest.raises(ObjectResetError, match="could not be committed"):
            await tally.put(False, True)
        assert await tally.put(True, True) == "answered"
        await trio.testing.wait_all_tasks_blocked()
        assert rt.statistics().resets == 2  # the unconfirmed write's commit failed after
        assert await tally.keys() == []
        with pytest.raises(ObjectResetError, match="could not be committed"):
            await tally.put_both(True)
        assert await tally.put(True, False) == "answered"
        with pytest.raises(ObjectResetError, match="could not be committed"):
            await tally.delete(False, True)
        assert await tally.delete(True, True) == "answered"
        await trio.testing.wait_all_tasks_blocked()
        assert rt.statistics().resets == 5
        assert await tally.keys() == ["n"]  # both deletes were lost with their commits
        assert await tally.delete(True, False) == "answered"
        assert await tally.keys() == []


async def test_a_call_after_an_unconfirmed_write_leaves_before_it_is_durable(
    tmp_path: Path,
) -> None:
    """The counterpart of test_a_call_made_after_writes_leaves_after_their_commit: after
    only an ``allow_unconfirmed`` write, a call leaves at once, so it arrives even when the
    commit then fails."""

    class Hasty(DurableObject):
        async def write_and_notify(self) -> str:
            self.ctx.storage.fail_next_commit()
            await self.ctx.storage.put("x", 1, allow_unconfirmed=True)
            self.env.RECORDER.get_by_name("r").record("notified")  # sent, not awaited
            return "answered"

    async with open_runtime(tmp_path, objects={"HASTY": Hasty, "RECORDER": Recorder},
                            durability="normal") as rt:
        assert await rt.namespace("HASTY").get_by_name("h").write_and_notify() == "answered"
        assert await rt.namespace("RECORDER").get_by_name("r").log() == ["notified"]
        await trio.testing.wait_all_tasks_blocked()
        assert rt.statistics().resets == 1  # the write's commit failed, after the call left


class Waiter(DurableObject):
    async def wait(self, seconds: float) -> str:
        await trio.sleep(seconds)
        return "waited"

    async def write(self, key: str, commit_fails: bool) -> str:
        if commit_fails:
            self.ctx.storage.fail_next_commit()
        await self.ctx.storage.put(key, 1)
        return "written"

    async def keys(self) -> list[str]:
        return list(await self.ctx.storage.list())


async def test_the_output_gate_holds_results_of_events_run_while_another_waits(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    """While one handler waits, another event writes: its result still waits for the
    commit (a crash's copy of the file holds the write when the caller hears of it); and a
    commit that fails then resets the object, failing both, with what was acknowledged
    before still there."""
    async with open_runtime(tmp_path, objects={"W": Waiter}, durability="normal") as rt:
        waiter = rt.namespace("W").get_by_name("w")
        path = tmp_path / "W" / waiter.id.hex[:2] / f"{waiter.id.hex}.sqlite"
        outcomes: dict[str, object] = {}

        async def run(label: str, call: Awaitable[object]) -> None:
            try:
                outcomes[label] = await call
            except ObjectResetError:
                outcomes[label] = f"reset at {trio.current_time()}"

        async def write_and_look() -> None:
            outcomes["written"] = await waiter.write("acknowledged", False)
            with committed_view(path) as view:
                outcomes["on disk"] = view.execute(
                    "SELECT key FROM _dobox_kv").fetchall()

        async with trio.open_nursery() as nursery:
            nursery.start_soon(run, "waiter", waiter.wait(10))
            await trio.sleep(1)
            await write_and_look()
            await trio.sleep(1)
            nursery.start_soon(run, "failed write", waiter.write("lost", True))
        assert outcomes == {"written": "written", "on disk": [(b"acknowledged",)],
                            "waiter": "reset at 2.0", "failed write": "reset at 2.0"}
        assert await waiter.keys() == ["acknowledged"]
        assert rt.statistics().resets == 1
