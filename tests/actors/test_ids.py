"""Object ids: format, determinism, and rejection of malformed or foreign ids."""

from __future__ import annotations

import pytest

from actors import MAX_NAME_BYTES, InvalidObjectId, InvalidObjectName, ObjectId
from actors._ids import id_from_name, id_from_string, namespace_key, new_unique_id

ROOM = namespace_key("ROOM")
USER = namespace_key("USER")


def test_ids_are_64_lowercase_hex_digits() -> None:
    for object_id in (id_from_name(ROOM, "lobby"), new_unique_id(ROOM)):
        assert len(object_id.hex) == 64
        assert object_id.hex == object_id.hex.lower()
        int(object_id.hex, 16)
        assert str(object_id) == object_id.hex


def test_names_map_to_the_same_id_per_namespace_only() -> None:
    assert id_from_name(ROOM, "lobby") == id_from_name(ROOM, "lobby")
    assert id_from_name(ROOM, "lobby").name == "lobby"
    assert id_from_name(ROOM, "lobby") != id_from_name(ROOM, "Lobby")
    assert id_from_name(ROOM, "lobby") != id_from_name(USER, "lobby")


def test_unique_ids_are_unique_and_nameless() -> None:
    ids = {new_unique_id(ROOM).hex for _ in range(1000)}
    assert len(ids) == 1000
    assert new_unique_id(ROOM).name is None


def test_round_trip_through_string() -> None:
    original = id_from_name(ROOM, "lobby")
    parsed = id_from_string(ROOM, str(original))
    assert parsed == original
    assert parsed.equals(original)
    assert parsed.name is None  # as in DO: a parsed id does not know its name
    assert id_from_string(ROOM, original.hex.upper()) == original


@pytest.mark.parametrize(
    "text",
    ["", "abc", "g" * 64, "0" * 63, "0" * 65, " " + "0" * 63, "0" * 64 + "\n"],
    ids=repr,
)
def test_malformed_ids_are_refused(text: str) -> None:
    with pytest.raises(InvalidObjectId, match="must be 64 hex digits"):
        id_from_string(ROOM, text)


def test_ids_of_another_namespace_are_refused() -> None:
    foreign = id_from_name(USER, "lobby").hex
    with pytest.raises(InvalidObjectId, match="not valid for this namespace"):
        id_from_string(ROOM, foreign)
    # Any 64 hex digits are not an id: the MAC must match.
    with pytest.raises(InvalidObjectId, match="not valid for this namespace"):
        id_from_string(ROOM, "0" * 64)
    assert isinstance(InvalidObjectId("x"), ValueError)


def test_name_must_be_a_string() -> None:
    with pytest.raises(TypeError, match="object names are str"):
        id_from_name(ROOM, 42)  # type: ignore[arg-type]
    assert ObjectId("a" * 64, "n") == ObjectId("a" * 64, None)


@pytest.mark.parametrize(
    ("name", "message"),
    [
        pytest.param("", "names are not empty", id="empty"),
        pytest.param(".", "names are not empty, '.' or '..'", id="dot"),
        pytest.param("..", "names are not empty, '.' or '..'", id="dot-dot"),
        pytest.param("\udcff", "lone surrogate", id="surrogate"),
        pytest.param("x" * 1025, "1,025 bytes long; names are at most 1,024", id="long"),
        pytest.param("é" * 513, "1,026 bytes long", id="long-in-bytes"),
    ],
)
def test_invalid_names_are_refused(name: str, message: str) -> None:
    with pytest.raises(InvalidObjectName, match=message) as info:
        id_from_name(ROOM, name)
    assert isinstance(info.value, ValueError)


def test_names_up_to_the_limit_are_accepted() -> None:
    for name in ("x" * MAX_NAME_BYTES, "é" * (MAX_NAME_BYTES // 2), "...", " ", "a/b"):
        assert id_from_name(ROOM, name).name == name
