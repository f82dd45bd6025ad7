"""A hypothesis state machine drives the KV API against a dict model: every ``list`` option,
batches, deletes, commits, rollbacks, ``delete_all`` and reopening the file."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from storage import Storage, open_storage

# A small alphabet makes keys collide and share prefixes; it spans 1- to 4-byte UTF-8.
keys = st.text(alphabet="ab\x00\x7fé\uffff\U0001f600", max_size=4)
optional_keys = st.none() | keys
values = st.none() | st.integers() | st.text(max_size=5) | st.lists(st.integers(), max_size=3)


def model_list(
    pairs: dict[str, object],
    *,
    start: str | None,
    start_after: str | None,
    end: str | None,
    prefix: str | None,
    reverse: bool,
    limit: int | None,
) -> dict[str, object]:
    def included(key: bytes) -> bool:
        return (
            (start is None or key >= start.encode())
            and (start_after is None or key > start_after.encode())
            and (end is None or key < end.encode())
            and (prefix is None or key.startswith(prefix.encode()))
        )

    chosen = sorted((k for k in pairs if included(k.encode())), key=str.encode, reverse=reverse)
    return {k: pairs[k] for k in chosen[:limit]}


class KVAgainstDict(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.directory = Path(tempfile.mkdtemp(prefix="dobox-kv-model-"))
        self.path = self.directory / "object.sqlite"
        self.storage: Storage = open_storage(self.path, durability="normal")
        self.committed: dict[str, object] = {}
        self.current: dict[str, object] = {}

    def teardown(self) -> None:
        self.storage.close()
        shutil.rmtree(self.directory)

    @rule(key=keys, value=values)
    def put(self, key: str, value: object) -> None:
        self.storage.kv.put(key, value)
        self.current[key] = value

    @rule(entries=st.dictionaries(keys, values, max_size=5))
    def put_many(self, entries: dict[str, object]) -> None:
        self.storage.kv.put(entries)
        self.current.update(entries)

    @rule(key=keys)
    def delete(self, key: str) -> None:
        assert self.storage.kv.delete(key) is (key in self.current)
        self.current.pop(key, None)

    @rule(batch=st.lists(keys, max_size=5))
    def delete_many(self, batch: list[str]) -> None:
        expected = len(set(batch) & set(self.current))
        assert self.storage.kv.delete(batch) == expected
        for key in batch:
            self.current.pop(key, None)

    @rule(key=keys)
    def get(self, key: str) -> None:
        missing = object()
        found = self.storage.kv.get(key, missing)
        if key in self.current:
            assert found == self.current[key]
        else:
            assert found is missing

    @rule(batch=st.lists(keys, max_size=5))
    def get_many(self, batch: list[str]) -> None:
        expected = {k: self.current[k] for k in sorted(set(batch), key=str.encode)
                    if k in self.current}
        result = self.storage.kv.get(batch)
        assert list(result.items()) == list(expected.items())

    @rule(
        data=st.data(),
        end=optional_keys,
        prefix=optional_keys,
        reverse=st.booleans(),
        limit=st.none() | st.integers(min_value=1, max_value=6),
    )
    def list_range(
        self,
        data: st.DataObject,
        end: str | None,
        prefix: str | None,
        reverse: bool,
        limit: int | None,
    ) -> None:
        start, start_after = data.draw(
            st.tuples(optional_keys, st.none()) | st.tuples(st.none(), optional_keys)
        )
        options = {"start": start, "start_after": start_after, "end": end, "prefix": prefix,
                   "reverse": reverse, "limit": limit}
        result = self.storage.kv.list(**options)  # type: ignore[arg-type]
        assert list(result.items()) == list(model_list(self.current, **options).items())  # type: ignore[arg-type]

    @rule()
    def commit(self) -> None:
        self.storage.commit()
        self.committed = dict(self.current)
        assert not self.storage.has_uncommitted_writes

    @rule()
    def rollback(self) -> None:
        self.storage.rollback()
        self.current = dict(self.committed)

    @precondition(lambda self: not self.storage.has_uncommitted_writes)
    @rule()
    def reopen(self) -> None:
        self.storage.close()
        self.storage = open_storage(self.path, durability="normal")

    @rule()
    def delete_all(self) -> None:
        self.storage.delete_all_sync()
        self.current = {}

    @invariant()
    def everything_matches(self) -> None:
        assert self.storage.kv.list() == self.current


KVAgainstDict.TestCase.settings = settings(max_examples=100, stateful_step_count=30,
                                           deadline=None)
TestKVAgainstDict = KVAgainstDict.TestCase
