"""What the object page shows, read from one connection to an object's database: its
metadata, a page of its KV pairs, its own tables (schema, row counts, a page of one), and
its collections (a page of one's records with their row versions).

Plain reads of a connection, so the same code serves a live object (its own connection,
between its turns, on trio's thread) and a closed one (a read-only connection to the file,
in a worker thread). Pages are small: a live object's read holds the server's thread.
"""

from __future__ import annotations

import sqlite3

import attrs

from storage import Value, decode_value
from storage._collections._collection import REGISTRY, records_table
from storage._collections._values import decode_key, decode_record
from storage._files import peek_metadata, peek_user_tables
from storage._meta import KV_TABLE, ObjectMetadata

PAGE_SIZE = 50
"""Rows on a page of KV pairs, table rows, records or objects."""


def page_count(total: int) -> int:
    """Pages of :data:`PAGE_SIZE` for ``total`` rows (one, empty, for none)."""
    return max(1, -(-total // PAGE_SIZE))


def clamp_page(number: int, total: int) -> int:
    """``number`` (1-based), or the nearest page that exists."""
    return min(max(1, number), page_count(total))


@attrs.frozen
class Page:
    """One page of rows, and how many there are in all."""

    rows: list[tuple[Value, ...]]
    number: int
    """1-based."""
    total: int

    @property
    def pages(self) -> int:
        return page_count(self.total)


@attrs.frozen
class TableInfo:
    name: str
    sql: str
    """Its ``CREATE TABLE`` statement."""
    rows: int


@attrs.frozen
class CollectionInfo:
    name: str
    schema_version: int
    row_version: int
    """The latest row version written."""
    records: int


@attrs.frozen
class Snapshot:
    metadata: ObjectMetadata
    kv: Page
    """Keys and decoded values."""
    tables: list[TableInfo]
    table: str | None
    """The table shown, if one was asked for and exists."""
    table_columns: list[str]
    table_rows: Page | None
    collections: list[CollectionInfo]
    collection: str | None
    collection_rows: Page | None
    """Key, record (decoded), row version."""


@attrs.frozen
class Wanted:
    """What the page asks for (each page number is 1-based)."""

    kv_page: int = 1
    table: str | None = None
    table_page: int = 1
    collection: str | None = None
    collection_page: int = 1


def read_snapshot(conn: sqlite3.Connection, wanted: Wanted) -> Snapshot:
    """Everything the object page shows, from ``conn``.

    Raises:
        sqlite3.Error: the file cannot be read.
    """
    tables = [_table_info(conn, name) for name in peek_user_tables(conn)]
    table = wanted.table if any(t.name == wanted.table for t in tables) else None
    columns: list[str] = []
    table_rows = None
    if table is not None:
        quoted = _quote(table)
        columns = [row[1] for row in conn.execute(f"PRAGMA table_info({quoted})")]
        total = next(t.rows for t in tables if t.name == table)
        number = clamp_page(wanted.table_page, total)
        rows = conn.execute(f"SELECT * FROM {quoted} LIMIT ? OFFSET ?",
                            (PAGE_SIZE, (number - 1) * PAGE_SIZE)).fetchall()
        table_rows = Page(rows=[tuple(row) for row in rows], number=number, total=total)
    collections = _collections(conn)
    collection = (wanted.collection if any(c.name == wanted.collection for c in collections)
                  else None)
    collection_rows = None
    if collection is not None:
        total = next(c.records for c in collections if c.name == collection)
        number = clamp_page(wanted.collection_page, total)
        rows = conn.execute(
            f"SELECT key, value, types, row_version FROM {_quote(records_table(collection))}"
            " ORDER BY key LIMIT ? OFFSET ?", (PAGE_SIZE, (number - 1) * PAGE_SIZE)).fetchall()
        collection_rows = Page(rows=[(_record_key(key), _record(value, types), version)
                                     for key, value, types, version in rows],
                               number=number, total=total)
    return Snapshot(metadata=peek_metadata(conn), kv=_kv_page(conn, wanted.kv_page),
                    tables=tables, table=table, table_columns=columns, table_rows=table_rows,
                    collections=collections, collection=collection,
                    collection_rows=collection_rows)


def _kv_page(conn: sqlite3.Connection, wanted: int) -> Page:
    total = conn.execute(f"SELECT count(*) FROM {KV_TABLE}").fetchone()[0]
    number = clamp_page(wanted, total)
    rows = []
    for raw_key, raw_value in conn.execute(
            f"SELECT key, value FROM {KV_TABLE} ORDER BY key LIMIT ? OFFSET ?",
            (PAGE_SIZE, (number - 1) * PAGE_SIZE)):
        key = bytes(raw_key).decode("utf-8", "replace")
        try:
            value = decode_value(bytes(raw_value))
        except ValueError as exc:
            value = f"<damaged: {exc}>"
        rows.append((key, value))
    return Page(rows=rows, number=number, total=total)


def _table_info(conn: sqlite3.Connection, name: str) -> TableInfo:
    sql = conn.execute("SELECT sql FROM sqlite_master WHERE type = 'table' AND name = ?",
                       (name,)).fetchone()[0]
    rows = conn.execute(f"SELECT count(*) FROM {_quote(name)}").fetchone()[0]
    return TableInfo(name=name, sql=sql or "", rows=rows)


def _collections(conn: sqlite3.Connection) -> list[CollectionInfo]:
    exists = conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?",
                          (REGISTRY,)).fetchone()
    if exists is None:
        return []
    found = []
    for name, schema_version, row_version in conn.execute(
            f"SELECT name, schema_version, row_version FROM {REGISTRY} ORDER BY name"):
        records = conn.execute(f"SELECT count(*) FROM {_quote(records_table(name))}"
                               ).fetchone()[0]
        found.append(CollectionInfo(name=name, schema_version=schema_version,
                                    row_version=row_version, records=records))
    return found


def _record_key(stored: str) -> Value:
    try:
        return decode_key(stored)
    except ValueError:
        return stored


def _record(text: str, types: str | None) -> Value:
    try:
        return decode_record(text, types)
    except ValueError as exc:
        return f"<damaged: {exc}>"


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'
