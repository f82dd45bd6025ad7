"""``open_server_process``: a real ``dobox serve`` in a subprocess, to kill and restart.

::

    async with open_server_process(tmp_path, "app:OBJECTS") as server:
        assert await server.call("COUNTER", "a", "increment") == 1
        server.kill()                 # SIGKILL, mid-whatever
        await server.restart()
        assert await server.call("COUNTER", "a", "value") == 1

The server listens on a free loopback port and serves the tenant ``default`` (its objects
live under ``<data_dir>/tenants/default/``); ``server.base_url`` is its address, for any
HTTP client. A call's answer means its writes are durable in the server's files.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import trio

from runtime import Client, RetryPolicy


class ServerProcess:
    """A ``dobox serve`` subprocess over one data directory (see the module docstring)."""

    def __init__(
        self, data_dir: Path, objects: str, *, cwd: Path | None, tokens: Path | None = None,
        options: Sequence[str] = (), log: Path | None = None,
        max_open_files: int | None = None,
    ) -> None:
        self.data_dir = data_dir
        self.log = log
        """Where the server's output goes (appended), when given."""
        self.max_open_files = max_open_files
        """The server's limit of open files (soft and hard: ``ulimit -n``), when given."""
        self.options = list(options)
        """More ``dobox serve`` options, such as ``["--idle-timeout", "1"]``."""
        self.environment: dict[str, str] = {}
        """More environment variables for the server process."""
        self.objects = objects
        self.cwd = cwd
        self.tokens = tokens
        self.port = _free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self._process: trio.Process | None = None
        self._client = Client(self.base_url, retry=RetryPolicy(attempts=1))
        self.starts = 0

    @property
    def pid(self) -> int | None:
        return None if self._process is None else self._process.pid

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.returncode is None

    async def start(self) -> None:
        """Start the server and wait until it answers ``/healthz``.

        Raises:
            RuntimeError: it exited, or did not answer within 30 seconds.
        """
        if self.running:
            raise RuntimeError("the server process is already running")
        environment = dict(os.environ) | self.environment
        if self.cwd is not None:
            environment["PYTHONPATH"] = os.pathsep.join(
                filter(None, [str(self.cwd), environment.get("PYTHONPATH")])
            )
        command = [sys.executable, "-m", "runtime", "serve", self.objects, "--data",
                   str(self.data_dir), "--port", str(self.port)]
        if self.tokens is not None:
            command += ["--tokens", str(self.tokens)]
        command += self.options
        limit = self.max_open_files
        if limit is not None:  # through prlimit(1): no preexec_fn in a threaded parent
            command = ["prlimit", f"--nofile={limit}:{limit}", "--", *command]
        if self.log is None:
            process = await trio.lowlevel.open_process(
                command, cwd=self.cwd, env=environment, stdin=subprocess.DEVNULL)
        else:
            with self.log.open("ab") as log:  # the child keeps its own copy of the descriptor
                process = await trio.lowlevel.open_process(
                    command, cwd=self.cwd, env=environment, stdin=subprocess.DEVNULL,
                    stdout=log, stderr=log)
        self._process = process
        with trio.move_on_after(30):
            async with httpx.AsyncClient() as probe:
                while process.returncode is None:
                    try:
                        if (await probe.get(f"{self.base_url}/healthz")).text == "ok":
                            self.starts += 1
                            return
                    except httpx.TransportError:
                        await trio.sleep(0.02)
        self.kill()
        await process.wait()
        raise RuntimeError(f"the server process did not start (exit {process.returncode})")

    async def call(self, binding: str, name: str, method: str, *args: object) -> object:
        """Call ``method`` of object ``name`` in ``binding``, over HTTP.

        Raises:
            RemoteError (and the client's other errors): the call failed in the server.
            BrokenPipeError: the server is not running (it was killed, say).
        """
        stub = self._client.namespace(binding).get_by_name(name)
        try:
            return await stub.call(method, *args)
        except httpx.TransportError as exc:
            raise BrokenPipeError(f"the server process is not answering: {exc}") from exc

    def kill(self) -> None:
        """SIGKILL: the process dies wherever it is; calls in flight fail. Returns once it is
        dead (a signal is delivered asynchronously: without the wait, a call made right
        after ``kill()`` could still be answered)."""
        if self.running and self._process is not None:
            self._process.send_signal(signal.SIGKILL)
            # Wait for the exit without reaping it (trio's Process reaps it): a SIGKILLed
            # process is gone within milliseconds, so blocking here is brief.
            os.waitid(os.P_PID, self._process.pid, os.WEXITED | os.WNOWAIT)

    def pause(self) -> None:
        """SIGSTOP: the process stops wherever it is, its sockets and files held (a long
        pause, or a partition as the others see it); ``resume()`` lets it go on."""
        if self.running and self._process is not None:
            self._process.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        """SIGCONT, after ``pause()``."""
        if self.running and self._process is not None:
            self._process.send_signal(signal.SIGCONT)

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

    async def aclose(self) -> None:
        if self.running:
            await self.terminate()
        await self._client.aclose()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@asynccontextmanager
async def open_server_process(
    data_dir: str | os.PathLike[str],
    objects: str,
    *,
    cwd: str | os.PathLike[str] | None = None,
    tokens: str | os.PathLike[str] | None = None,
    options: Sequence[str] = (),
    log: str | os.PathLike[str] | None = None,
    max_open_files: int | None = None,
) -> AsyncIterator[ServerProcess]:
    """Start ``dobox serve`` over ``data_dir`` hosting ``objects`` (``module:NAME``,
    importable from ``cwd``; with ``tokens``, a tokens file as for ``--tokens``, and then
    ``call`` cannot be used, being tokenless: use ``base_url``; ``options``, more
    ``dobox serve`` options; ``log``, a file the server's output is appended to;
    ``max_open_files``, its ``ulimit -n``); on exit it is terminated gracefully (or reaped,
    if killed)."""
    server = ServerProcess(Path(data_dir), objects, cwd=None if cwd is None else Path(cwd),
                           tokens=None if tokens is None else Path(tokens), options=options,
                           log=None if log is None else Path(log),
                           max_open_files=max_open_files)
    await server.start()
    try:
        yield server
    finally:
        with trio.CancelScope(shield=True):
            await server.aclose()
