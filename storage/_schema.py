"""Schema versions: the mechanics of the three mismatch policies, and ``delete_all``.

The runtime decides *which* policy an object gets (DESIGN.md: sync-present objects clear,
sync-absent ones throw, ``migrations`` migrate); this module carries each one out:

- ``clear``: in one transaction, delete everything (KV, tables, alarm), record the new
  version and mark the file "sync pending", then commit durably. The object's ``sync()``
  refills it afterwards and :meth:`Storage.mark_synced` clears the mark, so a ``sync()``
  that fails is retried on the next activation.
- ``throw``: raise :class:`SchemaMismatchError` naming both versions; touch nothing.
- ``migrate``: copy the file with SQLite's backup API, then run every step from the stored
  version up to the declared one, and record the new version, in one transaction. If a
  step raises, everything is rolled back, the backup is kept, and
  :class:`MigrationError` says which step failed and where the backup is.

A file that has never recorded a version takes the declared one without further ado.
"""

from __future__ import annotations

import datetime as dt
import enum
import inspect
import os
import sqlite3
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import sqlite_utils

from ._authorizer import RESERVED_PREFIXES
from ._database import Database
from ._errors import CodecError, MigrationError, SchemaMismatchError, StorageError
from ._meta import (
    ALARM_KEY,
    ALARM_RETRY_KEY,
    ENGINE_TABLES,
    KV_TABLE,
    META_TABLE,
    SYNC_PENDING_KEY,
    read_meta,
    write_meta,
)

if TYPE_CHECKING:
    from ._storage import Storage

SchemaPolicy = Literal["clear", "throw", "migrate"]
Migration = Callable[["Storage"], object]
"""``def step(storage) -> None``: synchronous, run inside the migration's transaction."""

_RESERVED_OR_INTERNAL = ("sqlite_", *RESERVED_PREFIXES)


class SchemaOutcome(enum.Enum):
    """What :meth:`Storage.apply_schema` did."""

    RECORDED = "recorded"
    """The file had no version yet; the declared one was recorded."""
    UNCHANGED = "unchanged"
    CLEARED = "cleared"
    MIGRATED = "migrated"


def apply_schema_policy(
    storage: Storage,
    db: Database,
    declared: int,
    *,
    policy: SchemaPolicy,
    migrations: Mapping[int, Migration],
    backup_dir: str | os.PathLike[str] | None,
) -> SchemaOutcome:
    if type(declared) is not int or declared < 0:
        raise ValueError(f"schema_version must be an int >= 0, not {declared!r}")
    if policy not in ("clear", "throw", "migrate"):
        raise ValueError(
            f"on_schema_mismatch must be 'clear', 'throw' or 'migrate', not {policy!r}"
        )
    recorded = read_meta(db)
    stored = recorded.get("schema_version")
    if stored is None:
        write_meta(db, "schema_version", declared)
        db.commit()
        return SchemaOutcome.RECORDED
    if type(stored) is not int:
        raise CodecError(
            f"{db.label} is damaged: its schema version is recorded as {stored!r:.80}"
        )
    if stored == declared:
        return SchemaOutcome.UNCHANGED
    who = _describe(db, recorded)
    if policy == "clear":
        delete_all_contents(db)
        write_meta(db, "schema_version", declared)
        # Durable, so that an object whose sync() fails is synced again next time.
        write_meta(db, SYNC_PENDING_KEY, 1)
        db.commit()
        return SchemaOutcome.CLEARED
    if policy == "throw" or stored > declared:
        raise SchemaMismatchError(_mismatch_message(who, stored, declared, policy),
                                  stored=stored, declared=declared)
    missing = [v for v in range(stored + 1, declared + 1) if v not in migrations]
    if missing:
        raise SchemaMismatchError(
            f"{who} stores schema version {stored} and its class declares {declared}, but "
            f"migrations has no step for version{'s' if len(missing) > 1 else ''} "
            f"{', '.join(map(str, missing))}; nothing was changed",
            stored=stored, declared=declared,
        )
    backup_path = _backup(db, stored, backup_dir)
    step = stored
    try:
        db.begin()
        for step in range(stored + 1, declared + 1):
            result = migrations[step](storage)
            if inspect.isawaitable(result):
                if inspect.iscoroutine(result):
                    result.close()
                raise TypeError(f"migration {step} must be a plain function, not async")
        write_meta(db, "schema_version", declared)
        db.commit()
    except Exception as exc:
        db.rollback()
        # A runtime names its objects instead of their paths (its errors may be a server's
        # answers): then say where the copy is relative to the data directory.
        where = (str(backup_path) if db.label == db.path
                 else f"{backup_path.parent.name}/{backup_path.name} in the data directory")
        raise MigrationError(
            f"{who}: migration to version {step} raised {type(exc).__name__}: {exc}. Every "
            f"step was rolled back; the file still holds version {stored}, and a copy made "
            f"before migrating is at {where}",
            stored=stored, failed_step=step, backup_path=str(backup_path),
        ) from exc
    return SchemaOutcome.MIGRATED


def _describe(db: Database, recorded: Mapping[str, object]) -> str:
    name, cls = recorded.get("name"), recorded.get("class")
    if name is not None and cls is not None:
        return f"object {name!r} of {cls}"
    if name is not None:
        return f"object {name!r}"
    return db.label if db.label != db.path else f"object database {db.path}"


def _mismatch_message(who: str, stored: int, declared: int, policy: str) -> str:
    if policy == "migrate":
        advice = "migrations only run upwards"
    else:
        advice = (
            f"add migrations for versions {stored + 1}..{declared}, "
            "set on_schema_mismatch = 'clear' if the data can be rebuilt, "
            f"or go back to schema_version = {stored}"
            if declared > stored
            else f"go back to schema_version = {stored}, or set on_schema_mismatch = 'clear'"
        )
    return (
        f"{who} stores schema version {stored} but its class declares {declared}; nothing "
        f"was changed ({advice})"
    )


def _backup(db: Database, stored: int, backup_dir: str | os.PathLike[str] | None) -> Path:
    source = Path(db.path)
    directory = Path(backup_dir) if backup_dir is not None else source.parent / ".backups"
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%S%fZ")
    target = directory / f"{source.stem}.v{stored}.{stamp}.sqlite"
    try:
        directory.mkdir(parents=True, exist_ok=True)
        copy = sqlite3.connect(target)
        try:
            db.conn.backup(copy)
        finally:
            copy.close()
    except (OSError, sqlite3.Error) as exc:
        raise StorageError(
            f"could not back up {db.label} before migrating: {exc}; nothing was "
            "migrated"
        ) from exc
    return target


def delete_all_contents(db: Database) -> None:
    """Inside the implicit transaction, drop every user object and empty the KV and alarm."""
    db.begin()
    # Tables may reference each other; defer the foreign key checks to the commit, by
    # which time none of the tables exist.
    db.execute("PRAGMA defer_foreign_keys=ON")
    schema = sqlite_utils.Database(db.conn, recursive_triggers=False, execute_plugins=False)
    for view in schema.view_names():
        db.execute(f"DROP VIEW {_quote(view)}")
    # A virtual table owns shadow tables, which go with it: drop those first, then list again.
    virtual = [t for t in _user_tables(schema) if schema.table(t).virtual_table_using]
    for table in virtual:
        db.execute(f"DROP TABLE {_quote(table)}")
    for table in _user_tables(schema):
        db.execute(f"DROP TABLE {_quote(table)}")
    for table in schema.table_names():  # collections, registry and all (see _collection)
        if table.startswith(("_dobox_c_", "_dobox_t_", "_dobox_collection")):
            db.execute(f"DROP TABLE {_quote(table)}")
    db.execute(f"DELETE FROM {KV_TABLE}")
    if db.execute(
        f"DELETE FROM {META_TABLE} WHERE key IN (?, ?)", (ALARM_KEY, ALARM_RETRY_KEY)
    ).rowcount:
        db.alarm_changed = True
    db.execute("PRAGMA defer_foreign_keys=OFF")
    db.mark_written()


def _user_tables(schema: sqlite_utils.Database) -> list[str]:
    return [
        name
        for name in schema.table_names()
        if name not in ENGINE_TABLES and not name.lower().startswith(_RESERVED_OR_INTERNAL)
    ]


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'
