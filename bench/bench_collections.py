"""Collections beside the machine's floor, measured in the same run.

    python bench/bench_collections.py [--seconds 1.0] [--records 100000] [--dir bench/.data]

- inserts per second into one collection: one insert per durable commit, and batches of
  1,000 per commit (``apply``), against raw ``sqlite3`` inserting the same JSON text into
  an identical table (WAL, ``synchronous=FULL``);
- ``load_subset`` latency on ``--records`` records, for a condition matching one record in
  10,000 (limit 50, ordered by key), on an indexed field and on an identical unindexed one,
  against the same SQL through raw ``sqlite3``;
- change-message latency: from the start of a commit to a subscriber task holding the
  ``Change``, in-process, against a bare trio round trip (one task hands a value to another
  over a memory channel).

Each rate is the best of three runs of ``--seconds``. Nothing here is a test.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sqlite3
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import trio
from _common import rate, run_with_scratch_dir

from storage import Insert, Storage, collection, field, open_storage

NOTES = collection("notes", indexes=[field("flag")])
RARE = 10_000
"""One record in RARE matches the conditions load_subset is timed with."""


def record(i: int) -> dict[str, object]:
    return {"id": i, "title": f"note {i}", "flag": i % RARE == 0, "other": i % RARE == 0,
            "tags": ["a", "b"], "score": i * 0.5}


class Counter:
    def __init__(self) -> None:
        self.next = 0

    def take(self, n: int = 1) -> range:
        start = self.next
        self.next += n
        return range(start, start + n)


def raw_table(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")
    conn.execute("CREATE TABLE c (key TEXT PRIMARY KEY NOT NULL, value TEXT NOT NULL, "
                 "types TEXT, row_version INTEGER NOT NULL)")
    conn.execute("CREATE INDEX c_flag ON c (json_extract(value, '$.flag'))")
    return conn


def inserts(directory: Path, seconds: float) -> dict[str, float]:
    results = {}
    with open_storage(directory / "single.sqlite") as store:
        store.prepare_collection(NOTES)
        store.commit()
        notes = store.collection(NOTES)
        keys = Counter()

        def one() -> None:
            notes.insert(record(keys.take()[0]))
            store.commit()

        def batch() -> None:
            notes.apply([Insert(record(i)) for i in keys.take(1000)])
            store.commit()

        results["single"] = rate(1, one, seconds)
        results["batched"] = rate(1000, batch, seconds)
    conn = raw_table(directory / "raw.sqlite")
    raw_keys = Counter()

    def raw_one() -> None:
        i = raw_keys.take()[0]
        conn.execute("BEGIN")
        conn.execute("INSERT INTO c VALUES (?, ?, NULL, ?)",
                     (f"n:{i}", json.dumps(record(i)), i))
        conn.execute("COMMIT")

    def raw_batch() -> None:
        conn.execute("BEGIN")
        conn.executemany("INSERT INTO c VALUES (?, ?, NULL, ?)",
                         [(f"n:{i}", json.dumps(record(i)), i) for i in raw_keys.take(1000)])
        conn.execute("COMMIT")

    results["raw single"] = rate(1, raw_one, seconds)
    results["raw batched"] = rate(1000, raw_batch, seconds)
    conn.close()
    return results


def subset_latency(store: Storage, directory: Path, records: int) -> dict[str, float]:
    notes = store.collection(NOTES)
    for start in range(0, records, 10_000):
        notes.apply([Insert(record(i)) for i in range(start, min(start + 10_000, records))])
        store.commit()

    def median_ms(fn: Callable[[], object], runs: int = 50) -> float:
        timings = []
        for _ in range(runs):
            begin = time.perf_counter()
            fn()
            timings.append(time.perf_counter() - begin)
        return statistics.median(timings) * 1e3

    results = {
        "indexed": median_ms(lambda: notes.load_subset(field("flag") == True, limit=50)),  # noqa: E712
        "unindexed": median_ms(lambda: notes.load_subset(field("other") == True, limit=50)),  # noqa: E712
    }
    store.commit()
    raw = sqlite3.connect(store.path)
    sql = ("SELECT key, value, types, row_version FROM _dobox_c_notes WHERE "
           "json_extract(value, '$.{}') = ? ORDER BY key LIMIT 51")
    results["raw indexed"] = median_ms(lambda: raw.execute(sql.format("flag"), (1,)).fetchall())
    results["raw unindexed"] = median_ms(
        lambda: raw.execute(sql.format("other"), (1,)).fetchall())
    raw.close()
    return results


async def change_latency(store: Storage, samples: int = 300) -> float:
    notes = store.collection(NOTES)
    timings = []
    async with notes.subscribe(field("id") < 0) as feed:  # every insert below is a change
        await feed.__anext__()
        for i in range(samples):
            notes.insert({"id": -1 - i, "flag": False})
            start = time.perf_counter()
            store.commit()
            await feed.__anext__()
            timings.append(time.perf_counter() - start)
    return statistics.median(timings) * 1e3


async def trio_round_trip(samples: int = 2000) -> float:
    send, receive = trio.open_memory_channel[float](0)
    timings = []
    async with trio.open_nursery() as nursery, send, receive:
        async def echo() -> None:
            timings.extend([time.perf_counter() - start async for start in receive])

        nursery.start_soon(echo)
        for _ in range(samples):
            await send.send(time.perf_counter())
            await trio.lowlevel.checkpoint()
        await send.aclose()
    return statistics.median(timings) * 1e3


async def main_async(args: argparse.Namespace) -> None:
    print(f"python {platform.python_version()}, sqlite {sqlite3.sqlite_version}, "
          f"{os.cpu_count()} cores, {platform.machine()}")
    found = inserts(args.dir, args.seconds)
    print(f"inserts, one per durable commit: {found['single']:,.0f} /s "
          f"(raw sqlite3: {found['raw single']:,.0f} /s)")
    print(f"inserts, batches of 1,000 per commit: {found['batched']:,.0f} /s "
          f"(raw sqlite3: {found['raw batched']:,.0f} /s)")
    with open_storage(args.dir / "subset.sqlite", durability="normal") as store:
        store.prepare_collection(NOTES)
        store.commit()
        latency = subset_latency(store, args.dir, args.records)
        print(f"load_subset, {args.records // RARE:,} of {args.records:,} match, limit 50: "
              "indexed "
              f"{latency['indexed']:.3f} ms (raw {latency['raw indexed']:.3f} ms), unindexed "
              f"{latency['unindexed']:.2f} ms (raw {latency['raw unindexed']:.2f} ms)")
        change = await change_latency(store)
    floor = await trio_round_trip()
    print(f"change message, commit to subscriber: median {change:.3f} ms "
          f"(a bare trio round trip: {floor:.3f} ms)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=1.0)
    parser.add_argument("--records", type=int, default=100_000)
    run_with_scratch_dir(parser, main_async)


if __name__ == "__main__":
    main()
