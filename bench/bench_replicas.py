"""What replicating objects with Litestream costs, and what async replication can lose.

    python bench/bench_replicas.py [--seconds 8] [--trials 3] [--dir bench/.data]

Starts etcd (``harness.open_etcd``) and cluster nodes with a lease of 5 s, each with a data
directory of its own and ``--replica file://<dir>/replicas``; ``--durability full``
throughout. For each of no replica, ``--replication async`` and ``--replication sync``:

- the sequential latency of a durable increment on one object (median and 90th
  percentile of 1,000);
- increments per second over 100 objects, round robin, 32 connections (wrk; a failed
  response, such as a ``database is locked`` from Litestream's reads beside the writer,
  stops the bench).

Then the loss window of each mode: a client increments one object on node ``a`` as fast as
it can, ``a`` is killed (SIGKILL) and its data directory deleted (the machine is lost),
and node ``b`` takes the object over from its replica; the increments acknowledged but not
in the restored object are lost. ``--trials`` times each.

The floor, measured in the same run: the same node without a replica (the first row).
Needs ``wrk`` (Debian package ``wrk``). Nothing here is a test.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import signal
import statistics
import time
from pathlib import Path

import httpx
import trio
from _common import run_with_scratch_dir
from bench_cluster import claim_key, holder_of
from bench_server import ROUND_ROBIN, touch, wrk

from harness import EtcdProcess, ServerProcess, open_etcd

ROOT = Path(__file__).parent.parent
OBJECTS = "tests.runtime.server_objects:OBJECTS"
TTL = 5
MODES = (None, "async", "sync")


def replicated_node(data: Path, replicas: Path, etcd: EtcdProcess, name: str,
                    mode: str | None) -> ServerProcess:
    server = ServerProcess(data, OBJECTS, cwd=ROOT)
    server.options = ["--durability", "full", "--cluster", etcd.endpoint, "--node", name,
                      "--advertise", server.base_url, "--lease-ttl", str(TTL)]
    if mode is not None:
        server.options += ["--replica", replicas.as_uri(), "--replication", mode]
    return server


def increment_latency(base: str, name: str, count: int = 1000) -> tuple[float, float]:
    """(median, 90th percentile) of sequential durable increments of one object."""
    timings = []
    with httpx.Client(base_url=base) as client:
        for _ in range(count):
            start = time.perf_counter()
            client.post(f"/default/COUNTER/{name}/rpc/increment", json={}).raise_for_status()
            timings.append(time.perf_counter() - start)
    timings.sort()
    return statistics.median(timings), timings[int(count * 0.9)]


async def cost(args: argparse.Namespace, etcd: EtcdProcess, mode: str | None
               ) -> dict[str, float]:
    label = mode or "none"
    node = replicated_node(args.dir / f"cost-{label}", args.dir / f"replicas-{label}", etcd,
                           f"cost-{label}", mode)
    await node.start()
    try:
        median, p90 = increment_latency(node.base_url, "latency")
        touch(node.base_url, 100, prefix="o")
        rate = wrk(node.base_url, args.seconds, script=ROUND_ROBIN.format(objects=100))
    finally:
        await node.terminate()
    return {"median": median, "p90": p90, "rate": rate}


async def one_loss(args: argparse.Namespace, etcd: EtcdProcess, mode: str, trial: int
                   ) -> tuple[int, int]:
    """(increments acknowledged, of them lost) when the owner's machine is lost."""
    replicas = args.dir / f"loss-replicas-{mode}-{trial}"
    owner = f"a-{mode}-{trial}"
    a = replicated_node(args.dir / f"loss-a-{mode}-{trial}", replicas, etcd, owner, mode)
    b = replicated_node(args.dir / f"loss-b-{mode}-{trial}", replicas, etcd, f"b-{mode}-{trial}",
                        mode)
    await a.start()
    await b.start()
    try:
        async with httpx.AsyncClient(base_url=a.base_url, timeout=60) as http:
            name = await an_object_on(http, etcd, owner)
            acknowledged = 0

            async def writer() -> None:
                nonlocal acknowledged
                while True:
                    response = await http.post(f"/default/COUNTER/{name}/rpc/increment",
                                               json={})
                    response.raise_for_status()
                    acknowledged = int(response.json()["result"])

            async with trio.open_nursery() as nursery:
                nursery.start_soon(writer)
                await trio.sleep(1.5)
                lose_machine(a)
                nursery.cancel_scope.cancel()
            shutil.rmtree(a.data_dir)
        async with httpx.AsyncClient(base_url=b.base_url, timeout=60) as http:
            response = await http.post(f"/default/COUNTER/{name}/rpc/value", json={})
            response.raise_for_status()
            kept = int(response.json()["result"])
    finally:
        await b.terminate()
    return acknowledged, max(0, acknowledged - kept)


def lose_machine(server: ServerProcess) -> None:
    """SIGKILL the node and, first, its Litestream: a node killed alone gives its daemon a
    SIGTERM (it dies with its parent), on which Litestream syncs what it has; a machine
    lost gives it no such chance."""
    children = Path(f"/proc/{server.pid}/task/{server.pid}/children").read_text().split()
    for child in children:
        os.kill(int(child), signal.SIGKILL)
    server.kill()


async def an_object_on(http: httpx.AsyncClient, etcd: EtcdProcess, node: str) -> str:
    # A name of its own per node: etcd keeps each object's replica pointer, so an object
    # of an earlier trial would be restored from that trial's replica.
    """A counter activated through ``node`` and held by it (placement may send one
    elsewhere once both nodes know each other)."""
    for i in range(1000):
        name = f"{node}-{i}"
        (await http.post(f"/default/COUNTER/{name}/rpc/value", json={})).raise_for_status()
        holders = await holder_of(etcd)
        if holders.get(claim_key(name)) == node:
            return name
    raise RuntimeError("no object was placed on the node")


async def main_async(args: argparse.Namespace) -> None:
    if shutil.which("wrk") is None:
        raise SystemExit("bench_replicas.py needs wrk (apt-get install wrk)")
    print(f"python {platform.python_version()}, trio {trio.__version__}, "
          f"{os.cpu_count()} cores, {platform.machine()}")
    async with open_etcd(args.dir / "etcd") as etcd:
        costs = {mode: await cost(args, etcd, mode) for mode in MODES}
        losses = {mode: [await one_loss(args, etcd, mode, trial)
                         for trial in range(args.trials)] for mode in ("async", "sync")}
    print("durable increments, one node, --durability full:")
    print("  replication  sequential median / p90   100 objects, 32 connections (wrk)")
    base = costs[None]
    for mode in MODES:
        figures = costs[mode]
        print(f"  {mode or 'none':<11}  {figures['median'] * 1e3:6.2f} / "
              f"{figures['p90'] * 1e3:5.2f} ms         {figures['rate']:>7,.0f} /s "
              f"({figures['rate'] / base['rate']:.2f}x)")
    print("the owner's machine lost during sequential increments (SIGKILL, data deleted):")
    for mode, trials in losses.items():
        shown = ", ".join(f"{lost} of {acked}" for acked, lost in trials)
        print(f"  {mode:<5}  lost {shown} acknowledged "
              f"(per increment {base['median'] * 1e3:.2f} ms unreplicated)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=8)
    parser.add_argument("--trials", type=int, default=3)
    run_with_scratch_dir(parser, main_async)


if __name__ == "__main__":
    main()
