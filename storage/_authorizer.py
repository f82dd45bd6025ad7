"""What object SQL may do: an SQLite authorizer, as workerd's ``isAuthorized`` does it.

SQLite asks the authorizer about every action while it *prepares* a statement. The engine's
own statements run with the guard down and object SQL with it up. Because a cached prepared
statement is never authorized again, object SQL is always executed with a text prefix that
engine SQL never has, so the two never share a statement-cache entry.

Refused: transactions and savepoints (use ``transaction``/``transaction_sync``), ATTACH and
DETACH, temporary objects, any other schema than ``main``, pragmas outside the allowlist,
virtual tables other than FTS5 and R-Tree, and any access to a name starting with
:data:`RESERVED_PREFIXES` (the engine's own tables, and Litestream's when it replicates the
file), in any letter case.
"""

from __future__ import annotations

import sqlite3

import attrs

RESERVED_PREFIX = "_dobox_"
"""Names starting with this (in any case) belong to the engine; object SQL cannot touch them."""
RESERVED_PREFIXES = (RESERVED_PREFIX, "_litestream_")
"""The engine's prefix, and Litestream's (it adds ``_litestream_seq`` and ``_litestream_lock``
to every file it replicates): object SQL cannot touch either."""

TRANSACTION_MESSAGE = (
    "To execute a transaction, use ctx.storage.transaction() or "
    "ctx.storage.transaction_sync() instead of the SQL BEGIN TRANSACTION or SAVEPOINT "
    "statements. The Python API is safer because it rolls back automatically on exceptions, "
    "and because it works with dobox's automatic atomic write coalescing."
)

_NO_ARGUMENT_PRAGMAS = frozenset({"data_version", "page_size"})
_FLAG_PRAGMAS = frozenset(
    {
        "case_sensitive_like",
        "foreign_keys",
        "defer_foreign_keys",
        "ignore_check_constraints",
        "legacy_alter_table",
        "recursive_triggers",
        "reverse_unordered_selects",
    }
)
_NAME_PRAGMAS = frozenset(
    {
        "foreign_key_check",
        "foreign_key_list",
        "index_info",
        "index_list",
        "index_xinfo",
        "table_info",
        "table_xinfo",
        "table_list",
    }
)
_OTHER_PRAGMAS = frozenset({"quick_check", "optimize"})
ALLOWED_PRAGMAS = _NO_ARGUMENT_PRAGMAS | _FLAG_PRAGMAS | _NAME_PRAGMAS | _OTHER_PRAGMAS

ALLOWED_VIRTUAL_TABLE_MODULES = frozenset({"fts5", "fts5vocab", "rtree", "rtree_i32"})

_OK = sqlite3.SQLITE_OK
_DENY = sqlite3.SQLITE_DENY

# Actions whose first argument names the object acted on.
_NAMED_BY_ARG1 = frozenset(
    {
        sqlite3.SQLITE_READ,
        sqlite3.SQLITE_INSERT,
        sqlite3.SQLITE_UPDATE,
        sqlite3.SQLITE_DELETE,
        sqlite3.SQLITE_CREATE_TABLE,
        sqlite3.SQLITE_CREATE_VIEW,
        sqlite3.SQLITE_DROP_TABLE,
        sqlite3.SQLITE_DROP_VIEW,
        sqlite3.SQLITE_CREATE_INDEX,
        sqlite3.SQLITE_DROP_INDEX,
        sqlite3.SQLITE_CREATE_TRIGGER,
        sqlite3.SQLITE_DROP_TRIGGER,
        sqlite3.SQLITE_DROP_VTABLE,
        sqlite3.SQLITE_REINDEX,
        sqlite3.SQLITE_ANALYZE,
    }
)
# Actions whose second argument names a table (an index's or a trigger's table).
_TABLE_IN_ARG2 = frozenset(
    {
        sqlite3.SQLITE_CREATE_INDEX,
        sqlite3.SQLITE_DROP_INDEX,
        sqlite3.SQLITE_CREATE_TRIGGER,
        sqlite3.SQLITE_DROP_TRIGGER,
        sqlite3.SQLITE_ALTER_TABLE,
    }
)
_TEMP_ACTIONS = frozenset(
    {
        sqlite3.SQLITE_CREATE_TEMP_INDEX,
        sqlite3.SQLITE_CREATE_TEMP_TABLE,
        sqlite3.SQLITE_CREATE_TEMP_TRIGGER,
        sqlite3.SQLITE_CREATE_TEMP_VIEW,
        sqlite3.SQLITE_DROP_TEMP_INDEX,
        sqlite3.SQLITE_DROP_TEMP_TABLE,
        sqlite3.SQLITE_DROP_TEMP_TRIGGER,
        sqlite3.SQLITE_DROP_TEMP_VIEW,
    }
)

_SCHEMA_ACTIONS = frozenset(
    {
        sqlite3.SQLITE_CREATE_TABLE,
        sqlite3.SQLITE_CREATE_VIEW,
        sqlite3.SQLITE_CREATE_INDEX,
        sqlite3.SQLITE_CREATE_TRIGGER,
        sqlite3.SQLITE_CREATE_VTABLE,
        sqlite3.SQLITE_DROP_TABLE,
        sqlite3.SQLITE_DROP_VIEW,
        sqlite3.SQLITE_DROP_INDEX,
        sqlite3.SQLITE_DROP_TRIGGER,
        sqlite3.SQLITE_DROP_VTABLE,
        sqlite3.SQLITE_ALTER_TABLE,
        sqlite3.SQLITE_ANALYZE,
        sqlite3.SQLITE_REINDEX,
    }
)

_TEMP_SCHEMA_TABLES = frozenset({"sqlite_temp_master", "sqlite_temp_schema"})


def is_reserved(name: str | None) -> bool:
    return name is not None and name.lower().startswith(RESERVED_PREFIXES)


@attrs.define
class Authorizer:
    """The authorizer callback: it allows everything until :attr:`guarding` is set.

    When it refuses, :attr:`denial` says why, for the error the caller will see.
    """

    guarding: bool = False
    denial: str | None = None
    schema_changed: bool = False
    """Set when a guarded statement would change the schema or a setting (not reset here)."""

    def __call__(
        self,
        action: int,
        arg1: str | None,
        arg2: str | None,
        db_name: str | None,
        source: str | None,
    ) -> int:
        if not self.guarding:
            return _OK
        reason = _refusal(action, arg1, arg2, db_name)
        if reason is None:
            if action in _SCHEMA_ACTIONS or (action == sqlite3.SQLITE_PRAGMA and arg2 is not None):
                self.schema_changed = True
            return _OK
        self.denial = reason
        return _DENY


def _refusal(action: int, arg1: str | None, arg2: str | None, db_name: str | None) -> str | None:
    """Why object SQL may not do this, or None if it may."""
    if action == sqlite3.SQLITE_TRANSACTION or action == sqlite3.SQLITE_SAVEPOINT:
        return TRANSACTION_MESSAGE
    if action == sqlite3.SQLITE_PRAGMA:
        return _pragma_refusal(arg1 or "", arg2)
    if action in _TEMP_ACTIONS:
        return "temporary tables, indexes, triggers and views are not allowed in object SQL"
    if action == sqlite3.SQLITE_ATTACH or action == sqlite3.SQLITE_DETACH:
        return "ATTACH and DETACH are not allowed: an object has exactly one database"
    if db_name is not None and db_name != "main":
        # ALTER TABLE reads and rewrites the (empty) temp schema table as part of its work.
        if db_name == "temp" and (arg1 or "").lower() in _TEMP_SCHEMA_TABLES:
            return None
        if db_name == "temp":
            return "temporary tables, indexes, triggers and views are not allowed in object SQL"
        return f"only the main database is available to object SQL, not {db_name!r}"
    if action in _NAMED_BY_ARG1 and is_reserved(arg1):
        target = f"{arg1}.{arg2}" if action == sqlite3.SQLITE_READ and arg2 else arg1
        return _reserved(target)
    if action in _TABLE_IN_ARG2 and is_reserved(arg2):
        return _reserved(arg2)
    if action == sqlite3.SQLITE_CREATE_VTABLE:
        if is_reserved(arg1):
            return _reserved(arg1)
        if (arg2 or "").lower() not in ALLOWED_VIRTUAL_TABLE_MODULES:
            allowed = ", ".join(sorted(ALLOWED_VIRTUAL_TABLE_MODULES))
            return f"virtual table module {arg2!r} is not allowed; allowed modules: {allowed}"
    return None


def _reserved(name: str | None) -> str:
    lowered = (name or "").lower()
    prefix = next((p for p in RESERVED_PREFIXES if lowered.startswith(p)), RESERVED_PREFIX)
    return f"access to {name} is prohibited: names starting with {prefix!r} are reserved"


def _pragma_refusal(name: str, argument: str | None) -> str | None:
    pragma = name.lower()
    if pragma in _FLAG_PRAGMAS or pragma in _OTHER_PRAGMAS:
        return None
    if pragma in _NO_ARGUMENT_PRAGMAS:
        if argument is None:
            return None
        return f"PRAGMA {pragma} may be read but not set in object SQL"
    if pragma in _NAME_PRAGMAS:
        if is_reserved(argument):
            return _reserved(argument)
        return None
    allowed = ", ".join(sorted(ALLOWED_PRAGMAS))
    return f"PRAGMA {pragma} is not allowed in object SQL; allowed pragmas: {allowed}"


# -- reading only: an operator's SQL (``dobox sql``, the inspector) ------------------------------

_READING_ACTIONS = frozenset(
    {sqlite3.SQLITE_SELECT, sqlite3.SQLITE_READ, sqlite3.SQLITE_FUNCTION,
     sqlite3.SQLITE_RECURSIVE}
)
_READABLE_PRAGMAS = _NAME_PRAGMAS | frozenset(
    {"data_version", "page_size", "page_count", "freelist_count", "user_version",
     "schema_version", "journal_mode", "quick_check", "integrity_check"}
)
"""Pragmas an operator may read: without a value, or with a table or index name."""


@attrs.define
class ReadingAuthorizer:
    """The authorizer for SQL that may only read: ``SELECT`` (with functions and common
    table expressions) and a few pragmas that report. Unlike :class:`Authorizer`, it lets
    the engine's tables be read (an operator may look at everything) and refuses every
    write, schema change, transaction, ``ATTACH`` and setting. :attr:`denial` says why it
    refused."""

    denial: str | None = None

    def __call__(self, action: int, arg1: str | None, arg2: str | None,
                 db_name: str | None, source: str | None) -> int:
        if action in _READING_ACTIONS:
            return _OK
        if action == sqlite3.SQLITE_PRAGMA and (arg1 or "").lower() in _READABLE_PRAGMAS and (
                arg2 is None or (arg1 or "").lower() in _NAME_PRAGMAS):
            return _OK
        self.denial = ("only SELECT, WITH ... SELECT and the pragmas that report (" +
                       ", ".join(sorted(_READABLE_PRAGMAS)) + ") may run")
        return _DENY
