"""The server's own cost per request, without sockets: ``DoboxApp`` driven directly under
uvloop, as uvicorn drives it, with the runtime as trio's guest.

    python bench/bench_bridge.py [--requests 4000] [--busy-poll 0.001] [--dir bench/.data]

For an RPC no-op, a ``fetch`` no-op and a durable ``fetch`` increment, sequentially and with
32 concurrent callers: wall and CPU microseconds per request. Floors, in the same run: the
bare ASGI app of ``_echo_app.py`` driven the same way (asyncio alone), and a raw ``sqlite3``
single-row commit with ``synchronous=FULL``. Then a new object's first request and an
existing object's first request after a restart, in process (their medians over 200
objects). Nothing here is a test; the network's share is measured by bench_server.py and
../shared/bench/workerd/compare.sh.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import sqlite3
import statistics
import time
from collections.abc import Awaitable, Callable, MutableMapping
from pathlib import Path

import httpx
import trio
import uvloop
from _echo_app import app as echo_app

from actors import DurableObject
from runtime import open_runtime
from runtime.server import DEFAULT_BUSY_POLL, DoboxApp

Message = MutableMapping[str, object]
ASGIApp = Callable[[Message, Callable[[], Awaitable[Message]],
                    Callable[[Message], Awaitable[None]]], Awaitable[None]]
CALLERS = 32
OBJECTS_MEASURED = 200


class Bench(DurableObject):
    """The workerd bench's object, in short: a no-op RPC, and fetch routes."""

    async def on_start(self) -> None:
        self.ctx.storage.sql.exec("CREATE TABLE IF NOT EXISTS kv(k TEXT PRIMARY KEY, v TEXT)")

    async def noop(self) -> None:
        return None

    async def fetch(self, request: httpx.Request) -> httpx.Response:
        if request.url.path == "/incr":
            n = await self.ctx.storage.get("n", 0) + 1
            await self.ctx.storage.put("n", n)
            return _json({"n": n})
        return _json({"ok": True})


def _json(value: object) -> httpx.Response:
    return httpx.Response(200, content=json.dumps(value).encode(),
                          headers={"content-type": "application/json"})


ROUTES = {
    "RPC no-op": ("POST", "/default/BENCH/x/rpc/noop", b"{}"),
    "fetch no-op": ("GET", "/default/BENCH/x/noop", b""),
    "fetch durable increment": ("POST", "/default/BENCH/x/incr", b"{}"),
}


async def per_request(app: ASGIApp, method: str, path: str, body: bytes, requests: int,
                      callers: int) -> tuple[float, float]:
    """Wall and CPU microseconds per request of ``app``, ``callers`` at a time."""
    scope = {"type": "http", "method": method, "path": path, "raw_path": path.encode(),
             "query_string": b"", "headers": [(b"host", b"bench"),
                                              (b"content-type", b"application/json")]}

    async def receive() -> Message:
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: Message) -> None:
        pass

    async def caller(count: int) -> None:
        for _ in range(count):
            await app(dict(scope), receive, send)

    await caller(200)  # warm up (and activate the object)
    wall, cpu = time.perf_counter(), time.process_time()
    await asyncio.gather(*(caller(requests // callers) for _ in range(callers)))
    done = requests // callers * callers
    return ((time.perf_counter() - wall) / done * 1e6,
            (time.process_time() - cpu) / done * 1e6)


async def measure_app(data: Path, requests: int, busy_poll: float) -> None:
    app = DoboxApp(data, {"BENCH": Bench}, busy_poll=busy_poll)
    lifespan_in: asyncio.Queue[Message] = asyncio.Queue()
    lifespan_out: asyncio.Queue[Message] = asyncio.Queue()

    async def lifespan_send(message: Message) -> None:
        await lifespan_out.put(message)

    lifespan = asyncio.ensure_future(app({"type": "lifespan"}, lifespan_in.get, lifespan_send))
    await lifespan_in.put({"type": "lifespan.startup"})
    await lifespan_out.get()
    print(f"{'route':<26} {'callers':>7} {'wall us':>9} {'cpu us':>9}")
    for callers in (1, CALLERS):
        for label, (method, path, body) in ROUTES.items():
            wall, cpu = await per_request(app, method, path, body, requests, callers)  # type: ignore[arg-type]
            print(f"{label:<26} {callers:>7} {wall:>9.1f} {cpu:>9.1f}")
        wall, cpu = await per_request(echo_app, "POST", "/", b"{}", requests, callers)  # type: ignore[arg-type]
        print(f"{'floor: bare ASGI app':<26} {callers:>7} {wall:>9.1f} {cpu:>9.1f}")
    await lifespan_in.put({"type": "lifespan.shutdown"})
    await lifespan


def sqlite_commit_floor(data: Path) -> float:
    """Median microseconds of a raw single-row durable commit."""
    conn = sqlite3.connect(data / "floor.sqlite", isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")
    conn.execute("CREATE TABLE t(k INTEGER PRIMARY KEY, v)")
    times = []
    for i in range(500):
        start = time.perf_counter()
        conn.execute("BEGIN")
        conn.execute("INSERT OR REPLACE INTO t VALUES (1, ?)", (i,))
        conn.execute("COMMIT")
        times.append(time.perf_counter() - start)
    conn.close()
    return statistics.median(times) * 1e6


async def first_requests(data: Path) -> tuple[float, float]:
    """Median microseconds of a new object's first fetch, and of an existing object's
    first fetch after the runtime restarted."""
    new = await first_fetches(data / "cold")
    existing = await first_fetches(data / "cold")  # the same objects, in a new runtime
    return statistics.median(new) * 1e6, statistics.median(existing) * 1e6


async def first_fetches(data: Path) -> list[float]:
    """Seconds of the first fetch to each of the measured objects, in a runtime of its own."""
    times: list[float] = []
    async with open_runtime(data, objects={"BENCH": Bench}) as runtime:
        namespace = runtime.namespace("BENCH")
        for i in range(OBJECTS_MEASURED):
            start = time.perf_counter()
            await namespace.get_by_name(f"o{i}").fetch(httpx.Request("GET", "http://dobox/noop"))
            times.append(time.perf_counter() - start)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=4000)
    parser.add_argument("--busy-poll", type=float, default=DEFAULT_BUSY_POLL,
                        help="seconds trio keeps polling after a request (dobox serve's)")
    parser.add_argument("--dir", type=Path, default=Path(__file__).parent / ".data",
                        help="scratch directory for database files (a real disk, not tmpfs)")
    args = parser.parse_args()
    shutil.rmtree(args.dir, ignore_errors=True)
    args.dir.mkdir(parents=True)
    try:
        uvloop.run(measure_app(args.dir / "app", args.requests, args.busy_poll))
        print(f"floor: raw sqlite3 durable commit, median: {sqlite_commit_floor(args.dir):.0f} us")
        new, existing = trio.run(first_requests, args.dir)
        print(f"first request in process, median of {OBJECTS_MEASURED}: new object {new:.0f} us,"
              f" existing object after a restart {existing:.0f} us")
    finally:
        shutil.rmtree(args.dir, ignore_errors=True)


if __name__ == "__main__":
    main()
