"""The server process lever: a real subprocess, killed with real signals."""

from __future__ import annotations

from pathlib import Path

import pytest

from actors import RemoteError
from harness import ServerProcess, open_server_process

ROOT = Path(__file__).parent.parent.parent
OBJECTS = "tests.helpers:OBJECTS"


async def test_calls_kill_and_restart(tmp_path: Path) -> None:
    async with open_server_process(tmp_path, OBJECTS, cwd=ROOT) as server:
        assert await server.call("COUNTER", "a", "increment", 2) == 2
        with pytest.raises(RemoteError, match="no good") as info:
            await server.call("COUNTER", "a", "fail", "no good")
        assert info.value.type_name == "ValueError"
        first_pid = server.pid
        server.kill()
        with pytest.raises(BrokenPipeError):
            await server.call("COUNTER", "a", "increment")
        await server.restart()
        assert server.pid != first_pid
        assert await server.call("COUNTER", "a", "increment") == 3
        assert await server.terminate() == 0  # SIGTERM: drained and committed
        await server.restart()
        assert await server.call("COUNTER", "a", "value") == 3
        assert server.starts == 3


@pytest.fixture
def dobox_objects_spec() -> str:
    return OBJECTS


async def test_the_pytest_plugin_provides_a_server(dobox_server: ServerProcess) -> None:
    assert await dobox_server.call("COUNTER", "x", "increment") == 1
    dobox_server.kill()
    await dobox_server.restart()
    assert await dobox_server.call("COUNTER", "x", "value") == 1
