"""Listing a data directory: every object with its metadata, read by worker processes when
the namespace is large, the same as read in this process, and creating nothing."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
import trio
from click.testing import CliRunner

from actors import DurableObject
from runtime import open_runtime
from runtime.cli import main
from storage._files import IN_USE, PARALLEL_FROM, id_prefixes, read_namespace
from storage._meta import ObjectMetadata

OBJECTS = 60  # their ids spread over more than PARALLEL_FROM prefix directories


class Named(DurableObject):
    async def touch(self) -> None:
        await self.ctx.storage.put("touched", True)


async def populate(data: Path, names: list[str]) -> None:
    async with open_runtime(data, objects={"NAMED": Named}, durability="normal") as rt:
        for name in names:
            await rt.namespace("NAMED").get_by_name(name).touch()


def files_under(root: Path) -> set[Path]:
    return {path for path in root.rglob("*") if path.is_file()}


@pytest.fixture
def data(tmp_path: Path) -> Path:
    # A directory name SQLite would cut short in a URI if it were not escaped.
    root = tmp_path / "odd?name#with%20marks"
    trio.run(populate, root, [f"object-{n}" for n in range(OBJECTS)])
    assert len(id_prefixes(root, "NAMED")) >= PARALLEL_FROM
    return root


def names(reports: list[tuple[object, ObjectMetadata | str]]) -> list[str | None]:
    return [r.name if isinstance(r, ObjectMetadata) else r for _, r in reports]


def test_worker_processes_read_what_this_process_reads(data: Path) -> None:
    before = files_under(data)
    in_workers = list(read_namespace(data, "NAMED", workers=2))
    here = list(read_namespace(data, "NAMED", workers=1))
    assert in_workers == here
    assert sorted(names(here)) == sorted(f"object-{n}" for n in range(OBJECTS))
    assert [file.id for file, _ in here] == sorted(file.id for file, _ in here)
    assert files_under(data) == before  # no -wal, no -shm beside any file


def test_an_object_held_by_a_runtime_is_listed_as_in_use(data: Path) -> None:
    held = next((data / "NAMED").rglob("*.sqlite"))
    holder = sqlite3.connect(held)
    holder.execute("PRAGMA locking_mode = EXCLUSIVE")
    holder.execute("BEGIN IMMEDIATE")  # as a runtime holds a live object's file
    try:
        reports = {file.path: report
                       for file, report in read_namespace(data, "NAMED", workers=2)}
    finally:
        holder.rollback()
        holder.close()
    assert reports[held] == IN_USE
    assert sum(1 for r in reports.values() if r == IN_USE) == 1


def test_a_damaged_file_is_reported_by_path(data: Path) -> None:
    damaged = next((data / "NAMED").rglob("*.sqlite"))
    damaged.write_bytes(b"not a database" * 100)
    result = CliRunner().invoke(main, ["ls", str(data)])
    assert result.exit_code == 1
    assert str(damaged) in result.output
    assert "file is not a database" in result.output


def test_ls_lists_every_object_with_its_name(data: Path) -> None:
    result = CliRunner().invoke(main, ["ls", str(data)])
    assert result.exit_code == 0, result.output
    lines = [line.split("\t") for line in result.output.splitlines() if "\t" in line]
    assert sorted(line[2] for line in lines) == sorted(f"object-{n}" for n in range(OBJECTS))
    assert {(line[0], line[3], line[4]) for line in lines} == {("NAMED", "Named", "v1")}
    assert f"{OBJECTS} objects" in result.output
