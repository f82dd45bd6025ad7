"""The KV API's Durable Objects semantics, async and sync, one behaviour per test."""

from __future__ import annotations

from pathlib import Path

import pytest

from storage import (
    MAX_KEY_VALUE_SIZE,
    InvalidKeyError,
    LimitExceededError,
    Storage,
    UnsupportedValueError,
    open_storage,
)


async def test_get_missing_returns_default(store: Storage) -> None:
    assert await store.get("nope") is None
    assert await store.get("nope", 7) == 7


async def test_stored_none_is_not_missing(store: Storage) -> None:
    await store.put("k", None)
    assert await store.get("k", "default") is None
    assert store.kv.get("k", "default") is None


async def test_put_get_delete_round_trip(store: Storage) -> None:
    await store.put("k", {"n": [1, 2.5, "x", b"y", None, True]})
    assert await store.get("k") == {"n": [1, 2.5, "x", b"y", None, True]}
    assert await store.delete("k") is True
    assert await store.delete("k") is False
    assert await store.get("k") is None


async def test_values_are_copies(store: Storage) -> None:
    """What you put is encoded at once: mutating it afterwards changes nothing stored."""
    value = {"items": [1]}
    await store.put("k", value)
    value["items"].append(2)
    fetched = await store.get("k")
    fetched["items"].append(3)
    assert await store.get("k") == {"items": [1]}


async def test_batch_get_returns_present_keys_in_byte_order(store: Storage) -> None:
    await store.put({"b": 2, "a": 1, "é": 3, "z": 4})
    result = await store.get(["z", "missing", "é", "a"])
    assert list(result.items()) == [("a", 1), ("z", 4), ("é", 3)]


async def test_batch_delete_counts_existing(store: Storage) -> None:
    await store.put({"a": 1, "b": 2})
    assert await store.delete(["a", "b", "c", "a"]) == 2
    assert await store.list() == {}


@pytest.mark.parametrize(
    ("call", "kind"),
    [
        pytest.param(lambda s: s.kv.get([str(i) for i in range(129)]), "get", id="get"),
        pytest.param(lambda s: s.kv.put({str(i): i for i in range(129)}), "put", id="put"),
        pytest.param(lambda s: s.kv.delete([str(i) for i in range(129)]), "delete", id="delete"),
    ],
)
def test_batches_are_limited_to_128_keys(store: Storage, call: object, kind: str) -> None:
    with pytest.raises(LimitExceededError, match=rf"{kind}\(\) was given 129 keys; at most 128"):
        call(store)  # type: ignore[operator]
    assert store.kv.list() == {}


def test_128_keys_is_allowed(store: Storage) -> None:
    store.kv.put({f"{i:03}": i for i in range(128)})
    assert len(store.kv.get([f"{i:03}" for i in range(128)])) == 128
    assert store.kv.delete([f"{i:03}" for i in range(128)]) == 128


@pytest.mark.parametrize("key", [1, b"bytes", None, frozenset({"t"}), 1.5], ids=repr)
def test_non_str_keys_are_refused(store: Storage, key: object) -> None:
    for call in (lambda: store.kv.get(key), lambda: store.kv.put(key, 1),  # type: ignore[arg-type]
                 lambda: store.kv.delete(key)):  # type: ignore[arg-type]
        with pytest.raises(InvalidKeyError, match="storage keys must be str"):
            call()
    assert store.kv.list() == {}
    assert not store.has_uncommitted_writes


def test_lone_surrogate_key_is_refused(store: Storage) -> None:
    with pytest.raises(ValueError, match="not valid Unicode"):
        store.kv.put("a\ud800", 1)


def test_key_plus_value_over_2mb_is_refused_and_nothing_written(store: Storage) -> None:
    store.kv.put("kept", 1)
    store.commit()
    with pytest.raises(LimitExceededError, match="may be at most 2,000,000 bytes"):
        store.kv.put("big", b"x" * MAX_KEY_VALUE_SIZE)
    with pytest.raises(LimitExceededError, match="storage key is"):
        store.kv.put("k" * (MAX_KEY_VALUE_SIZE + 1), 1)
    with pytest.raises(LimitExceededError):
        store.kv.put({"small": 1, "big": b"x" * MAX_KEY_VALUE_SIZE})
    assert store.kv.list() == {"kept": 1}


def test_value_at_the_limit_is_stored(store: Storage) -> None:
    # 5 bytes of tag and length go with a bytes value, 3 bytes of key.
    payload = b"x" * (MAX_KEY_VALUE_SIZE - 3 - 5)
    store.kv.put("big", payload)
    store.commit()
    assert store.kv.get("big") == payload


def test_unsupported_value_is_refused_with_its_place(store: Storage) -> None:
    with pytest.raises(UnsupportedValueError, match=r"value for key 'k'\['s'\] is of type 'set'"):
        store.kv.put("k", {"s": {1}})
    with pytest.raises(UnsupportedValueError):
        store.kv.put({"ok": 1, "bad": object()})
    assert store.kv.list() == {}


def test_put_needs_a_value(store: Storage) -> None:
    with pytest.raises(TypeError, match="needs a value"):
        store.kv.put("k")  # type: ignore[call-overload]
    with pytest.raises(TypeError, match="single dict"):
        store.kv.put({"a": 1}, 2)  # type: ignore[call-overload]


# -- list ------------------------------------------------------------------------------


@pytest.fixture
def abc(store: Storage) -> Storage:
    store.kv.put({k: k.upper() for k in ["a", "b", "ba", "bb", "b\uffff", "c", "é", "\U0001f600"]})
    return store


@pytest.mark.parametrize(
    ("options", "keys"),
    [
        pytest.param({}, ["a", "b", "ba", "bb", "b\uffff", "c", "é", "\U0001f600"], id="all"),
        pytest.param({"start": "b"}, ["b", "ba", "bb", "b\uffff", "c", "é", "\U0001f600"],
                     id="start-inclusive"),
        pytest.param({"start_after": "b"}, ["ba", "bb", "b\uffff", "c", "é", "\U0001f600"],
                     id="start-after-exclusive"),
        pytest.param({"end": "bb"}, ["a", "b", "ba"], id="end-exclusive"),
        pytest.param({"prefix": "b"}, ["b", "ba", "bb", "b\uffff"], id="prefix"),
        pytest.param({"prefix": "b", "start": "ba", "end": "bb"}, ["ba"], id="prefix-and-range"),
        pytest.param({"prefix": "b", "reverse": True}, ["b\uffff", "bb", "ba", "b"],
                     id="reverse-keeps-range"),
        pytest.param({"reverse": True, "limit": 2}, ["\U0001f600", "é"], id="reverse-limit"),
        pytest.param({"limit": 2}, ["a", "b"], id="limit"),
        pytest.param({"start": "c", "end": "b"}, [], id="inverted"),
        pytest.param({"start": "b", "end": "b"}, [], id="empty-range"),
        pytest.param({"start_after": "bb", "end": "b\uffff"}, [], id="empty-exclusive"),
        pytest.param({"prefix": "zz"}, [], id="no-match"),
        pytest.param({"prefix": ""}, ["a", "b", "ba", "bb", "b\uffff", "c", "é", "\U0001f600"],
                     id="empty-prefix"),
    ],
)
async def test_list_options(abc: Storage, options: dict[str, object], keys: list[str]) -> None:
    result = await abc.list(**options)  # type: ignore[arg-type]
    assert list(result) == keys
    assert all(result[k] == k.upper() for k in keys)
    assert abc.kv.list(**options) == result  # type: ignore[arg-type]


async def test_list_orders_by_utf8_bytes_not_code_points(store: Storage) -> None:
    # U+FFFF sorts before U+10000 by code point and by UTF-8 bytes, but U+E000 (EE 80 80)
    # sorts after a surrogate pair in UTF-16: UTF-8 byte order is what DO uses.
    keys = ["\U00010000", "\ue000", "\x7f", "\x80", "a\x00b", "a"]
    await store.put(dict.fromkeys(keys, 1))
    assert list(await store.list()) == sorted(keys, key=lambda k: k.encode())


async def test_list_refuses_start_with_start_after(store: Storage) -> None:
    with pytest.raises(TypeError, match="both start and start_after"):
        await store.list(start="a", start_after="b")


@pytest.mark.parametrize("limit", [0, -1])
async def test_list_refuses_non_positive_limit(store: Storage, limit: int) -> None:
    with pytest.raises(ValueError, match="limit must be positive"):
        await store.list(limit=limit)


# -- durability across reopen -------------------------------------------------------------


def test_committed_pairs_survive_reopen_and_uncommitted_do_not(db_path: Path) -> None:
    with open_storage(db_path) as storage:
        storage.kv.put("committed", 1)
        storage.commit()
        storage.kv.put("uncommitted", 2)
        storage.close()
    with open_storage(db_path) as storage:
        assert storage.kv.list() == {"committed": 1}


def test_context_manager_commits_on_clean_exit_and_discards_on_error(db_path: Path) -> None:
    with open_storage(db_path) as storage:
        storage.kv.put("a", 1)
    def write_then_fail() -> None:
        with open_storage(db_path) as storage:
            storage.kv.put("b", 2)
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        write_then_fail()
    with open_storage(db_path) as storage:
        assert storage.kv.list() == {"a": 1}
