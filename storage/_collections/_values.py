"""How a collection stores keys and records, and how query literals meet stored values.

**Keys** are ``str`` or ``int`` (64-bit), stored as text that never lets ``1`` and ``"1"``
collide and that sorts ints numerically before strings: ``n:`` and the int offset by 2**63
in 20 digits, or ``s:`` and the string.

**Records** are dicts with ``str`` keys, stored as JSON so SQLite's ``json_extract`` can
query and index them. Values JSON cannot hold keep their type through a *types* list stored
beside the record, and are written as JSON values that sort as the originals do:

========================  ============================================  ==================
Python value              stored in the JSON                            sorts
========================  ============================================  ==================
aware ``datetime``        ISO 8601 in UTC, microseconds always present  by instant
``date``                  ``YYYY-MM-DD``                                by day
``bytes``                 lowercase hex                                 bytewise
``tuple``                 a list                                        as a list
``float("inf")``/``-inf`` the largest/smallest finite float             at the ends
``float("nan")``          ``null``                                      with nulls
ints beyond 64 bits       the exact digits                              as SQLite's REAL
========================  ============================================  ==================

Naive datetimes are refused: they have no order against aware ones. Query literals go
through :func:`sql_literal`, the same conversion, so ``field("due") < some_datetime``
compares like with like.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import sys
from collections.abc import Mapping
from typing import Any

from .._errors import InvalidRecordError, UnsupportedValueError

KEY_OFFSET = 1 << 63
_UTC = dt.UTC
TypeTags = list[tuple[list[str | int], str]]


def encode_key(key: object) -> str:
    """The stored form of a record key.

    Raises:
        InvalidRecordError: not a str or a 64-bit int (bools are refused too).
    """
    if isinstance(key, str):
        return "s:" + key
    if isinstance(key, int) and not isinstance(key, bool):
        if not -KEY_OFFSET <= key < KEY_OFFSET:
            raise InvalidRecordError(f"an int key must fit in 64 bits, not {key}")
        return f"n:{key + KEY_OFFSET:020d}"
    raise InvalidRecordError(f"a key is a str or an int, not {type(key).__name__} ({key!r})")


def decode_key(stored: str) -> str | int:
    if stored.startswith("s:"):
        return stored[2:]
    if stored.startswith("n:"):
        return int(stored[2:]) - KEY_OFFSET
    raise InvalidRecordError(f"a stored key must start with s: or n:, not {stored[:10]!r}")


def encode_record(record: Mapping[str, object]) -> tuple[str, str | None]:
    """``(JSON text, types JSON or None)`` for a record.

    Raises:
        UnsupportedValueError: a value of a type the collection cannot store, named by its
            path (also a TypeError, as json.dumps raises).
        InvalidRecordError: a naive datetime.
    """
    tags: TypeTags = []
    plain = _plain(record, [], tags)
    text = json.dumps(plain, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
    return text, (json.dumps(tags, separators=(",", ":")) if tags else None)


def decode_record(text: str, types: str | None) -> dict[str, Any]:  # type: ignore[explicit-any]  # a record's values are any JSON-like value
    record: dict[str, Any] = json.loads(text)  # type: ignore[explicit-any]  # as above
    if types is not None:
        # Tags were recorded parents first: restore children first, so that a tuple is
        # made from a list whose items are already restored.
        for path, tag in reversed(json.loads(types)):
            _restore(record, path, tag)
    return record


def sql_literal(value: object) -> object:
    """A query literal as SQLite compares it with ``json_extract`` of a stored value.

    Raises:
        InvalidRecordError: a value no stored field can equal (a dict, a naive datetime).
    """
    if isinstance(value, bool):
        return int(value)
    if value is None or isinstance(value, int | str):
        return value
    if isinstance(value, float):
        if math.isnan(value):
            return None
        if math.isinf(value):
            return math.copysign(sys.float_info.max, value)
        return value
    if isinstance(value, dt.datetime):
        return _datetime_text(value, "the literal")
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value).hex()
    raise InvalidRecordError(f"cannot compare a field with {type(value).__name__} {value!r}")


def _datetime_text(value: dt.datetime, where: str) -> str:
    if value.tzinfo is None or value.utcoffset() is None:
        raise InvalidRecordError(
            f"{where} is a naive datetime; give it a tzinfo (datetime.UTC, say): naive "
            "datetimes have no order against aware ones")
    return value.astimezone(_UTC).isoformat(timespec="microseconds")


_SCALARS = frozenset({str, int, bool, type(None)})
"""Types stored as they are (exactly: subclasses, such as IntEnum, take the long way)."""


def _plain(value: object, path: list[str | int], tags: TypeTags) -> object:
    if value is None or isinstance(value, bool | str):
        return value
    if isinstance(value, int):
        return value  # exact in the JSON text; json.loads gives it back exactly
    if isinstance(value, float):
        if math.isnan(value):
            tags.append((list(path), "nan"))
            return None
        if math.isinf(value):
            tags.append((list(path), "inf" if value > 0 else "-inf"))
            return math.copysign(sys.float_info.max, value)
        return value
    if isinstance(value, Mapping):
        result = {}
        for name, item in value.items():
            if type(name) is not str:
                raise UnsupportedValueError(f"{_describe(path)} has a {type(name).__name__} "
                                            f"key {name!r}; record keys are str")
            # Most values are plain scalars: no call, no path list for them.
            kind = type(item)
            if kind in _SCALARS or (kind is float and math.isfinite(item)):
                result[name] = item
            else:
                result[name] = _plain(item, [*path, name], tags)
        return result
    if isinstance(value, list | tuple):
        if isinstance(value, tuple):
            tags.append((list(path), "tuple"))
        return [item if type(item) in _SCALARS else _plain(item, [*path, index], tags)
                for index, item in enumerate(value)]
    if isinstance(value, dt.datetime):
        tags.append((list(path), "datetime"))
        return _datetime_text(value, _describe(path))
    if isinstance(value, dt.date):
        tags.append((list(path), "date"))
        return value.isoformat()
    if isinstance(value, bytes | bytearray | memoryview):
        tags.append((list(path), "bytes"))
        return bytes(value).hex()
    raise UnsupportedValueError(f"{_describe(path)} is a {type(value).__name__}, which a "
                                "collection cannot store (JSON values, datetime, date, bytes)")


def _describe(path: list[str | int]) -> str:
    if not path:
        return "the record"
    return "field " + "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in path)[1:]


def _restore(record: dict[str, Any], path: list[str | int], tag: str) -> None:  # type: ignore[explicit-any]  # as decode_record
    if not path:
        return
    parent: Any = record  # type: ignore[explicit-any]  # dicts and lists on the way down
    for step in path[:-1]:
        parent = parent[step]
    last = path[-1]
    value = parent[last]
    if tag == "tuple":
        restored: object = tuple(value)
    elif tag == "datetime":
        restored = dt.datetime.fromisoformat(value)
    elif tag == "date":
        restored = dt.date.fromisoformat(value)
    elif tag == "bytes":
        restored = bytes.fromhex(value)
    elif tag == "nan":
        restored = math.nan
    elif tag in ("inf", "-inf"):
        restored = float(tag)
    else:
        raise InvalidRecordError(f"unknown stored type tag {tag!r}")
    parent[last] = restored
