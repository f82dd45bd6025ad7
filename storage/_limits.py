"""Durable Objects' production limits, as dobox enforces them (see docs/reference/limits.md)."""

from __future__ import annotations

MAX_KEYS_PER_CALL = 128
"""Keys in one ``get([...])``, ``put({...})`` or ``delete([...])``."""

MAX_KEY_VALUE_SIZE = 2_000_000
"""Bytes of a KV key's UTF-8 plus its encoded value ("2 MB" in DO's SQLite-backed storage)."""

MAX_SQL_LENGTH = 100_000
"""Bytes of UTF-8 in one ``sql.exec`` query."""

MAX_BOUND_PARAMETERS = 100
"""Bindings passed to one ``sql.exec`` call."""

MAX_COLUMNS = 100
"""Columns in a table, an index or a result."""

MAX_STRING_OR_BLOB_SIZE = 2 * 1024 * 1024
"""Bytes in one SQL string or blob, or one row. Slightly above :data:`MAX_KEY_VALUE_SIZE`
so that a KV row at the limit, with SQLite's record header, still fits."""

MAX_FUNCTION_ARGUMENTS = 32
MAX_LIKE_PATTERN_LENGTH = 50
MAX_TRANSACTION_DEPTH = 64
"""Nested ``transaction``/``transaction_sync`` calls (DO's blockConcurrencyWhile depth)."""
