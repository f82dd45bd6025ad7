"""The synchronous KV API (``ctx.storage.kv``), with Durable Objects' semantics.

Keys are ``str`` and are ordered by their UTF-8 bytes (they are stored as those bytes, so
SQLite's own comparison is the order). Values go through the codec. ``list`` follows
workerd's ``compileListOptions``: ``start`` inclusive, ``start_after`` exclusive, ``end``
exclusive, ``prefix`` narrowing the range, ``reverse`` changing the order but not the range,
``limit`` applied after ordering; an empty or inverted range answers ``{}`` without a query.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Mapping
from typing import Any, TypeAlias, overload

from ._codec import decode_value, encode_value
from ._database import Database
from ._errors import CodecError, InvalidKeyError, LimitExceededError
from ._limits import MAX_KEY_VALUE_SIZE, MAX_KEYS_PER_CALL
from ._meta import KV_TABLE

Value: TypeAlias = Any  # type: ignore[explicit-any]  # whatever was stored, like json.loads

_GET = f"SELECT value FROM {KV_TABLE} WHERE key = ?"
_PUT = f"INSERT OR REPLACE INTO {KV_TABLE} (key, value) VALUES (?, ?)"
_DELETE = f"DELETE FROM {KV_TABLE} WHERE key = ?"


def _list_sql(lower: str, upper: bool, reverse: bool, limit: bool) -> str:
    where = []
    if lower:
        where.append(f"key {lower} ?")
    if upper:
        where.append("key < ?")
    sql = f"SELECT key, value FROM {KV_TABLE}"
    if where:
        sql += " WHERE " + " AND ".join(where)
    sql += " ORDER BY key DESC" if reverse else " ORDER BY key"
    if limit:
        sql += " LIMIT ?"
    return sql


_LIST_SQL = {
    (lower, upper, reverse, limit): _list_sql(lower, upper, reverse, limit)
    for lower in ("", ">=", ">")
    for upper in (False, True)
    for reverse in (False, True)
    for limit in (False, True)
}


def key_bytes(key: object) -> bytes:
    """The stored form of a key: its UTF-8 bytes.

    Raises:
        InvalidKeyError: ``key`` is not a ``str``.
        LimitExceededError: the key alone is over the size limit.
        ValueError: the key holds a lone surrogate, which UTF-8 cannot represent.
    """
    if type(key) is not str:
        raise InvalidKeyError(
            f"storage keys must be str, not {type(key).__name__} ({key!r:.80})"
        )
    try:
        raw = key.encode()
    except UnicodeEncodeError as exc:
        raise ValueError(
            f"storage key {key!r:.80} is not valid Unicode (it holds a lone surrogate)"
        ) from exc
    if len(raw) > MAX_KEY_VALUE_SIZE:
        raise LimitExceededError(
            f"storage key is {len(raw):,} bytes; a key and its value together may be at "
            f"most {MAX_KEY_VALUE_SIZE:,} bytes"
        )
    return raw


def _decode_key(raw: object) -> str:
    if type(raw) is bytes:
        try:
            return raw.decode()
        except UnicodeDecodeError:
            pass
    raise CodecError(f"stored key {raw!r:.80} is damaged: it is not UTF-8 bytes")


def _encoded_pair(key: object, value: object) -> tuple[bytes, bytes]:
    raw_key = key_bytes(key)
    raw_value = encode_value(value, name=f"value for key {key!r:.60}")
    if len(raw_key) + len(raw_value) > MAX_KEY_VALUE_SIZE:
        raise LimitExceededError(
            f"key {key!r:.60} and its value take {len(raw_key) + len(raw_value):,} bytes; "
            f"a key and its value together may be at most {MAX_KEY_VALUE_SIZE:,} bytes"
        )
    return raw_key, raw_value


def _check_batch(what: str, count: int) -> None:
    if count > MAX_KEYS_PER_CALL:
        raise LimitExceededError(
            f"{what} was given {count} keys; at most {MAX_KEYS_PER_CALL} keys per call"
        )


class SyncKV:
    """``ctx.storage.kv``: get, put, delete and list, synchronously.

    Writes join the implicit transaction; nothing is durable until it commits.
    """

    __slots__ = ("_db",)

    def __init__(self, db: Database) -> None:
        self._db = db

    @overload
    def get(self, key: str, default: object = None) -> Value: ...
    @overload
    def get(self, key: list[str] | tuple[str, ...]) -> dict[str, Value]: ...

    def get(self, key: str | list[str] | tuple[str, ...], default: object = None) -> Value:
        """The value stored under ``key``, or ``default`` if there is none.

        A stored ``None`` is returned as ``None`` whatever ``default`` is. Given a list of at
        most 128 keys, returns a dict of those present, ordered by key.
        """
        return self.get_any(key, default)

    def get_any(self, key: object, default: object = None) -> Value:
        """:meth:`get` without the overloads, for callers holding a union."""
        db = self._db
        if not db.usable:
            db.check_usable()
        if type(key) is not str and isinstance(key, list | tuple):
            return self._get_many(key)
        raw_key = key_bytes(key)
        try:
            row = db.conn.execute(_GET, (raw_key,)).fetchone()
        except sqlite3.Error as exc:
            raise db.translate(exc) from exc
        return default if row is None else decode_value(row[0])

    def _get_many(self, keys: Iterable[object]) -> dict[str, Value]:
        raw_keys = sorted({key_bytes(k) for k in keys})
        _check_batch("get()", len(raw_keys))
        db = self._db
        found: dict[str, Value] = {}
        try:
            for raw_key in raw_keys:
                row = db.conn.execute(_GET, (raw_key,)).fetchone()
                if row is not None:
                    found[_decode_key(raw_key)] = decode_value(row[0])
        except sqlite3.Error as exc:
            raise db.translate(exc) from exc
        return found

    @overload
    def put(self, key: str, value: object) -> None: ...
    @overload
    def put(self, key: Mapping[str, object]) -> None: ...

    def put(self, key: str | Mapping[str, object], value: object = ...) -> None:
        """Store ``value`` under ``key``, or every pair of a dict of at most 128 entries.

        Raises:
            InvalidKeyError, UnsupportedValueError, LimitExceededError: nothing is written.
        """
        self.put_any(key, value)

    def put_any(self, key: object, value: object = ...) -> None:
        """:meth:`put` without the overloads, for callers holding a union."""
        db = self._db
        if not db.usable:
            db.check_usable()
        if type(key) is not str and isinstance(key, Mapping):
            if value is not ...:
                raise TypeError("put(entries) takes a single dict; do not pass a value too")
            _check_batch("put()", len(key))
            pairs = [_encoded_pair(k, v) for k, v in key.items()]
        elif value is ...:
            raise TypeError(f"put({key!r:.60}) needs a value: put(key, value)")
        else:
            pairs = [_encoded_pair(key, value)]
        conn = db.conn
        try:
            if not conn.in_transaction:
                conn.execute(db.begin_sql)
            if len(pairs) == 1:
                conn.execute(_PUT, pairs[0])
            else:
                conn.executemany(_PUT, pairs)
        except sqlite3.Error as exc:
            raise db.translate(exc) from exc
        db.mark_written()

    @overload
    def delete(self, key: str) -> bool: ...
    @overload
    def delete(self, key: list[str] | tuple[str, ...]) -> int: ...

    def delete(self, key: str | list[str] | tuple[str, ...]) -> bool | int:
        """Delete ``key`` and say whether it existed; given a list, say how many existed."""
        return self.delete_any(key)

    def delete_any(self, key: object) -> bool | int:
        """:meth:`delete` without the overloads, for callers holding a union."""
        db = self._db
        db.check_usable()
        many = isinstance(key, list | tuple)
        if isinstance(key, list | tuple):
            raw_keys = {key_bytes(k) for k in key}
        else:
            raw_keys = {key_bytes(key)}
        if many:
            _check_batch("delete()", len(raw_keys))
        db.begin()
        deleted = 0
        try:
            for raw_key in raw_keys:
                deleted += db.conn.execute(_DELETE, (raw_key,)).rowcount
        except sqlite3.Error as exc:
            raise db.translate(exc) from exc
        if deleted:
            db.mark_written()
        return deleted if many else deleted > 0

    def list(
        self,
        *,
        start: str | None = None,
        start_after: str | None = None,
        end: str | None = None,
        prefix: str | None = None,
        reverse: bool = False,
        limit: int | None = None,
    ) -> dict[str, Value]:
        """The pairs whose keys fall in the range, ordered by the keys' UTF-8 bytes.

        Raises:
            TypeError: ``start`` and ``start_after`` given together.
            ValueError: ``limit`` is not positive.
        """
        db = self._db
        db.check_usable()
        if start is not None and start_after is not None:
            raise TypeError("list() cannot be called with both start and start_after values")
        if limit is not None:
            if type(limit) is not int:
                raise TypeError(f"list() limit must be an int, not {type(limit).__name__}")
            if limit <= 0:
                raise ValueError(f"list() limit must be positive, not {limit}")
        lower_op, lower = "", b""
        if start is not None:
            lower_op, lower = ">=", key_bytes(start)
        elif start_after is not None:
            lower_op, lower = ">", key_bytes(start_after)
        upper = None if end is None else key_bytes(end)
        if prefix:
            raw_prefix = key_bytes(prefix)
            if not lower_op or lower < raw_prefix:
                lower_op, lower = ">=", raw_prefix
            # UTF-8 never contains 0xFF, so bumping the last byte bounds every extension.
            prefix_end = raw_prefix[:-1] + bytes([raw_prefix[-1] + 1])
            if upper is None or prefix_end < upper:
                upper = prefix_end
        if upper is not None and lower_op and lower >= upper:
            return {}
        params: list[object] = []
        if lower_op:
            params.append(lower)
        if upper is not None:
            params.append(upper)
        if limit is not None:
            params.append(limit)
        sql = _LIST_SQL[lower_op, upper is not None, bool(reverse), limit is not None]
        try:
            rows = db.conn.execute(sql, params).fetchall()
        except sqlite3.Error as exc:
            raise db.translate(exc) from exc
        return {_decode_key(raw_key): decode_value(raw_value) for raw_key, raw_value in rows}
