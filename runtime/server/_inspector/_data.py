"""What the inspector's pages show, gathered in trio: tenants, namespaces, objects, one
object's data, and an operator's read-only SQL.

Reading never activates an object, counts as its event or takes its file lock. A live
object's database is read through the running runtime, on its own connection between its
turns (``Runtime.read_held``); any other object's file is read in a worker thread the way
``dobox inspect`` reads it (``storage._files.connect_read_only``, nothing created beside a
closed file). A tenant whose runtime is closed is not opened to be looked at.
"""

from __future__ import annotations

import functools
import re
import sqlite3
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TypeVar

import attrs
import trio

from runtime._engine import LiveObject, NotHeld, ObjectBusyError, Runtime, SocketView
from runtime._names import TENANT
from storage import DoboxError
from storage._files import connect_read_only, object_path, scan_object_files
from storage._reading import QueryResult, run_reading_sql

from ._catalog import Catalog, Listed, search
from ._snapshot import PAGE_SIZE, Snapshot, Wanted, clamp_page, page_count, read_snapshot

T = TypeVar("T")

SQL_ROWS = 500
"""Rows an operator's query shows (the rest are left unread)."""
SQL_SECONDS = 1.0
"""How long an operator's query may run. On a live object it runs on the server's thread."""
READ_SECONDS = 1.0
"""How long reading a live object's page may take (on the server's thread)."""

_OBJECT_ID = re.compile(r"[0-9a-f]{64}")


class InspectorNotFound(DoboxError):
    """No such tenant, namespace or object: a page's 404."""


class InspectorUnreadable(DoboxError):
    """The object's file cannot be read now (held by a runtime, or damaged): a page's
    503."""


@attrs.frozen
class TenantRow:
    name: str
    open: bool
    """Its runtime is open (it served a request recently)."""
    live_objects: int
    websockets: int


@attrs.frozen
class NamespaceRow:
    name: str
    class_name: str | None
    """The class bound to it now (None for a namespace left on disk by an older app)."""
    objects: int
    live_objects: int


@attrs.frozen
class ObjectsPage:
    rows: list[Listed]
    number: int
    total: int
    """Objects matching the search."""
    all_objects: int

    @property
    def pages(self) -> int:
        return page_count(self.total)


@attrs.frozen
class ObjectView:
    id: str
    live: LiveObject | None
    snapshot: Snapshot
    sockets: list[SocketView]
    read_from: str
    """How it was read: through the runtime, or from the file."""


class InspectorData:
    """The inspector's reads, for one server (its data directory, bindings and tenants)."""

    def __init__(self, data_dir: Path, bindings: Mapping[str, type],
                 open_runtimes: Callable[[], Mapping[str, Runtime]]) -> None:
        self.data_dir = data_dir
        self.bindings = dict(bindings)
        self._open_runtimes = open_runtimes
        self._catalog = Catalog()

    # -- tenants and namespaces ---------------------------------------------------------------

    def tenants(self) -> list[TenantRow]:
        """Every tenant with files or an open runtime, by name."""
        runtimes = self._open_runtimes()
        folder = self.data_dir / "tenants"
        names = set(runtimes)
        if folder.is_dir():
            names.update(child.name for child in folder.iterdir()
                         if child.is_dir() and TENANT.fullmatch(child.name))
        rows = []
        for name in sorted(names):
            runtime = runtimes.get(name)
            stats = runtime.statistics() if runtime is not None else None
            rows.append(TenantRow(name=name, open=runtime is not None,
                                  live_objects=stats.live_objects if stats else 0,
                                  websockets=stats.websockets if stats else 0))
        return rows

    async def namespaces(self, tenant: str) -> list[NamespaceRow]:
        root = self._root(tenant)
        runtime = self._open_runtimes().get(tenant)
        live = runtime.live_objects() if runtime is not None else []
        names = set(self.bindings)
        if root.is_dir():
            names.update(child.name for child in root.iterdir()
                         if child.is_dir() and child.name.isidentifier())

        def count(name: str) -> int:
            return sum(1 for _ in scan_object_files(root, name))

        rows = []
        for name in sorted(names):
            objects = await trio.to_thread.run_sync(count, name)
            cls = self.bindings.get(name)
            rows.append(NamespaceRow(
                name=name, class_name=cls.__qualname__ if cls is not None else None,
                objects=objects, live_objects=sum(1 for o in live if o.binding == name)))
        return rows

    # -- objects ---------------------------------------------------------------------------------

    async def objects(self, tenant: str, namespace: str, query: str,
                      page: int) -> ObjectsPage:
        root = self._root(tenant)
        self._check_namespace(root, namespace)
        runtime = self._open_runtimes().get(tenant)
        live = {o.id: o for o in (runtime.live_objects() if runtime else ())
                if o.binding == namespace}
        listed = await trio.to_thread.run_sync(self._catalog.list, root, namespace, live)
        found = search(listed, query)
        number = clamp_page(page, len(found))
        start = (number - 1) * PAGE_SIZE
        return ObjectsPage(rows=found[start:start + PAGE_SIZE], number=number,
                           total=len(found), all_objects=len(listed))

    async def object_view(self, tenant: str, namespace: str, object_id: str,
                          wanted: Wanted) -> ObjectView:
        runtime, path = self._object(tenant, namespace, object_id)
        snapshot, read_from = await self._read(runtime, namespace, object_id, path,
                                               lambda conn: read_snapshot(conn, wanted))
        live = None
        sockets: list[SocketView] = []
        if runtime is not None:
            live = next((o for o in runtime.live_objects()
                         if o.binding == namespace and o.id == object_id), None)
            sockets = runtime.object_sockets(namespace, object_id)
        return ObjectView(id=object_id, live=live, snapshot=snapshot, sockets=sockets,
                          read_from=read_from)

    async def query(self, tenant: str, namespace: str, object_id: str,
                    sql: str) -> QueryResult:
        """Raises: ForbiddenSqlError, LimitExceededError, InspectorUnreadable (SQLite's own
        refusals: a syntax error, no such table), InspectorNotFound."""
        runtime, path = self._object(tenant, namespace, object_id)
        result, _ = await self._read(
            runtime, namespace, object_id, path,
            lambda conn: run_reading_sql(conn, sql, max_rows=SQL_ROWS, seconds=SQL_SECONDS))
        return result

    # -- reading ---------------------------------------------------------------------------------

    async def _read(self, runtime: Runtime | None, namespace: str, object_id: str,
                    path: Path, read: Callable[[sqlite3.Connection], T]) -> tuple[T, str]:
        try:
            if runtime is not None:
                held = await runtime.read_held(namespace, object_id,
                                               functools.partial(_within, READ_SECONDS, read))
                if not isinstance(held, NotHeld):
                    return held, "through the running runtime"
            return await trio.to_thread.run_sync(_read_file, path, read), "from its file"
        except ObjectBusyError as exc:
            raise InspectorUnreadable(str(exc)) from None
        except sqlite3.Error as exc:
            if getattr(exc, "sqlite_errorcode", None) in (sqlite3.SQLITE_BUSY,
                                                          sqlite3.SQLITE_LOCKED):
                raise InspectorUnreadable("the runtime holds this object's file (it is "
                                          "starting or stopping): reload in a moment") from None
            raise InspectorUnreadable(str(exc)) from None

    def _root(self, tenant: str) -> Path:
        if not TENANT.fullmatch(tenant):
            raise InspectorNotFound(f"no tenant {tenant[:80]!r}")
        root = self.data_dir / "tenants" / tenant
        if not root.is_dir() and tenant not in self._open_runtimes():
            raise InspectorNotFound(f"no tenant {tenant!r}")
        return root

    def _check_namespace(self, root: Path, namespace: str) -> None:
        if namespace in self.bindings:
            return
        if namespace.isidentifier() and (root / namespace).is_dir():
            return
        raise InspectorNotFound(f"no namespace {namespace[:80]!r}")

    def _object(self, tenant: str, namespace: str,
                object_id: str) -> tuple[Runtime | None, Path]:
        root = self._root(tenant)
        self._check_namespace(root, namespace)
        if not _OBJECT_ID.fullmatch(object_id):
            raise InspectorNotFound(f"{object_id[:80]!r} is not an object id (64 hex digits)")
        path = object_path(root, namespace, object_id)
        if not path.is_file():
            raise InspectorNotFound(f"no object {object_id} in {tenant}/{namespace}")
        return self._open_runtimes().get(tenant), path


def _within(seconds: float, read: Callable[[sqlite3.Connection], T],
            conn: sqlite3.Connection) -> T:
    """``read(conn)``, interrupted by SQLite after ``seconds`` (a live object is read on the
    server's only thread: a page of a huge table must not stall every request). The
    progress handler is the connection's to remove (``read_between_turns`` does)."""
    deadline = time.monotonic() + seconds
    conn.set_progress_handler(lambda: time.monotonic() > deadline, 1000)
    try:
        return read(conn)
    except sqlite3.OperationalError:
        if time.monotonic() > deadline:
            raise InspectorUnreadable(f"reading this live object took more than {seconds:g} "
                                      "s, and it is read on the server's thread: try again "
                                      "when it is idle") from None
        raise


def _read_file(path: Path, read: Callable[[sqlite3.Connection], T]) -> T:
    conn = connect_read_only(path, timeout=0)
    try:
        conn.execute("PRAGMA query_only = ON")
        return read(conn)
    finally:
        conn.close()

