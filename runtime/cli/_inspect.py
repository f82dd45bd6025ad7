"""Reading a data directory without owning it: what ``dobox ls``, ``inspect`` and ``sql`` do.

Object files are opened read-only (``mode=ro``, ``PRAGMA query_only``), without the object
lock. A runtime holds the file of a live object exclusively while its SQLite connection is
open (its WAL index lives in the runtime's memory, not in a shared ``-shm`` file: see
``storage._database``), so such an object cannot be read from here: it is reported as in
use (:class:`ObjectInUseError`). A live object whose connection the runtime closed (idle
for ``idle_connection_timeout``, 10 s by default) and an evicted one can be read; a reader
delays the runtime's next use of the file by the length of its read. Nothing here ever
writes.

A data directory holds ``<namespace>/<id[:2]>/<id>.sqlite`` files; a server's holds one
such tree per tenant under ``tenants/<tenant>/``.
"""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import attrs

from storage import DoboxError, Value, decode_value

_ID = re.compile(r"[0-9a-f]{64}")


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


def root_of(data: Path, tenant: str | None) -> Path:
    root = data / "tenants" / tenant if tenant is not None else data
    if not root.is_dir():
        raise InspectError(f"{root} is not a directory")
    return root


def list_objects(data: Path, *, tenant: str | None = None,
                 namespace: str | None = None) -> list[ObjectInfo]:
    """Every object file under ``data`` (of ``tenant``, in ``namespace``), by namespace and id."""
    root = root_of(data, tenant)
    namespaces = [namespace] if namespace is not None else sorted(
        child.name for child in root.iterdir()
        if child.is_dir() and not child.name.startswith(".") and child.name != "tenants"
    )
    return [
        _info(name, path, in_use_ok=True)  # a listing does not wait for busy objects
        for name in namespaces
        for path in sorted((root / name).glob("*/*.sqlite"))
        if _ID.fullmatch(path.stem)
    ]


def find_object(data: Path, object_id: str, *, tenant: str | None = None) -> ObjectInfo:
    """The object whose id is ``object_id`` (64 hex digits), in whichever namespace.

    Raises:
        ObjectInUseError: a running dobox holds its file (waited for ``IN_USE_WAIT``).
        InspectError: not a valid id, or no such object.
    """
    object_id = object_id.lower()
    if not _ID.fullmatch(object_id):
        raise InspectError(f"{object_id!r} is not an object id (64 hex digits)")
    root = root_of(data, tenant)
    for path in sorted(root.glob(f"*/{object_id[:2]}/{object_id}.sqlite")):
        return _info(path.parent.parent.name, path)
    raise InspectError(f"no object {object_id} under {root}")


def _info(namespace: str, path: Path, *, in_use_ok: bool = False) -> ObjectInfo:
    """Raises: ObjectInUseError, unless ``in_use_ok`` (then without waiting, and the info
    says ``in_use``)."""
    size = path.stat().st_size
    wal = path.with_name(path.name + "-wal")
    if wal.exists():
        size += wal.stat().st_size
    try:
        meta: dict[object, object] = dict(_query(
            path, "SELECT key, value FROM _dobox_meta", wait=0 if in_use_ok else IN_USE_WAIT
        )[1])
    except ObjectInUseError:
        if not in_use_ok:
            raise
        return ObjectInfo(namespace=namespace, id=path.stem, name=None, class_name=None,
                          schema_version=None, alarm=None, size=size, path=path, in_use=True)
    version, alarm = meta.get("schema_version"), meta.get("alarm")
    name, class_name = meta.get("name"), meta.get("class")
    return ObjectInfo(
        namespace=namespace,
        id=path.stem,
        name=name if isinstance(name, str) else None,
        class_name=class_name if isinstance(class_name, str) else None,
        schema_version=version if isinstance(version, int) else None,
        alarm=float(alarm) if isinstance(alarm, int | float) else None,
        size=size,
        path=path,
    )


def kv_pairs(info: ObjectInfo) -> Iterator[tuple[str, Value]]:
    """The object's KV pairs in key order, values decoded (damaged ones shown as such)."""
    _, rows = _query(info.path, "SELECT key, value FROM _dobox_kv ORDER BY key")
    for raw_key, raw_value in rows:
        key = bytes(raw_key).decode("utf-8", "replace")
        try:
            yield key, decode_value(raw_value)
        except ValueError as exc:
            yield key, f"<damaged: {exc}>"


def user_tables(info: ObjectInfo) -> list[tuple[str, int]]:
    """The object's own tables and their row counts."""
    names = [
        row[0] for row in _query(
            info.path,
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite%' "
            "AND name NOT LIKE '\\_dobox\\_%' ESCAPE '\\' ORDER BY name",
        )[1]
    ]
    quoted = ['"' + name.replace('"', '""') + '"' for name in names]
    return [(name, _query(info.path, f"SELECT count(*) FROM {q}")[1][0][0])
            for name, q in zip(names, quoted, strict=True)]


def read_only_sql(info: ObjectInfo, query: str) -> tuple[list[str], list[tuple[Value, ...]]]:
    """Run ``query`` on the object's file, read-only: column names and rows.

    Raises:
        InspectError: SQLite refused it (a write, a syntax error, ...).
    """
    return _query(info.path, query)


def _query(path: Path, query: str, *, wait: float = IN_USE_WAIT
           ) -> tuple[list[str], list[tuple[Value, ...]]]:
    """Raises:
    ObjectInUseError: a runtime held the file for longer than ``wait`` seconds.
    InspectError: SQLite refused the query.
    """
    try:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=wait)
        try:
            conn.execute("PRAGMA query_only = ON")
            cursor = conn.execute(query)
            columns = [d[0] for d in cursor.description or ()]
            rows: list[tuple[Value, ...]] = cursor.fetchall()
        finally:
            conn.close()
    except sqlite3.OperationalError as exc:
        if in_use(exc):
            raise ObjectInUseError(in_use_message(path)) from exc
        raise InspectError(f"{path}: {exc}") from exc
    except sqlite3.Error as exc:
        raise InspectError(f"{path}: {exc}") from exc
    return columns, rows


def in_use(exc: sqlite3.Error) -> bool:
    """Whether ``exc`` says another connection holds the file."""
    return getattr(exc, "sqlite_errorcode", None) in (sqlite3.SQLITE_BUSY,
                                                      sqlite3.SQLITE_LOCKED)


def in_use_message(path: Path) -> str:
    return (f"{path.parent.parent.name}/{path.stem} is in use: a running dobox holds its "
            "file while it serves it. It can be read once the object has had no events for "
            "idle_connection_timeout (10 s by default: the runtime then closes its connection), "
            "or once the server stops.")
