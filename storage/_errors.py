"""The dobox error tree, rooted at :class:`DoboxError`.

Every error dobox raises on purpose is a :class:`DoboxError`; most also subclass the builtin
that fits, so ``except ValueError`` keeps working for code that does not know dobox::

    DoboxError                      root: ``except DoboxError`` catches everything below
    ├── StorageError                about one object's database file
    │   ├── StorageClosedError          you closed the storage and then used it
    │   ├── ObjectLockedError           another process holds the object's file (never two writers)
    │   ├── DatabaseCorruptError        the file is not a SQLite database, or is damaged
    │   ├── StorageFullError            the disk, or the database's size limit, is full
    │   ├── StorageIOError              the operating system failed a read or a write
    │   ├── TransactionError            transactions used in a way that cannot work
    │   │   └── TransactionAbortedError a critical error discarded the uncommitted writes
    │   ├── SqlError                    SQLite refused a statement (syntax, missing table, ...)
    │   │   ├── ForbiddenSqlError       (also PermissionError) BEGIN, ATTACH, pragmas,
    │   │   │                           temp objects, the engine's reserved tables
    │   │   └── ConstraintError         a UNIQUE, NOT NULL, CHECK or FOREIGN KEY constraint
    │   ├── LimitExceededError          (also ValueError) a key, value, batch, statement,
    │   │                               or parameter list is over Durable Objects' limits
    │   ├── InvalidKeyError             (also TypeError) a KV key that is not a ``str``
    │   └── CodecError                  (also ValueError) stored bytes that do not decode
    ├── UnsupportedValueError       (also TypeError) a value the codec cannot carry
    ├── InvalidRecordError          (also ValueError) a record a collection cannot store
    ├── RecordNotFoundError         (also KeyError) a collection holds no such key
    ├── DuplicateKeyError           (also ValueError) insert of a key held already
    ├── SchemaMismatchError         the file's schema version differs from the class's
    └── MigrationError              a migration step failed; rolled back, backup kept

The ``actors`` package adds the errors that callers of objects see (remote, overloaded,
reset) under the same root, and ``runtime`` those of its server, client and tools; the whole
tree, every package's branch together, is drawn in docs/reference/errors.md.

SQLite's own exceptions never escape: they are translated where SQLite is called, with the
original kept as ``__cause__``.
"""

from __future__ import annotations


class DoboxError(Exception):
    """Root of every error dobox raises on purpose."""


class StorageError(DoboxError):
    """Something went wrong with one object's database."""


class StorageClosedError(StorageError):
    """The storage was closed by its owner and then used: a bug in the caller."""


class ObjectLockedError(StorageError):
    """Another process holds the object's database file.

    dobox keeps exactly one writer per object file. Stop the other process (or let it
    finish) and open the object again.
    """


class DatabaseCorruptError(StorageError):
    """The file is not a SQLite database, or its pages are damaged. dobox leaves it as is."""


class StorageFullError(StorageError):
    """The disk, or the database's page limit, is full. The failed writes were discarded."""


class StorageIOError(StorageError):
    """The operating system failed a read or a write of the database file."""


class TransactionError(StorageError):
    """A transaction was used in a way that cannot work (for example ``sync()`` inside one)."""


class TransactionAbortedError(TransactionError):
    """An earlier critical error (full disk, I/O, corruption) discarded uncommitted writes.

    Raised by the commit that follows such an error, so that a turn whose first writes were
    lost can never commit its later writes alone.
    """


class SqlError(StorageError):
    """SQLite refused a statement. The message is SQLite's, with ``: SQLITE_<CODE>`` appended."""


class ForbiddenSqlError(SqlError, PermissionError):
    """A statement that object SQL may not run (transactions, ATTACH, pragmas, reserved tables)."""


class ConstraintError(SqlError):
    """A UNIQUE, NOT NULL, CHECK, PRIMARY KEY or FOREIGN KEY constraint failed."""


class LimitExceededError(StorageError, ValueError):
    """A key, value, batch, statement or parameter list is over Durable Objects' limits."""


class InvalidKeyError(StorageError, TypeError):
    """A KV key was not a ``str``."""


class CodecError(StorageError, ValueError):
    """Stored bytes could not be decoded: the file was damaged or tampered with."""


class UnsupportedValueError(DoboxError, TypeError):
    """The codec cannot carry this value. The message names its type and where it sits."""


class InvalidRecordError(DoboxError, ValueError):
    """A record (or key) a collection cannot store; the message names the field."""


class RecordNotFoundError(DoboxError, KeyError):
    """``update`` or ``get`` of a key the collection does not hold."""

    def __str__(self) -> str:  # KeyError would show the message quoted
        return str(self.args[0])


class DuplicateKeyError(DoboxError, ValueError):
    """``insert`` of a key the collection holds already (``upsert`` replaces instead)."""


class SchemaMismatchError(DoboxError):
    """The object's file records one schema version and its class declares another.

    Nothing was changed. Attributes ``stored`` and ``declared`` hold the two versions.
    """

    def __init__(self, message: str, *, stored: int, declared: int) -> None:
        super().__init__(message)
        self.stored = stored
        self.declared = declared

    def __reduce__(self) -> tuple[object, ...]:  # copy and pickle despite keyword arguments
        return (_rebuild, (type(self), self.args, self.__dict__))


class MigrationError(DoboxError):
    """A migration step raised. Every step was rolled back and the backup kept.

    Attributes: ``stored`` (the version the file still holds), ``failed_step`` (the version
    whose migration raised) and ``backup_path`` (the copy made before migrating).
    """

    def __init__(
        self, message: str, *, stored: int, failed_step: int, backup_path: str | None
    ) -> None:
        super().__init__(message)
        self.stored = stored
        self.failed_step = failed_step
        self.backup_path = backup_path

    def __reduce__(self) -> tuple[object, ...]:  # copy and pickle despite keyword arguments
        return (_rebuild, (type(self), self.args, self.__dict__))


def _rebuild(
    cls: type[DoboxError], args: tuple[object, ...], state: dict[str, object]
) -> DoboxError:
    error = cls.__new__(cls)
    error.args = args
    error.__dict__.update(state)
    return error
