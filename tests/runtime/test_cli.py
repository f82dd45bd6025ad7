"""The ``dobox`` command line."""

from __future__ import annotations

from pathlib import Path

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
    assert "Invalid value for '--log-level': 'loud' is not one of" in result.output
    monkeypatch.setenv("DOBOX_LOG_LEVEL", "loud")  # the same option, from the environment
    result = CliRunner().invoke(main, ["serve", "x:Y"])
    assert result.exit_code == 2
    assert "Invalid value for '--log-level': 'loud' is not one of" in result.output
