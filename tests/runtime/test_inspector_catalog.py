"""The inspector's list of a namespace's objects: names read once, states from the runtime."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import attrs
import pytest

from runtime import open_runtime
from runtime._engine import LiveObject
from runtime.server._inspector._catalog import Catalog, Listed, search
from runtime.server._inspector._data import InspectorUnreadable, _within
from tests.runtime.inspector_objects import OBJECTS


async def make(root: Path, names: list[str]) -> dict[str, str]:
    async with open_runtime(root, OBJECTS, durability="off") as rt:
        ids = {}
        for name in names:
            stub = rt.namespace("SHOP").get_by_name(name)
            await stub.stock("n", 1)
            ids[name] = stub.id.hex
        return ids


def live(object_id: str, name: str, *, connection_open: bool) -> LiveObject:
    return LiveObject(binding="SHOP", id=object_id, name=name, state="running",
                      queued_events=2, handled=5, connection_open=connection_open,
                      last_active=1.0e9)


async def test_states_names_and_activity(tmp_path: Path) -> None:
    ids = await make(tmp_path, ["a", "b", "c"])
    running = {ids["a"]: live(ids["a"], "a", connection_open=True),
               ids["b"]: live(ids["b"], "b", connection_open=False)}
    listed = {o.name: o for o in Catalog().list(tmp_path, "SHOP", running)}
    assert {name: o.state for name, o in listed.items()} == {
        "a": "live", "b": "live, idle", "c": "not in memory"}
    assert listed["a"].last_activity == 1.0e9  # a live object's last event
    assert listed["c"].last_activity == (tmp_path / "SHOP").joinpath(
        ids["c"][:2], ids["c"] + ".sqlite").stat().st_mtime  # else its file's last write
    assert listed["a"].queued_events == 2
    assert all(o.class_name == "Shop" and o.size > 0 for o in listed.values())


async def test_a_name_is_read_once(tmp_path: Path) -> None:
    ids = await make(tmp_path, ["kept"])
    catalog = Catalog()
    (first,) = catalog.list(tmp_path, "SHOP", {})
    path = tmp_path / "SHOP" / ids["kept"][:2] / (ids["kept"] + ".sqlite")
    path.write_bytes(path.read_bytes()[:100])  # damaged: it could not be read again
    (again,) = catalog.list(tmp_path, "SHOP", {})
    assert attrs.evolve(again, size=first.size, last_activity=first.last_activity) == first


def test_search_by_name_or_id_prefix() -> None:
    def listed(object_id: str, name: str | None) -> Listed:
        return Listed(id=object_id, name=name, class_name=None, size=0,
                      state="not in memory", last_activity=0.0)

    objects = [listed("aa11", "Shop-2"), listed("bb22", "shop-1"), listed("cc33", None)]
    assert [o.id for o in search(objects, "SHOP")] == ["bb22", "aa11"]  # by name
    assert [o.id for o in search(objects, "cc")] == ["cc33"]
    assert [o.id for o in search(objects, "")] == ["bb22", "aa11", "cc33"]  # unnamed last


def test_reading_a_live_object_stops_at_its_time(tmp_path: Path) -> None:
    conn = sqlite3.connect(tmp_path / "x.sqlite")
    endless = ("WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n) "
               "SELECT count(*) FROM n")
    with pytest.raises(InspectorUnreadable, match=r"took more than 0\.05 s"):
        _within(0.05, lambda c: c.execute(endless).fetchone(), conn)
    assert _within(1.0, lambda c: c.execute("SELECT 1").fetchone(), conn) == (1,)
