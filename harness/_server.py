"""``open_server_process``: a real object server in a subprocess, to kill and restart.

::

    async with open_server_process(tmp_path, "tests.helpers:OBJECTS") as server:
        assert await server.call("COUNTER", "a", "increment") == 1
        server.kill()                 # SIGKILL, mid-whatever
        await server.restart()
        assert await server.call("COUNTER", "a", "value") == 1

Until dobox's HTTP server exists this drives the harness's own runner
(``python -m harness._runner``), which answers calls over its stdin and stdout once their
writes are durable; the server issue moves it onto ``dobox serve``.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import trio

from actors import RemoteError
from runtime._event import Reply, Unencoded


class ServerProcess:
    """A runner subprocess over one data directory (see :func:`open_server_process`)."""

    def __init__(
        self, data_dir: Path, objects: str, *, durability: str, cwd: Path | None,
        nursery: trio.Nursery,
    ) -> None:
        self.data_dir = data_dir
        self.objects = objects
        self.durability = durability
        self.cwd = cwd
        self._nursery = nursery
        self._process: trio.Process | None = None
        self._pending: dict[int, Reply] = {}
        self._next_id = 0
        self._send_lock = trio.Lock()  # calls from several tasks share one pipe
        self.starts = 0

    @property
    def pid(self) -> int | None:
        return None if self._process is None else self._process.pid

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.returncode is None

    async def start(self) -> None:
        """Start the runner and wait until its runtime is open."""
        if self.running:
            raise RuntimeError("the server process is already running")
        environment = dict(os.environ)
        if self.cwd is not None:
            environment["PYTHONPATH"] = os.pathsep.join(
                filter(None, [str(self.cwd), environment.get("PYTHONPATH")])
            )
        process = await trio.lowlevel.open_process(
            [sys.executable, "-m", "harness._runner", "--data", str(self.data_dir),
             "--objects", self.objects, "--durability", self.durability],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, cwd=self.cwd, env=environment,
        )
        self._process = process
        ready = trio.Event()
        self._nursery.start_soon(self._read_replies, process, ready)
        await ready.wait()
        if process.returncode is not None:
            raise RuntimeError(f"the server process exited at start ({process.returncode})")
        self.starts += 1

    async def call(self, binding: str, name: str, method: str, *args: object) -> object:
        """Call ``method`` of object ``name`` in ``binding``; the answer means the call's
        writes are durable in the server's files.

        Raises:
            RemoteError: the call failed in the server (``type_name`` says how).
            BrokenPipeError: the server process is not running (it was killed).
        """
        process = self._process
        if process is None or process.stdin is None or not self.running:
            raise BrokenPipeError("the server process is not running")
        self._next_id += 1
        call_id = self._next_id
        reply = self._pending[call_id] = Reply()
        line = json.dumps({"id": call_id, "binding": binding, "name": name, "method": method,
                           "args": list(args)})
        try:
            async with self._send_lock:
                await process.stdin.send_all(line.encode() + b"\n")
        except (trio.BrokenResourceError, trio.ClosedResourceError) as exc:
            self._pending.pop(call_id, None)
            raise BrokenPipeError("the server process is not running") from exc
        return await reply.wait()

    def kill(self) -> None:
        """SIGKILL: the process dies wherever it is; calls in flight fail."""
        if self.running and self._process is not None:
            self._process.send_signal(signal.SIGKILL)

    async def terminate(self) -> int:
        """SIGTERM: the server drains, commits, closes and exits. Its exit code."""
        process = self._process
        if process is None:
            raise RuntimeError("the server process was never started")
        if self.running:
            process.send_signal(signal.SIGTERM)
        return await process.wait()

    async def restart(self) -> None:
        """Stop the server (gracefully, unless it was killed) and start it again."""
        if self.running:
            await self.terminate()
        elif self._process is not None:
            await self._process.wait()
        await self.start()

    async def _read_replies(self, process: trio.Process, ready: trio.Event) -> None:
        assert process.stdout is not None
        buffer = b""
        try:
            while True:
                chunk = await process.stdout.receive_some()
                if not chunk:
                    break
                buffer += chunk
                *lines, buffer = buffer.split(b"\n")
                for line in lines:
                    if line == b"ready":
                        ready.set()
                    elif line.strip():
                        self._deliver(json.loads(line))
        finally:
            ready.set()
            await process.wait()
            for stream in (process.stdin, process.stdout):
                if stream is not None:
                    await stream.aclose()
            if self._process is process:
                failed, self._pending = self._pending, {}
                for reply in failed.values():
                    reply.fail(BrokenPipeError(
                        f"the server process exited ({process.returncode}) before answering"
                    ))

    def _deliver(self, message: dict[str, object]) -> None:
        reply = self._pending.pop(int(message["id"]), None)  # type: ignore[call-overload]  # an int from the runner
        if reply is None:
            return
        error = message.get("error")
        if isinstance(error, dict):
            reply.fail(RemoteError(str(error["message"]), type_name=str(error["type"])))
        else:
            reply.set_result(Unencoded(message.get("result")))  # JSON, not the codec


@asynccontextmanager
async def open_server_process(
    data_dir: str | os.PathLike[str],
    objects: str,
    *,
    durability: str = "full",
    cwd: str | os.PathLike[str] | None = None,
) -> AsyncIterator[ServerProcess]:
    """Start a server process over ``data_dir`` hosting ``objects`` (``module:NAME``,
    importable from ``cwd``); on exit it is terminated gracefully (or reaped, if killed)."""
    body_error: BaseException | None = None
    async with trio.open_nursery() as nursery:
        server = ServerProcess(
            Path(data_dir), objects, durability=durability,
            cwd=None if cwd is None else Path(cwd), nursery=nursery,
        )
        await server.start()
        try:
            yield server
        except BaseException as exc:
            body_error = exc  # raised as it was, not wrapped by the nursery (see open_runtime)
        finally:
            with trio.CancelScope(shield=True):
                if server.running:
                    await server.terminate()
    if body_error is not None:
        raise body_error
