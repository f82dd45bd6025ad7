"""Collections declared on objects: prepared on activation, durable across restarts between
every write and the read after it, and their schema policies on a deploy of new classes."""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

import pytest

from actors import DurableObject, ObjectResetError, RemoteError
from harness import open_test_runtime
from storage import Change, Collection, SchemaMismatchError, Snapshot, collection, field


class TodoList(DurableObject):
    todos = collection("todos", indexes=[field("done")])

    async def add(self, key: int, title: str) -> dict[str, Any]:
        return self.todos.insert({"id": key, "title": title, "done": False})

    async def finish(self, key: int) -> dict[str, Any]:
        return self.todos.update(key, {"done": True})

    async def remove(self, key: int) -> bool:
        return self.todos.delete(key)

    async def open_titles(self) -> list[str]:
        page = self.todos.load_subset(field("done") == False, order_by="title")  # noqa: E712
        return [record["title"] for record in page.records]

    async def changes_since(self, version: int) -> object:
        changes = self.todos.pull_since(version)
        return [type(changes).__name__, changes.row_version,
                getattr(changes, "changed", None), getattr(changes, "deleted", None)]


async def test_a_restart_between_every_write_and_read(tmp_path: Path) -> None:
    async with open_test_runtime(tmp_path, {"LIST": TodoList}) as rt:
        todo_list = rt.namespace("LIST").get_by_name("home")
        steps = [("add", (1, "milk")), ("add", (2, "bread")), ("add", (3, "eggs")),
                 ("finish", (2,)), ("remove", (3,))]
        for method, args in steps:
            await getattr(todo_list, method)(*args)
            await rt.restart()
        assert await todo_list.open_titles() == ["milk"]
        await rt.restart()
        assert await todo_list.changes_since(3) == ["Changes", 5, [2], [3]]


class CachedV2(DurableObject):
    synced: ClassVar[list[int]] = []

    @staticmethod
    async def _refill(obj: object, records: Collection[Any]) -> None:
        CachedV2.synced.append(len(records))
        records.insert({"id": 100, "title": "from upstream", "done": False})

    todos = collection("todos", schema_version=2, sync=_refill)

    async def titles(self) -> list[str]:
        return [r["title"] for r in self.todos.load_subset().records]


class StrictV2(DurableObject):
    todos = collection("todos", schema_version=2)

    async def titles(self) -> list[str]:
        return [r["title"] for r in self.todos.load_subset().records]


class MigratedV2(DurableObject):
    todos = collection("todos", schema_version=2, migrations={
        2: lambda records: [records.update(r["id"], {"title": r["title"].upper()})
                            for r in records.load_subset().records]})

    async def titles(self) -> list[str]:
        return [r["title"] for r in self.todos.load_subset().records]


async def test_a_sync_present_collection_is_cleared_and_refilled(tmp_path: Path) -> None:
    CachedV2.synced = []
    async with open_test_runtime(tmp_path, {"LIST": TodoList}) as rt:
        await rt.namespace("LIST").get_by_name("home").add(1, "milk")
        await rt.restart(objects={"LIST": CachedV2})
        assert await rt.namespace("LIST").get_by_name("home").titles() == ["from upstream"]
        assert CachedV2.synced == [0]  # it ran on the cleared collection
        await rt.restart()
        assert await rt.namespace("LIST").get_by_name("home").titles() == ["from upstream"]
        assert CachedV2.synced == [0]  # once: the refill was committed with its mark


async def test_a_sync_absent_collection_refuses_to_start(tmp_path: Path) -> None:
    async with open_test_runtime(tmp_path, {"LIST": TodoList}) as rt:
        await rt.namespace("LIST").get_by_name("home").add(1, "milk")
        await rt.restart(objects={"LIST": StrictV2})
        with pytest.raises(SchemaMismatchError, match='"todos" stores schema version 1'):
            await rt.namespace("LIST").get_by_name("home").titles()
        await rt.restart(objects={"LIST": TodoList})  # rolled back: the data is intact
        assert await rt.namespace("LIST").get_by_name("home").open_titles() == ["milk"]
        await rt.restart(objects={"LIST": MigratedV2})
        assert await rt.namespace("LIST").get_by_name("home").titles() == ["MILK"]


class FailingSync(DurableObject):
    @staticmethod
    async def _refill(obj: object, records: Collection[Any]) -> None:
        records.insert({"id": 1, "title": "half"})
        raise ConnectionError("upstream unreachable")

    todos = collection("todos", schema_version=2, sync=_refill)

    async def titles(self) -> list[str]:
        return [r["title"] for r in self.todos.load_subset().records]


async def test_a_failed_sync_is_retried_on_the_next_activation(tmp_path: Path) -> None:
    async with open_test_runtime(tmp_path, {"LIST": TodoList}) as rt:
        await rt.namespace("LIST").get_by_name("home").add(1, "milk")
        await rt.restart(objects={"LIST": FailingSync})
        with pytest.raises(ObjectResetError, match="upstream unreachable"):
            await rt.namespace("LIST").get_by_name("home").titles()
        await rt.restart(objects={"LIST": CachedV2})
        # The clear was not committed either: the next activation clears and syncs again.
        assert await rt.namespace("LIST").get_by_name("home").titles() == ["from upstream"]


async def test_a_live_query_through_a_stub(tmp_path: Path) -> None:
    """A snapshot, a change per committed call, nothing for a call that failed, and a
    resume from a row version that yields only what came after it."""
    async with open_test_runtime(tmp_path, {"LIST": TodoList}) as rt:
        home = rt.namespace("LIST").get_by_name("home")
        await home.add(1, "milk")
        async with home.subscribe("todos", field("done") == False,  # noqa: E712
                                  order_by="title") as feed:
            first = await feed.__anext__()
            assert isinstance(first, Snapshot)
            assert [r["title"] for r in first.records] == ["milk"]
            await home.add(2, "bread")
            with pytest.raises(RemoteError, match="no record with key 99"):
                await home.finish(99)  # failed: no message
            await home.finish(1)
            assert await feed.__anext__() == Change(2, [{"id": 2, "title": "bread",
                                                         "done": False}], [], [])
            assert await feed.__anext__() == Change(3, [], [], [1])
            resume_from = 3
        await home.add(3, "eggs")
        await home.remove(2)
        async with home.subscribe("todos", field("done") == False,  # noqa: E712
                                  since=resume_from) as feed:
            assert await feed.__anext__() == Change(
                5, [], [{"id": 3, "title": "eggs", "done": False}], [2])
        with pytest.raises(ValueError, match="declares no collection 'nope'"):
            async with home.subscribe("nope"):
                pass
