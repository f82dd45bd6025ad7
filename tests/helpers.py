"""Objects and helpers shared by the tests (as trio's tutil.py)."""

from __future__ import annotations

import base64
import contextlib
import os
import shutil
import socket
import sqlite3
import struct
import subprocess
import tempfile
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import trio

from actors import DurableObject


class Counter(DurableObject):
    """A counter with the odds and ends the runtime tests poke at."""

    starts = 0

    async def on_start(self) -> None:
        type(self).starts += 1

    async def increment(self, by: int = 1) -> int:
        n: int = await self.ctx.storage.get("n", 0) + by
        await self.ctx.storage.put("n", n)
        return n

    async def value(self) -> int:
        n: int = await self.ctx.storage.get("n", 0)
        return n

    async def echo(self, value: object) -> object:
        return value

    async def append_inside(self, items: list[object]) -> list[object]:
        items.append("inside")
        return items

    async def fail(self, message: str) -> None:
        raise ValueError(message)

    async def whoami(self) -> str | None:
        return self.ctx.id.name

    async def relay(self, name: str, method: str, *args: object) -> Any:
        stub = self.env.COUNTER.get_by_name(name)
        return await getattr(stub, method)(*args)

    async def sleep(self, seconds: float) -> float:
        await trio.sleep(seconds)
        return trio.current_time()

    async def abort(self) -> None:
        self.ctx.abort("asked to")

    async def now(self) -> float:
        return self.ctx.now()

    async def unsendable(self) -> object:
        return {1, 2}

    async def store_unsupported(self) -> None:
        await self.ctx.storage.put("stored", {"inner": [1j]})


async def concurrent_outcomes(
    count: int, make_call: Callable[[], Awaitable[object]]
) -> list[object]:
    """Make ``count`` calls at once; each outcome is its result or the exception it raised."""
    outcomes: list[object] = []

    async def one() -> None:
        try:
            outcomes.append(await make_call())
        except Exception as exc:
            outcomes.append(exc)

    async with trio.open_nursery() as nursery:
        for _ in range(count):
            nursery.start_soon(one)
    return outcomes
OBJECTS = {"COUNTER": Counter}


def damage_table(db_path: Path, table: str) -> bytes:
    """Overwrite the root page of ``table`` in a closed object file (its WAL folded in
    first); the file's new content."""
    with sqlite3.connect(db_path) as conn:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        (root,) = conn.execute("SELECT rootpage FROM sqlite_master WHERE name = ?",
                               (table,)).fetchone()
    conn.close()
    data = bytearray(db_path.read_bytes())
    data[4096 * (root - 1):4096 * root] = b"\xa5" * 4096
    db_path.write_bytes(bytes(data))
    return bytes(data)


@contextlib.contextmanager
def immutable(path: Path) -> Iterator[None]:
    """Make ``path`` immutable (``chattr +i``: not even root may write, create or delete in
    it) for the duration; skips the test where the file system or the user cannot."""
    made = subprocess.run(["chattr", "+i", str(path)], capture_output=True, text=True)
    if made.returncode != 0:
        pytest.skip(f"chattr +i is not possible here: {made.stderr.strip()}")
    try:
        yield
    finally:
        subprocess.run(["chattr", "-i", str(path)], check=True)


def open_descriptors_under(path: Path) -> list[str]:
    """The files under ``path`` this process holds open."""
    found = []
    for fd in os.listdir("/proc/self/fd"):
        with contextlib.suppress(OSError):
            target = os.readlink(f"/proc/self/fd/{fd}")
            if target.startswith(str(path)):
                found.append(target)
    return found


@contextlib.contextmanager
def small_filesystem(mountpoint: Path, size: str = "2m") -> Iterator[Path]:
    """A tmpfs of ``size`` mounted at ``mountpoint`` for the duration, to fill up; skips the
    test where mounting is not allowed."""
    mountpoint.mkdir(parents=True, exist_ok=True)
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs",
                              str(mountpoint)], capture_output=True, text=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a small file system here: {mounted.stderr.strip()}")
    try:
        yield mountpoint
    finally:
        subprocess.run(["umount", "--lazy", str(mountpoint)], check=True)


def fill_disk(directory: Path) -> Path:
    """Write a file in ``directory`` until the disk is full; the file (delete it to free
    the space)."""
    filler = directory / "filler"
    with contextlib.suppress(OSError), filler.open("wb") as out:
        while True:
            out.write(b"\0" * 65536)
            out.flush()
    return filler


async def raw_websocket(base_url: str, path: str) -> trio.SocketStream:
    """A WebSocket opened by hand over TCP (the upgrade answered 101), for frames no client
    library sends: a close frame without a code, invalid UTF-8, a connection cut off."""
    host, port = base_url.removeprefix("http://").split(":")
    stream = await trio.open_tcp_stream(host, int(port))
    key = base64.b64encode(os.urandom(16)).decode()
    await stream.send_all(
        f"GET {path} HTTP/1.1\r\nhost: {host}\r\nupgrade: websocket\r\nconnection: upgrade\r\n"
        f"sec-websocket-key: {key}\r\nsec-websocket-version: 13\r\n\r\n".encode())
    answer = b""
    while b"\r\n\r\n" not in answer:
        answer += await stream.receive_some()
    assert answer.startswith(b"HTTP/1.1 101"), answer
    return stream


def client_frame(opcode: int, payload: bytes, *, fin: bool = True) -> bytes:
    """One masked frame, as a client sends it (payloads under 126 bytes)."""
    mask = os.urandom(4)
    masked = bytes(byte ^ mask[i % 4] for i, byte in enumerate(payload))
    return bytes([(0x80 if fin else 0) | opcode, 0x80 | len(payload)]) + mask + masked


def reset_connection(stream: trio.SocketStream) -> None:
    """Close with a TCP reset (SO_LINGER 0): the peer sees the connection lost."""
    stream.socket.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    stream.socket.close()


@contextlib.contextmanager
def committed_view(db_path: Path) -> Iterator[sqlite3.Connection]:
    """What a crash right now would leave: a copy of the object file and its WAL, opened
    (SQLite replays only the WAL's committed frames). The live file cannot be read beside
    its owner, which holds it exclusively."""
    with tempfile.TemporaryDirectory() as scratch:
        copy = Path(scratch) / "copy.sqlite"
        shutil.copyfile(db_path, copy)
        wal = Path(f"{db_path}-wal")
        if wal.exists():
            shutil.copyfile(wal, f"{copy}-wal")
        conn = sqlite3.connect(copy)
        try:
            yield conn
        finally:
            conn.close()
