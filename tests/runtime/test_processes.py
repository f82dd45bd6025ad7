"""One writer per object across processes: a second runtime over the same data is refused."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import trio

from runtime import open_runtime
from storage import ObjectLockedError
from tests.helpers import Counter

ROOT = Path(__file__).parent.parent.parent


async def test_a_second_process_gets_object_locked_error(tmp_path: Path) -> None:
    holder = await trio.lowlevel.open_process(
        [sys.executable, "-m", "tests.runtime.hold_object", str(tmp_path)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, cwd=ROOT,
    )
    try:
        assert holder.stdout is not None
        assert holder.stdin is not None
        received = b""
        while not received.endswith(b"\n"):  # a pipe may deliver the line in pieces
            chunk = await holder.stdout.receive_some()
            assert chunk, "the holder exited before it was ready"
            received += chunk
        assert received == b"ready\n"
        async with open_runtime(tmp_path, objects={"COUNTER": Counter}) as rt:
            namespace = rt.namespace("COUNTER")
            with pytest.raises(ObjectLockedError, match="held by another process"):
                await namespace.get_by_name("shared").increment()
            # Other objects of the same data directory are not affected.
            assert await namespace.get_by_name("mine").increment() == 1
        await holder.stdin.aclose()
        assert await holder.wait() == 0
    finally:
        if holder.returncode is None:
            holder.kill()
        await holder.wait()
        for stream in (holder.stdin, holder.stdout):
            if stream is not None:
                await stream.aclose()
    async with open_runtime(tmp_path, objects={"COUNTER": Counter}) as rt:
        assert await rt.namespace("COUNTER").get_by_name("shared").increment() == 2
