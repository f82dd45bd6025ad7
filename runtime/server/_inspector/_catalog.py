"""The objects of one tenant's namespace, as the inspector lists them: found by scanning
the id-prefix directories (one directory read each), named by reading each file's
metadata once.

An id's name never changes, so names are kept for the life of the server: a namespace of
10,000 objects costs a second or so to read the first time, then only the directory scan.
A file the runtime holds open cannot be read from outside (it holds it exclusively); its
name then comes from the live object, or is missing until the object lets the file go.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Mapping
from pathlib import Path
from typing import Literal

import attrs

from runtime._engine import LiveObject
from storage._files import MetadataReader, scan_object_files

State = Literal["live", "live, idle", "not in memory"]
"""Live (its connection open), live but idle (it let its connection go), or not in memory
(evicted, hibernating with its WebSockets, or not woken since the server started)."""


@attrs.frozen
class Listed:
    """One object of a namespace."""

    id: str
    name: str | None
    class_name: str | None
    size: int
    """Bytes of its file and WAL."""
    state: State
    last_activity: float
    """Epoch seconds: its last event if it is live, else its file's last write."""
    queued_events: int = 0


@attrs.frozen
class _Known:
    name: str | None
    class_name: str | None


class Catalog:
    """Names of object files, read once per file for the life of the server."""

    def __init__(self) -> None:
        self._known: dict[Path, _Known] = {}

    def list(self, root: Path, namespace: str,
             live: Mapping[str, LiveObject]) -> list[Listed]:
        """Every object file of ``namespace`` under ``root``, by id, with ``live`` (by id)
        telling which are live. Blocking: run it in a worker thread."""
        listed = []
        with MetadataReader(timeout=0) as reader:
            for file in scan_object_files(root, namespace):
                known = self._known.get(file.path)
                running = live.get(file.id)
                if known is None:
                    try:
                        meta = reader.read(file.path, has_wal=file.has_wal)
                    except sqlite3.Error:  # held by the runtime, or unreadable: not kept
                        known = _Known(name=running.name if running else None,
                                       class_name=None)
                    else:
                        known = self._known[file.path] = _Known(meta.name, meta.class_name)
                if running is None:
                    state: State = "not in memory"
                    last = file.modified
                else:
                    state = "live" if running.connection_open else "live, idle"
                    last = running.last_active
                listed.append(Listed(
                    id=file.id, name=known.name, class_name=known.class_name, size=file.size,
                    state=state, last_activity=last,
                    queued_events=running.queued_events if running else 0))
        return listed


def search(objects: list[Listed], query: str) -> list[Listed]:
    """The objects whose name contains ``query`` (ignoring case), or whose id starts with
    it; all of them for an empty query. Named objects first, by name ignoring case, then
    by id."""
    wanted = query.strip().lower()
    found = [o for o in objects if not wanted or (o.name is not None and wanted in
                                                  o.name.lower()) or o.id.startswith(wanted)]
    return sorted(found, key=lambda o: (o.name is None, (o.name or "").casefold(), o.id))
