"""One object's SQLite connection: settings, error translation, and the implicit transaction.

Every storage operation goes through :class:`Database`. It owns the connection (opened with
``isolation_level=None`` so that dobox, not the ``sqlite3`` module, decides when
transactions begin and end) and keeps the state the runtime's gates need:

- the *implicit transaction*, begun by the first write (or object SQL) and ended only by
  :meth:`Database.commit` or :meth:`Database.rollback`, so a turn's writes are one atomic
  commit;
- whether anything written is still uncommitted (:attr:`Database.has_uncommitted_writes`),
  and whether any of it must be durable before a result may leave
  (:attr:`Database.holds_output`: every write but those made ``allow_unconfirmed``);
- after a critical error (full disk, I/O error, corruption) the transaction is rolled back
  at once and the next commit raises :class:`TransactionAbortedError`, so a turn whose
  first writes were lost can never commit its later writes alone.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import sqlite3
import time
from collections.abc import Callable, Iterator
from typing import Literal, TypeVar

import attrs

from ._authorizer import Authorizer
from ._commit_threads import commit_threads
from ._errors import (
    ConstraintError,
    DatabaseCorruptError,
    DoboxError,
    ForbiddenSqlError,
    LimitExceededError,
    ObjectLockedError,
    SqlError,
    StorageClosedError,
    StorageError,
    StorageFullError,
    StorageIOError,
    TransactionAbortedError,
    TransactionError,
)
from ._limits import (
    MAX_BOUND_PARAMETERS,
    MAX_COLUMNS,
    MAX_FUNCTION_ARGUMENTS,
    MAX_LIKE_PATTERN_LENGTH,
    MAX_SQL_LENGTH,
    MAX_STRING_OR_BLOB_SIZE,
)
from ._lock import FileLock, acquire_file_lock

T = TypeVar("T")

Durability = Literal["full", "normal", "off"]
"""``"full"``: fsync at every commit (the default). ``"normal"``: survives a crash of the
process, not of the machine. ``"off"``: no syncing at all, for tests that ask for it."""

_SYNCHRONOUS: dict[str, str] = {"full": "FULL", "normal": "NORMAL", "off": "OFF"}

BUSY_TIMEOUT = 0.25
"""Seconds to wait for SQLite's own locks. The flock keeps other writers out, so only a
reader recovering the WAL (a backup tool) or a process that ignored the flock can make us
wait; the wait blocks the caller's thread, so it is kept short."""

OBJECT_SQL_PREFIX = "/*object*/"
"""Put before every object SQL text so it never shares a cached statement with engine SQL."""

_SQLITE_IOERR = 10
_SQLITE_NOMEM = 7
_SQLITE_CANTOPEN = 14
_SQLITE_BUSY = 5
_SQLITE_CONSTRAINT = 19
_SQLITE_TOOBIG = 18
WAL_SIZE_LIMIT = 4 << 20
"""Bytes a WAL keeps after a checkpoint (SQLite checkpoints at 1,000 pages, 4 MiB)."""

_CRITICAL = frozenset(
    {
        sqlite3.SQLITE_FULL,
        sqlite3.SQLITE_CORRUPT,
        sqlite3.SQLITE_NOTADB,
        _SQLITE_IOERR,
        _SQLITE_NOMEM,
        _SQLITE_CANTOPEN,
    }
)
_LIMIT_MESSAGES = ("too many SQL variables", "too many columns", "too many arguments")


@attrs.define(eq=False)
class Database:
    """The connection to one object's file, and its transaction state.

    Close it with :meth:`close`; uncommitted writes are then discarded.
    """

    path: str
    conn: sqlite3.Connection
    durability: Durability
    authorizer: Authorizer
    _lock: FileLock
    _written: bool = False
    _must_confirm: bool = False
    """Of the uncommitted writes, some were not made ``allow_unconfirmed``."""
    _unconfirmed: bool = False
    """Writes made now are ``allow_unconfirmed`` (see :meth:`unconfirmed`)."""
    depth: int = 0
    """How many ``transaction``/``transaction_sync`` savepoints are open."""
    _aborted_by: BaseException | None = None
    _committing: bool = False
    closed: bool = False
    usable: bool = True
    """Open, connected, and not committing in a worker thread: the hot paths check only
    this, and call :meth:`check_usable` when it is false."""
    suspended: bool = False
    """The SQLite connection is closed to save memory; the next use reopens it."""
    injected_commit_failure: BaseException | None = None
    """Set by :meth:`Storage.fail_next_commit` (for tests): the next commit raises it."""
    unsettled: bool = False
    """A file this connection created, whose setup (WAL mode, the engine's tables, its
    identity and schema version) is committed without syncing: see :meth:`_settle`."""
    _setting_up: bool = False
    alarm_changed: bool = False
    """The alarm was set, deleted or cleared since the last commit or rollback (the runtime
    then updates its alarm index around the commit)."""
    label: str = ""
    """How error messages name the file: its path, or what the opener chose instead (the
    runtime names the object, so that a server's answers never show its file paths)."""
    shared: bool = False
    """Other processes may read and briefly write the file through SQLite's own locks
    (Litestream replicating it): normal locking mode, a ``-shm`` file, ``BEGIN IMMEDIATE``."""
    begin_sql: str = "BEGIN"
    """How the implicit transaction begins (see :attr:`shared`)."""
    last_commit_seconds: float = 0.0
    """How long the last ``COMMIT`` took (its fsync included), wherever it ran."""
    fault: StorageError | None = None
    """The last critical error (a damaged file, a full disk, an I/O error) met on this
    connection since :meth:`take_fault`; the runtime resets the object when it sees one."""

    @classmethod
    def open(cls, path: str | os.PathLike[str], *, durability: Durability = "full",
             label: str | None = None, shared: bool = False) -> Database:
        """Open (creating if needed) and lock the database file at ``path``; errors name it
        ``label`` (default: its path). ``shared`` lets a replicator read it (see
        :attr:`shared`); otherwise this connection alone uses the file.

        Raises:
            ObjectLockedError: another process holds the file.
            DatabaseCorruptError: the file is not a SQLite database, or is damaged; it is
                left exactly as it was.
            StorageError: the file cannot be opened (a directory, no permission).
        """
        if durability not in _SYNCHRONOUS:
            raise ValueError(
                f"durability must be 'full', 'normal' or 'off', not {durability!r}"
            )
        fspath = os.fspath(path)
        label = label or fspath
        lock = acquire_file_lock(fspath, label)
        try:
            conn = _connect(fspath, label)
        except BaseException:
            lock.release()
            raise
        db = cls(fspath, conn, durability, Authorizer(), lock, label=label, shared=shared,
                 begin_sql="BEGIN IMMEDIATE" if shared else "BEGIN")
        try:
            db._configure()
        except BaseException:
            db.close()
            raise
        return db

    def _configure(self) -> None:
        conn = self.conn
        # Exclusive locking before the first access in WAL mode keeps the WAL index in this
        # process's heap instead of a memory-mapped -shm file: a -shm that cannot be written
        # (made immutable, or on a network file system) would otherwise kill the whole
        # process with SIGBUS, not fail this one object. The file is this connection's
        # alone anyway (see _lock); other readers (dobox's inspection tools) must wait until
        # the connection is closed, and give up with a clear error after a second.
        if not self.shared:
            self.execute("PRAGMA locking_mode=EXCLUSIVE").fetchone()
        else:
            # A replicator reads the WAL beside this connection, which needs the -shm; at
            # least refuse one that is already unwritable, before SQLite maps it.
            _check_writable(self.path + "-shm", self.label)
        # Read the schema before anything can write: a file that is not a database, or
        # whose first page is damaged, fails here and is left untouched.
        self.execute("SELECT count(*) FROM sqlite_master").fetchone()
        # A new file is set up without syncing (the switch to WAL alone cost four syncs in
        # rollback mode, and each setup commit one more): until its first commit that
        # holds more than its setup, a crash can lose only the setup, which the next open
        # makes again. _settle() then syncs it once and turns synchronous on.
        self.unsettled = (self.durability != "off"
                          and self.execute("PRAGMA page_count").fetchone()[0] == 0)
        if self.unsettled:
            self.usable = False  # so that the hot paths call check_usable(), which settles
            self.execute("PRAGMA synchronous=OFF")
            # Switching an empty file to WAL is a transaction in rollback mode; its journal
            # (a file created, written and deleted) protects nothing while unsynced.
            self._pragma("PRAGMA journal_mode=MEMORY")
        else:
            self.execute(f"PRAGMA synchronous={_SYNCHRONOUS[self.durability]}")
        self._pragma("PRAGMA journal_mode=WAL")
        # After a checkpoint the WAL is cut back to this size instead of keeping its largest
        # size forever, so that a disk filled once is not held full by old WAL space.
        self.execute(f"PRAGMA journal_size_limit={WAL_SIZE_LIMIT}").fetchone()
        self.execute("PRAGMA foreign_keys=ON")
        # trusted_schema stays ON (SQLite's default): with it OFF, SQLite refuses functions
        # it does not mark innocuous in schema expressions, and the SQLite of Python builds
        # still current (3.40 here) does not so mark json_extract, which collections' indexes
        # are built on. What OFF would guard against is a tampered file's views and
        # triggers calling functions with side effects: dobox registers no SQL functions
        # and never enables extension loading, so only SQLite's built-ins are reachable, and
        # object SQL that reaches a view is authorized when it runs (see _authorizer).
        conn.setlimit(sqlite3.SQLITE_LIMIT_ATTACHED, 0)
        conn.setlimit(sqlite3.SQLITE_LIMIT_LENGTH, MAX_STRING_OR_BLOB_SIZE)
        conn.setlimit(
            sqlite3.SQLITE_LIMIT_SQL_LENGTH, MAX_SQL_LENGTH + len(OBJECT_SQL_PREFIX) + 1
        )
        conn.setlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER, MAX_BOUND_PARAMETERS)
        conn.setlimit(sqlite3.SQLITE_LIMIT_COLUMN, MAX_COLUMNS)
        conn.setlimit(sqlite3.SQLITE_LIMIT_FUNCTION_ARG, MAX_FUNCTION_ARGUMENTS)
        conn.setlimit(sqlite3.SQLITE_LIMIT_LIKE_PATTERN_LENGTH, MAX_LIKE_PATTERN_LENGTH)
        conn.set_authorizer(self.authorizer)

    # -- statements ---------------------------------------------------------------------

    def _pragma(self, sql: str) -> None:
        """Run a pragma that answers a row (SQLite may fail it only while stepping)."""
        try:
            self.conn.execute(sql).fetchone()
        except sqlite3.Error as exc:
            raise self.translate(exc) from exc

    def execute(self, sql: str, params: tuple[object, ...] = ()) -> sqlite3.Cursor:
        """Run one engine statement (never object SQL), translating SQLite's errors."""
        try:
            return self.conn.execute(sql, params)
        except sqlite3.Error as exc:
            raise self.translate(exc) from exc

    def execute_object_sql(self, sql: str, params: tuple[object, ...]) -> sqlite3.Cursor:
        """Run one statement of object SQL with the authorizer guarding, inside the
        implicit transaction."""
        self.begin()
        conn = self.conn
        authorizer = self.authorizer
        changes_before = conn.total_changes
        authorizer.schema_changed = False
        authorizer.guarding = True
        try:
            cursor = conn.execute(OBJECT_SQL_PREFIX + sql, params)
        except sqlite3.Error as exc:
            raise self.translate(exc) from exc
        except OverflowError as exc:
            raise LimitExceededError(
                f"a binding does not fit SQLite's 64-bit INTEGER: {exc}"
            ) from exc
        finally:
            authorizer.guarding = False
            # total_changes counts rows; DDL shows up only in the authorizer. A statement
            # served from the cache skips the authorizer, but DDL that changes anything
            # changes the schema, which makes SQLite prepare it (and ask) again.
            if conn.total_changes != changes_before or authorizer.schema_changed:
                self.mark_written()
        return cursor

    # -- the implicit transaction ---------------------------------------------------------

    def check_usable(self) -> None:
        """Raise if the storage is closed or committing in a worker thread; reconnect if it
        was suspended."""
        if self.closed:
            raise StorageClosedError(f"the storage of {self.label} was closed; open it again")
        if self._committing:
            raise TransactionError(
                "the storage is committing in a worker thread; wait for sync() to return "
                "before using it again"
            )
        if self.suspended:
            self.conn = _connect(self.path, self.label)
            self.suspended = False
            self.usable = True
            try:
                self._configure()
            except BaseException:
                self.close()
                raise
        if self.unsettled and not self._setting_up and not self.conn.in_transaction:
            self._settle()  # every statement path checks here first (usable is False)

    @property
    def can_suspend(self) -> bool:
        """Whether the connection can close now with nothing lost (nothing uncommitted)."""
        connected = self.usable or (self.unsettled and not (
            self.closed or self._committing or self.suspended))
        return (
            connected and not self._written and self._aborted_by is None and not self.depth
            and not self.conn.in_transaction
        )

    def suspend(self) -> None:
        """Close the SQLite connection, keeping the file lock, to free its memory (about
        100 KiB of page cache); the next use reconnects. Blocking: it may checkpoint.

        Raises:
            TransactionError: something is uncommitted (see :attr:`can_suspend`).
        """
        if not self.can_suspend:
            raise TransactionError("cannot suspend a storage with uncommitted work")
        if self.unsettled:
            self._settle()  # closing checkpoints the setup into the file: synced, as commits
        self.usable = False
        self.suspended = True
        self.conn.close()

    def begin(self) -> None:
        """Begin the implicit transaction unless one is open."""
        if not self.conn.in_transaction:
            # Shared: IMMEDIATE takes the write lock at once, so that the replicator's own
            # small writes wait for this transaction instead of invalidating its snapshot.
            self.execute(self.begin_sql)

    @contextlib.contextmanager
    def setting_up(self) -> Iterator[None]:
        """The engine's own setup of a file (its tables, identity and first schema version):
        in a new file, committed without syncing (see :attr:`unsettled`)."""
        self._setting_up = True
        try:
            yield
        finally:
            self._setting_up = False

    def _settle(self) -> None:
        """Before the first transaction of a new file that is more than its setup: sync the
        file (its first page, written unsynced when it switched to WAL; were the file empty
        after a crash, SQLite would delete the WAL, commits and all), and sync commits from
        here on. The next commit's sync carries the setup's WAL frames with it, and the
        WAL's first sync the directory (SQLite syncs it for a new WAL file)."""
        try:
            fd = os.open(self.path, os.O_RDONLY | os.O_CLOEXEC)
            try:
                os.fdatasync(fd)
            finally:
                os.close(fd)
        except OSError as exc:
            self.fault = _critical_error(self.path, self.label, _SQLITE_IOERR, str(exc))
            raise self.fault from exc
        self.execute(f"PRAGMA synchronous={_SYNCHRONOUS[self.durability]}")
        self.unsettled = False
        self.usable = not (self.closed or self._committing or self.suspended)

    def mark_written(self) -> None:
        self._written = True
        if not self._unconfirmed:
            self._must_confirm = True

    @contextlib.contextmanager
    def unconfirmed(self) -> Iterator[None]:
        """Writes inside need not be durable before a result leaves (Durable Objects'
        ``allowUnconfirmed``): they are committed soon, but results wait only for others."""
        self._unconfirmed = True
        try:
            yield
        finally:
            self._unconfirmed = False

    @property
    def in_transaction(self) -> bool:
        """Whether the implicit transaction is open (even if it only read)."""
        return not self.suspended and self.conn.in_transaction

    @property
    def has_uncommitted_writes(self) -> bool:
        """Whether a commit is needed before results that depend on writes may leave.

        True after any KV or alarm write, object SQL that changed rows or the schema, or a
        critical error (so that the commit that follows reports it).
        """
        return self._written or self._aborted_by is not None

    @property
    def holds_output(self) -> bool:
        """Whether results (and calls) must wait for a commit before they leave: writes not
        made ``allow_unconfirmed`` are uncommitted, or a critical error awaits its report."""
        return self._must_confirm or self._aborted_by is not None

    def commit(self) -> None:
        """Commit the implicit transaction, durably as :attr:`durability` says.

        Raises:
            TransactionError: a ``transaction``/``transaction_sync`` is still open.
            TransactionAbortedError: an earlier critical error discarded this
                transaction's writes; everything uncommitted is discarded now too.
            StorageFullError, StorageIOError, DatabaseCorruptError: the commit failed;
                the writes were rolled back and earlier commits are intact.
        """
        if self.closed:
            raise StorageClosedError(f"the storage of {self.label} was closed; open it again")
        if self.suspended:
            return  # nothing can be uncommitted
        if self.depth:
            raise TransactionError(
                "cannot commit while transaction() or transaction_sync() is running"
            )
        if self._aborted_by is not None:
            cause, self._aborted_by = self._aborted_by, None
            self._discard()
            raise TransactionAbortedError(
                f"nothing was committed to {self.label}: an earlier critical error ({cause}) "
                "discarded this transaction's first writes, so its later writes were "
                "discarded too"
            ) from cause
        if not self.conn.in_transaction:
            self._written = self._must_confirm = False
            self.alarm_changed = False
            return
        if self.injected_commit_failure is not None and self._written:
            failure, self.injected_commit_failure = self.injected_commit_failure, None
            self._discard()
            raise failure
        started = time.perf_counter()
        try:
            self.conn.execute("COMMIT")
        except sqlite3.Error as exc:
            error = self.translate(exc)
            self._aborted_by = None
            self._discard()
            raise error from exc
        finally:
            self.last_commit_seconds = time.perf_counter() - started
        self._written = self._must_confirm = False
        self.alarm_changed = False


    async def commit_in_thread(self) -> None:
        """:meth:`commit`, with the fsync in a commit thread (``_commit_threads``) when there
        is something to sync.

        The storage must not be used until this returns (:meth:`check_usable` enforces it).
        A commit cannot be abandoned halfway, so cancellation waits for it to finish.
        """
        if not self.has_uncommitted_writes:
            self.commit()  # at most a read transaction: nothing to sync
            return
        self.check_usable()
        self._committing = True
        self.usable = False
        try:
            await commit_threads.run(self.commit)
        finally:
            self._committing = False
            self.usable = not self.closed

    @property
    def can_read_between_turns(self) -> bool:
        """Whether :meth:`read_between_turns` may run now."""
        return self.usable and not self.has_uncommitted_writes

    def read_between_turns(self, read: Callable[[sqlite3.Connection], T]) -> T:
        """``read(conn)`` on this connection for a reader outside the object (the server's
        inspector), while nothing is uncommitted, so that it sees what is committed. The
        connection's authorizer is installed again afterwards and any progress handler
        removed (the reader may set its own). A suspended connection is not reopened.

        Raises:
            TransactionError: writes are uncommitted, a commit is running in a thread, or
                the connection is suspended or closed (see :attr:`can_read_between_turns`).
        """
        if not self.can_read_between_turns:
            raise TransactionError(f"{self.label} is in the middle of a write, or not "
                                   "connected: read it later")
        try:
            return read(self.conn)
        finally:
            self.conn.set_authorizer(self.authorizer)
            self.conn.set_progress_handler(None, 0)

    def rollback(self) -> None:
        """Discard everything uncommitted, open savepoints included."""
        if self.suspended and not self.closed:
            return  # nothing can be uncommitted
        self.check_usable()
        self._aborted_by = None
        self._discard()

    def _discard(self) -> None:
        self._written = self._must_confirm = False
        self.alarm_changed = False
        if self.conn.in_transaction:
            # If this fails the transaction is already gone (SQLite rolled it back itself)
            # or the file is unusable; either way nothing uncommitted survives.
            with contextlib.suppress(sqlite3.Error):
                self.conn.execute("ROLLBACK")

    # -- errors ---------------------------------------------------------------------------

    def take_fault(self) -> StorageError | None:
        """The critical error met since the last call (and forget it), or None."""
        fault, self.fault = self.fault, None
        return fault

    def translate(self, exc: sqlite3.Error) -> DoboxError:
        """The dobox error for an ``sqlite3`` error; critical ones also abort the transaction."""
        code = getattr(exc, "sqlite_errorcode", None)
        name = getattr(exc, "sqlite_errorname", None)
        primary = None if code is None else code & 0xFF
        detail = f"{exc}: {name}" if name else str(exc)
        if primary == sqlite3.SQLITE_AUTH:
            denial, self.authorizer.denial = self.authorizer.denial, None
            return ForbiddenSqlError(f"{denial}: SQLITE_AUTH" if denial else detail)
        if primary in _CRITICAL:
            if self.conn.in_transaction or self._written:
                self._aborted_by = exc
                self._discard()
            self.fault = _critical_error(self.path, self.label, primary, detail)
            return self.fault
        if primary == _SQLITE_CONSTRAINT:
            return ConstraintError(detail)
        if primary == _SQLITE_TOOBIG or any(m in detail for m in _LIMIT_MESSAGES):
            return LimitExceededError(f"{detail} (Durable Objects' SQL limits)")
        if primary == _SQLITE_BUSY:
            return ObjectLockedError(f"{self.label} is busy: {detail}")
        if isinstance(exc, sqlite3.ProgrammingError) and "closed database" in str(exc):
            return StorageClosedError(f"the storage of {self.label} was closed; open it again")
        return SqlError(detail)

    # -- closing --------------------------------------------------------------------------

    def close(self) -> None:
        """Discard uncommitted writes, close the connection and release the file lock."""
        if self.closed:
            return
        try:
            if self.unsettled and not self.suspended:
                self._discard()
                # Closing checkpoints the setup into the file, which must then be on disk
                # before the WAL is deleted; the next open takes the file as it finds it.
                with contextlib.suppress(DoboxError):
                    self._settle()
        finally:
            self.closed = True
            self.usable = False
        try:
            if not self.suspended:
                self._discard()
                self.conn.close()
        finally:
            self._lock.release()


def _check_writable(path: str, label: str) -> None:
    try:
        fd = os.open(path, os.O_RDWR | os.O_CLOEXEC)
    except FileNotFoundError:
        return
    except OSError as exc:
        raise StorageError(f"cannot open {label}: its -shm file is not writable "
                           f"({exc.strerror})") from exc
    os.close(fd)


def _connect(path: str, label: str) -> sqlite3.Connection:
    try:
        return sqlite3.connect(
            path,
            isolation_level=None,  # dobox, not the sqlite3 module, begins and ends transactions
            check_same_thread=False,  # commits may run in a worker thread, one owner at a time
            cached_statements=256,
            timeout=BUSY_TIMEOUT,
        )
    except sqlite3.Error as exc:
        raise StorageError(f"cannot open {label}: {exc}") from exc


def _critical_error(path: str, label: str, primary: int | None, detail: str) -> StorageError:
    # SQLite reports some writes that fail for want of space as I/O errors (growing the WAL
    # index: SQLITE_IOERR_SHMSIZE; a write: SQLITE_IOERR_WRITE), not SQLITE_FULL: say what
    # the disk says.
    if primary == sqlite3.SQLITE_FULL or (primary == _SQLITE_IOERR and _disk_is_full(path)):
        return StorageFullError(
            f"{label}: the database or the disk is full ({detail}). The uncommitted writes "
            "were discarded; earlier commits are intact. Free some space and retry."
        )
    if primary in (sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOTADB):
        return DatabaseCorruptError(
            f"{label} is not a SQLite database or is damaged ({detail}). dobox did not "
            "change it; restore it from a backup or move it aside."
        )
    return StorageIOError(
        f"{label}: the operating system failed a read or write ({detail}). The uncommitted "
        "writes were discarded."
    )


def _disk_is_full(path: str) -> bool:
    """Whether the file system holding ``path`` has (almost) no space left for us."""
    try:
        usage = shutil.disk_usage(os.path.dirname(path) or ".")
    except OSError:
        return False
    return usage.free < _FULL_BELOW


_FULL_BELOW = 1 << 20
"""Free bytes under which an I/O error is taken for a full disk: less than one WAL frame
batch of room."""
