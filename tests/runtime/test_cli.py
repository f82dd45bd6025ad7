"""The ``dobox`` command line."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
import trio
from click.testing import CliRunner

from runtime import open_runtime
from runtime.cli._commands import ChatRoom, VisitCounter, main


def test_demo_remembers_between_runs(tmp_path: Path) -> None:
    runner = CliRunner()
    data = tmp_path / "data"
    first = runner.invoke(main, ["demo", "--data", str(data)])
    second = runner.invoke(main, ["demo", "--data", str(data)])
    assert first.exit_code == 0, first.output
    assert "visit number 1" in first.output
    assert second.exit_code == 0, second.output
    assert "visit number 2" in second.output
    assert "was here on visit 2" in second.output
    assert "access to _dobox_kv.key is prohibited" in second.output

    async def check() -> None:
        objects = {"COUNTER": VisitCounter, "ROOM": ChatRoom}
        async with open_runtime(data, objects=objects) as rt:
            assert await rt.namespace("COUNTER").get_by_name("demo").visit() == 3
            assert len(await rt.namespace("ROOM").get_by_name("lobby").latest(100)) == 6

    trio.run(check)


def test_every_command_has_help() -> None:
    runner = CliRunner()
    for args in (["--help"], ["demo", "--help"], ["ls", "--help"], ["inspect", "--help"],
                 ["sql", "--help"], ["backup", "--help"], ["restore", "--help"],
                 ["serve", "--help"]):
        result = runner.invoke(main, args)
        assert result.exit_code == 0
        assert "Usage: " in result.output


def test_serve_refuses_an_unknown_log_level(monkeypatch: pytest.MonkeyPatch) -> None:
    result = CliRunner().invoke(main, ["serve", "x:Y", "--log-level", "loud"])
    assert result.exit_code == 2
    assert "Invalid value for '--log-level' (env var: 'DOBOX_LOG_LEVEL'): 'loud' is not one " \
           "of" in result.output
    monkeypatch.setenv("DOBOX_LOG_LEVEL", "loud")  # the same option, from the environment
    result = CliRunner().invoke(main, ["serve", "x:Y"])
    assert result.exit_code == 2
    assert "'loud' is not one of" in result.output


USER_MODULE = '''
from actors import DurableObject

class Greeter(DurableObject):
    async def greet(self, who: str) -> str:
        return f"hello {who}"

OBJECTS = {"GREETER": Greeter}
'''


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@pytest.mark.parametrize("spec", ["app:OBJECTS", "./app.py:OBJECTS", "src/app.py:OBJECTS"])
async def test_serve_imports_the_users_module_from_where_it_runs(
    tmp_path: Path, spec: str
) -> None:
    """The ``dobox`` script, run from a project directory in a clean environment (no
    PYTHONPATH, as a new user's shell), finds the module named from there, as ``uvicorn
    app:app`` does, or the file a path names."""
    project = tmp_path / "project"
    (project / "src").mkdir(parents=True)
    (project / "app.py").write_text(USER_MODULE)
    (project / "src" / "app.py").write_text(USER_MODULE)
    dobox = Path(sys.executable).with_name("dobox")
    environment = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}
    port = free_port()
    process = await trio.lowlevel.open_process(
        [str(dobox), "serve", spec, "--data", str(tmp_path / "data"), "--port", str(port)],
        cwd=project, env=environment, stdin=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
            with trio.fail_after(30):
                while True:
                    try:
                        answer = await client.post("/default/GREETER/a/rpc/greet",
                                                   json={"args": ["you"]})
                        break
                    except httpx.TransportError:
                        assert process.returncode is None, "the server exited"
                        await trio.sleep(0.05)
        assert answer.json() == {"result": "hello you"}
    finally:
        process.terminate()
        await process.wait()


@pytest.mark.parametrize(("spec", "message"), [
    ("missing.py:OBJECTS", "missing.py is not a Python file"),
    ("app.txt/x.py:OBJECTS", "is not a Python file"),
    ("no_such_module_here:OBJECTS", "No module named 'no_such_module_here'"),
])
def test_serve_says_what_it_cannot_import(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                          spec: str, message: str) -> None:
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(main, ["serve", spec, "--data", str(tmp_path / "data")])
    assert result.exit_code != 0
    assert message in result.output
    assert "Traceback" not in result.output


@pytest.mark.parametrize("port", ["80000", "-1"])
def test_serve_refuses_a_port_out_of_range(tmp_path: Path, port: str) -> None:
    result = CliRunner().invoke(main, ["serve", "tests.runtime.server_objects:OBJECTS",
                                       "--data", str(tmp_path), "--port", port])
    assert result.exit_code == 2
    assert "is not in the range 0<=x<=65535" in result.output


@pytest.mark.parametrize(("objects", "message"), [
    ('{"my-ns": Greeter}', "binding 'my-ns' must be a Python identifier"),
    ("{}", "needs at least one binding"),
])
def test_serve_refuses_bindings_it_cannot_host_before_listening(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, objects: str, message: str
) -> None:
    """Before, such a server started, and answered every request 500 with nothing logged."""
    module = f"badapp_{len(objects)}"  # a module name per case: imports are cached
    (tmp_path / f"{module}.py").write_text(USER_MODULE + f"\nBAD = {objects}\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", list(sys.path))  # the command puts tmp_path first
    result = CliRunner().invoke(main, ["serve", f"{module}:BAD", "--data",
                                       str(tmp_path / "data"), "--port", str(free_port())])
    assert result.exit_code == 1
    assert message in result.output
    assert "Traceback" not in result.output
    assert not (tmp_path / "data").exists()


@pytest.mark.parametrize("signals", [1, 2])
async def test_ctrl_c_stops_and_a_second_stops_at_once_without_a_traceback(
    tmp_path: Path, signals: int
) -> None:
    """Before, a second Ctrl-C printed uvicorn's "Exception in 'lifespan' protocol" and a
    CancelledError traceback, and neither said what was happening. A call held in flight
    keeps the graceful stop waiting, so that the second signal meets it."""
    dobox = Path(sys.executable).with_name("dobox")
    port = free_port()
    release = tmp_path / "release"
    process = await trio.lowlevel.open_process(
        [str(dobox), "serve", "tests.runtime.server_objects:OBJECTS", "--data",
         str(tmp_path / "data"), "--port", str(port)],
        cwd=Path(__file__).parent.parent.parent, stdin=subprocess.DEVNULL,
        stderr=subprocess.PIPE)
    assert process.stderr is not None
    stderr = process.stderr
    output = b""

    async def read_until(marker: bytes) -> None:
        nonlocal output
        while marker not in output:
            chunk = await stderr.receive_some()
            assert chunk, output
            output += chunk

    async def held_call(client: httpx.AsyncClient) -> None:
        with contextlib.suppress(httpx.TransportError):  # dropped by a stop at once
            await client.post("/default/HOLDER/h/rpc/hold_until", json={"args": [str(release)]})

    with trio.fail_after(60):
        await read_until(b"Ctrl-C stops")  # the line it prints once it listens
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=60) as client, \
                trio.open_nursery() as nursery:
            nursery.start_soon(held_call, client)
            while 'dobox_queued_events{tenant="default"} 1.0' not in (  # noqa: ASYNC110
                    await client.get("/metrics")).text:
                await trio.sleep(0.02)  # another process's state
            process.send_signal(signal.SIGINT)
            await read_until(b"dobox stopping:")
            if signals == 2:
                process.send_signal(signal.SIGINT)
            else:
                release.touch()  # the graceful stop finishes the call, then exits
        while chunk := await stderr.receive_some():
            output += chunk
        await process.wait()
    text = output.decode()
    assert process.returncode == 0, text
    assert "dobox stopping: finishing the requests in flight and committing" in text
    assert ("dobox stopping at once" in text) == (signals == 2)
    assert "Traceback" not in text
    assert "CancelledError" not in text
