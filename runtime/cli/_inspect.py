"""Reading a data directory without owning it: what ``dobox ls``, ``inspect`` and ``sql`` do.

Object files are opened read-only (``mode=ro``, ``PRAGMA query_only``), without the object
lock; a closed one as ``immutable``, so that reading it creates nothing beside it
(``storage._files.connect_read_only``). A runtime holds the file of a live object
exclusively while its SQLite connection is open (its WAL index lives in the runtime's
memory, not in a shared ``-shm`` file: see ``storage._database``), so such an object
cannot be read from here: it is reported as in use (:class:`ObjectInUseError`). A live
object whose connection the runtime closed (idle for ``idle_connection_timeout``, 10 s by
default) and an evicted one can be read, without delaying the runtime. Nothing here ever
writes.

Where the files are and what their engine tables hold is storage's to say
(``storage._files``); this module only reads them and reports.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TypeVar

import attrs

from actors._ids import id_from_name, namespace_key
from storage import DoboxError, ForbiddenSqlError, Value, decode_value
from storage._files import (
    IN_USE,
    OBJECT_ID,
    ObjectFile,
    connect_read_only,
    find_object_paths,
    namespace_of,
    object_path,
    peek_kv,
    peek_metadata,
    peek_user_tables,
    read_namespace,
)
from storage._meta import ObjectMetadata
from storage._reading import run_reading_sql

T = TypeVar("T")


class InspectError(DoboxError):
    """What the inspection commands report instead of a traceback."""


class ObjectInUseError(InspectError):
    """A runtime holds the object's file while it serves it."""


IN_USE_WAIT = 1.0
"""Seconds a read waits for a runtime to let go of an object's file."""


@attrs.frozen
class ObjectInfo:
    """One object file, as ``dobox ls`` shows it."""

    namespace: str
    id: str
    name: str | None
    class_name: str | None
    schema_version: int | None
    alarm: float | None
    size: int
    """Bytes of the database file and its WAL."""
    path: Path
    in_use: bool = False
    """A runtime holds the file (the other fields but the id and size are then None)."""
    tenant: str | None = None
    """The server tenant it belongs to, when listed from a server's data directory."""


def root_of(data: Path, tenant: str | None) -> Path:
    root = data / "tenants" / tenant if tenant is not None else data
    if not root.is_dir():
        raise InspectError(f"{root} is not a directory")
    return root


def list_objects(data: Path, *, tenant: str | None = None,
                 namespace: str | None = None) -> list[ObjectInfo]:
    """Every object file under ``data`` (of ``tenant``, in ``namespace``), by namespace and
    id. A server's data directory (one with ``tenants/``) without ``tenant``: every
    tenant's, by tenant.

    Raises:
        InspectError: no such tenant or namespace; a file that cannot be read.
    """
    if tenant is None and (data / "tenants").is_dir():
        return [info for served in served_tenants(data)
                for info in list_objects(data, tenant=served, namespace=namespace)]
    root = root_of(data, tenant)
    found = namespaces_under(root)
    if namespace is not None:
        if namespace not in found:
            raise InspectError(f"no namespace {namespace!r} under {root} (it has: "
                               f"{', '.join(found) or 'none'})")
        found = [namespace]
    listed = []
    for name in found:
        for file, report in read_namespace(root, name):
            if isinstance(report, str) and report != IN_USE:
                raise InspectError(report)
            listed.append(_listed(name, file, report, tenant))
    return listed


def served_tenants(data: Path) -> list[str]:
    """The tenants of a server's data directory, by name."""
    return sorted(child.name for child in (data / "tenants").iterdir() if child.is_dir())


def namespaces_under(root: Path) -> list[str]:
    """The namespaces (bindings) with objects under ``root``, by name."""
    return sorted(child.name for child in root.iterdir()
                  if child.is_dir() and not child.name.startswith(".")
                  and child.name != "tenants")


def _listed(namespace: str, file: ObjectFile, report: ObjectMetadata | str,
            tenant: str | None) -> ObjectInfo:
    if not isinstance(report, ObjectMetadata):  # in use
        return ObjectInfo(namespace=namespace, id=file.id, name=None, class_name=None,
                          schema_version=None, alarm=None, size=file.size, path=file.path,
                          in_use=True, tenant=tenant)
    return ObjectInfo(namespace=namespace, id=file.id, name=report.name,
                      class_name=report.class_name, schema_version=report.schema_version,
                      alarm=report.alarm, size=file.size, path=file.path, tenant=tenant)


def find_object(data: Path, ref: str, *, tenant: str | None = None) -> ObjectInfo:
    """The object ``ref`` names: its id (64 hex digits, in whichever namespace), or
    ``NAMESPACE/name`` (the id a runtime, or the server for ``tenant``, gives that name).

    Raises:
        ObjectInUseError: a running dobox holds its file (waited for ``IN_USE_WAIT``).
        InspectError: neither form, or no such namespace or object.
    """
    root = root_of(data, tenant)
    if OBJECT_ID.fullmatch(ref.lower()):
        object_id = ref.lower()
        for path in find_object_paths(root, object_id):
            return _info(path)
        raise InspectError(f"no object {object_id} under {root}")
    namespace, slash, name = ref.partition("/")
    if not slash or not namespace:
        raise InspectError(f"{ref[:100]!r} is not an object id (64 hex digits) or "
                           "NAMESPACE/name")
    found = namespaces_under(root)
    if namespace not in found:
        hint = (" (a server's data: give --tenant)" if tenant is None
                and (data / "tenants").is_dir() else "")
        raise InspectError(f"no namespace {namespace!r} under {root}{hint} (it has: "
                           f"{', '.join(found) or 'none'})")
    scope = f"{tenant}/" if tenant is not None else ""  # as the server scopes its tenants
    try:
        object_id = id_from_name(namespace_key(f"{scope}{namespace}"), name).hex
    except ValueError as exc:
        raise InspectError(f"{ref[:100]!r}: {exc}") from None
    path = object_path(root, namespace, object_id)
    if not path.is_file():
        raise InspectError(f"no object {namespace}/{name} under {root}")
    return _info(path)


def _info(path: Path) -> ObjectInfo:
    """Raises: ObjectInUseError (after waiting ``IN_USE_WAIT``), InspectError."""
    size = path.stat().st_size
    wal = path.with_name(path.name + "-wal")
    if wal.exists():
        size += wal.stat().st_size
    meta = _read(path, peek_metadata)
    return ObjectInfo(
        namespace=namespace_of(path),
        id=path.stem,
        name=meta.name,
        class_name=meta.class_name,
        schema_version=meta.schema_version,
        alarm=meta.alarm,
        size=size,
        path=path,
    )


def kv_pairs(info: ObjectInfo) -> Iterator[tuple[str, Value]]:
    """The object's KV pairs in key order, values decoded (damaged ones shown as such)."""
    for key, raw_value in _read(info.path, lambda conn: list(peek_kv(conn))):
        try:
            yield key, decode_value(raw_value)
        except ValueError as exc:
            yield key, f"<damaged: {exc}>"


def user_tables(info: ObjectInfo) -> list[tuple[str, int]]:
    """The object's own tables and their row counts."""
    names = _read(info.path, peek_user_tables)
    quoted = ['"' + name.replace('"', '""') + '"' for name in names]
    return [(name, _query(info.path, f"SELECT count(*) FROM {q}")[1][0][0])
            for name, q in zip(names, quoted, strict=True)]


def read_only_sql(info: ObjectInfo, query: str) -> tuple[list[str], list[tuple[Value, ...]]]:
    """Run ``query`` on the object's file, read-only: column names and rows.

    Raises:
        InspectError: SQLite refused it (a write, a syntax error, ...).
    """
    def run(conn: sqlite3.Connection) -> tuple[list[str], list[tuple[Value, ...]]]:
        result = run_reading_sql(conn, query)
        return result.columns, result.rows

    try:
        return _read(info.path, run)
    except ForbiddenSqlError as exc:
        raise InspectError(str(exc)) from None


def _query(path: Path, query: str) -> tuple[list[str], list[tuple[Value, ...]]]:
    """Column names and rows of ``query``; raises as :func:`_read`."""
    def run(conn: sqlite3.Connection) -> tuple[list[str], list[tuple[Value, ...]]]:
        cursor = conn.execute(query)
        return [d[0] for d in cursor.description or ()], cursor.fetchall()

    return _read(path, run)


def _read(path: Path, read: Callable[[sqlite3.Connection], T], *,
          wait: float = IN_USE_WAIT) -> T:
    """``read(conn)`` on a read-only, query-only connection to the file.

    Raises:
        ObjectInUseError: a runtime held the file for longer than ``wait`` seconds.
        InspectError: SQLite refused the read.
    """
    try:
        with _read_only(path, wait) as conn:
            return read(conn)
    except sqlite3.OperationalError as exc:
        if in_use(exc):
            raise ObjectInUseError(in_use_message(path)) from exc
        if getattr(exc, "sqlite_errorcode", None) == sqlite3.SQLITE_READONLY:
            raise InspectError(f"dobox only reads object files, so it refused this statement "
                               f"({exc}): write through the object instead") from exc
        raise InspectError(f"{path}: {exc}") from exc
    except sqlite3.Error as exc:
        raise InspectError(f"{path}: {exc}") from exc


@contextmanager
def _read_only(path: Path, wait: float) -> Iterator[sqlite3.Connection]:
    conn = connect_read_only(path, timeout=wait)
    try:
        conn.execute("PRAGMA query_only = ON")
        yield conn
    finally:
        conn.close()


def in_use(exc: sqlite3.Error) -> bool:
    """Whether ``exc`` says another connection holds the file."""
    return getattr(exc, "sqlite_errorcode", None) in (sqlite3.SQLITE_BUSY,
                                                      sqlite3.SQLITE_LOCKED)


def in_use_message(path: Path) -> str:
    return (f"{namespace_of(path)}/{path.stem} is in use: a running dobox holds its "
            "file while it serves it. It can be read once the object has had no events for "
            "idle_connection_timeout (10 s by default: the runtime then closes its connection), "
            "or once the server stops.")
