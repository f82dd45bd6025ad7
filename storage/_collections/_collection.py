"""Collections: typed records in an object's own database, with row versions, tombstones
and a change history (``self.todos.insert(...)``, ``self.todos.load_subset(...)``).

Each collection ``NAME`` has, inside the object's file:

- ``_dobox_c_NAME`` (key, value JSON, types, row_version): the live records;
- ``_dobox_t_NAME`` (key, row_version): tombstones of deleted keys, the newest
  ``MAX_TOMBSTONES`` kept;
- a row in ``_dobox_collections``: schema version, latest row version, and the *history
  floor*, the version before which changes can no longer be listed (tombstones pruned, or
  the collection cleared);
- rows in ``_dobox_collection_batches`` (ids of applied batches, the newest
  ``MAX_BATCH_IDS`` kept) and ``_dobox_collection_meta`` (the sync source's own state).

Every write call (one ``insert``, one ``apply(batch)``) takes the next row version, so
``pull_since(v)`` answers which keys changed or went since ``v``. Writes join the object's
implicit transaction: they are durable with its next commit, and rolled back with it.
"""

from __future__ import annotations

import base64
import json
import sqlite3
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Generic, TypeVar

import attrs

from .._database import Database
from .._errors import DoboxError, DuplicateKeyError, InvalidRecordError, RecordNotFoundError
from ._feed import MAX_QUEUED, CollectionFeed, Subscription
from ._query import Expr, Field, OrderTerm, after_condition, order_terms
from ._types import (
    Changes,
    Delete,
    FullReload,
    Insert,
    Operation,
    Page,
    Update,
    Upsert,
)
from ._values import (
    decode_key,
    decode_record,
    encode_key,
    encode_record,
)

R = TypeVar("R")
Record = dict[str, Any]  # type: ignore[explicit-any]  # a record's values are any JSON-like value

REGISTRY = "_dobox_collections"
BATCHES = "_dobox_collection_batches"
META = "_dobox_collection_meta"
MAX_TOMBSTONES = 10_000
MAX_BATCH_IDS = 1_000


def records_table(name: str) -> str:
    return f"_dobox_c_{name}"


def tombstones_table(name: str) -> str:
    return f"_dobox_t_{name}"


class Collection(Generic[R]):
    """The records of one collection in one object (``self.todos`` for a declared
    ``todos = collection(...)``). Synchronous, like ``storage.sql``."""

    def __init__(self, db: Database, name: str, key: str,
                 record_type: type[R] | None = None,
                 feeds: dict[str, CollectionFeed] | None = None) -> None:
        self._db = db
        self._feeds = {} if feeds is None else feeds
        """Live queries by collection name, shared with the Storage that tells them about
        commits."""
        self.name = name
        self.key_field = key
        self.record_type = record_type
        self._table = records_table(name)
        self._tombs = tombstones_table(name)
        self._tombstones_possible = True

    def __repr__(self) -> str:
        return f"<Collection {self.name}>"

    # -- reading --------------------------------------------------------------------------

    def get(self, key: str | int) -> R | None:
        """The record with ``key``, or None."""
        row = self._query(f"SELECT value, types FROM {self._table} WHERE key = ?",
                          (encode_key(key),)).fetchone()
        return None if row is None else self._output(decode_record(row[0], row[1]))

    def __len__(self) -> int:
        return int(self._query(f"SELECT count(*) FROM {self._table}").fetchone()[0])

    def load_subset(
        self,
        where: Expr | None = None,
        *,
        order_by: str | Field | OrderTerm | Sequence[str | Field | OrderTerm] = (),
        limit: int | None = None,
        after: str | None = None,
    ) -> Page[R]:
        """The records matching ``where``, ordered by ``order_by`` then by key, at most
        ``limit`` of them, starting after the page that returned ``after`` as its cursor.
        Everything runs in SQL: filter, order, cursor and limit.

        Raises:
            ValueError: a malformed cursor, or one from another ordering.
        """
        terms = order_terms(order_by)
        _check_limit(limit)
        # One more than the limit, to know whether there is a next page.
        rows = self._rows(where, terms, None if limit is None else limit + 1, after=after)
        more = limit is not None and len(rows) > limit
        rows = rows[:limit] if limit is not None else rows
        records = [self._output(decode_record(row[1], row[2])) for row in rows]
        cursor = _write_cursor(list(rows[-1][4:]), rows[-1][0]) if more and rows else None
        return Page(records, cursor)

    def subscribe(
        self,
        where: Expr | None = None,
        *,
        order_by: str | Field | OrderTerm | Sequence[str | Field | OrderTerm] = (),
        limit: int | None = None,
        max_queued: int = MAX_QUEUED,
        since: int | None = None,
    ) -> Subscription:
        """A live query: an async iterator of a ``Snapshot`` of the subset, then a
        ``Change`` after every commit that changes it (see ``_feed``). With
        ``since`` (the row version of the last message a subscriber had), an unlimited
        subset resumes: its first message is a ``Change`` of what changed after it (a
        ``Snapshot(resync=True)`` when that history is gone, and for a limited subset)."""
        _check_limit(limit)
        feed = self._feeds.get(self.name)
        committed = not self._db.has_uncommitted_writes
        if feed is None:
            feed = self._feeds[self.name] = CollectionFeed(self, committed)
        return feed.subscribe(where, order_by, limit, max_queued, committed, since)

    def _select(self, where: Expr | None, terms: Sequence[OrderTerm], limit: int | None,
                keys: Sequence[str] | None = None) -> list[tuple[str, int, R]]:
        """``(stored key, row version, record)`` of the matching records (among ``keys``)."""
        return [(row[0], row[3], self._output(decode_record(row[1], row[2])))
                for row in self._rows(where, terms, limit, keys=keys)]

    def _rows(  # type: ignore[explicit-any]  # sqlite3 rows
        self, where: Expr | None, terms: Sequence[OrderTerm], limit: int | None, *,
        after: str | None = None, keys: Sequence[str] | None = None,
    ) -> list[Any]:
        params: list[object] = []
        conditions = []
        if where is not None:
            conditions.append(where.compile(params))
        if after is not None:
            values, key = _read_cursor(after, len(terms))
            conditions.append(after_condition(terms, values, key, params))
        if keys is not None:
            conditions.append("key IN (SELECT value FROM json_each(?))")
            params.append(json.dumps(list(keys)))
        columns = "".join(f", {term.field.sql}" for term in terms)
        sql = f"SELECT key, value, types, row_version{columns} FROM {self._table}"
        if conditions:
            sql += " WHERE " + " AND ".join(conditions)
        sql += " ORDER BY " + ", ".join([*(term.sql for term in terms), "key"])
        if limit is not None:
            sql += " LIMIT ?"
            params.append(limit)
        return list(self._query(sql, tuple(params)).fetchall())

    def pull_since(self, row_version: int) -> Changes | FullReload:
        """Keys changed and deleted since ``row_version``, or ``FullReload`` when the
        history kept does not reach back that far."""
        latest, changed, deleted = self._changes_since(row_version)
        if changed is None or deleted is None:
            return FullReload(latest)
        return Changes(latest, [decode_key(k) for k in changed],
                       [decode_key(k) for k in deleted])

    def _changes_since(self, row_version: int
                       ) -> tuple[int, list[str] | None, list[str] | None]:
        """``(latest row version, changed, deleted)`` in stored keys, both None when the
        history does not reach back to ``row_version``. One query when nothing changed (a
        commit of a read-only turn, for live queries)."""
        latest, floor = self._versions()
        if row_version < floor or row_version > latest:
            return latest, None, None
        if row_version == latest:
            return latest, [], []
        changed = [k for (k,) in self._query(
            f"SELECT key FROM {self._table} WHERE row_version > ? ORDER BY row_version, key",
            (row_version,))]
        deleted = [k for (k,) in self._query(
            f"SELECT key FROM {self._tombs} WHERE row_version > ? ORDER BY row_version, key",
            (row_version,))]
        return latest, changed, deleted

    def get_metadata(self, key: str, default: object = None) -> Any:  # type: ignore[explicit-any]  # JSON
        """A value the collection's sync source kept (its upstream cursor, say), or
        ``default``. Metadata is cleared with the collection's data on a schema change."""
        row = self._query(f"SELECT value FROM {META} WHERE collection = ? AND key = ?",
                          (self.name, key)).fetchone()
        return default if row is None else json.loads(row[0])

    def set_metadata(self, key: str, value: object) -> None:
        """Keep a JSON value under ``key`` (``None`` deletes it), in the implicit
        transaction, so it commits with the writes it describes."""
        db = self._db
        db.check_usable()
        db.begin()
        if value is None:
            db.execute(f"DELETE FROM {META} WHERE collection = ? AND key = ?",
                       (self.name, key))
        else:
            try:
                text = json.dumps(value, allow_nan=False)
            except (TypeError, ValueError) as exc:
                raise InvalidRecordError(f"collection metadata is JSON: {exc}") from exc
            db.execute(f"INSERT OR REPLACE INTO {META} (collection, key, value) "
                       "VALUES (?, ?, ?)", (self.name, key, text))
        db.mark_written()

    @property
    def row_version(self) -> int:
        """The version of the latest write (0 for a collection never written)."""
        return self._versions()[0]

    # -- writing ----------------------------------------------------------------------------

    def insert(self, record: object) -> R:
        """Add a record whose key is new; the record as stored.

        Raises:
            DuplicateKeyError: its key is taken.
            InvalidRecordError: the record type refuses it (the message names the field).
            UnsupportedValueError: a value of a type the collection cannot store (also a
                TypeError; the message names its path).
        """
        return self._write([Insert(record)])[0]  # type: ignore[return-value]  # an insert returns its record

    def upsert(self, record: object) -> R:
        """Add the record, or replace the one with its key."""
        return self._write([Upsert(record)])[0]  # type: ignore[return-value]  # as insert

    def update(self, key: str | int, changes: Mapping[str, object]) -> R:
        """Merge ``changes`` into the record's top-level fields (a shallow merge).

        Raises:
            RecordNotFoundError: no record has ``key``.
        """
        return self._write([Update(key, changes)])[0]  # type: ignore[return-value]  # as insert

    def delete(self, key: str | int) -> bool:
        """Delete the record with ``key``; whether there was one."""
        return bool(self._write([Delete(key)])[0])

    def apply(self, batch: Iterable[Operation], *, batch_id: str | None = None) -> bool:
        """Apply every operation in one transaction, at one row version: all or nothing.
        With ``batch_id``, a batch applied before (among the last 1,000) is skipped: False.

        Raises:
            whatever an operation raises; nothing of the batch is then written.
        """
        operations = list(batch)
        if batch_id is not None and self._query(
                f"SELECT 1 FROM {BATCHES} WHERE collection = ? AND batch_id = ?",
                (self.name, batch_id)).fetchone():
            return False
        self._write(operations, batch_id=batch_id)
        return True

    def _write(self, operations: Sequence[Operation],
               batch_id: str | None = None) -> list[object]:
        db = self._db
        db.check_usable()
        db.begin()
        savepoint = "dobox_collection_write"
        db.execute(f"SAVEPOINT {savepoint}")
        try:
            # One query for the next version and whether any tombstone exists: a write
            # over a deleted key removes its tombstone, and with none at all (a collection
            # never deleted from) that statement per record is skipped.
            row = db.execute(f"SELECT row_version, EXISTS (SELECT 1 FROM {self._tombs}) "
                             f"FROM {REGISTRY} WHERE name = ?", (self.name,)).fetchone()
            if row is None:
                raise DoboxError(f"collection {self.name!r} is not prepared in this object")
            version = int(row[0]) + 1
            self._tombstones_possible = bool(row[1])
            results = [self._one(operation, version) for operation in operations]
            db.execute(f"UPDATE {REGISTRY} SET row_version = ? WHERE name = ?",
                       (version, self.name))
            if batch_id is not None:
                db.execute(f"INSERT INTO {BATCHES} (collection, batch_id, row_version) "
                           "VALUES (?, ?, ?)", (self.name, batch_id, version))
                db.execute(f"DELETE FROM {BATCHES} WHERE collection = ? AND row_version <= ?",
                           (self.name, version - MAX_BATCH_IDS))
            if any(isinstance(operation, Delete) for operation in operations):
                self._prune_tombstones()  # only deletes add tombstones
        except BaseException:
            db.execute(f"ROLLBACK TO {savepoint}")
            db.execute(f"RELEASE {savepoint}")
            raise
        db.execute(f"RELEASE {savepoint}")
        db.mark_written()
        return results

    def _one(self, operation: Operation, version: int) -> object:
        if isinstance(operation, Insert | Upsert):
            record = self._input(operation.record)
            key = encode_key(record.get(self.key_field))
            self._store(key, record, version, replace=isinstance(operation, Upsert))
            return self._output(record)
        if isinstance(operation, Update):
            key = encode_key(operation.key)
            row = self._query(f"SELECT value, types FROM {self._table} WHERE key = ?",
                              (key,)).fetchone()
            if row is None:
                raise RecordNotFoundError(f"{self.name} has no record with key "
                                          f"{operation.key!r} to update")
            changes = dict(operation.changes)
            if self.key_field in changes and changes[self.key_field] != operation.key:
                raise InvalidRecordError(f"update() cannot change the key field "
                                         f"{self.key_field!r}")
            merged = self._input({**decode_record(row[0], row[1]), **changes})
            self._store(key, merged, version)
            return self._output(merged)
        if isinstance(operation, Delete):
            key = encode_key(operation.key)
            deleted = self._db.execute(f"DELETE FROM {self._table} WHERE key = ?",
                                       (key,)).rowcount
            if deleted:
                self._db.execute(f"INSERT OR REPLACE INTO {self._tombs} (key, row_version) "
                                 "VALUES (?, ?)", (key, version))
                self._tombstones_possible = True
            return bool(deleted)
        raise TypeError(f"a batch holds Insert, Upsert, Update and Delete, not {operation!r}")

    def _store(self, key: str, record: Record, version: int, *, replace: bool = True) -> None:
        text, types = encode_record(record)
        verb = "INSERT OR REPLACE" if replace else "INSERT"
        try:
            self._db.conn.execute(f"{verb} INTO {self._table} (key, value, types, row_version) "
                                  "VALUES (?, ?, ?, ?)", (key, text, types, version))
        except sqlite3.IntegrityError:
            raise DuplicateKeyError(f"{self.name} has a record with key {decode_key(key)!r} "
                                    "already; upsert() replaces it") from None
        except sqlite3.Error as exc:
            raise self._db.translate(exc) from exc
        if self._tombstones_possible:
            self._db.execute(f"DELETE FROM {self._tombs} WHERE key = ?", (key,))

    def _prune_tombstones(self) -> None:
        row = self._db.execute(
            f"SELECT row_version FROM {self._tombs} ORDER BY row_version DESC "
            "LIMIT 1 OFFSET ?", (MAX_TOMBSTONES,)).fetchone()
        if row is not None:  # more than MAX_TOMBSTONES: forget the oldest
            self._db.execute(f"DELETE FROM {self._tombs} WHERE row_version <= ?", row)
            self._db.execute(f"UPDATE {REGISTRY} SET history_floor = max(history_floor, ?) "
                             "WHERE name = ?", (row[0], self.name))

    # -- records in and out -------------------------------------------------------------

    def _input(self, record: object) -> Record:
        """A record as a dict: through the record type's validation when there is one."""
        record_type = self.record_type
        if record_type is not None and attrs.has(record_type):
            if isinstance(record, Mapping):
                given: Mapping[str, object] = record
                try:
                    record = record_type(**given)
                except (TypeError, ValueError) as exc:
                    raise InvalidRecordError(
                        f"{self.name}: not a valid {record_type.__name__}: "
                        f"{_explain(record_type, given, exc)}") from exc
            if not isinstance(record, record_type):
                raise InvalidRecordError(f"{self.name} holds {record_type.__name__} records, "
                                         f"not {type(record).__name__}")
            try:
                attrs.validate(record)
            except (TypeError, ValueError) as exc:
                raise InvalidRecordError(
                    f"{self.name}: not a valid {record_type.__name__}: "
                    f"{_explain(record_type, {}, exc)}") from exc
            record = attrs.asdict(record, recurse=False)
        if not isinstance(record, Mapping):
            raise InvalidRecordError(f"a record is a dict, not {type(record).__name__}")
        if self.key_field not in record:
            raise InvalidRecordError(f"{self.name} records need a {self.key_field!r} field "
                                     "(the collection's key)")
        return dict(record)

    def _output(self, record: Record) -> R:
        if self.record_type is not None and attrs.has(self.record_type):
            return self.record_type(**record)  # type: ignore[return-value]  # R is the record type
        return record  # type: ignore[return-value]  # R is Record without a record type

    def _versions(self) -> tuple[int, int]:
        row = self._query(f"SELECT row_version, history_floor FROM {REGISTRY} WHERE name = ?",
                          (self.name,)).fetchone()
        if row is None:
            raise DoboxError(f"collection {self.name!r} is not prepared in this object")
        return int(row[0]), int(row[1])

    def _query(self, sql: str, params: tuple[object, ...] = ()) -> Any:  # type: ignore[explicit-any]  # a sqlite3 cursor
        db = self._db
        db.check_usable()
        db.begin()
        return db.execute(sql, params)


def _check_limit(limit: object) -> None:
    if limit is not None and (not isinstance(limit, int) or isinstance(limit, bool)
                              or limit < 1):
        raise ValueError(f"limit must be an int >= 1, not {limit!r}")


def _write_cursor(values: list[object], key: str) -> str:
    return base64.urlsafe_b64encode(json.dumps([values, key]).encode()).decode()


def _read_cursor(cursor: str, terms: int) -> tuple[list[object], str]:
    try:
        values, key = json.loads(base64.urlsafe_b64decode(cursor.encode()))
    except (ValueError, TypeError) as exc:
        raise ValueError(f"not a cursor from load_subset(): {cursor[:40]!r}") from exc
    if not isinstance(values, list) or len(values) != terms or not isinstance(key, str):
        raise ValueError("this cursor comes from a load_subset() with another order_by")
    return values, key


def _explain(record_type: type, given: Mapping[str, object], exc: Exception) -> str:
    """What a record type's ``__init__`` or validators refused, naming the field.

    attrs validators raise ``TypeError(message, attribute, ...)``: their message alone names
    the field. A converter's error does not; the converters are run again, one field at a
    time, to find the one that raised (only on this failure path).
    """
    if len(exc.args) > 1 and isinstance(exc.args[1], attrs.Attribute):
        return str(exc.args[0])
    for field in attrs.fields(record_type):
        converter = field.converter
        if field.alias not in given or not callable(converter):
            continue
        try:
            converter(given[field.alias])
        except Exception as inner:  # what the converter raised is the answer
            return f"{field.name}: {inner}"
    return str(exc)
