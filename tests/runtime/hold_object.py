"""Holds object COUNTER/shared live in its own process until its stdin closes.

Usage: python hold_object.py DATA_DIR
"""

from __future__ import annotations

import sys

import trio

from runtime import open_runtime
from tests.helpers import Counter


async def main(data_dir: str) -> None:
    async with open_runtime(data_dir, objects={"COUNTER": Counter}, durability="normal") as rt:
        await rt.namespace("COUNTER").get_by_name("shared").increment()
        print("ready", flush=True)
        await trio.to_thread.run_sync(sys.stdin.read)


if __name__ == "__main__":
    trio.run(main, sys.argv[1])
