"""Who may run an object: the coordinator interface and its one-process case.

Before an object activates, the router asks the coordinator for ownership of its id and
gets a :class:`Lease` back; it releases the lease once the object is closed; before it
acknowledges writes, the actor asks ``owns``, so a node that lost ownership acknowledges
nothing. The cluster's coordinator (``runtime.cluster``: leases in etcd, ownership claimed
by compare-and-swap) implements the same interface; its ``fencing_token`` is the claim
revision. Nothing above the coordinator changes when it does.

A coordinator may also replicate each object's file (the cluster's does, with Litestream):
the actor calls its hooks around the file's life, ``before_open`` (bring the newest copy),
``after_open`` (start replicating), ``confirm`` after each commit when ``confirms_commits``
(wait for the replica), and ``after_close`` (a last sync), and opens the file shared when
``shares_files`` (the replicator reads it beside the runtime).

In one process, the router's own bookkeeping already guarantees one activation per id;
:class:`SingleProcessCoordinator` checks that guarantee and hands out increasing fencing
tokens. Across processes, the object file's ``flock`` refuses a second owner.
"""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Protocol

import attrs


@attrs.frozen
class Lease:
    """Ownership of one object id by this node, until released."""

    key: str
    """``<namespace>/<id hex>``."""
    fencing_token: int
    """Increases with every grant of the same id; a stale owner's token is smaller."""


class Coordinator(Protocol):
    """Grants ownership of object ids to this node."""

    async def acquire(self, key: str) -> Lease:
        """Wait until this node owns ``key``.

        Raises:
            RuntimeError: ``key`` is already owned here (a bug in the caller).
        """
        ...

    def release(self, lease: Lease) -> None:
        """Give up ownership; the object is closed and may activate again."""
        ...

    def owns(self, key: str) -> bool:
        ...

    @property
    def shares_files(self) -> bool:
        """Whether another process reads object files beside the runtime (a replicator)."""
        ...

    @property
    def confirms_commits(self) -> bool:
        """Whether each commit waits for :meth:`confirm` before it is acknowledged."""
        ...

    async def before_open(self, lease: Lease, path: Path) -> None:
        """Before the object's file opens: bring the newest copy of it to ``path``."""
        ...

    async def after_open(self, lease: Lease, path: Path) -> None:
        """After the file opened, before any of the object's code runs."""
        ...

    async def confirm(self, lease: Lease, path: Path) -> None:
        """After a commit, before it is acknowledged (only if :attr:`confirms_commits`)."""
        ...

    async def after_close(self, lease: Lease, path: Path) -> None:
        """After the file closed, before the lease is released."""
        ...


@attrs.define
class SingleProcessCoordinator:
    """The one-node coordinator: every id is local, and owned at most once at a time."""

    _owned: dict[str, Lease] = attrs.field(factory=dict)
    _tokens: itertools.count[int] = attrs.field(factory=lambda: itertools.count(1))

    async def acquire(self, key: str) -> Lease:
        if key in self._owned:
            raise RuntimeError(f"{key} is already active in this process (a second activation)")
        lease = Lease(key, next(self._tokens))
        self._owned[key] = lease
        return lease

    def release(self, lease: Lease) -> None:
        if self._owned.get(lease.key) == lease:
            del self._owned[lease.key]

    def owns(self, key: str) -> bool:
        return key in self._owned

    # One process replicates nothing: the file on this disk is the object.
    shares_files = False
    confirms_commits = False

    async def before_open(self, lease: Lease, path: Path) -> None:
        pass

    async def after_open(self, lease: Lease, path: Path) -> None:
        pass

    async def confirm(self, lease: Lease, path: Path) -> None:
        pass

    async def after_close(self, lease: Lease, path: Path) -> None:
        pass

    @property
    def owned(self) -> int:
        return len(self._owned)
