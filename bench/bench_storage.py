"""Storage throughput beside the machine's floor, measured in the same run.

    python bench/bench_storage.py [--seconds 1.0] [--dir bench/.data]

Floors: raw ``sqlite3`` on an identical WAL file and table (``synchronous=FULL``), storing
the same encoded bytes, and a bare trio round trip (one task hands a value to another and
gets one back over memory channels). dobox numbers include everything a caller pays: key
checks, the value codec, the authorizer-free engine statements and the commit.

Each figure is the best of three runs of ``--seconds`` each. Nothing here is a test: it
prints numbers, and ``bench/RESULTS.md`` records them.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import sqlite3
import time
from pathlib import Path

import trio
from _common import rate

from storage import Storage, encode_value, open_storage

KEYS = [f"user:{i:06}" for i in range(1_000)]
VALUE = {"name": "Ada Lovelace", "visits": 12, "tags": ["admin", "beta"], "score": 0.75}
BATCH = 100


def raw_connection(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")
    conn.execute(
        "CREATE TABLE IF NOT EXISTS kv (key BLOB PRIMARY KEY NOT NULL, value BLOB NOT NULL) "
        "WITHOUT ROWID"
    )
    return conn


def raw_floors(directory: Path, seconds: float) -> dict[str, float]:
    conn = raw_connection(directory / "raw.sqlite")
    encoded = encode_value(VALUE)
    raw_keys = [k.encode() for k in KEYS]
    conn.execute("BEGIN")
    conn.executemany("INSERT OR REPLACE INTO kv VALUES (?, ?)", [(k, encoded) for k in raw_keys])
    conn.execute("COMMIT")
    position = 0

    def get() -> None:
        nonlocal position
        position = (position + 1) % len(raw_keys)
        conn.execute("SELECT value FROM kv WHERE key = ?", (raw_keys[position],)).fetchone()

    def put_commit() -> None:
        nonlocal position
        position = (position + 1) % len(raw_keys)
        conn.execute("BEGIN")
        conn.execute("INSERT OR REPLACE INTO kv VALUES (?, ?)", (raw_keys[position], encoded))
        conn.execute("COMMIT")

    def batch_commit() -> None:
        nonlocal position
        conn.execute("BEGIN")
        for _ in range(BATCH):
            position = (position + 1) % len(raw_keys)
            conn.execute("INSERT OR REPLACE INTO kv VALUES (?, ?)", (raw_keys[position], encoded))
        conn.execute("COMMIT")

    floors = {
        "get": rate(1, get, seconds),
        "put+commit": rate(1, put_commit, seconds),
        "batched puts": rate(BATCH, batch_commit, seconds),
    }
    conn.close()
    return floors


def dobox_rates(directory: Path, seconds: float) -> dict[str, float]:
    storage = open_storage(directory / "dobox.sqlite", durability="full")
    storage.kv.put(dict.fromkeys(KEYS[:128], VALUE))
    for start in range(128, len(KEYS), 128):
        storage.kv.put(dict.fromkeys(KEYS[start:start + 128], VALUE))
    storage.commit()
    position = 0

    def get() -> None:
        nonlocal position
        position = (position + 1) % len(KEYS)
        storage.kv.get(KEYS[position])

    def put_commit() -> None:
        nonlocal position
        position = (position + 1) % len(KEYS)
        storage.kv.put(KEYS[position], VALUE)
        storage.commit()

    def coalesced() -> None:
        nonlocal position
        for _ in range(BATCH):
            position = (position + 1) % len(KEYS)
            storage.kv.put(KEYS[position], VALUE)
        storage.commit()

    rates = {
        "get": rate(1, get, seconds),
        "put+commit": rate(1, put_commit, seconds),
        "batched puts": rate(BATCH, coalesced, seconds),
        "put+sync (thread)": trio.run(async_put_sync, storage, seconds),
    }
    storage.close()
    return rates


async def async_put_sync(storage: Storage, seconds: float) -> float:
    """``await put`` + ``await sync()``: the commit's fsync runs in a worker thread."""
    best = 0.0
    for _ in range(3):
        done = 0
        start = time.perf_counter()
        while time.perf_counter() - start < seconds:
            await storage.put(KEYS[done % len(KEYS)], VALUE)
            await storage.sync()
            done += 1
        best = max(best, done / (time.perf_counter() - start))
    return best


async def thread_hop(seconds: float) -> float:
    """``trio.to_thread.run_sync`` round trips per second: the floor under ``sync()``."""
    best = 0.0
    for _ in range(3):
        done = 0
        start = time.perf_counter()
        while time.perf_counter() - start < seconds:
            await trio.to_thread.run_sync(int)
            done += 1
        best = max(best, done / (time.perf_counter() - start))
    return best


async def trio_round_trip(seconds: float) -> float:
    """Round trips per second between two tasks over unbuffered memory channels."""
    to_echo, echo_inbox = trio.open_memory_channel[int](0)
    to_caller, caller_inbox = trio.open_memory_channel[int](0)

    async def echo() -> None:
        async for item in echo_inbox:
            await to_caller.send(item)

    best = 0.0
    async with trio.open_nursery() as nursery:
        nursery.start_soon(echo)
        for _ in range(3):
            done = 0
            start = time.perf_counter()
            while time.perf_counter() - start < seconds:
                await to_echo.send(done)
                await caller_inbox.receive()
                done += 1
            best = max(best, done / (time.perf_counter() - start))
        nursery.cancel_scope.cancel()
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=1.0, help="length of each run")
    parser.add_argument("--dir", type=Path, default=Path(__file__).parent / ".data",
                        help="where the database files go (a real disk, not tmpfs)")
    args = parser.parse_args()
    shutil.rmtree(args.dir, ignore_errors=True)
    args.dir.mkdir(parents=True)

    print(f"python {platform.python_version()}, sqlite {sqlite3.sqlite_version}, "
          f"trio {trio.__version__}, {os.cpu_count()} cores, {platform.machine()}, "
          f"data in {args.dir}")
    floors = raw_floors(args.dir, args.seconds)
    ours = dobox_rates(args.dir, args.seconds)
    round_trip = trio.run(trio_round_trip, args.seconds)
    hop = trio.run(thread_hop, args.seconds)
    # sync() pays one commit and one thread hop: its floor combines the two.
    floors["commit+hop"] = 1 / (1 / floors["put+commit"] + 1 / hop)

    print(f"\n{'operation':<28}{'raw sqlite3 /s':>16}{'dobox /s':>14}{'dobox/raw':>11}")
    rows = [
        ("KV get", "get", "get"),
        ("durable put + commit", "put+commit", "put+commit"),
        ("put + await sync()", "commit+hop", "put+sync (thread)"),
        (f"coalesced puts ({BATCH}/commit)", "batched puts", "batched puts"),
    ]
    for label, floor_key, our_key in rows:
        floor, value = floors[floor_key], ours[our_key]
        print(f"{label:<28}{floor:>16,.0f}{value:>14,.0f}{value / floor:>10.0%}")
    print(f"\nbare trio round trip (floor for any in-process call): {round_trip:,.0f} /s")
    print(f"trio.to_thread round trip (the hop under sync()): {hop:,.0f} /s")
    print("put + await sync() is compared with one raw commit plus one thread hop.")
    shutil.rmtree(args.dir, ignore_errors=True)


if __name__ == "__main__":
    main()
