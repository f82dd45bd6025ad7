"""What every benchmark script shares: a scratch data directory on the real disk."""

from __future__ import annotations

import argparse
import shutil
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import trio

DEFAULT_DIR = Path(__file__).parent / ".data"


def run_with_scratch_dir(
    parser: argparse.ArgumentParser,
    main_async: Callable[[argparse.Namespace], Awaitable[None]],
) -> None:
    """Parse arguments (adding ``--dir``), run ``main_async(args)`` in trio with ``args.dir``
    made empty, and remove it afterwards, whatever happens."""
    parser.add_argument("--dir", type=Path, default=DEFAULT_DIR,
                        help="scratch directory for database files (a real disk, not tmpfs)")
    args = parser.parse_args()
    shutil.rmtree(args.dir, ignore_errors=True)
    args.dir.mkdir(parents=True)
    try:
        trio.run(main_async, args)
    finally:
        shutil.rmtree(args.dir, ignore_errors=True)


def rate(operations_per_call: int, call: Callable[[], None], seconds: float) -> float:
    """Best of three: operations per second while calling ``call`` for ``seconds``."""
    best = 0.0
    for _ in range(3):
        done = 0
        start = time.perf_counter()
        deadline = start + seconds
        while True:
            call()
            done += operations_per_call
            now = time.perf_counter()
            if now >= deadline:
                break
        best = max(best, done / (now - start))
    return best
