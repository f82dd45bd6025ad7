"""Object files seen from outside a runtime: where they live in a data directory, and what
can be read from one without opening it as an object.

A data directory holds ``<namespace>/<id[:2]>/<id>.sqlite`` (the first two hex digits of the
id spread the files over 256 directories); the server keeps one such tree per tenant under
``tenants/<tenant>/``. The runtime, the alarm index, the command line's tools and the
harness find files through these functions only, and read the engine's tables through the
``peek_*`` ones, so the file format has one owner: this package.
"""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Iterator
from pathlib import Path

from ._meta import ALARM_KEY, KV_TABLE, META_TABLE, ObjectMetadata, metadata_from

OBJECT_ID = re.compile(r"[0-9a-f]{64}")
"""An object's id as its file is named: 64 lowercase hex digits."""

SUFFIX = ".sqlite"


def object_path(root: Path, namespace: str, object_hex: str) -> Path:
    """Where the object ``object_hex`` of ``namespace`` keeps its file under ``root``."""
    return root / namespace / object_hex[:2] / f"{object_hex}{SUFFIX}"


def is_object_file(path: Path) -> bool:
    """Whether ``path`` is named as an object file (not a WAL, a backup or the alarm index)."""
    return path.suffix == SUFFIX and OBJECT_ID.fullmatch(path.stem) is not None


def object_paths(root: Path, namespace: str) -> list[Path]:
    """The object files of ``namespace`` under ``root``, by id."""
    return sorted(path for path in (root / namespace).glob(f"*/*{SUFFIX}")
                  if is_object_file(path))


def find_object_paths(root: Path, object_hex: str) -> list[Path]:
    """The files of the object ``object_hex`` under ``root``, in whichever namespace."""
    return sorted(root.glob(f"*/{object_hex[:2]}/{object_hex}{SUFFIX}"))


def namespace_of(path: Path) -> str:
    """The namespace an object file belongs to (the directory above its id's prefix)."""
    return path.parent.parent.name


# -- reading a file without opening it as an object -------------------------------------------
# The caller opens the connection (read-only, with the timeout it wants) and maps its errors.

def peek_metadata(conn: sqlite3.Connection) -> ObjectMetadata:
    """What the file records about itself."""
    return metadata_from(dict(conn.execute(f"SELECT key, value FROM {META_TABLE}").fetchall()))


def peek_kv(conn: sqlite3.Connection) -> Iterator[tuple[str, bytes]]:
    """The KV pairs in key order, keys decoded, values as their codec bytes."""
    for raw_key, raw_value in conn.execute(f"SELECT key, value FROM {KV_TABLE} ORDER BY key"):
        yield bytes(raw_key).decode("utf-8", "replace"), bytes(raw_value)


def peek_user_tables(conn: sqlite3.Connection) -> list[str]:
    """The object's own tables (not SQLite's, not the engine's), by name."""
    return [row[0] for row in conn.execute(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite%' "
        "AND name NOT LIKE '\\_dobox\\_%' ESCAPE '\\' "
        "AND name NOT LIKE '\\_litestream\\_%' ESCAPE '\\' ORDER BY name")]


def connect_read_only(path: Path, *, timeout: float = 5.0) -> sqlite3.Connection:
    """A read-only connection to an object file that creates nothing beside it.

    A file without a ``-wal`` was closed and checkpointed: everything committed is in it,
    so it is read as ``immutable`` (no locks, no ``-wal`` or ``-shm`` made for the read;
    SQLite would otherwise create both beside every file it reads). A runtime that opens
    the object meanwhile writes to a new ``-wal``, not the file, until its first
    checkpoint. A file with a ``-wal`` (a runtime has it open, or one crashed) is read the
    locking way, which sees the ``-wal``'s commits and waits up to ``timeout`` seconds for
    a runtime that holds it.
    """
    if Path(f"{path}-wal").exists():
        return sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=timeout)
    return sqlite3.connect(f"file:{path}?mode=ro&immutable=1", uri=True, timeout=timeout)


def peek_alarm(path: Path) -> float | None:
    """The alarm recorded in an object file, read without locking or writing it.

    Raises:
        sqlite3.Error: the file cannot be read.
    """
    conn = connect_read_only(path)
    try:
        row = conn.execute(f"SELECT value FROM {META_TABLE} WHERE key = ?",
                           (ALARM_KEY,)).fetchone()
    finally:
        conn.close()
    return float(row[0]) if row is not None and isinstance(row[0], int | float) else None
