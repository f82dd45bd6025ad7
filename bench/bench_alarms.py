"""Alarms fired per second when many objects are due at once, beside the call rates that
bound it, measured in the same run.

    python bench/bench_alarms.py [--objects 10000] [--dir bench/.data]

Each of ``--objects`` objects gets an alarm for the same instant, then the runtime is
closed and opened again once they are all overdue: what is timed is the restarted runtime
firing every overdue alarm (activating each object from its file, running ``alarm()``,
committing that the alarm is consumed). Beside it: no-op calls to the same number of cold
objects (100 callers, each object activated from its file: the same work but the alarm's
bookkeeping), and no-op calls to one live object. Nothing here is a test.
"""

from __future__ import annotations

import argparse
import os
import platform
import sqlite3
import time
from pathlib import Path
from typing import ClassVar

import trio
from _common import run_with_scratch_dir

from actors import AlarmInfo, DurableObject
from runtime import open_runtime

CALLERS = 100


class Timer(DurableObject):
    fired: ClassVar[int] = 0

    async def arm(self, at: float) -> None:
        await self.ctx.storage.set_alarm(at)

    async def noop(self) -> None:
        return None

    async def alarm(self, info: AlarmInfo) -> None:
        Timer.fired += 1


async def setup(data: Path, objects: int) -> None:
    """Arm every object for one instant after this runtime has closed (so that none fires
    here), then wait until that instant has passed."""
    async with open_runtime(data, objects={"T": Timer}, durability="normal") as rt:
        namespace = rt.namespace("T")
        at = rt.now() + 2 + objects * 0.005
        for i in range(objects):
            await namespace.get_by_name(f"t{i}").arm(at)
        remaining = at - rt.now()
    assert remaining > 0, "setup was slower than planned: some alarms fired during it"
    await trio.sleep(remaining + 0.5)


async def fire_overdue(data: Path, objects: int) -> float:
    Timer.fired = 0
    start = time.perf_counter()
    async with open_runtime(data, objects={"T": Timer}) as rt:
        while Timer.fired < objects:  # noqa: ASYNC110 - counting, not waiting for one event
            await trio.sleep(0.01)
        elapsed = time.perf_counter() - start
        assert rt.statistics().resets == 0
    return objects / elapsed


async def call_cold(data: Path, objects: int) -> float:
    start = time.perf_counter()
    async with open_runtime(data, objects={"T": Timer}) as rt:
        namespace = rt.namespace("T")

        async def caller(first: int) -> None:
            for i in range(first, objects, CALLERS):
                await namespace.get_by_name(f"t{i}").noop()

        async with trio.open_nursery() as nursery:
            for first in range(CALLERS):
                nursery.start_soon(caller, first)
        elapsed = time.perf_counter() - start
    return objects / elapsed


async def call_hot(data: Path, seconds: float = 1.0) -> float:
    async with open_runtime(data, objects={"T": Timer}) as rt:
        stub = rt.namespace("T").get_by_name("t0")
        await stub.noop()
        done = 0
        start = time.perf_counter()
        while time.perf_counter() - start < seconds:
            await stub.noop()
            done += 1
        return done / (time.perf_counter() - start)


async def main_async(args: argparse.Namespace) -> None:
    print(f"python {platform.python_version()}, sqlite {sqlite3.sqlite_version}, "
          f"trio {trio.__version__}, {os.cpu_count()} cores, {platform.machine()}")
    data = args.dir / "alarms"
    await setup(data, args.objects)
    alarms = await fire_overdue(data, args.objects)
    cold = await call_cold(data, args.objects)
    hot = await call_hot(data)
    print(f"\n{args.objects:,} objects, all due at once after a restart (durability=full):")
    print(f"  alarms fired                       {alarms:>10,.0f} /s")
    print(f"  no-op calls to as many cold objects {cold:>9,.0f} /s  ({CALLERS} callers)")
    print(f"  no-op calls to one live object     {hot:>10,.0f} /s")
    print(f"  alarms / cold calls: {alarms / cold:.2f}; alarms / hot calls: {alarms / hot:.3f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--objects", type=int, default=10_000)
    run_with_scratch_dir(parser, main_async)


if __name__ == "__main__":
    main()
