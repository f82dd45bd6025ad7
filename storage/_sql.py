"""The SQL API (``ctx.storage.sql``): ``exec`` and its cursor, with DO's rules and limits.

``exec(query, *bindings)`` runs every ``;``-separated statement of ``query`` in order, binds
``bindings`` to the last one and returns a cursor over the last one's rows. The first row
is stepped before ``exec`` returns, so a write happens even if the cursor is never read.
All of it runs inside the implicit transaction, under the authorizer (see ``_authorizer``).

Two deliberate differences from workerd, both documented in docs/reference/storage.md:
integers bind as SQLite INTEGERs and booleans as 1/0 (workerd binds every number as REAL and
booleans as text), and ``rows_read`` counts the rows the cursor has returned, because
Python's ``sqlite3`` does not expose SQLite's per-statement scan counters.
"""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Iterator

from ._authorizer import RESERVED_PREFIX, RESERVED_PREFIXES
from ._database import Database
from ._errors import ForbiddenSqlError, LimitExceededError, SqlError, UnsupportedValueError
from ._kv import Value
from ._limits import MAX_BOUND_PARAMETERS, MAX_SQL_LENGTH

_BINDABLE = frozenset({type(None), bool, int, float, str, bytes, bytearray, memoryview})

# Tokens that may hide a ';': quoted strings and identifiers, and comments.
_SPLIT_TOKENS = re.compile(
    r"""'(?:[^']|'')*'?|"(?:[^"]|"")*"?|`[^`]*`?|\[[^\]]*\]?|--[^\n]*|/\*.*?(?:\*/|\Z)|;""",
    re.DOTALL,
)
_ONLY_COMMENTS = re.compile(r"(?:\s+|--[^\n]*|/\*.*?(?:\*/|\Z))*", re.DOTALL)
_ALTER = re.compile(r"\balter\b", re.IGNORECASE)
# Views and triggers are authorized when they run, not when they are created: refuse at
# creation one whose text names a reserved table, rather than leave a trap behind.
_CREATE_VIEW_OR_TRIGGER = re.compile(
    r"\bcreate\b.*?\b(?:view|trigger)\b", re.IGNORECASE | re.DOTALL
)
_ALTER_SAVEPOINT = "_dobox_alter"
_RESERVED_NAMES = (
    "SELECT name FROM sqlite_master WHERE name LIKE '\\_dobox\\_%' ESCAPE '\\' "
    "OR name LIKE '\\_litestream\\_%' ESCAPE '\\'"
)


def split_statements(query: str) -> list[str]:
    """Split ``query`` at the ``;`` that end statements, keeping trigger bodies whole."""
    if ";" not in query:
        return [query]
    pieces: list[str] = []
    start = 0
    for match in _SPLIT_TOKENS.finditer(query):
        if match.group() != ";":
            continue
        end = match.end()
        # A ';' inside CREATE TRIGGER ... BEGIN ... END is not the end of the statement;
        # SQLite's own tokenizer knows.
        if sqlite3.complete_statement(query[start:end]):
            pieces.append(query[start:end])
            start = end
    pieces.append(query[start:])
    return [p for p in pieces if not _ONLY_COMMENTS.fullmatch(p)] or [query]


class SqlCursor:
    """The rows of the last statement of an ``exec``: iterate for dict rows.

    Rows with duplicate column names keep the last column of each name, as in DO.
    ``raw()`` iterates tuples from the same position.
    """

    __slots__ = ("_columns", "_cursor", "_db", "rows_read", "rows_written")

    def __init__(self, db: Database, cursor: sqlite3.Cursor, rows_written: int) -> None:
        self._db = db
        self._cursor = cursor
        self._columns: list[str] | None = None
        self.rows_read = 0
        """Rows this cursor has returned so far."""
        self.rows_written = rows_written
        """Rows inserted, updated or deleted by the whole ``exec`` (triggers included)."""

    @property
    def column_names(self) -> list[str]:
        """The result's column names, in order (duplicates possible); ``[]`` for no result."""
        if self._columns is None:
            description = self._cursor.description
            self._columns = [] if description is None else [d[0] for d in description]
        return self._columns

    def _next_raw(self) -> tuple[Value, ...]:
        try:
            row: tuple[Value, ...] | None = self._cursor.fetchone()
        except sqlite3.Error as exc:
            raise self._db.translate(exc) from exc
        if row is None:
            raise StopIteration
        self.rows_read += 1
        return row

    def __iter__(self) -> SqlCursor:
        return self

    def __next__(self) -> dict[str, Value]:
        return dict(zip(self.column_names, self._next_raw(), strict=True))

    def to_list(self) -> list[dict[str, Value]]:
        """Every remaining row, as dicts."""
        return list(self)

    def one(self) -> dict[str, Value]:
        """The only row.

        Raises:
            SqlError: there is no row, or more than one.
        """
        rows = self.to_list()
        if not rows:
            raise SqlError("Expected exactly one result from SQL query, but got no results.")
        if len(rows) > 1:
            raise SqlError("Expected exactly one result from SQL query, but got multiple results.")
        return rows[0]

    def raw(self) -> RawRows:
        """The remaining rows as tuples, sharing this cursor's position."""
        return RawRows(self)


class RawRows:
    """Tuples from a :class:`SqlCursor`; iterate, or take them all with :meth:`to_list`."""

    __slots__ = ("_cursor",)

    def __init__(self, cursor: SqlCursor) -> None:
        self._cursor = cursor

    def __iter__(self) -> Iterator[tuple[Value, ...]]:
        return self

    def __next__(self) -> tuple[Value, ...]:
        return self._cursor._next_raw()

    def to_list(self) -> list[tuple[Value, ...]]:
        return list(self)


class SqlStorage:
    """``ctx.storage.sql``: object SQL on the object's own database."""

    __slots__ = ("_db",)

    def __init__(self, db: Database) -> None:
        self._db = db

    def exec(self, query: str, *bindings: object) -> SqlCursor:
        """Run ``query``'s statements; ``bindings`` are for the last. See the module docstring.

        Raises:
            ForbiddenSqlError: the query does what object SQL may not (the message says what).
            LimitExceededError: the query, its bindings or a value is over DO's limits.
            UnsupportedValueError: a binding is not None, bool, int, float, str or bytes.
            ConstraintError, SqlError: SQLite refused the statement.
        """
        db = self._db
        db.check_usable()
        if type(query) is not str:
            raise TypeError(f"exec() needs the query as a str, not {type(query).__name__}")
        if len(query) * 4 > MAX_SQL_LENGTH and len(query.encode()) > MAX_SQL_LENGTH:
            raise LimitExceededError(
                f"SQL query is {len(query.encode()):,} bytes; the limit is "
                f"{MAX_SQL_LENGTH:,} bytes (Durable Objects' statement length limit)"
            )
        _check_bindings(bindings)
        statements = split_statements(query)
        changes_before = db.conn.total_changes
        for statement in statements[:-1]:
            self._run(statement, ())
        cursor = self._run(statements[-1], bindings)
        return SqlCursor(db, cursor, db.conn.total_changes - changes_before)

    def _run(self, statement: str, bindings: tuple[object, ...]) -> sqlite3.Cursor:
        lowered = statement.lower()
        named = next((prefix for prefix in RESERVED_PREFIXES if prefix in lowered), None)
        if named is not None and _CREATE_VIEW_OR_TRIGGER.search(statement):
            raise ForbiddenSqlError(
                f"views and triggers may not refer to names starting with {named!r}: "
                "those tables belong to dobox: SQLITE_AUTH"
            )
        if not _ALTER.search(statement):
            return self._db.execute_object_sql(statement, bindings)
        return self._run_alter(statement, bindings)

    def _run_alter(self, statement: str, bindings: tuple[object, ...]) -> sqlite3.Cursor:
        # The authorizer is told the table an ALTER TABLE acts on, not the name RENAME TO
        # gives it, so check the schema afterwards and undo a rename into the reserved names.
        db = self._db
        db.begin()
        before = {name for (name,) in db.execute(_RESERVED_NAMES)}  # the engine's, Litestream's
        db.execute(f"SAVEPOINT {_ALTER_SAVEPOINT}")
        try:
            cursor = db.execute_object_sql(statement, bindings)
            renamed = [
                name for (name,) in db.execute(_RESERVED_NAMES)
                if name not in before
            ]
            if renamed:
                raise ForbiddenSqlError(
                    f"the name {renamed[0]} is reserved: names starting with "
                    f"{RESERVED_PREFIX!r} or '_litestream_' belong to dobox and its "
                    "replicator: SQLITE_AUTH"
                )
        except BaseException:
            if db.conn.in_transaction:
                db.execute(f"ROLLBACK TO {_ALTER_SAVEPOINT}")
                db.execute(f"RELEASE {_ALTER_SAVEPOINT}")
            raise
        db.execute(f"RELEASE {_ALTER_SAVEPOINT}")
        return cursor

    @property
    def database_size(self) -> int:
        """Bytes the database uses: (pages - free pages) * page size."""
        db = self._db
        db.check_usable()
        page_count = db.execute("PRAGMA page_count").fetchone()[0]
        free = db.execute("PRAGMA freelist_count").fetchone()[0]
        page_size = db.execute("PRAGMA page_size").fetchone()[0]
        return int((page_count - free) * page_size)

    def set_max_page_count_for_test(self, pages: int) -> None:
        """Cap the database at ``pages`` pages, so tests can make the disk "full" (as DO's
        ``setMaxPageCountForTest``). Not for production use."""
        self._db.execute(f"PRAGMA max_page_count={int(pages)}")


def _check_bindings(bindings: tuple[object, ...]) -> None:
    if len(bindings) > MAX_BOUND_PARAMETERS:
        raise LimitExceededError(
            f"exec() was given {len(bindings)} bindings; at most {MAX_BOUND_PARAMETERS} "
            "(Durable Objects' bound parameter limit)"
        )
    for index, value in enumerate(bindings, start=1):
        if type(value) not in _BINDABLE:
            raise UnsupportedValueError(
                f"binding {index} is of type {type(value).__name__!r}; SQL bindings must be "
                "None, bool, int, float, str or bytes"
            )
