"""Runtime throughput, activation latency and memory, beside floors measured in the same run.

    python bench/bench_runtime.py [--seconds 1.0] [--touch 100000] [--dir bench/.data]

Floors: a bare trio round trip over unbuffered memory channels (one pair of tasks, and 32
pairs), and a raw ``sqlite3`` single-row commit with ``synchronous=FULL``. Each rate is
the best of three runs of ``--seconds``. Nothing here is a test.
"""

from __future__ import annotations

import argparse
import ctypes
import ctypes.util
import functools
import gc
import os
import platform
import sqlite3
import statistics
import sys
import time
import tracemalloc
from pathlib import Path

import trio
from _common import run_with_scratch_dir

from actors import DurableObject
from runtime import open_runtime
from storage._files import object_path, object_paths
from storage._meta import KV_TABLE

CALLERS = 32


class Counter(DurableObject):
    async def noop(self) -> None:
        return None

    async def increment(self) -> int:
        n: int = self.ctx.storage.kv.get("n", 0) + 1
        self.ctx.storage.kv.put("n", n)
        return n


class Proxy(DurableObject):
    """Stands for an object in front of an outside service: each call awaits 10 ms."""

    async def call_out(self) -> None:
        await trio.sleep(OUTSIDE_CALL)


class StrictProxy(Proxy):
    input_gate = "strict"


OUTSIDE_CALL = 0.01


def rss_bytes() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


async def best_rate(seconds: float, callers: int, call: object) -> float:
    """Calls per second with ``callers`` tasks each awaiting ``call()`` in a loop."""
    best = 0.0
    for _ in range(3):
        done = 0
        deadline = time.perf_counter() + seconds

        async def loop(until: float) -> None:
            nonlocal done
            while time.perf_counter() < until:
                await call()  # type: ignore[operator]
                done += 1

        start = time.perf_counter()
        async with trio.open_nursery() as nursery:
            for _ in range(callers):
                nursery.start_soon(loop, deadline)
        best = max(best, done / (time.perf_counter() - start))
    return best


async def channel_floor(seconds: float, pairs: int) -> float:
    """Round trips per second between ``pairs`` caller/echo task pairs."""

    async def run_pairs() -> float:
        done = 0
        deadline = time.perf_counter() + seconds

        async def pair() -> None:
            nonlocal done
            to_echo, echo_inbox = trio.open_memory_channel[int](0)
            to_caller, caller_inbox = trio.open_memory_channel[int](0)

            async def echo() -> None:
                async for item in echo_inbox:
                    await to_caller.send(item)

            async with trio.open_nursery() as nursery:
                nursery.start_soon(echo)
                while time.perf_counter() < deadline:
                    await to_echo.send(done)
                    await caller_inbox.receive()
                    done += 1
                nursery.cancel_scope.cancel()

        start = time.perf_counter()
        async with trio.open_nursery() as nursery:
            for _ in range(pairs):
                nursery.start_soon(pair)
        return done / (time.perf_counter() - start)

    return max([await run_pairs() for _ in range(3)])


def commit_floor(directory: Path, seconds: float) -> float:
    conn = sqlite3.connect(directory / "raw.sqlite", isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")
    conn.execute("CREATE TABLE kv (key BLOB PRIMARY KEY, value BLOB) WITHOUT ROWID")
    best = 0.0
    for _ in range(3):
        done = 0
        start = time.perf_counter()
        while time.perf_counter() - start < seconds:
            conn.execute("BEGIN")
            conn.execute("INSERT OR REPLACE INTO kv VALUES (?, ?)", (b"n", done))
            conn.execute("COMMIT")
            done += 1
        best = max(best, done / (time.perf_counter() - start))
    conn.close()
    return best


async def rpc_rates(directory: Path, seconds: float) -> dict[str, float]:
    async with open_runtime(directory / "rpc", objects={"C": Counter}) as rt:
        counter = rt.namespace("C").get_by_name("bench")
        await counter.noop()
        return {
            "noop 1": await best_rate(seconds, 1, counter.noop),
            f"noop {CALLERS}": await best_rate(seconds, CALLERS, counter.noop),
            f"increment {CALLERS}": await best_rate(seconds, CALLERS, counter.increment),
        }


async def outside_call_rates(directory: Path, seconds: float) -> dict[str, float]:
    """Calls per second to one object from ``CALLERS`` callers when each call awaits an
    outside call of ``OUTSIDE_CALL`` seconds, under each input gate mode."""
    rates = {}
    async with open_runtime(directory / "gate", objects={"P": Proxy, "S": StrictProxy}) as rt:
        for mode, binding in (("open_on_await", "P"), ("strict", "S")):
            stub = rt.namespace(binding).get_by_name("proxy")
            await stub.call_out()
            rates[mode] = await best_rate(seconds, CALLERS, stub.call_out)
    return rates


async def cold_activation(directory: Path, objects: int = 500) -> dict[str, list[float]]:
    """First-call latencies of existing objects that are not live, beside the floor: raw
    sqlite3 opening a twin set of the same kind of closed files and reading a row (on that
    first read SQLite creates the -wal and -shm files), keeping them open as the runtime
    keeps live objects' connections (opens cost several times more here while other WAL
    connections are open than in a process that closes each at once). Both sets are made
    together, and the floor runs first, so neither gets a warmer disk cache."""
    data = directory / "cold"
    async with open_runtime(data, objects={"C": Counter}) as rt:
        namespace = rt.namespace("C")
        for i in range(2 * objects):
            await namespace.get_by_name(f"o{i}").increment()
    floor = []
    held = []
    for i in range(objects, 2 * objects):
        object_id = namespace.id_from_name(f"o{i}").hex
        path = object_path(data, "C", object_id)
        start = time.perf_counter()
        conn = sqlite3.connect(path, isolation_level=None)
        conn.execute(f"SELECT value FROM {KV_TABLE} LIMIT 1").fetchone()
        floor.append(time.perf_counter() - start)
        held.append(conn)
    for conn in held:
        conn.close()
    ours = []
    async with open_runtime(data, objects={"C": Counter}) as rt:
        namespace = rt.namespace("C")
        for i in range(objects):
            stub = namespace.get_by_name(f"o{i}")
            start = time.perf_counter()
            await stub.noop()
            ours.append(time.perf_counter() - start)
    return {"floor": sorted(floor), "dobox": sorted(ours)}


def _sqlite_memory_used() -> int:
    """Bytes SQLite's own allocator holds, from the same libsqlite3 the sqlite3 module uses."""
    library = ctypes.CDLL(ctypes.util.find_library("sqlite3"))
    library.sqlite3_memory_used.restype = ctypes.c_int64
    return int(library.sqlite3_memory_used())


def _memory_now() -> tuple[int, int, int]:
    gc.collect()
    # Give freed memory back to the OS (glibc keeps it otherwise), so RSS shows what is in use.
    libc = ctypes.util.find_library("c")
    if libc is not None and hasattr(ctypes.CDLL(libc), "malloc_trim"):
        ctypes.CDLL(libc).malloc_trim(0)
    return rss_bytes(), _sqlite_memory_used(), tracemalloc.get_traced_memory()[0]


async def _probe_objects(data: Path, count: int, kind: str) -> str:
    """In a fresh process, memory per live object over existing files: ``active`` objects
    hold their connection, ``idle`` ones have let it go, ``raw`` is a bare sqlite3
    connection. A fresh process, because memory freed earlier would be reused and hide
    growth."""
    tracemalloc.start()
    if kind == "raw":
        paths = object_paths(data, "C")[:count]
        before = _memory_now()
        held = []
        for path in paths:
            conn = sqlite3.connect(path, isolation_level=None)
            conn.execute("PRAGMA journal_mode=WAL").fetchone()
            conn.execute(f"SELECT value FROM {KV_TABLE} LIMIT 1").fetchone()
            held.append(conn)
        after = _memory_now()
    else:
        # Idle objects let their connection go at once here; active ones never do.
        timeout = 1e-6 if kind == "idle" else None
        async with open_runtime(data, objects={"C": Counter}, max_live_objects=count * 2,
                                durability="normal", idle_connection_timeout=timeout) as rt:
            namespace = rt.namespace("C")
            before = _memory_now()
            for i in range(count):
                await namespace.get_by_name(f"o{i}").increment()
            await trio.sleep(0.1)
            after = _memory_now()
            stats = rt.statistics()
            assert stats.live_objects == count
            assert stats.open_connections == (0 if kind == "idle" else count)
    return " ".join(f"{(a - b) / count / 1024:.1f}" for a, b in zip(after, before, strict=True))


async def memory_per_object(directory: Path, count: int = 2_000) -> dict[str, list[float]]:
    """RSS, SQLite heap and Python heap (KiB) per live object and per raw connection."""
    data = directory / "memory"
    async with open_runtime(data, objects={"C": Counter}, durability="normal") as rt:
        namespace = rt.namespace("C")
        for i in range(count):
            await namespace.get_by_name(f"o{i}").increment()
    results = {}
    for label, kind in (("dobox object, active", "active"),
                        ("dobox object, idle (connection let go)", "idle"),
                        ("raw sqlite3 connection (floor)", "raw")):
        probe = await trio.run_process(
            [sys.executable, __file__, "--probe", str(data), str(count), kind],
            capture_stdout=True,
        )
        results[label] = [float(x) for x in probe.stdout.split()]
    return results


async def touch_many(directory: Path, objects: int, limit: int = 1_000) -> list[str]:
    """Touch ``objects`` objects with ``max_live_objects=limit``; report RSS along the way."""
    lines = []
    async with open_runtime(directory / "touch", objects={"C": Counter},
                            max_live_objects=limit, durability="normal") as rt:
        namespace = rt.namespace("C")
        start = time.perf_counter()
        step = max(objects // 5, 1)
        for i in range(objects):
            await namespace.get_by_name(f"o{i}").noop()
            if (i + 1) % step == 0:
                stats = rt.statistics()
                lines.append(
                    f"  after {i + 1:>7,} objects: RSS {rss_bytes() / 2**20:7.1f} MiB, "
                    f"live {stats.live_objects:,}, evictions {stats.evictions:,}, "
                    f"{(i + 1) / (time.perf_counter() - start):,.0f} activations/s"
                )
    return lines


async def main_async(args: argparse.Namespace) -> None:
    directory: Path = args.dir
    print(f"python {platform.python_version()}, sqlite {sqlite3.sqlite_version}, "
          f"trio {trio.__version__}, {os.cpu_count()} cores, {platform.machine()}")
    floor_1 = await channel_floor(args.seconds, 1)
    floor_n = await channel_floor(args.seconds, CALLERS)
    commit = commit_floor(directory, args.seconds)
    rates = await rpc_rates(directory, args.seconds)
    print(f"\n{'measure':<48}{'floor':>12}{'dobox':>12}{'ratio':>9}")
    rows = [
        ("no-op RPC, 1 caller (/s)", floor_1, rates["noop 1"]),
        (f"no-op RPC, {CALLERS} callers (/s)", floor_n, rates[f"noop {CALLERS}"]),
        (f"durable increments, {CALLERS} callers (/s)", commit,
         rates[f"increment {CALLERS}"]),
    ]
    for label, floor, value in rows:
        print(f"{label:<48}{floor:>12,.0f}{value:>12,.0f}{value / floor:>8.2f}x")
    print("  floors: trio memory-channel round trips (1 and 32 pairs); raw sqlite3 "
          "single-row commit, synchronous=FULL")
    outside = await outside_call_rates(directory, args.seconds)
    waits = await best_rate(args.seconds, CALLERS, functools.partial(trio.sleep, OUTSIDE_CALL))
    for mode, rate in outside.items():
        label = f"outside 10 ms, {CALLERS} callers, {mode} (/s)"
        print(f"{label:<48}{waits:>12,.0f}{rate:>12,.0f}{rate / waits:>8.2f}x")
    print(f"  floor: {CALLERS} tasks each awaiting trio.sleep({OUTSIDE_CALL}) in a loop "
          f"(at most {CALLERS / OUTSIDE_CALL:,.0f}/s)")
    cold = await cold_activation(directory)
    for label, key in (("cold activation of an existing object + a no-op call", "dobox"),
                       ("  floor: raw sqlite3 open + first read of a twin file", "floor")):
        timings = cold[key]
        print(f"{label}: median {statistics.median(timings) * 1e3:.3f} ms, "
              f"p99 {timings[int(len(timings) * 0.99)] * 1e3:.3f} ms")
    memory = await memory_per_object(directory)
    print(f"\n{'memory per live object (KiB)':<48}{'RSS':>10}{'SQLite':>10}{'Python':>10}")
    for label, (rss, sqlite_heap, python_heap) in memory.items():
        print(f"{label:<48}{rss:>10.1f}{sqlite_heap:>10.1f}{python_heap:>10.1f}")
    print("  (2,000 existing objects, each written once, in a fresh process; RSS after "
          "malloc_trim; the raw\n  connection is sqlite3 on the same files, one row read)")
    if args.touch:
        print(f"touching {args.touch:,} objects with max_live_objects=1000:")
        for line in await touch_many(directory, args.touch):
            print(line)


def main() -> None:
    if len(sys.argv) == 5 and sys.argv[1] == "--probe":
        print(trio.run(_probe_objects, Path(sys.argv[2]), int(sys.argv[3]), sys.argv[4]))
        return
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=1.0)
    parser.add_argument("--touch", type=int, default=100_000,
                        help="objects to touch with max_live_objects=1000 (0 to skip)")
    run_with_scratch_dir(parser, main_async)


if __name__ == "__main__":
    main()
