"""The HTTP server under load from a second process on loopback.

    python bench/bench_server.py [--seconds 10] [--touch 100000] [--dir bench/.data]

Starts ``dobox serve`` (durability full) on a free port, through the harness's
``ServerProcess``, and measures, with ``wrk`` (one
thread, so that the server keeps a core of the two) and a sequential httpx client:

- sequential latency of a no-op RPC (median, p99, client included);
- durable increments per second on one object, 32 connections;
- durable increments per second spread round-robin over 1,000 existing objects, 32
  connections;
- a cold first request to an existing object (after a restart);
- the server's RSS after touching 1,000 objects, and ``--touch`` objects, and again once
  idle objects have let their SQLite connections go (``idle_connection_timeout``, 10 s);
- WebSocket echo through an object (``Room`` in tests/runtime/server_objects.py, which
  stores each message durably before echoing it to every socket of its room): sequential
  round-trip latency, and messages per second with 32 in flight on one socket.

The floor, measured in the same run: a bare uvicorn app (``_echo_app.py``) answering the
same requests and echoing WebSocket messages, with nothing behind it.

Needs ``wrk`` (Debian package ``wrk``). Nothing here is a test.
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import trio
import trio_websocket
from _common import run_with_scratch_dir

from harness import ServerProcess, open_server_process

ROOT = Path(__file__).parent.parent
OBJECTS = "tests.runtime.server_objects:OBJECTS"
ROUND_ROBIN = """
counter = 0
request = function()
  counter = counter + 1
  return wrk.format("POST", "/default/COUNTER/o" .. (counter % {objects}) .. "/rpc/increment",
                    {{["Content-Type"] = "application/json"}}, "{{}}")
end
"""


def rss_mib(server: ServerProcess) -> float:
    status = Path(f"/proc/{server.pid}/status").read_text()
    match = re.search(r"VmRSS:\s+(\d+) kB", status)
    return int(match.group(1)) / 1024 if match else float("nan")


def wrk(base: str, seconds: float, path: str = "", script: str | None = None) -> float:
    """Requests per second that wrk reached (1 thread, 32 connections)."""
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as lua:
        lua.write(script or ('wrk.method = "POST"\nwrk.body = "{}"\n'
                             'wrk.headers["Content-Type"] = "application/json"\n'))
    try:
        output = subprocess.run(
            ["wrk", "-t1", "-c32", f"-d{int(seconds)}s", "-s", lua.name, base + path],
            capture_output=True, text=True, check=True,
        ).stdout
    finally:
        os.unlink(lua.name)
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    if errors:
        raise RuntimeError(f"wrk saw {errors.group(1)} failed responses:\n{output}")
    match = re.search(r"Requests/sec:\s+([\d.]+)", output)
    assert match, output
    return float(match.group(1))


def sequential_latency(base: str, count: int = 2000) -> tuple[float, float]:
    timings = []
    with httpx.Client(base_url=base) as client:
        for _ in range(count):
            start = time.perf_counter()
            client.post("/default/COUNTER/latency/rpc/value", json={})
            timings.append(time.perf_counter() - start)
    timings.sort()
    return statistics.median(timings), timings[int(count * 0.99)]


def touch(base: str, objects: int, prefix: str = "t") -> None:
    with httpx.Client(base_url=base) as client:
        for i in range(objects):
            client.post(f"/default/COUNTER/{prefix}{i}/rpc/value", json={})


async def cold_first_requests(server: ServerProcess, count: int = 200) -> float:
    """Median first request to existing objects not live (after a graceful restart)."""
    touch(server.base_url, count)
    await server.restart()
    return statistics.median(first_requests(server.base_url, count))


def first_requests(base: str, count: int) -> list[float]:
    timings = []
    with httpx.Client(base_url=base) as client:
        for i in range(count):
            start = time.perf_counter()
            client.post(f"/default/COUNTER/t{i}/rpc/value", json={})
            timings.append(time.perf_counter() - start)
    return timings


async def websocket_echo(url: str, count: int = 2000, window: int = 32) -> tuple[float, float]:
    """(median sequential round trip, messages per second with ``window`` in flight)."""
    async with trio_websocket.open_websocket_url(url) as ws:
        timings = []
        for i in range(count):
            start = time.perf_counter()
            await ws.send_message(f"m{i}")
            await ws.get_message()
            timings.append(time.perf_counter() - start)
        start = time.perf_counter()
        for i in range(window):
            await ws.send_message(f"w{i}")
        for i in range(window, count):
            await ws.get_message()
            await ws.send_message(f"w{i}")
        for _ in range(window):
            await ws.get_message()
        rate = count / (time.perf_counter() - start)
    return statistics.median(timings), rate


@asynccontextmanager
async def echo_floor() -> AsyncIterator[str]:
    """A bare uvicorn echo app on a free port; its ws:// URL."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    process = await trio.lowlevel.open_process(
        [sys.executable, "-m", "uvicorn", "_echo_app:app", "--port", str(port), "--loop",
         "uvloop", "--http", "httptools", "--log-level", "warning"],
        cwd=Path(__file__).parent)
    try:
        with trio.fail_after(30):
            while True:
                try:
                    await (await trio.open_tcp_stream("127.0.0.1", port)).aclose()
                    break
                except OSError:
                    await trio.sleep(0.05)
        yield f"ws://127.0.0.1:{port}/"
    finally:
        process.terminate()
        await process.wait()


async def main_async(args: argparse.Namespace) -> None:
    if shutil.which("wrk") is None:
        raise SystemExit("bench_server.py needs wrk (apt-get install wrk)")
    print(f"python {platform.python_version()}, trio {trio.__version__}, "
          f"{os.cpu_count()} cores, {platform.machine()}")
    # The load generators below block this trio task: the server is another process.
    async with open_server_process(args.dir / "server", OBJECTS, cwd=ROOT) as server:
        base = server.base_url
        median, p99 = sequential_latency(base)
        one = wrk(base, args.seconds, "/default/COUNTER/hot/rpc/increment")
        # Create the 1,000 objects first: making a new object's file costs milliseconds, and
        # would otherwise be what the round-robin run measures.
        touch(base, 1000, prefix="o")
        spread = wrk(base, args.seconds, script=ROUND_ROBIN.format(objects=1000))
        touch(base, 1000)
        rss_1000 = rss_mib(server)
        if args.touch > 1000:
            touch(base, args.touch)
        rss_many = rss_mib(server)
        await trio.sleep(12)  # idle objects let their SQLite connections go after 10 s
        rss_idle = rss_mib(server)
        ws_base = server.base_url.replace("http://", "ws://")
        ws_latency, ws_rate = await websocket_echo(f"{ws_base}/default/ROOM/bench/chat")
    async with echo_floor() as floor_url:
        floor_http = floor_url.replace("ws://", "http://").rstrip("/")
        floor_median, floor_p99 = sequential_latency(floor_http)
        floor_wrk = wrk(floor_http, args.seconds, "/default/COUNTER/hot/rpc/increment")
        floor_latency, floor_rate = await websocket_echo(floor_url)
    async with open_server_process(args.dir / "cold", OBJECTS, cwd=ROOT) as server:
        cold = await cold_first_requests(server)
    print(f"sequential no-op RPC latency: median {median * 1e3:.2f} ms, p99 {p99 * 1e3:.2f} ms")
    print(f"durable increments, one object, 32 connections: {one:,.0f} /s")
    print(f"durable increments over 1,000 objects, 32 connections: {spread:,.0f} /s")
    print(f"cold first request to an existing object: median {cold * 1e3:.2f} ms")
    print(f"server RSS after touching 1,000 objects: {rss_1000:.0f} MiB; after "
          f"{max(args.touch, 1000):,}: {rss_many:.0f} MiB; 12 s later: {rss_idle:.0f} MiB")
    print(f"WebSocket echo through an object (a durable write per message): median round "
          f"trip {ws_latency * 1e3:.2f} ms, {ws_rate:,.0f} messages/s with 32 in flight")
    print(f"floor, a bare uvicorn app: HTTP median {floor_median * 1e3:.2f} ms (p99 "
          f"{floor_p99 * 1e3:.2f} ms), {floor_wrk:,.0f} requests/s with 32 connections; "
          f"WebSocket echo median {floor_latency * 1e3:.2f} ms, {floor_rate:,.0f} messages/s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--touch", type=int, default=100_000)
    run_with_scratch_dir(parser, main_async)


if __name__ == "__main__":
    main()
