"""Many tenants, each touched once: what an idle server holds, and a new tenant's first
request.

    python bench/bench_tenants.py [--tenants 10000] [--idle-timeout 2] [--dir bench/.data]

Starts ``dobox serve`` with a tokens file of ``--tenants`` tenants (and its open-file limit
raised to the hard limit, as ``dobox serve`` does), makes one durable call to one object of
each tenant, waits until every object has been idle for ``--idle-timeout`` and the idle
sweep has run, then reads the server's open descriptors (``/proc/PID/fd``) and RSS.
Also: the latency of each tenant's first request (its runtime starting included), median
and p99, beside the latency of a second request to the same object (the floor: the same
work with the tenant already open).

Nothing here is a test.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from pathlib import Path

import httpx
import trio
from _common import run_with_scratch_dir

from harness import open_server_process

ROOT = Path(__file__).parent.parent
OBJECTS = "tests.runtime.server_objects:OBJECTS"


def descriptors_and_rss(pid: int) -> tuple[int, float]:
    fds = len(os.listdir(f"/proc/{pid}/fd"))
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return fds, int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


async def run(args: argparse.Namespace) -> None:
    scratch, tenants, idle_timeout = args.dir, args.tenants, args.idle_timeout
    tokens = scratch / "tokens.toml"
    tokens.write_text("".join(f'[tenants.t{i}]\ntoken = "token-{i}"\n' for i in range(tenants)))
    first: list[float] = []
    second: list[float] = []
    async with open_server_process(scratch / "data", OBJECTS, cwd=ROOT, tokens=tokens,
                                   options=["--idle-timeout", str(idle_timeout)]) as server:
        assert server.pid is not None
        start_fds, start_rss = descriptors_and_rss(server.pid)
        async with httpx.AsyncClient(base_url=server.base_url, timeout=60) as client:
            for i in range(tenants):
                headers = {"authorization": f"Bearer token-{i}"}
                path = f"/t{i}/COUNTER/c/rpc/increment"
                for samples in (first, second):
                    began = time.perf_counter()
                    answer = await client.post(path, json={}, headers=headers)
                    samples.append(time.perf_counter() - began)
                    answer.raise_for_status()
            busy_fds, busy_rss = descriptors_and_rss(server.pid)
            # Idle objects are evicted by a sweep after idle_timeout; give it two rounds.
            await trio.sleep(2 * idle_timeout + 12)
            idle_fds, idle_rss = descriptors_and_rss(server.pid)
    print(f"{tenants:,} tenants, one object each, --idle-timeout {idle_timeout}")
    print(f"{'':30}{'descriptors':>12}{'RSS MiB':>10}")
    print(f"{'server started':30}{start_fds:>12,}{start_rss:>10.0f}")
    print(f"{'after the requests':30}{busy_fds:>12,}{busy_rss:>10.0f}")
    print(f"{'idle':30}{idle_fds:>12,}{idle_rss:>10.0f}")

    def ms(samples: list[float], q: float) -> str:
        return f"{statistics.quantiles(samples, n=100)[int(q) - 1] * 1000:.2f}"

    print(f"first request of a tenant: median {statistics.median(first) * 1000:.2f} ms, "
          f"p99 {ms(first, 99)} ms")
    print(f"  floor, the same object's second request: median "
          f"{statistics.median(second) * 1000:.2f} ms, p99 {ms(second, 99)} ms")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tenants", type=int, default=10_000)
    parser.add_argument("--idle-timeout", type=float, default=2.0)
    run_with_scratch_dir(parser, run)


if __name__ == "__main__":
    main()
