"""The Durable Objects contract, through both faces: every test runs once against an
in-process runtime and once through the Python client against a real ``dobox serve``, and
expects the same answers. What must differ (what cannot cross JSON) is at the end, each
difference written down in docs/serving.md."""

from __future__ import annotations

import datetime
from pathlib import Path

import pytest
import trio

from actors import (
    InvalidArgumentsError,
    ObjectResetError,
    OverloadedError,
    RemoteError,
    UnknownMethodError,
)
from storage import Change, Snapshot
from tests.contract.conftest import MAX_QUEUED, Face

# -- KV ------------------------------------------------------------------------------------


async def test_kv_round_trips_values_by_value(face: Face, name: str) -> None:
    kv = face.stub("KV", name)
    value = {"n": 1, "pi": 3.5, "ok": True, "none": None, "list": [1, "a", [2]]}
    await kv.put("k", value)
    assert await kv.get("k") == value
    assert await kv.get("missing") is None
    await kv.put_many({"a": 1, "b": 2})
    assert await kv.get_many(["a", "b", "c"]) == {"a": 1, "b": 2}
    assert await kv.delete("a") is True
    assert await kv.delete("a") is False
    await kv.delete_all()
    assert await kv.list() == []


async def test_kv_lists_in_utf8_byte_order_with_prefix_reverse_and_limit(
    face: Face, name: str
) -> None:
    kv = face.stub("KV", name)
    await kv.put_many({"b": 1, "a": 2, "é": 3, "Z": 4, "ab": 5})
    assert [key for key, _ in await kv.list()] == ["Z", "a", "ab", "b", "é"]
    assert await kv.list(prefix="a") == [["a", 2], ["ab", 5]]
    assert [key for key, _ in await kv.list(reverse=True, limit=2)] == ["é", "b"]


# -- SQL -----------------------------------------------------------------------------------


async def test_sql_rows_come_back_as_dicts(face: Face, name: str) -> None:
    db = face.stub("SQL", name)
    assert await db.add("first") == 1
    await db.add("second")
    assert await db.rows() == [{"id": 1, "text": "first"}, {"id": 2, "text": "second"}]


async def test_forbidden_sql_is_refused_with_what_to_use_instead(face: Face, name: str) -> None:
    db = face.stub("SQL", name)
    with pytest.raises(RemoteError, match=r"use ctx\.storage\.transaction\(\)") as info:
        await db.run("BEGIN TRANSACTION")
    assert info.value.type_name == "ForbiddenSqlError"
    # ForbiddenSqlError is also a PermissionError, an OSError: that family is not mirrored
    # across a call (it builds itself from errno arguments), on either face.
    assert not isinstance(info.value, PermissionError)
    assert not info.value.reset
    assert await db.rows() == []  # the object is fine


# -- transactions and resets ---------------------------------------------------------------


async def test_a_failed_transaction_rolls_back_without_resetting_the_object(
    face: Face, name: str
) -> None:
    ledger = face.stub("LEDGER", name)
    assert await ledger.transfer(10, False) == 10
    assert await ledger.count_call() == 1
    with pytest.raises(ValueError, match="failed after its write") as info:
        await ledger.transfer(5, True)
    assert isinstance(info.value, RemoteError)
    assert not info.value.reset
    assert await ledger.balance() == 10
    assert await ledger.count_call() == 2  # the same instance


async def test_abort_resets_the_object_keeping_its_storage(face: Face, name: str) -> None:
    ledger = face.stub("LEDGER", name)
    await ledger.transfer(7, False)
    await ledger.count_call()
    with pytest.raises(ObjectResetError, match="enough") as info:
        await ledger.abort("enough")
    assert info.value.reset
    assert info.value.retryable
    assert await ledger.count_call() == 1  # a fresh instance
    assert await ledger.balance() == 7  # the same storage


# -- errors --------------------------------------------------------------------------------


async def test_an_objects_exceptions_arrive_typed_with_their_flags(
    face: Face, name: str
) -> None:
    raiser = face.stub("RAISER", name)
    with pytest.raises(ValueError, match="bad input") as builtin:
        await raiser.value_error("bad input")
    error = builtin.value
    assert isinstance(error, RemoteError)
    assert (error.type_name, error.remote, error.retryable, error.overloaded, error.reset) == (
        "ValueError", True, False, False, False)
    with pytest.raises(RemoteError, match="not today") as own:
        await raiser.own_error("not today")
    assert own.value.type_name == "Refusal"
    with pytest.raises(TypeError, match="set") as unstorable:
        await raiser.unstorable()
    assert isinstance(unstorable.value, RemoteError)
    assert unstorable.value.type_name == "UnsupportedValueError"


async def test_unknown_methods_and_bad_arguments_are_refused_before_the_object_runs(
    face: Face, name: str
) -> None:
    raiser = face.stub("RAISER", name)
    with pytest.raises(UnknownMethodError):
        await raiser.call("__init__")
    with pytest.raises(UnknownMethodError):
        await raiser.call("missing")
    with pytest.raises(InvalidArgumentsError):
        await raiser.add(1, 2, 3)
    assert await raiser.add(1, b=2) == 3


# -- overload ------------------------------------------------------------------------------


async def test_a_full_queue_refuses_at_once_and_admitted_calls_finish(
    face: Face, name: str, tmp_path: Path
) -> None:
    """The queue is filled with calls that hold (the input gate is open while they wait,
    so both run at once), then every further call is refused at once; the held calls
    finish when released, and the object takes calls again. (Filling it with quick calls
    raced: a quick call could commit and leave before the next one came.)"""
    holder = face.stub("HOLDER", name)
    releases = [tmp_path / f"release-{name}-{n}" for n in range(MAX_QUEUED)]
    more = 3
    held: list[object] = []
    refused: list[OverloadedError] = []

    async def hold(release: Path) -> None:
        held.append(await holder.hold_until(str(release)))

    with trio.fail_after(60):
        async with trio.open_nursery() as nursery:
            for release in releases:
                nursery.start_soon(hold, release)
                holding = trio.Path(f"{release}.holding")
                while not await holding.exists():  # noqa: ASYNC110  # the object says it holds
                    await trio.sleep(0.01)
            for _ in range(more):
                with pytest.raises(OverloadedError) as caught:
                    await holder.increment()
                refused.append(caught.value)
            for release in releases:
                release.touch()
    assert held == ["released"] * MAX_QUEUED
    assert len(refused) == more
    assert all(e.overloaded and not e.retryable for e in refused)
    assert await holder.increment() == 1  # nothing refused was applied


# -- alarms --------------------------------------------------------------------------------


async def test_an_alarm_fires_once_and_is_consumed(face: Face, name: str) -> None:
    alarmed = face.stub("ALARMED", name)
    await alarmed.remind_in(0.05)
    assert await alarmed.pending() is not None
    with trio.fail_after(30):
        while await alarmed.fired() == 0:  # noqa: ASYNC110  # on the object's clock, real time
            await trio.sleep(0.02)
    assert await alarmed.pending() is None
    assert await alarmed.fired() == 1


# -- live queries --------------------------------------------------------------------------


def as_data(message: object) -> dict[str, object]:
    """A live query's message as the served face gives it (in-process: Snapshot/Change)."""
    if isinstance(message, Snapshot):
        return {"type": "snapshot", "row_version": message.row_version,
                "records": message.records, "resync": message.resync}
    if isinstance(message, Change):
        return {"type": "change", "row_version": message.row_version,
                "inserted": message.inserted, "updated": message.updated,
                "removed": message.removed}
    assert isinstance(message, dict)
    return message


async def test_a_live_query_sends_a_snapshot_then_changes(face: Face, name: str) -> None:
    board = face.stub("BOARD", name)
    await board.add(1, "first", pinned=True)
    await board.add(2, "quiet")
    with trio.fail_after(30):
        async with board.subscribe("notes", order_by="id") as feed:
            messages = aiter(feed)
            snapshot = as_data(await anext(messages))
            assert (snapshot["type"], snapshot["records"]) == ("snapshot", [
                {"id": 1, "text": "first", "pinned": True},
                {"id": 2, "text": "quiet", "pinned": False}])
            await board.add(3, "later")
            change = as_data(await anext(messages))
            assert (change["type"], change["inserted"], change["removed"]) == (
                "change", [{"id": 3, "text": "later", "pinned": False}], [])
            assert int(str(change["row_version"])) > int(str(snapshot["row_version"]))


# -- what cannot cross JSON ------------------------------------------------------------------

IN_PROCESS = {
    "bytes": b"\x00\xff",
    "tuple": (1, "two"),
    "datetime": datetime.datetime(2026, 12, 2, 12, 0, tzinfo=datetime.UTC),
    "timedelta": datetime.timedelta(seconds=90),
}
OVER_JSON = {
    "bytes": {"$bytes": "AP8="},
    "tuple": [1, "two"],
    "datetime": "2026-12-02T12:00:00+00:00",
    "timedelta": 90.0,
}


@pytest.mark.parametrize("kind", sorted(IN_PROCESS))
async def test_values_json_cannot_carry_change_shape_over_the_wire(
    face: Face, name: str, kind: str
) -> None:
    result = await face.stub("VALUES", name).of_type(kind)
    expected = IN_PROCESS[kind] if face.name == "embedded" else OVER_JSON[kind]
    assert result == expected
    assert type(result) is type(expected)


async def test_arguments_travel_as_json_too(face: Face, name: str) -> None:
    kv = face.stub("KV", name)
    await kv.put("pair", (1, 2))
    assert await kv.get("pair") == ((1, 2) if face.name == "embedded" else [1, 2])
    if face.name == "served":
        with pytest.raises(TypeError):  # the client's JSON cannot carry bytes
            await kv.put("raw", b"\x00")
    else:
        await kv.put("raw", b"\x00")
        assert await kv.get("raw") == b"\x00"
