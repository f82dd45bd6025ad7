"""The two faces of dobox, for one contract suite: an in-process runtime, and the Python
client against a real ``dobox serve`` (one server process for the whole session; every test
uses object names of its own)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any, Protocol

import httpx
import pytest

from runtime import Client, RetryPolicy, Runtime, open_runtime
from tests.contract.objects import OBJECTS

ROOT = Path(__file__).parent.parent.parent
MAX_QUEUED = 2
"""Events one object admits (running and queued) on both faces, so overload is reachable."""


class Face(Protocol):
    """What a contract test calls through: ``face.stub(binding, name)``."""

    name: str

    def stub(self, binding: str, name: str) -> Any: ...


class Embedded:
    name = "embedded"

    def __init__(self, runtime: Runtime) -> None:
        self._runtime = runtime

    def stub(self, binding: str, name: str) -> Any:
        return self._runtime.namespace(binding).get_by_name(name)


class Served:
    name = "served"

    def __init__(self, client: Client) -> None:
        self._client = client

    def stub(self, binding: str, name: str) -> Any:
        return self._client.namespace(binding).get_by_name(name)


@pytest.fixture(scope="session")
def server_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A ``dobox serve`` of the contract objects, for the session."""
    data = tmp_path_factory.mktemp("contract-server")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    environment = {**os.environ, "PYTHONPATH": str(ROOT)}
    log = (data / "server.log").open("wb")
    process = subprocess.Popen(
        [sys.executable, "-m", "runtime", "serve", "tests.contract.objects:OBJECTS",
         "--data", str(data), "--port", str(port), "--max-queued", str(MAX_QUEUED)],
        cwd=ROOT, env=environment, stdin=subprocess.DEVNULL, stdout=log, stderr=log)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    try:
        while True:
            try:
                if httpx.get(f"{url}/healthz").text == "ok":
                    break
            except httpx.TransportError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                output = (data / "server.log").read_text()
                raise RuntimeError(f"dobox serve did not start: {output}")
            time.sleep(0.05)
        yield url
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=60)
        log.close()


@pytest.fixture(params=["embedded", "served"])
def face_kind(request: pytest.FixtureRequest) -> str:
    """``"embedded"``, or the served face's URL (its server starts on first use)."""
    if request.param == "served":
        url: str = request.getfixturevalue("server_url")
        return url
    return "embedded"


@pytest.fixture
async def face(face_kind: str, tmp_path: Path) -> AsyncIterator[Face]:
    if face_kind == "embedded":
        async with open_runtime(tmp_path, OBJECTS, max_queued_per_object=MAX_QUEUED) as rt:
            yield Embedded(rt)
    else:
        async with Client(face_kind, retry=RetryPolicy(attempts=1)) as client:
            yield Served(client)


@pytest.fixture
def name() -> str:
    """An object name no other test uses (the served face shares one server)."""
    return f"t-{uuid.uuid4().hex[:12]}"
