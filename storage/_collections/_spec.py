"""Declaring a collection on an object class, and preparing it in the object's file.

::

    class Todos(DurableObject):
        todos = collection("todos", key="id", record_type=Todo, schema_version=2,
                           indexes=[field("done"), (field("owner"), field("due"))])

        async def add(self, title: str) -> None:
            self.todos.insert({"id": new_id(), "title": title, "done": False})

The runtime prepares every declared collection when the object activates: it creates the
tables and the declared indexes (dropping indexes no longer declared), and checks the
stored schema version against the declared one. The mode is inferred as for objects: a
collection with a ``sync`` source is *sync-present* (its data is a cache of an upstream
truth) and is cleared on a mismatch, in one transaction with its history, batch ids and
metadata, then refilled by ``await sync(obj, records)``; one without is *sync-absent*: a
mismatch raises ``SchemaMismatchError`` with nothing touched, unless ``migrations`` bring
the data up to the declared version.
"""

from __future__ import annotations

import hashlib
import re
import weakref
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any, Literal, Protocol, TypeVar, overload

import attrs

from .._database import Database
from .._errors import MigrationError, SchemaMismatchError
from ._collection import BATCHES, META, REGISTRY, Collection, records_table, tombstones_table
from ._query import Field

if TYPE_CHECKING:
    from .._storage import Storage


class HoldsCollections(Protocol):
    """What a class that declares collections gives their descriptors: the storage they
    live in. ``actors.DurableObject`` is one; storage assumes nothing else of objects."""

    def _collections_storage(self) -> Storage: ...

R = TypeVar("R")
CollectionPolicy = Literal["clear", "throw", "migrate"]
SyncSource = Callable[[Any, Collection[Any]], Awaitable[None]]  # type: ignore[explicit-any]  # (the object, its records)
CollectionMigration = Callable[[Collection[Any]], None]  # type: ignore[explicit-any]  # runs on the records

_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_]{0,47}")
_INDEX_PREFIX = "_dobox_i_"

_CREATE_REGISTRY = (
    f"CREATE TABLE IF NOT EXISTS {REGISTRY} (name TEXT PRIMARY KEY, schema_version INTEGER "
    "NOT NULL, row_version INTEGER NOT NULL, history_floor INTEGER NOT NULL, sync_pending "
    "INTEGER NOT NULL DEFAULT 0)"
)
_CREATE_BATCHES = (
    f"CREATE TABLE IF NOT EXISTS {BATCHES} (collection TEXT NOT NULL, batch_id TEXT NOT NULL,"
    " row_version INTEGER NOT NULL, PRIMARY KEY (collection, batch_id))"
)
_CREATE_META = (
    f"CREATE TABLE IF NOT EXISTS {META} (collection TEXT NOT NULL, key TEXT NOT NULL, value,"
    " PRIMARY KEY (collection, key))"
)


def _index_fields(value: object) -> tuple[Field, ...]:
    fields = (value,) if isinstance(value, Field | str) else tuple(value)  # type: ignore[arg-type]  # checked below
    result = tuple(Field(f) if isinstance(f, str) else f for f in fields)
    if not result or not all(isinstance(f, Field) for f in result):
        raise TypeError(f"an index is a field or a tuple of fields, not {value!r}")
    return result


def _indexes(value: Iterable[object]) -> tuple[tuple[Field, ...], ...]:
    return tuple(_index_fields(index) for index in value)


@attrs.frozen(eq=False)
class CollectionSpec:
    """A collection declared on an object class (see the module docstring); reading it on
    an instance gives that object's :class:`Collection`."""

    name: str
    key: str = "id"
    schema_version: int = 1
    indexes: tuple[tuple[Field, ...], ...] = attrs.field(default=(), converter=_indexes)
    record_type: type | None = None
    sync: SyncSource | None = None
    migrations: Mapping[int, CollectionMigration] = attrs.field(factory=dict)
    on_schema_mismatch: CollectionPolicy | None = None

    def __attrs_post_init__(self) -> None:
        if not isinstance(self.name, str) or not _NAME.fullmatch(self.name):
            raise ValueError(f"collection name {self.name!r}: a letter, then letters, digits "
                             "or _, at most 48 characters")
        if not isinstance(self.schema_version, int) or self.schema_version < 1:
            raise ValueError(f"schema_version must be an int >= 1, not {self.schema_version!r}")
        if self.record_type is not None and not attrs.has(self.record_type):
            raise TypeError(f"record_type must be an attrs class, not {self.record_type!r}")

    @property
    def mode(self) -> Literal["sync-present", "sync-absent"]:
        return "sync-present" if self.sync is not None else "sync-absent"

    @property
    def policy(self) -> CollectionPolicy:
        if self.on_schema_mismatch is not None:
            return self.on_schema_mismatch
        if self.sync is not None:
            return "clear"
        return "migrate" if self.migrations else "throw"

    @overload
    def __get__(self, instance: None, owner: type) -> CollectionSpec: ...
    @overload
    def __get__(self, instance: HoldsCollections, owner: type) -> Collection[Any]: ...  # type: ignore[explicit-any]  # records as the spec says
    def __get__(  # type: ignore[explicit-any]  # as above
        self, instance: HoldsCollections | None, owner: type
    ) -> CollectionSpec | Collection[Any]:
        if instance is None:
            return self
        return instance._collections_storage().collection(self)


def collection(
    name: str,
    *,
    key: str = "id",
    schema_version: int = 1,
    indexes: Iterable[Field | str | tuple[Field | str, ...]] = (),
    record_type: type | None = None,
    sync: SyncSource | None = None,
    migrations: Mapping[int, CollectionMigration] | None = None,
    on_schema_mismatch: CollectionPolicy | None = None,
) -> CollectionSpec:
    """Declare a collection (see the module docstring).

    - ``key``: the field holding each record's key (a str or an int).
    - ``indexes``: fields (or tuples of fields) to index; queries on them use the index.
    - ``record_type``: an attrs class: records are validated and converted on write, and
      read back as instances.
    - ``sync``: ``async def sync(obj, records)``, which refills the collection from its
      upstream; its presence makes the collection sync-present.
    - ``migrations``: ``{version: fn(records)}`` steps up to ``schema_version``.

    Raises:
        ValueError, TypeError: a bad name, version, index or record type.
    """
    return CollectionSpec(name, key, schema_version, indexes, record_type,
                          sync, dict(migrations or {}), on_schema_mismatch)


_SPECS: weakref.WeakKeyDictionary[type, tuple[CollectionSpec, ...]] = (
    weakref.WeakKeyDictionary())


def collection_specs(cls: type) -> tuple[CollectionSpec, ...]:
    """The collections declared on ``cls`` and its bases (looked up once per class: every
    activation asks)."""
    specs = _SPECS.get(cls)
    if specs is None:
        specs = _SPECS[cls] = _find_specs(cls)
    return specs


def _find_specs(cls: type) -> tuple[CollectionSpec, ...]:
    found: dict[str, CollectionSpec] = {}
    for klass in reversed(cls.__mro__):
        for value in vars(klass).values():
            if isinstance(value, CollectionSpec):
                found[value.name] = value
    return tuple(found.values())


def prepare_collection(db: Database, spec: CollectionSpec) -> bool:
    """Create or check the collection in the file, inside the implicit transaction;
    whether it needs its ``sync`` (it was cleared, and not yet refilled).

    Raises:
        SchemaMismatchError: a sync-absent collection stores another schema version.
        MigrationError: a migration step raised (its writes are rolled back).
    """
    db.check_usable()
    db.begin()
    for ddl in (_CREATE_REGISTRY, _CREATE_BATCHES, _CREATE_META):
        db.execute(ddl)
    table, tombs = records_table(spec.name), tombstones_table(spec.name)
    row = db.execute(f"SELECT schema_version, sync_pending FROM {REGISTRY} WHERE name = ?",
                     (spec.name,)).fetchone()
    if row is None:
        db.execute(f"CREATE TABLE {table} (key TEXT PRIMARY KEY NOT NULL, value TEXT NOT NULL,"
                   " types TEXT, row_version INTEGER NOT NULL)")
        db.execute(f"CREATE INDEX {table}_row_version ON {table} (row_version)")
        db.execute(f"CREATE TABLE {tombs} (key TEXT PRIMARY KEY NOT NULL, row_version "
                   "INTEGER NOT NULL)")
        db.execute(f"CREATE INDEX {tombs}_row_version ON {tombs} (row_version)")
        db.execute(f"INSERT INTO {REGISTRY} (name, schema_version, row_version, history_floor)"
                   " VALUES (?, ?, 0, 0)", (spec.name, spec.schema_version))
        db.mark_written()
        _sync_indexes(db, spec)
        return False
    stored, sync_pending = int(row[0]), bool(row[1])
    if stored != spec.schema_version:
        policy = spec.policy
        if policy == "clear":
            clear_collection(db, spec.name, spec.schema_version)
            sync_pending = True
        elif policy == "migrate" and stored < spec.schema_version:
            _migrate(db, spec, stored)
        else:
            raise SchemaMismatchError(
                f'collection "{spec.name}" stores schema version {stored} and its '
                f"declaration says {spec.schema_version}; nothing was changed. Declare a "
                "sync source (then it is cleared and refilled) or migrations up to "
                f"{spec.schema_version}.", stored=stored, declared=spec.schema_version)
    _sync_indexes(db, spec)
    return sync_pending


def clear_collection(db: Database, name: str, schema_version: int) -> None:
    """Empty the collection with its tombstones, batch ids and metadata, and move its
    history floor to now, so every resume point from before reloads: one transaction (the
    implicit one), so nothing of the old data survives without the rest."""
    for sql in (f"DELETE FROM {records_table(name)}", f"DELETE FROM {tombstones_table(name)}"):
        db.execute(sql)
    db.execute(f"DELETE FROM {BATCHES} WHERE collection = ?", (name,))
    db.execute(f"DELETE FROM {META} WHERE collection = ?", (name,))
    db.execute(f"UPDATE {REGISTRY} SET schema_version = ?, row_version = row_version + 1, "
               "history_floor = row_version + 1, sync_pending = 1 WHERE name = ?",
               (schema_version, name))
    db.mark_written()


def mark_collection_synced(db: Database, name: str) -> None:
    db.execute(f"UPDATE {REGISTRY} SET sync_pending = 0 WHERE name = ?", (name,))
    db.mark_written()


def _migrate(db: Database, spec: CollectionSpec, stored: int) -> None:
    missing = [v for v in range(stored + 1, spec.schema_version + 1) if v not in spec.migrations]
    if missing:
        raise SchemaMismatchError(
            f'collection "{spec.name}" stores schema version {stored}; its declaration says '
            f"{spec.schema_version} but has no migration to {missing[0]}; nothing was changed",
            stored=stored, declared=spec.schema_version)
    records: Collection[Any] = Collection(db, spec.name, spec.key)  # type: ignore[explicit-any]  # plain dicts while migrating
    db.execute("SAVEPOINT dobox_collection_migration")
    try:
        for version in range(stored + 1, spec.schema_version + 1):
            spec.migrations[version](records)
            db.execute(f"UPDATE {REGISTRY} SET schema_version = ? WHERE name = ?",
                       (version, spec.name))
    except Exception as exc:
        db.execute("ROLLBACK TO dobox_collection_migration")
        db.execute("RELEASE dobox_collection_migration")
        raise MigrationError(f'migrating collection "{spec.name}" to version {version} '
                             f"raised {type(exc).__name__}: {exc}; nothing was changed",
                             stored=stored, failed_step=version, backup_path=None) from exc
    db.execute("RELEASE dobox_collection_migration")
    db.mark_written()


def index_name(spec_name: str, fields: tuple[Field, ...]) -> str:
    text = ", ".join(f.sql for f in fields)
    digest = hashlib.sha256(text.encode()).hexdigest()[:12]
    return f"{_INDEX_PREFIX}{spec_name}_{digest}"


def _sync_indexes(db: Database, spec: CollectionSpec) -> None:
    """Create the declared indexes and drop this collection's indexes no longer declared.
    Each is built from the fields' SQL text, the same text queries use."""
    table = records_table(spec.name)
    wanted = {index_name(spec.name, fields): fields for fields in spec.indexes}
    existing = {name for (name,) in db.execute(
        "SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = ?", (table,))
        if name.startswith(_INDEX_PREFIX)}
    for name in existing - wanted.keys():
        db.execute(f"DROP INDEX {name}")
        db.mark_written()
    for name, fields in wanted.items():
        if name not in existing:
            db.execute(f"CREATE INDEX {name} ON {table} ({', '.join(f.sql for f in fields)})")
            db.mark_written()
