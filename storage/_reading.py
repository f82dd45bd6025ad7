"""An operator's SQL on an object's database: it may only read (``dobox sql``, the inspector).

The statement runs under :class:`ReadingAuthorizer`, which SQLite consults while it
prepares it: a write, a schema change, a transaction, ``ATTACH`` or a setting is refused
before anything runs, on a read-only connection (``dobox sql``) as on a live object's own
(the server's inspector, between the object's turns). The text gets a prefix that the
engine's statements never have, so it never reuses a statement the engine prepared
(SQLite does not authorize a cached statement again).

Optional limits: ``max_rows`` (the rows beyond are left unread, and the result says so)
and ``seconds`` (SQLite's progress handler interrupts a longer query). The inspector sets
both: it runs on the server's only thread.
"""

from __future__ import annotations

import sqlite3
import time

import attrs

from ._authorizer import ReadingAuthorizer
from ._errors import ForbiddenSqlError, LimitExceededError
from ._kv import Value

READING_SQL_PREFIX = "/* dobox: reading */ "

_PROGRESS_STEPS = 1000
"""SQLite virtual-machine steps between two looks at the clock."""


@attrs.frozen
class QueryResult:
    columns: list[str]
    rows: list[tuple[Value, ...]]
    truncated: bool = False
    """More rows followed than ``max_rows``; they were not read."""


def run_reading_sql(conn: sqlite3.Connection, sql: str, *, max_rows: int | None = None,
                    seconds: float | None = None) -> QueryResult:
    """Run one statement of ``sql`` on ``conn`` if it only reads. The connection's
    authorizer and progress handler are removed afterwards: a caller that had its own
    installs it again.

    Raises:
        ForbiddenSqlError: it would do more than read.
        LimitExceededError: it ran longer than ``seconds``.
        sqlite3.Error: SQLite refused it otherwise (a syntax error, no such table, two
            statements, a file another connection holds): the caller's to report.
    """
    authorizer = ReadingAuthorizer()
    deadline = None if seconds is None else time.monotonic() + seconds
    conn.set_authorizer(authorizer)
    if deadline is not None:
        conn.set_progress_handler(lambda: time.monotonic() > deadline, _PROGRESS_STEPS)
    try:
        cursor = conn.execute(READING_SQL_PREFIX + sql)
        columns = [column[0] for column in cursor.description or ()]
        if max_rows is None:
            rows = cursor.fetchall()
            truncated = False
        else:
            rows = cursor.fetchmany(max_rows + 1)
            truncated = len(rows) > max_rows
            del rows[max_rows:]
        cursor.close()
    except sqlite3.Error:
        if authorizer.denial is not None:
            raise ForbiddenSqlError(f"dobox only reads object files, so it refused this "
                                    f"statement: {authorizer.denial}") from None
        if deadline is not None and time.monotonic() > deadline:
            raise LimitExceededError(f"the query ran for more than {seconds:g} s and was "
                                     "stopped") from None
        raise
    finally:
        conn.set_authorizer(None)
        if deadline is not None:
            conn.set_progress_handler(None, 0)
    return QueryResult(columns=columns, rows=rows, truncated=truncated)
