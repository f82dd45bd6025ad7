"""The ``dobox`` command line."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner

from runtime._cli import main
from storage import open_storage


def test_demo_remembers_between_runs(tmp_path: Path) -> None:
    runner = CliRunner()
    data = tmp_path / "data"
    first = runner.invoke(main, ["demo", "--data", str(data)])
    second = runner.invoke(main, ["demo", "--data", str(data)])
    assert first.exit_code == 0, first.output
    assert "visit number 1" in first.output
    assert second.exit_code == 0, second.output
    assert "visit number 2" in second.output
    assert "visits is still 2" in second.output
    with open_storage(data / "COUNTER" / "demo.sqlite") as storage:
        assert storage.kv.get("visits") == 2
        assert storage.metadata.name == "demo"
        assert len(storage.sql.exec("SELECT * FROM visits").to_list()) == 2


def test_every_command_has_help() -> None:
    runner = CliRunner()
    for args in (["--help"], ["demo", "--help"]):
        result = runner.invoke(main, args)
        assert result.exit_code == 0
        assert "Usage: " in result.output
