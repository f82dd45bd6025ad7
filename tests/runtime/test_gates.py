"""The Durable Objects concurrency contract: input gate, output gate, write coalescing."""

from __future__ import annotations

from pathlib import Path

import pytest
import trio
import trio.testing

from actors import DurableObject, ObjectResetError
from runtime import open_runtime
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


async def test_input_gate_holds_other_events_while_a_handler_sleeps(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    """Unlike an await on another object, a plain await keeps the gate (dobox is stricter
    than DO here: only calls to other objects open it)."""
    async with open_runtime(tmp_path, objects={"COUNTER": Counter},
                            durability="normal") as rt:
        counter = rt.namespace("COUNTER").get_by_name("a")
        times: dict[str, float] = {}

        async def sleeper() -> None:
            times["sleep"] = await counter.sleep(10)

        async def reader() -> None:
            await counter.value()
            times["read"] = trio.current_time()

        async with trio.open_nursery() as nursery:
            nursery.start_soon(sleeper)
            await trio.testing.wait_all_tasks_blocked()
            nursery.start_soon(reader)
        assert times == {"sleep": 10, "read": 10}


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
