"""The values collections take and give: batch operations, pages, change lists, and the
errors of writes (see ``_collection``)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Generic, TypeVar

import attrs

R = TypeVar("R")


@attrs.frozen
class Insert:
    record: object


@attrs.frozen
class Upsert:
    record: object


@attrs.frozen
class Update:
    key: str | int
    changes: Mapping[str, object]


@attrs.frozen
class Delete:
    key: str | int


Operation = Insert | Upsert | Update | Delete


@attrs.frozen
class Page(Generic[R]):
    """One page of ``load_subset``: the records, and the cursor for the next page (None
    when there is none)."""

    records: list[R]
    cursor: str | None


@attrs.frozen
class Changes:
    """What ``pull_since(version)`` found: keys changed (inserted or updated) and deleted
    since ``version``, up to ``row_version`` (pass it to the next ``pull_since``)."""

    row_version: int
    changed: list[str | int]
    deleted: list[str | int]


@attrs.frozen
class FullReload:
    """``pull_since`` cannot list the changes (the history kept starts later, or the
    collection was cleared): load the whole subset again, then resume from
    ``row_version``."""

    row_version: int
