"""dobox ls, inspect and sql: reading a data directory, read-only, even while it is served."""

from __future__ import annotations

import fcntl
import os
import sqlite3
from pathlib import Path

import pytest
import trio
from click.testing import CliRunner

from runtime import open_runtime
from runtime.cli import main
from storage import StorageError
from tests.helpers import Counter
from tests.integration.objects import LedgerV1


async def populate(data: Path) -> tuple[str, str]:
    async with open_runtime(data, objects={"COUNTER": Counter, "LEDGER": LedgerV1},
                            durability="normal") as rt:
        counter = rt.namespace("COUNTER").get_by_name("visits")
        await counter.increment(3)
        ledger = rt.namespace("LEDGER").get_by_name("acme")
        await ledger.add(5)
        await ledger.add(7)
        return str(counter.id), str(ledger.id)


def invoke(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, list(args))
    return result.exit_code, result.output


@pytest.fixture
def data(tmp_path: Path) -> tuple[Path, str, str]:
    counter_id, ledger_id = trio.run(populate, tmp_path)
    return tmp_path, counter_id, ledger_id


def test_ls_lists_every_object(data: tuple[Path, str, str]) -> None:
    root, counter_id, ledger_id = data
    code, output = invoke("ls", str(root))
    assert code == 0, output
    lines = [line.split("\t") for line in output.splitlines() if "\t" in line]
    assert [(ns, oid, name, cls, version) for ns, oid, name, cls, version, _, _ in lines] == [
        ("COUNTER", counter_id, "visits", "Counter", "v1"),
        ("LEDGER", ledger_id, "acme", "LedgerV1", "v1"),
    ]
    code, output = invoke("ls", str(root), "--namespace", "LEDGER")
    assert counter_id not in output
    assert ledger_id in output


def test_inspect_shows_kv_and_tables(data: tuple[Path, str, str]) -> None:
    root, counter_id, ledger_id = data
    code, output = invoke("inspect", str(root), counter_id)
    assert code == 0, output
    assert "'n': 3" in output
    code, output = invoke("inspect", str(root), ledger_id.upper())
    assert "entries: 2 rows" in output


def files_under(root: Path) -> set[Path]:
    return {path for path in root.rglob("*") if path.is_file()}


def test_reading_closed_objects_creates_no_files(data: tuple[Path, str, str]) -> None:
    """SQLite makes a -wal and a -shm beside every WAL file it reads, unless told the file
    cannot change: a closed object's file is read as immutable."""
    root, counter_id, ledger_id = data
    before = files_under(root)
    assert not [path for path in before if path.name.endswith(("-wal", "-shm"))]
    for args in (["ls", str(root)], ["inspect", str(root), counter_id],
                 ["inspect", str(root), ledger_id],
                 ["sql", str(root), ledger_id, "SELECT count(*) FROM entries"]):
        code, output = invoke(*args)
        assert code == 0, output
    assert files_under(root) == before


def test_a_file_left_with_a_wal_is_read_with_it(data: tuple[Path, str, str]) -> None:
    """A -wal beside a file (a runtime that crashed, or that has it open) holds commits
    the file does not: such a file is read the locking way, which sees them."""
    root, _, ledger_id = data
    path = next(root.rglob(f"{ledger_id}.sqlite"))
    writer = sqlite3.connect(path)  # what a crash leaves: commits only in the -wal
    writer.execute("PRAGMA wal_autocheckpoint = 0")
    writer.execute("INSERT INTO entries (amount) VALUES (100)")
    writer.commit()
    try:
        assert Path(f"{path}-wal").exists()
        code, output = invoke("sql", str(root), ledger_id, "SELECT sum(amount) FROM entries")
        assert code == 0, output
        assert "112" in output
    finally:
        writer.close()


def test_sql_reads_but_never_writes(data: tuple[Path, str, str]) -> None:
    root, _, ledger_id = data
    code, output = invoke("sql", str(root), ledger_id, "SELECT sum(amount) AS total FROM entries")
    assert (code, output.splitlines()) == (0, ["total", "12"])
    code, output = invoke("sql", str(root), ledger_id, "DELETE FROM entries")
    assert code == 1
    assert "dobox only reads object files, so it refused this statement" in output
    code, output = invoke("sql", str(root), ledger_id, "SELECT count(*) FROM entries")
    assert output.splitlines()[-1] == "2"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        pytest.param(("inspect", "{root}", "not-an-id"), "is not an object id", id="bad-id"),
        pytest.param(("inspect", "{root}", "0" * 64), "no object", id="missing"),
        pytest.param(("sql", "{root}", "{ledger}", "SELEC 1"), "syntax error", id="bad-sql"),
        pytest.param(("ls", "{root}", "--tenant", "nobody"), "is not a directory",
                     id="unknown-tenant"),
    ],
)
def test_bad_input_is_a_clear_error(
    data: tuple[Path, str, str], args: tuple[str, ...], message: str
) -> None:
    root, _, ledger_id = data
    code, output = invoke(*(a.format(root=root, ledger=ledger_id) for a in args))
    assert code != 0
    assert message in output


def test_a_missing_data_directory_is_refused(tmp_path: Path) -> None:
    code, output = invoke("ls", str(tmp_path / "nowhere"))
    assert code == 2
    assert "does not exist" in output


async def test_an_object_in_use_is_reported_and_readable_once_its_connection_closes(
    tmp_path: Path,
) -> None:
    """A runtime holds a live object's file while its connection is open: the tools say so
    (without waiting long, and the runtime goes on); once the runtime lets the idle
    connection go, the object is readable though still live."""
    async with open_runtime(tmp_path, objects={"COUNTER": Counter},
                            idle_connection_timeout=None) as rt:
        counter = rt.namespace("COUNTER").get_by_name("live")
        await counter.increment(9)
        for command in (["inspect", str(tmp_path), str(counter.id)],
                        ["sql", str(tmp_path), str(counter.id), "SELECT count(*) FROM _dobox_kv"]):
            code, output = await trio.to_thread.run_sync(lambda c=command: invoke(*c))
            assert code == 1
            assert "COUNTER/" + str(counter.id) + " is in use: a running dobox holds" in output
        code, output = await trio.to_thread.run_sync(lambda: invoke("ls", str(tmp_path)))
        assert code == 0
        assert f"{counter.id}\t(in use by a running dobox)" in output
        assert await counter.increment() == 10  # the runtime went on serving
    async with open_runtime(tmp_path, objects={"COUNTER": Counter},
                            idle_connection_timeout=0.05) as rt:
        counter = rt.namespace("COUNTER").get_by_name("live")
        assert await counter.value() == 10
        with trio.fail_after(10):
            while rt.statistics().open_connections:  # noqa: ASYNC110  # the runtime's own timer
                await trio.sleep(0.05)
        code, output = await trio.to_thread.run_sync(
            lambda: invoke("inspect", str(tmp_path), str(counter.id)))
        assert code == 0, output
        assert "'n': 10" in output
        assert await counter.increment() == 11  # reconnected after the reader let go


async def test_backup_while_serving_and_restore(tmp_path: Path) -> None:
    """A backup of a served directory copies each idle object consistently; an object in
    use stops it with a clear error at once (not a wait without end)."""
    data, copy, restored = tmp_path / "data", tmp_path / "copy", tmp_path / "restored"
    async with open_runtime(data, objects={"COUNTER": Counter},
                            idle_connection_timeout=0.05) as rt:
        namespace = rt.namespace("COUNTER")
        for name in ("a", "b", "c"):
            await namespace.get_by_name(name).increment(len(name) + 1)
        await namespace.get_by_name("a").increment()  # a: 3
        with trio.fail_after(10):
            while rt.statistics().open_connections:  # noqa: ASYNC110  # the runtime's own timer
                await trio.sleep(0.05)
        code, output = await trio.to_thread.run_sync(lambda: invoke("backup", str(data),
                                                                    str(copy)))
        assert code == 0, output
        assert "backed up 3 objects" in output
        # Not a terminal: progress as lines (a bar would show nothing until the end).
        assert "backing up: 3 objects" in output
        assert "backing up: 1/3" in output
        assert "backing up: 3/3" in output
        assert await namespace.get_by_name("a").increment() == 4  # served throughout
    async with open_runtime(data, objects={"COUNTER": Counter},
                            idle_connection_timeout=None) as rt:
        assert await rt.namespace("COUNTER").get_by_name("b").value() == 2  # b: in use
        code, output = await trio.to_thread.run_sync(
            lambda: invoke("backup", str(data), str(tmp_path / "busy")))
        assert code == 1
        assert "is in use: a running dobox holds its file" in output
        assert "is incomplete; run it again" in output
    code, output = invoke("backup", str(data), str(copy))
    assert code == 1
    assert "is not empty" in output
    code, output = invoke("restore", str(copy), str(restored))
    assert code == 0, output
    assert "restored 3 objects" in output
    assert "restoring: 3/3" in output
    code, output = invoke("restore", str(copy), str(restored))
    assert code == 1
    assert "already exist" in output
    async with open_runtime(restored, objects={"COUNTER": Counter}) as rt:
        namespace = rt.namespace("COUNTER")
        assert [await namespace.get_by_name(n).value() for n in "abc"] == [3, 2, 2]
        # Restoring over objects that are being served is refused.
        code, output = await trio.to_thread.run_sync(
            lambda: invoke("restore", str(copy), str(restored), "--overwrite"))
        assert code == 1
        assert "is being served" in output


def test_inspect_and_sql_take_a_namespace_and_a_name(data: tuple[Path, str, str]) -> None:
    root, counter_id, _ledger_id = data
    code, output = invoke("inspect", str(root), "COUNTER/visits")
    assert code == 0, output
    assert f"object COUNTER/{counter_id}" in output
    code, output = invoke("sql", str(root), "LEDGER/acme", "SELECT sum(amount) FROM entries")
    assert (code, output.splitlines()[-1]) == (0, "12")
    for ref, message in [("COUNTER/nobody", "no object COUNTER/nobody under"),
                         ("NOPE/visits", "no namespace 'NOPE' under"),
                         ("COUNTER/..", "is not an object name"),
                         ("visits", "is not an object id (64 hex digits) or NAMESPACE/name")]:
        code, output = invoke("inspect", str(root), ref)
        assert code == 1, ref
        assert message in output, output


def test_a_namespace_that_does_not_exist_is_an_error(data: tuple[Path, str, str]) -> None:
    """Before: '0 objects', as for an empty one."""
    root, _, _ = data
    code, output = invoke("ls", str(root), "--namespace", "COUNTR")
    assert code == 1
    assert "no namespace 'COUNTR'" in output
    assert "(it has: COUNTER, LEDGER)" in output


async def test_a_servers_data_lists_every_tenant(tmp_path: Path) -> None:
    """Before, ls on a served directory said '0 objects': the objects are per tenant."""
    for tenant in ("acme", "globex"):
        async with open_runtime(tmp_path / "tenants" / tenant, objects={"COUNTER": Counter},
                                id_scope=f"{tenant}/", durability="normal") as rt:
            await rt.namespace("COUNTER").get_by_name("visits").increment(1)
    code, output = invoke("ls", str(tmp_path))
    assert code == 0, output
    lines = [line.split("\t") for line in output.splitlines() if "\t" in line]
    assert [(line[0], line[1], line[3]) for line in lines] == [
        ("acme", "COUNTER", "visits"), ("globex", "COUNTER", "visits")]
    assert "2 objects in 2 tenants" in output
    code, output = invoke("inspect", str(tmp_path), "COUNTER/visits")
    assert code == 1
    assert "a server's data: give --tenant" in output
    code, output = invoke("inspect", str(tmp_path), "COUNTER/visits", "--tenant", "globex")
    assert code == 0, output
    assert "'n': 1" in output


async def test_restore_refuses_a_directory_a_runtime_has_open(tmp_path: Path) -> None:
    """Before, restoring over a served directory succeeded when its objects were idle (no
    object lock held): the runtime's alarm index and memory no longer matched its files."""
    data, copy = tmp_path / "data", tmp_path / "copy"
    async with open_runtime(data, objects={"COUNTER": Counter}, durability="normal") as rt:
        await rt.namespace("COUNTER").get_by_name("a").increment(1)
    assert invoke("backup", str(data), str(copy))[0] == 0
    async with open_runtime(data, objects={"COUNTER": Counter}, durability="normal",
                            idle_connection_timeout=None) as rt:
        assert rt.statistics().live_objects == 0  # nothing live: no object lock held
        code, output = await trio.to_thread.run_sync(
            lambda: invoke("restore", str(copy), str(data), "--overwrite"))
        assert code == 1
        assert f"{data} is being served (a runtime or server has it open)" in output
    code, output = invoke("restore", str(copy), str(data), "--overwrite")
    assert code == 0, output


async def test_a_runtime_cannot_open_a_directory_being_restored(tmp_path: Path) -> None:
    tmp_path.joinpath("data").mkdir()
    restoring = os.open(tmp_path / "data", os.O_RDONLY | os.O_DIRECTORY)
    try:
        fcntl.flock(restoring, fcntl.LOCK_EX | fcntl.LOCK_NB)  # what dobox restore holds
        with pytest.raises(StorageError, match="is being restored"):
            async with open_runtime(tmp_path / "data", objects={"COUNTER": Counter}):
                pass
    finally:
        os.close(restoring)
