"""``Storage``: one object's storage as the object sees it (``ctx.storage``), plus the hooks
the runtime drives (commit at the end of a turn, rollback on reset, schema policies).

Open one with :func:`open_storage`; close it with :meth:`Storage.close` or ``with``.
"""

from __future__ import annotations

import datetime as dt
import inspect
import math
import os
import sqlite3
import time
from collections.abc import Awaitable, Callable, Mapping
from contextlib import AbstractAsyncContextManager
from types import TracebackType
from typing import Any, TypeVar, overload

from ._collections import (
    Collection,
    CollectionFeed,
    CollectionSpec,
    mark_collection_synced,
    prepare_collection,
)
from ._database import Database, Durability
from ._errors import DoboxError, StorageError, StorageIOError, TransactionError
from ._kv import SyncKV, Value
from ._limits import MAX_TRANSACTION_DEPTH
from ._meta import (
    ALARM_KEY,
    ALARM_RETRY_KEY,
    SYNC_PENDING_KEY,
    ObjectMetadata,
    ensure_engine_tables,
    metadata_from,
    read_meta,
    write_meta,
)
from ._schema import (
    Migration,
    SchemaOutcome,
    SchemaPolicy,
    apply_schema_policy,
    delete_all_contents,
)
from ._sql import SqlStorage

T = TypeVar("T")

_SAVEPOINTS = [f"_dobox_sp_{depth}" for depth in range(MAX_TRANSACTION_DEPTH)]


def open_storage(
    path: str | os.PathLike[str],
    *,
    durability: Durability = "full",
    name: str | None = None,
    namespace: str | None = None,
    class_name: str | None = None,
    label: str | None = None,
    shared: bool = False,
) -> Storage:
    """Open (creating if needed) the object database at ``path`` and lock it.

    The file is opened in WAL mode with ``synchronous`` set by ``durability``. ``name``,
    ``namespace`` and ``class_name``, when given, are recorded in the file for listing and
    inspection. Errors name the file ``label`` (default: its path). ``shared`` lets a
    replicator (Litestream) read the file beside this connection.

    Raises:
        ObjectLockedError: another process (or another storage here) holds the file.
        DatabaseCorruptError: the file is not a SQLite database or is damaged; it is left
            untouched.
        StorageError: the file cannot be opened, or was written by a newer dobox.

    Close it with :meth:`Storage.close` (or use it as a context manager).
    """
    db = Database.open(path, durability=durability, label=label, shared=shared)
    try:
        with db.setting_up():
            ensure_engine_tables(db)
            storage = Storage(db)
            # A new file's tables and identity commit together: one commit, not two.
            storage._write_identity(name=name, namespace=namespace, class_name=class_name)
            db.commit()
    except BaseException:
        db.close()
        raise
    return storage


class Storage:
    """One object's storage: async KV (as DO's ``ctx.storage``), ``kv``, ``sql``,
    transactions, the alarm, and the commit hooks the runtime uses.

    Writes join an *implicit transaction* that lasts until :meth:`commit` (or ``await``
    :meth:`sync`). As a context manager it commits on a clean exit and discards on an
    exception; :meth:`close` alone discards what is uncommitted.
    """

    __slots__ = ("_collections", "_db", "_feeds", "exclusive", "kv", "sql")

    def __init__(self, db: Database) -> None:
        self._db = db
        self.kv = SyncKV(db)
        """The KV API, synchronously."""
        self.sql = SqlStorage(db)
        """The SQL API."""
        self._collections: dict[str, Collection[Any]] = {}  # type: ignore[explicit-any]  # records as each spec says
        self._feeds: dict[str, CollectionFeed] = {}
        """Live queries, told after every commit (see _collections/_feed.py)."""
        self.exclusive: Callable[[], AbstractAsyncContextManager[object]] | None = None
        """Set by the runtime: holds the object's other events while :meth:`transaction`
        runs (DO runs ``transaction`` inside ``blockConcurrencyWhile``)."""

    # -- collections --------------------------------------------------------------------------

    def prepare_collection(self, spec: CollectionSpec) -> bool:
        """Create or check a declared collection (the runtime does it on activation);
        whether it was cleared and awaits its ``sync``. See ``_collections._spec``.

        Raises:
            SchemaMismatchError: a sync-absent collection stores another schema version.
            MigrationError: one of its migrations raised.
        """
        return prepare_collection(self._db, spec)

    def collection(self, spec: CollectionSpec) -> Collection[Any]:  # type: ignore[explicit-any]  # records as the spec says
        """The records of a prepared collection."""
        records = self._collections.get(spec.name)
        if records is None:
            records = Collection(self._db, spec.name, spec.key, spec.record_type,
                                 self._feeds)
            self._collections[spec.name] = records
        return records

    def mark_collection_synced(self, spec: CollectionSpec) -> None:
        """The collection's ``sync`` refilled it after a clear (with its writes)."""
        mark_collection_synced(self._db, spec.name)

    # -- async KV, as ctx.storage ---------------------------------------------------------

    @overload
    async def get(self, key: str, default: object = None) -> Value: ...
    @overload
    async def get(self, key: list[str] | tuple[str, ...]) -> dict[str, Value]: ...

    async def get(self, key: str | list[str] | tuple[str, ...], default: object = None) -> Value:
        """See :meth:`SyncKV.get`. Completes without yielding to other tasks, as DO's
        SQLite-backed storage does."""
        return self.kv.get_any(key, default)

    @overload
    async def put(self, key: str, value: object, *, allow_unconfirmed: bool = False
                  ) -> None: ...
    @overload
    async def put(self, key: Mapping[str, object], *, allow_unconfirmed: bool = False
                  ) -> None: ...

    async def put(self, key: str | Mapping[str, object], value: object = ..., *,
                  allow_unconfirmed: bool = False) -> None:
        """See :meth:`SyncKV.put`. With ``allow_unconfirmed``, results and calls of the
        object need not wait for this write to be durable (it is committed soon all the
        same; if that commit fails, the object is reset)."""
        if allow_unconfirmed:
            with self._db.unconfirmed():
                self.kv.put_any(key, value)
        else:
            self.kv.put_any(key, value)

    @overload
    async def delete(self, key: str, *, allow_unconfirmed: bool = False) -> bool: ...
    @overload
    async def delete(self, key: list[str] | tuple[str, ...], *,
                     allow_unconfirmed: bool = False) -> int: ...

    async def delete(self, key: str | list[str] | tuple[str, ...], *,
                     allow_unconfirmed: bool = False) -> bool | int:
        """See :meth:`SyncKV.delete`; ``allow_unconfirmed`` as for :meth:`put`."""
        if allow_unconfirmed:
            with self._db.unconfirmed():
                return self.kv.delete_any(key)
        return self.kv.delete_any(key)

    async def list(
        self,
        *,
        start: str | None = None,
        start_after: str | None = None,
        end: str | None = None,
        prefix: str | None = None,
        reverse: bool = False,
        limit: int | None = None,
    ) -> dict[str, Value]:
        """See :meth:`SyncKV.list`."""
        return self.kv.list(
            start=start, start_after=start_after, end=end, prefix=prefix, reverse=reverse,
            limit=limit,
        )

    async def delete_all(self) -> None:
        """Atomically delete every KV pair, every table, view, index and trigger, and the
        alarm. The object's identity and schema version stay.

        Raises:
            TransactionError: called inside ``transaction``/``transaction_sync``.
        """
        self.delete_all_sync()

    def delete_all_sync(self) -> None:
        """:meth:`delete_all`, synchronously (for migrations and the schema policies)."""
        db = self._db
        db.check_usable()
        if db.depth:
            raise TransactionError("Cannot call delete_all() within a transaction")
        delete_all_contents(db)

    # -- transactions ---------------------------------------------------------------------

    def transaction_sync(self, fn: Callable[[], T]) -> T:
        """Run ``fn()`` in a savepoint: if it raises, its writes are rolled back and the
        exception re-raised (the object is not reset). Calls nest.

        Raises:
            TypeError: ``fn`` is a coroutine function (use :meth:`transaction`).
            TransactionError: nested more than 64 deep.
        """
        with _Savepoint(self._db):
            result = fn()
            if inspect.isawaitable(result):
                if inspect.iscoroutine(result):
                    result.close()
                raise TypeError(
                    "transaction_sync() needs a synchronous function; use "
                    "await storage.transaction(fn) for an async one"
                )
            return result

    async def transaction(self, fn: Callable[[], Awaitable[T]]) -> T:
        """Run ``await fn()`` in a savepoint, rolled back if it raises (then re-raised).

        Every storage call inside ``fn``, across its awaits, belongs to the transaction; the
        runtime holds the object's other events meanwhile (as DO runs ``transaction``
        inside ``blockConcurrencyWhile``).
        """
        if self.exclusive is None:
            return await self._transaction(fn)
        async with self.exclusive():
            return await self._transaction(fn)

    async def _transaction(self, fn: Callable[[], Awaitable[T]]) -> T:
        with _Savepoint(self._db):
            result = fn()
            if not inspect.isawaitable(result):
                raise TypeError(
                    "transaction() needs an async function; use "
                    "storage.transaction_sync(fn) for a plain one"
                )
            return await result

    async def sync(self) -> None:
        """Commit everything written so far, durably, with the fsync in a worker thread.

        Raises:
            TransactionError: inside ``transaction``/``transaction_sync``.
            TransactionAbortedError, StorageFullError, StorageIOError: see :meth:`commit`.
        """
        if self.exclusive is None:
            await self.commit_in_thread()
        else:  # an object's other events wait: none may write while the fsync runs
            async with self.exclusive():
                await self.commit_in_thread()

    async def commit_in_thread(self) -> None:
        """:meth:`sync` for a caller that already keeps everything else off this storage
        until it returns (the runtime, holding the object's gate across its commit)."""
        await self._db.commit_in_thread()
        self._tell_feeds()

    # -- the alarm (the runtime schedules it; see docs/reference/storage.md) -------------

    async def get_alarm(self) -> float | None:
        """The alarm's time in epoch seconds, or ``None``."""
        return self.get_alarm_sync()

    def get_alarm_sync(self) -> float | None:
        self._db.check_usable()
        return metadata_from(read_meta(self._db)).alarm

    async def set_alarm(self, when: float | dt.datetime) -> None:
        """Set the object's one alarm (replacing any earlier one) to ``when``.

        ``when`` is epoch seconds or an aware ``datetime``; a time in the past fires promptly.

        Raises:
            ValueError: ``when`` is not positive, not finite, or a naive ``datetime``.
        """
        self.set_alarm_sync(when)

    def set_alarm_sync(self, when: float | dt.datetime) -> None:
        self._db.check_usable()
        if isinstance(when, dt.datetime):
            if when.tzinfo is None:
                raise ValueError(
                    f"set_alarm() needs an aware datetime, not the naive {when!r}; "
                    "use datetime.now(timezone.utc) or pass epoch seconds"
                )
            seconds = when.timestamp()
        elif type(when) in (int, float):
            seconds = float(when)
        else:
            raise TypeError(
                f"set_alarm() takes epoch seconds or a datetime, not {type(when).__name__}"
            )
        if not math.isfinite(seconds) or seconds <= 0:
            raise ValueError(f"set_alarm() cannot be called with an alarm time <= 0 ({when!r})")
        write_meta(self._db, ALARM_KEY, seconds)
        write_meta(self._db, ALARM_RETRY_KEY, None)  # a new alarm wins over a pending retry

    async def delete_alarm(self) -> None:
        """Remove the alarm, if any."""
        self.delete_alarm_sync()

    def delete_alarm_sync(self) -> None:
        self._db.check_usable()
        write_meta(self._db, ALARM_KEY, None)
        write_meta(self._db, ALARM_RETRY_KEY, None)

    def set_alarm_retry(self, when: float, retry: int) -> None:
        """Record a retry of the alarm whose handler raised (the runtime's business): the
        alarm fires again at ``when`` as retry number ``retry``."""
        self._db.check_usable()
        write_meta(self._db, ALARM_KEY, float(when))
        write_meta(self._db, ALARM_RETRY_KEY, retry)

    @property
    def alarm_changed(self) -> bool:
        """Whether the alarm changed since the last commit or rollback."""
        return self._db.alarm_changed

    # -- metadata and schema versions -----------------------------------------------------

    @property
    def metadata(self) -> ObjectMetadata:
        """What the file records about its object (its version, name, class, alarm),
        uncommitted changes included."""
        self._db.check_usable()
        return metadata_from(read_meta(self._db))

    @property
    def path(self) -> str:
        return self._db.path

    def take_fault(self) -> StorageError | None:
        """The critical error (``DatabaseCorruptError``, ``StorageFullError``,
        ``StorageIOError``) this storage met since the last call, even one the object's code
        caught; None if there was none. The runtime resets the object when there is one."""
        return self._db.take_fault()

    @property
    def durability(self) -> Durability:
        return self._db.durability

    def record_identity(
        self,
        *,
        name: str | None = None,
        namespace: str | None = None,
        class_name: str | None = None,
    ) -> None:
        """Record the object's name, namespace and class (those given), committing them."""
        self._require_no_pending_writes("record_identity()")
        self._write_identity(name=name, namespace=namespace, class_name=class_name)
        self._db.commit()

    def _write_identity(
        self, *, name: str | None, namespace: str | None, class_name: str | None
    ) -> None:
        recorded = read_meta(self._db)
        changes: dict[str, object] = {
            key: value
            for key, value in (("name", name), ("namespace", namespace), ("class", class_name))
            if value is not None and recorded.get(key) != value
        }
        if "created_at" not in recorded:
            changes["created_at"] = time.time()
        for key, value in changes.items():
            write_meta(self._db, key, value)

    def apply_schema(
        self,
        declared: int,
        *,
        policy: SchemaPolicy,
        migrations: Mapping[int, Migration] | None = None,
        backup_dir: str | os.PathLike[str] | None = None,
    ) -> SchemaOutcome:
        """Bring the file to schema version ``declared`` by ``policy``; see ``_schema``.

        Raises:
            SchemaMismatchError: ``throw``, or ``migrate`` without a step; nothing touched.
            MigrationError: a migration raised; all rolled back, the backup kept.
            TransactionError: uncommitted writes are pending.
        """
        # A new file (see Database.unsettled) only records its version: part of its setup.
        with self._db.setting_up():
            self._require_no_pending_writes("apply_schema()")
            return apply_schema_policy(
                self, self._db, declared, policy=policy, migrations=migrations or {},
                backup_dir=backup_dir,
            )

    def mark_synced(self) -> None:
        """Record (in the implicit transaction) that ``sync()`` refilled a cleared object."""
        self._db.check_usable()
        write_meta(self._db, SYNC_PENDING_KEY, None)

    def _require_no_pending_writes(self, what: str) -> None:
        db = self._db
        db.check_usable()
        if db.has_uncommitted_writes or db.depth:
            raise TransactionError(f"{what} needs the storage with nothing uncommitted")

    # -- the runtime's hooks --------------------------------------------------------------

    @property
    def has_uncommitted_writes(self) -> bool:
        """Whether writes are waiting for :meth:`commit`."""
        return self._db.has_uncommitted_writes

    @property
    def holds_output(self) -> bool:
        """Whether results must wait for :meth:`commit` (the output gate's question): writes
        other than ``allow_unconfirmed`` ones are uncommitted."""
        return self._db.holds_output

    @property
    def in_transaction(self) -> bool:
        """Whether a ``transaction``/``transaction_sync`` is running."""
        return self._db.depth > 0

    @property
    def in_implicit_transaction(self) -> bool:
        """Whether the implicit transaction is open, even if it only read (object SQL opens
        it). :meth:`commit` ends it cheaply when nothing was written."""
        return self._db.in_transaction

    @property
    def last_commit_seconds(self) -> float:
        """How long the last commit's ``COMMIT`` took, its fsync included."""
        return self._db.last_commit_seconds

    def commit(self) -> None:
        """Commit the implicit transaction now, in this thread (it may fsync).

        Raises:
            TransactionError: inside ``transaction``/``transaction_sync``.
            TransactionAbortedError: an earlier critical error discarded part of the writes;
                all uncommitted writes are discarded.
            StorageFullError, StorageIOError, DatabaseCorruptError: the commit failed; the
                writes were discarded and earlier commits are intact.
        """
        self._db.commit()
        self._tell_feeds()

    def _tell_feeds(self) -> None:
        if self._feeds:
            for name, feed in list(self._feeds.items()):
                if feed.idle:
                    del self._feeds[name]
                    continue
                try:
                    feed.after_commit()
                except DoboxError:
                    # The commit succeeded; a failure to read what it changed must not look
                    # like a failed commit. End these live queries: their subscribers
                    # resume from their row version, which finds the changes again.
                    del self._feeds[name]
                    for subscription in [*feed.subscriptions, *feed._waiting]:
                        subscription.close()
            if self._db.in_transaction and not self._db.has_uncommitted_writes:
                self._db.commit()  # end the read snapshot the feeds' queries opened

    def rollback(self) -> None:
        """Discard every uncommitted write (what the runtime does when it resets an object)."""
        self._db.rollback()

    def fail_next_commit(self, error: BaseException | None = None) -> None:
        """Make the next commit that has writes fail with ``error`` (default: a
        ``StorageIOError``), discarding them, as a disk failing under a write would. For
        tests: the harness's ``fail_next_commit`` uses it."""
        self._db.check_usable()
        self._db.injected_commit_failure = error or StorageIOError(
            f"{self._db.label}: the next commit was made to fail by the test harness; the "
            "uncommitted writes were discarded"
        )

    @property
    def can_suspend(self) -> bool:
        """Whether :meth:`suspend` may run now: nothing uncommitted, no transaction."""
        return self._db.can_suspend

    @property
    def suspended(self) -> bool:
        return self._db.suspended

    @property
    def can_read_between_turns(self) -> bool:
        """Whether :meth:`read_between_turns` may run now."""
        return self._db.can_read_between_turns

    def read_between_turns(self, read: Callable[[sqlite3.Connection], T]) -> T:
        """``read(conn)`` on the object's connection, for a reader outside the object (the
        server's inspector): see :meth:`Database.read_between_turns`."""
        return self._db.read_between_turns(read)

    def suspend(self) -> None:
        """Close the SQLite connection but keep the file locked, freeing the connection's
        memory (mostly SQLite's page cache, about 100 KiB); any later use reconnects
        transparently. The runtime suspends objects that are idle but still live.

        Raises:
            TransactionError: writes are uncommitted or a transaction is open.
        """
        self._db.suspend()

    @property
    def closed(self) -> bool:
        return self._db.closed

    def close(self) -> None:
        """Discard uncommitted writes, close the file and release its lock; live queries
        end (their iterators stop)."""
        self.close_subscriptions()
        self._db.close()

    def close_subscriptions(self) -> None:
        """End every live query (their iterators stop); subscribers resume elsewhere."""
        feeds, self._feeds = list(self._feeds.values()), {}
        for feed in feeds:
            for subscription in [*feed.subscriptions, *feed._waiting]:
                subscription.close()

    def __enter__(self) -> Storage:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            if exc_type is None and not self._db.closed:
                self.commit()
        finally:
            self.close()


class _Savepoint:
    """One level of ``transaction``/``transaction_sync``: a SAVEPOINT in the implicit
    transaction, released on success and rolled back to on any exception."""

    __slots__ = ("_db", "_depth")

    def __init__(self, db: Database) -> None:
        self._db = db
        self._depth = db.depth

    def __enter__(self) -> None:
        db = self._db
        db.check_usable()
        if self._depth >= MAX_TRANSACTION_DEPTH:
            raise TransactionError(
                f"transactions are nested too deeply (at most {MAX_TRANSACTION_DEPTH})"
            )
        db.begin()
        db.execute(f"SAVEPOINT {_SAVEPOINTS[self._depth]}")
        db.depth = self._depth + 1

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        db = self._db
        name = _SAVEPOINTS[self._depth]
        try:
            # A critical error inside may already have rolled the whole transaction back.
            if db.conn.in_transaction and not db.closed:
                if exc_type is not None:
                    db.execute(f"ROLLBACK TO {name}")
                db.execute(f"RELEASE {name}")
        finally:
            db.depth = self._depth
