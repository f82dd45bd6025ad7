"""Looking into a running runtime from outside its objects (what the server's inspector
uses): a read sends the object no event, activates nothing and reconnects nothing."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import httpx
import pytest
import trio
import trio.testing

from actors import DurableObject
from runtime import open_runtime
from runtime._engine import NOT_HELD
from storage import ForbiddenSqlError, TransactionError
from storage._database import Database
from storage._reading import run_reading_sql

FAST = {"durability": "normal"}  # inline commits: MockClock cannot see worker threads


class Notes(DurableObject):
    async def on_start(self) -> None:
        self.ctx.storage.sql.exec("CREATE TABLE IF NOT EXISTS notes(body TEXT)")

    async def add(self, body: str) -> int:
        self.ctx.storage.sql.exec("INSERT INTO notes VALUES (?)", body)
        return int(self.ctx.storage.sql.exec("SELECT count(*) AS n FROM notes").one()["n"])

    async def peek_at_engine(self) -> str:
        try:
            self.ctx.storage.sql.exec("SELECT * FROM _dobox_kv")
        except ForbiddenSqlError:
            return "refused"
        return "allowed"

    async def fetch(self, request: httpx.Request) -> httpx.Response:
        from runtime import WebSocketPair

        client, server = WebSocketPair()
        server.serialize_attachment({"user": "ada"})
        self.ctx.accept_websocket(server, ["room:1", "ada"])
        return httpx.Response(101, extensions={"websocket": client})


def count_notes(conn: sqlite3.Connection) -> int:
    return int(conn.execute("SELECT count(*) FROM notes").fetchone()[0])


async def test_a_live_object_is_read_through_its_connection_without_an_event(
    tmp_path: Path,
) -> None:
    async with open_runtime(tmp_path, objects={"NOTES": Notes}, **FAST) as rt:
        stub = rt.namespace("NOTES").get_by_name("a")
        await stub.add("one")
        (before,) = rt.live_objects()
        assert (before.name, before.handled, before.connection_open) == ("a", 1, True)

        assert await rt.read_held("NOTES", stub.id.hex, count_notes) == 1

        (after,) = rt.live_objects()
        assert after == before  # no event: nothing handled, last activity unchanged
        assert rt.statistics().activations == 1


async def test_a_read_may_use_its_own_authorizer_and_the_object_keeps_its_own(
    tmp_path: Path,
) -> None:
    async with open_runtime(tmp_path, objects={"NOTES": Notes}, **FAST) as rt:
        stub = rt.namespace("NOTES").get_by_name("a")
        await stub.add("one")

        def refused_write(conn: sqlite3.Connection) -> None:
            run_reading_sql(conn, "DELETE FROM notes")

        with pytest.raises(ForbiddenSqlError):
            await rt.read_held("NOTES", stub.id.hex, refused_write)
        assert await stub.add("two") == 2  # the object writes again
        assert await stub.peek_at_engine() == "refused"  # under its own authorizer


async def test_an_object_that_is_not_live_is_not_held_and_not_activated(
    tmp_path: Path,
) -> None:
    async with open_runtime(tmp_path, objects={"NOTES": Notes}, **FAST) as rt:
        stub = rt.namespace("NOTES").get_by_name("never-called")
        assert await rt.read_held("NOTES", stub.id.hex, count_notes) is NOT_HELD
        assert rt.statistics().activations == 0
        assert rt.live_objects() == []
        assert not (tmp_path / "NOTES").exists()  # no file made for it


async def test_an_idle_object_whose_connection_closed_stays_disconnected(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    async with open_runtime(tmp_path, objects={"NOTES": Notes}, idle_connection_timeout=5,
                            idle_timeout=600, **FAST) as rt:
        stub = rt.namespace("NOTES").get_by_name("a")
        await stub.add("one")
        await trio.sleep(6)
        await trio.testing.wait_all_tasks_blocked()
        (idle,) = rt.live_objects()
        assert not idle.connection_open

        assert await rt.read_held("NOTES", stub.id.hex, count_notes) is NOT_HELD

        assert rt.live_objects() == [idle]  # still live, still without its connection
        assert rt.statistics().open_connections == 0


async def test_accepted_sockets_are_shown_while_their_object_hibernates(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    async with open_runtime(tmp_path, objects={"NOTES": Notes}, idle_timeout=10,
                            **FAST) as rt:
        stub = rt.namespace("NOTES").get_by_name("room")
        response = await stub.fetch(httpx.Request("GET", "http://do/ws",
                                                  headers={"upgrade": "websocket"}))
        assert response.status_code == 101
        await trio.sleep(11)
        await trio.testing.wait_all_tasks_blocked()
        assert rt.live_objects() == []  # evicted: hibernating with its socket open

        (socket,) = rt.object_sockets("NOTES", stub.id.hex)
        assert (socket.tags, socket.attachment, socket.open) == (("room:1", "ada"),
                                                                  {"user": "ada"}, True)
        assert rt.live_objects() == []
        assert rt.statistics().activations == 1


def test_a_connection_with_uncommitted_writes_is_not_read(tmp_path: Path) -> None:
    db = Database.open(tmp_path / "object.sqlite", durability="off")
    try:
        db.begin()
        db.execute("CREATE TABLE notes(body TEXT)")
        db.mark_written()
        assert not db.can_read_between_turns
        with pytest.raises(TransactionError, match="in the middle of a write"):
            db.read_between_turns(count_notes)
        db.commit()
        assert db.read_between_turns(count_notes) == 0
    finally:
        db.close()
