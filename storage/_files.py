"""Object files seen from outside a runtime: where they live in a data directory, and what
can be read from one without opening it as an object.

A data directory holds ``<namespace>/<id[:2]>/<id>.sqlite`` (the first two hex digits of the
id spread the files over 256 directories); the server keeps one such tree per tenant under
``tenants/<tenant>/``. The runtime, the alarm index, the command line's tools and the
harness find files through these functions only, and read the engine's tables through the
``peek_*`` ones, so the file format has one owner: this package.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import os
import re
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import attrs

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


@attrs.frozen
class ObjectFile:
    """An object file found by :func:`scan_object_files`."""

    path: Path
    id: str
    size: int
    """Bytes of the database file and its WAL."""
    has_wal: bool
    """A ``-wal`` lies beside it: a runtime has it open, or one stopped without closing it."""
    modified: float = 0.0
    """When the file or its WAL was last written (epoch seconds)."""


def scan_object_files(root: Path, namespace: str) -> Iterator[ObjectFile]:
    """The object files of ``namespace`` under ``root``, by id, with their sizes.

    One directory read per id prefix and one ``stat`` per file (two with a WAL), not a
    path lookup per file. A file deleted while it is scanned is left out.
    """
    for prefix in id_prefixes(root, namespace):
        yield from scan_prefix(root / namespace / prefix)


def id_prefixes(root: Path, namespace: str) -> list[str]:
    """The id-prefix directories of ``namespace`` under ``root``, in order."""
    try:
        with os.scandir(root / namespace) as found:
            return sorted(entry.name for entry in found
                          if len(entry.name) == 2 and entry.is_dir())
    except (FileNotFoundError, NotADirectoryError):
        return []


def scan_prefix(folder: Path) -> list[ObjectFile]:
    """The object files in one id-prefix directory, by id."""
    try:
        with os.scandir(folder) as found:
            entries = {entry.name: entry for entry in found}
    except FileNotFoundError:
        return []
    files = []
    for name in sorted(entries):
        object_hex = name[:-len(SUFFIX)]
        if not name.endswith(SUFFIX) or OBJECT_ID.fullmatch(object_hex) is None:
            continue
        wal = entries.get(name + "-wal")
        try:
            stat = entries[name].stat()
            size, modified = stat.st_size, stat.st_mtime
            if wal is not None:
                wal_found = wal.stat()
                size += wal_found.st_size
                modified = max(modified, wal_found.st_mtime)
        except FileNotFoundError:
            continue
        files.append(ObjectFile(path=folder / name, id=object_hex, size=size,
                                has_wal=wal is not None, modified=modified))
    return files


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


def _read_only_uri(path: Path | str, *, immutable: bool) -> str:
    # "?" and "#" would end a URI's path; "%" would start an escape.
    quoted = str(path).replace("%", "%25").replace("?", "%3f").replace("#", "%23")
    return f"file:{quoted}?mode=ro" + ("&immutable=1" if immutable else "")


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
    immutable = not Path(f"{path}-wal").exists()
    return sqlite3.connect(_read_only_uri(path, immutable=immutable), uri=True, timeout=timeout)


class MetadataReader:
    """Reads the metadata of many object files through one in-memory connection, attaching
    each file in turn (about half the cost of a connection per file). Files are attached as
    :func:`connect_read_only` opens them, so reading creates nothing beside a closed file.
    """

    def __init__(self, *, timeout: float = 0.0) -> None:
        self._conn = sqlite3.connect("file::memory:", uri=True, timeout=timeout)

    def __enter__(self) -> MetadataReader:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._conn.close()

    def read(self, path: Path, *, has_wal: bool) -> ObjectMetadata:
        """What the file at ``path`` records about itself.

        Raises:
            sqlite3.Error: the file cannot be read (``SQLITE_BUSY``: a runtime holds it).
        """
        conn = self._conn
        conn.execute("ATTACH DATABASE ? AS object",
                     (_read_only_uri(path, immutable=not has_wal),))
        try:
            rows = conn.execute(f"SELECT key, value FROM object.{META_TABLE}").fetchall()
        finally:
            with contextlib.suppress(sqlite3.Error):  # a failed read leaves nothing to end
                conn.execute("DETACH DATABASE object")
        return metadata_from(dict(rows))


IN_USE = "in use"
"""What :func:`read_namespace` reports for a file a runtime holds."""

PARALLEL_FROM = 16
"""Id-prefix directories from which :func:`read_namespace` reads in worker processes."""

READERS_PER_CORE = 2
"""Worker processes per core: a cold directory makes reading wait for the disk."""


def read_namespace(root: Path, namespace: str, *, workers: int | None = None
                   ) -> Iterator[tuple[ObjectFile, ObjectMetadata | str]]:
    """Each object file of ``namespace`` under ``root``, by id, with its metadata,
    :data:`IN_USE` (a runtime holds it; it is not waited for), or why it could not be read.

    A large namespace is read by worker processes, each taking whole id-prefix directories
    (256 of them at most): reading a file is mostly SQLite opening it, which one process
    does at about 10,000 files a second.
    """
    prefixes = id_prefixes(root, namespace)
    folders = [root / namespace / prefix for prefix in prefixes]
    if workers is None:
        workers = (os.cpu_count() or 1) * READERS_PER_CORE
    if len(folders) < PARALLEL_FROM or workers < 2:
        for folder in folders:
            yield from _read_folder(folder)
        return
    with concurrent.futures.ProcessPoolExecutor(max_workers=workers) as pool:
        for reports in pool.map(_read_folder, folders):
            yield from reports


def _read_folder(folder: Path) -> list[tuple[ObjectFile, ObjectMetadata | str]]:
    reports: list[tuple[ObjectFile, ObjectMetadata | str]] = []
    with MetadataReader(timeout=0) as reader:
        for file in scan_prefix(folder):
            try:
                reports.append((file, reader.read(file.path, has_wal=file.has_wal)))
            except sqlite3.Error as exc:
                busy = getattr(exc, "sqlite_errorcode", None) in (sqlite3.SQLITE_BUSY,
                                                                  sqlite3.SQLITE_LOCKED)
                reports.append((file, IN_USE if busy else f"{file.path}: {exc}"))
    return reports


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
