"""The engine's own tables inside every object file, and the metadata they record.

``_dobox_kv`` holds the KV pairs (keys as UTF-8 bytes, so SQLite's byte order is the KV
order); ``_dobox_meta`` holds one row per fact about the file: the engine's format, the
object's schema version, name, namespace and class, when it was created, and its alarm.
"""

from __future__ import annotations

import attrs
import sqlite_utils

from ._database import Database
from ._errors import StorageError

ENGINE_FORMAT = 1
"""The layout of the engine's tables; a file written by a newer dobox is refused."""

KV_TABLE = "_dobox_kv"
META_TABLE = "_dobox_meta"
ENGINE_TABLES = frozenset({KV_TABLE, META_TABLE})

_CREATE_KV = (
    f"CREATE TABLE IF NOT EXISTS {KV_TABLE} "
    "(key BLOB PRIMARY KEY NOT NULL, value BLOB NOT NULL) WITHOUT ROWID"
)
_CREATE_META = (
    f"CREATE TABLE IF NOT EXISTS {META_TABLE} (key TEXT PRIMARY KEY NOT NULL, value) WITHOUT ROWID"
)
_READ_META = f"SELECT key, value FROM {META_TABLE}"
_WRITE_META = f"INSERT OR REPLACE INTO {META_TABLE} (key, value) VALUES (?, ?)"
_DELETE_META = f"DELETE FROM {META_TABLE} WHERE key = ?"

ALARM_KEY = "alarm"
ALARM_RETRY_KEY = "alarm_retry"
"""How many times the pending alarm has been retried (absent: it is a first attempt)."""
SYNC_PENDING_KEY = "sync_pending"


@attrs.frozen
class ObjectMetadata:
    """What an object's file records about itself (``None`` where nothing was recorded)."""

    schema_version: int | None = None
    name: str | None = None
    namespace: str | None = None
    class_name: str | None = None
    created_at: float | None = None
    alarm: float | None = None
    alarm_retry: int = 0
    """How many times the pending alarm has been retried after its handler raised."""
    sync_pending: bool = False
    """Cleared by the ``clear`` policy and not yet refilled by a successful ``sync()``."""


def ensure_engine_tables(db: Database) -> None:
    """Create the engine's tables in a new file (left uncommitted, for the caller to commit
    with its own first writes); refuse files from a newer engine."""
    existing = set(sqlite_utils.Database(db.conn, recursive_triggers=False,
                                         execute_plugins=False).table_names())
    if existing >= ENGINE_TABLES:
        stored_format = read_meta(db).get("format")
        if isinstance(stored_format, int) and stored_format > ENGINE_FORMAT:
            raise StorageError(
                f"{db.label} was written by a newer dobox (engine format {stored_format}; this "
                f"one reads format {ENGINE_FORMAT}). Upgrade dobox to open it."
            )
        return
    db.begin()
    db.execute(_CREATE_KV)
    db.execute(_CREATE_META)
    db.execute(f"INSERT OR IGNORE INTO {META_TABLE} (key, value) VALUES ('format', ?)",
               (ENGINE_FORMAT,))
    db.mark_written()


def read_meta(db: Database) -> dict[str, object]:
    return dict(db.execute(_READ_META).fetchall())


def write_meta(db: Database, key: str, value: object) -> None:
    """Record ``key`` inside the implicit transaction (``None`` removes it)."""
    db.begin()
    if value is None:
        if db.execute(_DELETE_META, (key,)).rowcount:
            db.mark_written()
            db.alarm_changed |= key == ALARM_KEY
    else:
        db.execute(_WRITE_META, (key, value))
        db.mark_written()
        db.alarm_changed |= key == ALARM_KEY


def metadata_from(values: dict[str, object]) -> ObjectMetadata:
    def _int(key: str) -> int | None:
        value = values.get(key)
        return value if isinstance(value, int) else None

    def _str(key: str) -> str | None:
        value = values.get(key)
        return value if isinstance(value, str) else None

    def _float(key: str) -> float | None:
        value = values.get(key)
        return float(value) if isinstance(value, int | float) else None

    return ObjectMetadata(
        schema_version=_int("schema_version"),
        name=_str("name"),
        namespace=_str("namespace"),
        class_name=_str("class"),
        created_at=_float("created_at"),
        alarm=_float(ALARM_KEY),
        alarm_retry=_int(ALARM_RETRY_KEY) or 0,
        sync_pending=bool(values.get(SYNC_PENDING_KEY)),
    )
