"""Persisted collections: typed records in an object's database, with subsets, cursors,
indexes, row versions and live queries (docs/reference/collections.md).

``_spec`` declares a collection on a class and prepares its tables, ``_collection`` reads
and writes its records, ``_feed`` tells live queries what changed, ``_query`` builds the
conditions, ``_values`` encodes records and keys, ``_types`` holds the values they exchange.
"""

from ._collection import Collection as Collection
from ._feed import Change as Change
from ._feed import CollectionFeed as CollectionFeed
from ._feed import Snapshot as Snapshot
from ._feed import Subscription as Subscription
from ._query import Expr as Expr
from ._query import Field as Field
from ._query import OrderTerm as OrderTerm
from ._query import expr_from_data as expr_from_data
from ._query import field as field
from ._spec import CollectionSpec as CollectionSpec
from ._spec import HoldsCollections as HoldsCollections
from ._spec import collection as collection
from ._spec import collection_specs as collection_specs
from ._spec import mark_collection_synced as mark_collection_synced
from ._spec import prepare_collection as prepare_collection
from ._types import Changes as Changes
from ._types import Delete as Delete
from ._types import FullReload as FullReload
from ._types import Insert as Insert
from ._types import Page as Page
from ._types import Update as Update
from ._types import Upsert as Upsert
