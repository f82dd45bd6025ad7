"""Two nodes of a cluster against one server, on this machine.

    python bench/bench_cluster.py [--seconds 10] [--rounds 5] [--durability full|normal]
                                  [--dir bench/.data]

Starts etcd (``harness.open_etcd``) and measures, with ``wrk`` (``--durability`` full by
default, 1,000 existing objects, round robin, 32 connections in all):

- one ``dobox serve`` without ``--cluster`` (the baseline: today's single process);
- one node with ``--cluster`` (what claims and the owner checks cost);
- two nodes sharing one data directory (a process per core), each driven by its own wrk
  (16 connections each): about half of the requests reach the node that does not hold
  their object and take one hop;
- the same two nodes with each request sent to its object's node (what a client given
  every node does), then that against the single server again, in alternating rounds of
  ``--rounds`` (this machine's speed drifts by a third between runs minutes apart, so the
  ratio of two measurements taken side by side is the figure to read, and their median);
- the sequential latency of a call served directly and of one forwarded (a hop);
- takeover: after SIGKILL of the node holding an object, how long until a call through the
  other node succeeds (the lease TTL is 5 s, the default).

The floor, measured in the same run: a bare uvicorn app answering the same requests.
Needs ``wrk`` (Debian package ``wrk``). Nothing here is a test.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import time
from pathlib import Path

import httpx
import trio
from _common import run_with_scratch_dir
from bench_server import ROUND_ROBIN, echo_floor, touch, wrk

from actors._ids import id_from_name, namespace_key
from harness import EtcdProcess, ServerProcess, open_etcd
from runtime.cluster import Etcd

ROOT = Path(__file__).parent.parent
OBJECTS = "tests.runtime.server_objects:OBJECTS"
TTL = 5
"""The default lease: a busy node must renew within it (a 2 s lease is lost under wrk)."""


def cluster_node(data: Path, etcd: EtcdProcess, name: str, durability: str) -> ServerProcess:
    server = ServerProcess(data, OBJECTS, cwd=ROOT)
    server.options = ["--durability", durability, "--cluster", etcd.endpoint, "--node", name,
                      "--advertise", server.base_url, "--lease-ttl", str(TTL)]
    return server


def two_wrks(bases: list[str], seconds: float, objects: int) -> float:
    """Requests per second of one wrk per node, run at once (16 connections each), each
    round robin over all ``objects``: about half the requests take the hop."""
    script = ROUND_ROBIN.format(objects=objects)
    return wrks_at_once(bases, [script] * len(bases), seconds)


OWN_OBJECTS = """
names = {{{names}}}
counter = 0
request = function()
  counter = counter + 1
  return wrk.format("POST", "/default/COUNTER/" .. names[(counter % #names) + 1] ..
                    "/rpc/increment", {{["Content-Type"] = "application/json"}}, "{{}}")
end
"""


def routed_wrks(bases: list[str], owned: list[list[str]], seconds: float) -> float:
    """Requests per second of one wrk per node, each sending only to the objects its node
    holds (16 connections each): what clients that reach each object's node directly
    get, no request taking the hop."""
    scripts = [OWN_OBJECTS.format(names=", ".join(f'"{name}"' for name in names))
               for names in owned]
    return wrks_at_once(bases, scripts, seconds)


def wrks_at_once(bases: list[str], scripts: list[str], seconds: float) -> float:
    """Requests per second of one wrk per base (16 connections, its own Lua script), all
    run at once."""
    luas = [Path(f"/tmp/dobox-bench-{os.getpid()}-{i}.lua") for i in range(len(scripts))]
    for lua, script in zip(luas, scripts, strict=True):
        lua.write_text(script)
    try:
        processes = [subprocess.Popen(
            ["wrk", "-t1", "-c16", f"-d{int(seconds)}s", "-s", str(lua), base],
            stdout=subprocess.PIPE, text=True) for base, lua in zip(bases, luas, strict=True)]
        outputs = [process.communicate()[0] for process in processes]
    finally:
        for lua in luas:
            lua.unlink()
    total = 0.0
    for output in outputs:
        if "Non-2xx" in output:
            raise RuntimeError(f"wrk saw failed responses:\n{output}")
        total += float(output.split("Requests/sec:")[1].split()[0])
    return total


def latency(base: str, path: str, count: int = 1000) -> float:
    timings = []
    with httpx.Client(base_url=base) as client:
        for _ in range(count):
            start = time.perf_counter()
            client.post(path, json={}).raise_for_status()
            timings.append(time.perf_counter() - start)
    return statistics.median(timings)


def claim_key(name: str) -> str:
    """The etcd key of the claim on COUNTER/``name`` of the tenant ``default``."""
    object_id = id_from_name(namespace_key("default/COUNTER"), name)
    return f"dobox/objects/default/COUNTER/{object_id.hex}"


async def holder_of(etcd: EtcdProcess) -> dict[str, str]:
    client = Etcd([etcd.endpoint])
    try:
        return {kv.key: json.loads(kv.value)["node"]
                for kv in await client.get_prefix("dobox/objects/")}
    finally:
        await client.aclose()


async def main_async(args: argparse.Namespace) -> None:
    if shutil.which("wrk") is None:
        raise SystemExit("bench_cluster.py needs wrk (apt-get install wrk)")
    print(f"python {platform.python_version()}, trio {trio.__version__}, "
          f"{os.cpu_count()} cores, {platform.machine()}")
    seconds = args.seconds
    results: dict[str, float] = {}
    rounds: list[tuple[float, float]] = []
    async with open_etcd(args.dir / "etcd") as etcd:
        single = ServerProcess(args.dir / "single", OBJECTS, cwd=ROOT,
                               options=["--durability", args.durability])
        await single.start()
        touch(single.base_url, 1000, prefix="o")
        results["single"] = wrk(single.base_url, seconds,
                                script=ROUND_ROBIN.format(objects=1000))
        await single.terminate()

        alone = cluster_node(args.dir / "alone", etcd, "alone", args.durability)
        await alone.start()
        touch(alone.base_url, 1000, prefix="o")
        results["one node"] = wrk(alone.base_url, seconds,
                                  script=ROUND_ROBIN.format(objects=1000))
        await alone.terminate()

        a = cluster_node(args.dir / "pair", etcd, "a", args.durability)
        b = cluster_node(args.dir / "pair", etcd, "b", args.durability)
        await a.start()
        await b.start()
        await trio.sleep(TTL)  # both see each other as members: placement spreads objects
        touch(a.base_url, 1000, prefix="o")
        results["two nodes"] = two_wrks([a.base_url, b.base_url], seconds, 1000)
        held = await holder_of(etcd)
        on_a = sum(node == "a" for node in held.values())
        on_a_names = [name for name in (f"o{i}" for i in range(1000))
                      if held.get(claim_key(name)) == "a"]
        on_b_names = [name for name in (f"o{i}" for i in range(1000))
                      if held.get(claim_key(name)) == "b"]
        results["two nodes, routed"] = routed_wrks([a.base_url, b.base_url],
                                                   [on_a_names, on_b_names], seconds)
        await single.start()  # its objects are on disk already: touch to activate them
        touch(single.base_url, 1000, prefix="o")
        for _ in range(args.rounds):
            alone_rate = wrk(single.base_url, seconds, script=ROUND_ROBIN.format(objects=1000))
            routed_rate = routed_wrks([a.base_url, b.base_url], [on_a_names, on_b_names],
                                      seconds)
            rounds.append((alone_rate, routed_rate))
        await single.terminate()
        name = on_a_names[0]  # served directly by a, and through b with one hop
        results["direct"] = latency(a.base_url, f"/default/COUNTER/{name}/rpc/value")
        results["forwarded"] = latency(b.base_url, f"/default/COUNTER/{name}/rpc/value")
        # Takeover: kill a, then call one of its objects through b until it answers.
        killed = time.perf_counter()
        a.kill()
        async with httpx.AsyncClient(timeout=60) as http:
            response = await http.post(f"{b.base_url}/default/COUNTER/{name}/rpc/value",
                                       json={})
        response.raise_for_status()
        results["takeover"] = time.perf_counter() - killed
        await b.terminate()
    async with echo_floor() as floor_url:
        floor = floor_url.replace("ws://", "http://").rstrip("/")
        results["floor"] = wrk(floor, seconds, "/default/COUNTER/hot/rpc/increment")
    print(f"increments over 1,000 objects, durability {args.durability}, 32 connections "
          f"(wrk, {seconds:.0f} s):")
    print(f"  one server, no cluster:          {results['single']:>9,.0f} /s")
    print(f"  one cluster node:                {results['one node']:>9,.0f} /s  "
          f"({results['one node'] / results['single']:.2f}x)")
    print(f"  two cluster nodes, one data dir: {results['two nodes']:>9,.0f} /s  "
          f"({results['two nodes'] / results['single']:.2f}x; {on_a} of 1,000 objects on a)")
    print(f"  two nodes, each request sent to its object's node (no hop): "
          f"{results['two nodes, routed']:>9,.0f} /s  "
          f"({results['two nodes, routed'] / results['single']:.2f}x)")
    for alone_rate, routed_rate in rounds:
        print(f"  a round: one server {alone_rate:,.0f} /s, then two nodes routed "
              f"{routed_rate:,.0f} /s ({routed_rate / alone_rate:.2f}x)")
    if rounds:
        print(f"  median of {len(rounds)} rounds: "
              f"{statistics.median(r / a for a, r in rounds):.2f}x")
    print(f"sequential no-op call, median: served directly {results['direct'] * 1e3:.2f} ms, "
          f"through the other node {results['forwarded'] * 1e3:.2f} ms")
    print(f"takeover after SIGKILL of the holder (lease TTL {TTL} s): "
          f"{results['takeover']:.2f} s until a call through the other node answered")
    print(f"floor, a bare uvicorn app: {results['floor']:,.0f} requests/s, 32 connections")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--rounds", type=int, default=5,
                        help="alternating rounds of one server and two routed nodes")
    parser.add_argument("--durability", choices=["full", "normal"], default="full",
                        help="full: every commit fsyncs (the disk bounds the rate); normal: "
                        "no fsync per commit (the processors do)")
    run_with_scratch_dir(parser, main_async)


if __name__ == "__main__":
    main()
