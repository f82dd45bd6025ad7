"""One activation per object at every instant, through three replicated nodes while they are
killed, paused past their lease and restarted under a load of writes to 100 objects.

The history is read from the objects themselves: each acknowledged append answers the count
it was given (the object's own order of writes) and the activation that served it (an id
each new instance draws). Two activations live at once would each continue their own copy,
and acknowledge the same count twice, or take turns (counts of one activation on both
sides of another's). So, per object: the acknowledged counts are distinct, each activation
holds one unbroken run of them, and every acknowledged entry is in the final ledger.
"""

from __future__ import annotations

import itertools
import random
from collections import defaultdict
from collections.abc import AsyncIterator
from pathlib import Path

import attrs
import pytest
import trio

from harness import EtcdProcess, ServerProcess, open_etcd
from runtime import Client, RetryPolicy
from tests.cluster.test_nodes import all_running
from tests.cluster.test_replicas import TTL, replicated_node

OBJECTS = [f"h{i}" for i in range(100)]


@attrs.frozen
class Acknowledged:
    entry: str
    count: int
    activation: str
    node: str
    phase: int  # how many steps of the chaos had begun when it was acknowledged


@pytest.fixture
async def etcd(tmp_path: Path) -> AsyncIterator[EtcdProcess]:
    async with open_etcd(tmp_path / "etcd") as server:
        yield server


@pytest.fixture
async def three_nodes(tmp_path: Path, etcd: EtcdProcess
                      ) -> AsyncIterator[list[ServerProcess]]:
    async with all_running([replicated_node(tmp_path, etcd, name)
                            for name in ("n1", "n2", "n3")]) as started:
        yield started


async def test_each_object_has_one_activation_at_a_time_through_kills_pauses_and_restarts(
    three_nodes: list[ServerProcess],
) -> None:
    n1, n2, n3 = three_nodes
    urls = [node.base_url for node in three_nodes]
    history: dict[str, list[Acknowledged]] = defaultdict(list)
    phase = 0
    rng = random.Random(13)
    # A short timeout, as a client of a cluster would set: a call to the paused node gives
    # up soon and the next goes to another node, so the load goes on through the pause.
    clients = [Client(urls[i:] + urls[:i], retry=RetryPolicy(attempts=1), timeout=2.0)
               for i in range(3)]

    async def writer(number: int) -> None:
        client = clients[number % 3]
        for sequence in range(1_000_000):
            name = rng.choice(OBJECTS)
            entry = f"w{number}.{sequence}"  # each attempt anew: a failed one may have run
            try:
                answer = await client.namespace("LEDGER").get_by_name(name).call(
                    "append_traced", entry)
            except Exception:  # a node died, paused or moved the object: go on
                await trio.sleep(0.05)
                continue
            assert isinstance(answer, dict)
            history[name].append(Acknowledged(entry, int(answer["count"]),
                                              str(answer["activation"]), str(answer["node"]),
                                              phase))

    try:
        with trio.fail_after(30 * TTL):
            async with trio.open_nursery() as nursery:
                for number in range(12):
                    nursery.start_soon(writer, number)
                await trio.sleep(2)
                phase += 1
                n1.kill()  # lost: its objects move once its lease expires
                await trio.sleep(TTL + 1)
                phase += 1
                await n1.restart()
                await trio.sleep(2)
                phase += 1
                n2.pause()  # cut off past its lease: it must stop acknowledging first
                await trio.sleep(2 * TTL)
                phase += 1
                n2.resume()
                await trio.sleep(2)
                phase += 1
                await n3.restart()  # a graceful stop hands its objects over
                await trio.sleep(2)
                nursery.cancel_scope.cancel()
            final = {name: await _entries(clients[0], name) for name in OBJECTS}
    finally:
        for client in clients:
            await client.aclose()

    activations = {a.activation for acked in history.values() for a in acked}
    phases = {a.phase for acked in history.values() for a in acked}
    assert phases == set(range(6)), "the load ran throughout"
    assert len(activations) > len(OBJECTS)  # objects moved: the history is not trivial
    for name, acked in history.items():
        counts = [a.count for a in acked]
        assert len(counts) == len(set(counts)), f"{name}: a count acknowledged twice"
        runs = [a.activation for a in sorted(acked, key=lambda a: a.count)]
        ended: set[str] = set()
        for previous, current in itertools.pairwise(runs):
            if current != previous:
                ended.add(previous)
                assert current not in ended, f"{name}: activations {current} overlapped"
        assert {a.entry for a in acked} <= set(final[name]), f"{name}: a write was lost"
        nodes = {a.activation: a.node for a in acked}
        assert all(a.node == nodes[a.activation] for a in acked)


async def _entries(client: Client, name: str) -> dict[str, str]:
    """The ledger's entries, once a node can serve it (claims of the chaos may linger)."""
    while True:
        try:
            entries = await client.namespace("LEDGER").get_by_name(name).entries()
        except Exception:
            await trio.sleep(0.1)
            continue
        assert isinstance(entries, dict)
        return {str(key): str(value) for key, value in entries.items()}
