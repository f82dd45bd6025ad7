"""One object's SQLite database: KV, SQL, transactions, the value codec and schema versions.

``storage`` imports nothing else of dobox's; ``actors`` and ``runtime`` build on it.
"""

from ._codec import MAX_DEPTH as MAX_DEPTH
from ._codec import decode_value as decode_value
from ._codec import encode_value as encode_value
from ._collections import Change as Change
from ._collections import Changes as Changes
from ._collections import Collection as Collection
from ._collections import CollectionSpec as CollectionSpec
from ._collections import Delete as Delete
from ._collections import Expr as Expr
from ._collections import Field as Field
from ._collections import FullReload as FullReload
from ._collections import Insert as Insert
from ._collections import OrderTerm as OrderTerm
from ._collections import Page as Page
from ._collections import Snapshot as Snapshot
from ._collections import Subscription as Subscription
from ._collections import Update as Update
from ._collections import Upsert as Upsert
from ._collections import collection as collection
from ._collections import collection_specs as collection_specs
from ._collections import field as field
from ._database import Durability as Durability
from ._errors import CodecError as CodecError
from ._errors import ConstraintError as ConstraintError
from ._errors import DatabaseCorruptError as DatabaseCorruptError
from ._errors import DoboxError as DoboxError
from ._errors import DuplicateKeyError as DuplicateKeyError
from ._errors import ForbiddenSqlError as ForbiddenSqlError
from ._errors import InvalidKeyError as InvalidKeyError
from ._errors import InvalidRecordError as InvalidRecordError
from ._errors import LimitExceededError as LimitExceededError
from ._errors import MigrationError as MigrationError
from ._errors import ObjectLockedError as ObjectLockedError
from ._errors import RecordNotFoundError as RecordNotFoundError
from ._errors import SchemaMismatchError as SchemaMismatchError
from ._errors import SqlError as SqlError
from ._errors import StorageClosedError as StorageClosedError
from ._errors import StorageError as StorageError
from ._errors import StorageFullError as StorageFullError
from ._errors import StorageIOError as StorageIOError
from ._errors import TransactionAbortedError as TransactionAbortedError
from ._errors import TransactionError as TransactionError
from ._errors import UnsupportedValueError as UnsupportedValueError
from ._kv import SyncKV as SyncKV
from ._kv import Value as Value
from ._limits import MAX_BOUND_PARAMETERS as MAX_BOUND_PARAMETERS
from ._limits import MAX_COLUMNS as MAX_COLUMNS
from ._limits import MAX_KEY_VALUE_SIZE as MAX_KEY_VALUE_SIZE
from ._limits import MAX_KEYS_PER_CALL as MAX_KEYS_PER_CALL
from ._limits import MAX_SQL_LENGTH as MAX_SQL_LENGTH
from ._limits import MAX_STRING_OR_BLOB_SIZE as MAX_STRING_OR_BLOB_SIZE
from ._limits import MAX_TRANSACTION_DEPTH as MAX_TRANSACTION_DEPTH
from ._meta import ObjectMetadata as ObjectMetadata
from ._schema import Migration as Migration
from ._schema import SchemaOutcome as SchemaOutcome
from ._schema import SchemaPolicy as SchemaPolicy
from ._sql import RawRows as RawRows
from ._sql import SqlCursor as SqlCursor
from ._sql import SqlStorage as SqlStorage
from ._storage import Storage as Storage
from ._storage import open_storage as open_storage

__all__ = [
    "MAX_BOUND_PARAMETERS",
    "MAX_COLUMNS",
    "MAX_DEPTH",
    "MAX_KEYS_PER_CALL",
    "MAX_KEY_VALUE_SIZE",
    "MAX_SQL_LENGTH",
    "MAX_STRING_OR_BLOB_SIZE",
    "MAX_TRANSACTION_DEPTH",
    "Change",
    "Changes",
    "CodecError",
    "Collection",
    "CollectionSpec",
    "ConstraintError",
    "DatabaseCorruptError",
    "Delete",
    "DoboxError",
    "DuplicateKeyError",
    "Durability",
    "Expr",
    "Field",
    "ForbiddenSqlError",
    "FullReload",
    "Insert",
    "InvalidKeyError",
    "InvalidRecordError",
    "LimitExceededError",
    "Migration",
    "MigrationError",
    "ObjectLockedError",
    "ObjectMetadata",
    "OrderTerm",
    "Page",
    "RawRows",
    "RecordNotFoundError",
    "SchemaMismatchError",
    "SchemaOutcome",
    "SchemaPolicy",
    "Snapshot",
    "SqlCursor",
    "SqlError",
    "SqlStorage",
    "Storage",
    "StorageClosedError",
    "StorageError",
    "StorageFullError",
    "StorageIOError",
    "Subscription",
    "SyncKV",
    "TransactionAbortedError",
    "TransactionError",
    "UnsupportedValueError",
    "Update",
    "Upsert",
    "Value",
    "collection",
    "collection_specs",
    "decode_value",
    "encode_value",
    "field",
    "open_storage",
]
