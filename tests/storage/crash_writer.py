"""A writer for the crash test: commits batches as fast as it can and acknowledges each.

Usage: python crash_writer.py DB_PATH BATCH_SIZE. Batch ``n`` puts keys ``n:0 .. n:BATCH-1``
in one commit, then prints ``n`` (the acknowledgement) and flushes.
"""

from __future__ import annotations

import sys

from storage import open_storage


def main() -> None:
    path, batch_size = sys.argv[1], int(sys.argv[2])
    storage = open_storage(path, durability="full")
    start = len(storage.kv.list()) // batch_size
    batch = start
    while True:
        storage.kv.put({f"{batch:08}:{i:03}": [batch, i] for i in range(batch_size)})
        storage.commit()
        print(batch, flush=True)
        batch += 1


if __name__ == "__main__":
    main()
