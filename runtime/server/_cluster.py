"""A server that is one node of a cluster: which node serves an object, and the one hop
that takes a request there.

Any node accepts any request. It serves the object itself if it holds the object's claim,
or if nobody does and rendezvous hashing over the live members picks it (its runtime then
claims the object as it activates it). Otherwise it forwards the request, once, to the
node that holds the claim (or that the hash picks), marked with ``dobox-forwarded-by`` so
that the receiving node serves it itself. A race (two nodes deciding for the same cold
object at once) ends at etcd: one claim wins, and the loser answers ``NotOwnerError`` with a
``dobox-owner`` header, which the forwarding node follows once more.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path

import attrs
import trio

from actors._ids import id_from_name, namespace_key
from runtime.cluster import (
    ClusterNode,
    Etcd,
    Litestream,
    Member,
    ReplicaSettings,
    ReplicationError,
)
from runtime.cluster._placement import place
from runtime.cluster._replicas import Replicas

log = logging.getLogger("dobox.cluster")

FORWARDED_BY = "dobox-forwarded-by"
"""A forwarded request names the node that forwarded it: its receiver serves it itself."""

OWNER = "dobox-owner"
"""On a ``NotOwnerError`` answer: the address of the node that holds the object."""

SERVERS_OWN = frozenset({"date", "server"})
"""Headers the relaying server writes itself (uvicorn adds them to every answer)."""

MAX_REMEMBERED = 100_000
"""Objects whose node a server remembers (about 150 bytes each)."""

HOP_BY_HOP = frozenset({"connection", "keep-alive", "transfer-encoding", "te", "upgrade",
                        "proxy-connection", "host", "content-length"})


@attrs.frozen(kw_only=True)
class ClusterSettings:
    """``dobox serve --cluster ... --node ... --advertise ...``."""

    endpoints: tuple[str, ...]
    node: str
    advertise: str
    """Where the other nodes reach this one (``http://host:port``)."""
    ttl: int = 5
    prefix: str = "dobox"
    replica: ReplicaSettings | None = None
    """``--replica URL --replication MODE``: replicate each object's file with Litestream."""


REPLICATED_DIRECTORY_LOCK = ".dobox-replicated-node"
"""Held (flock) in a replicated node's data directory: such a directory is one node's."""


class ClusterFront:
    """This server's node, and the decision where each request is served."""

    def __init__(self, settings: ClusterSettings, data_dir: Path) -> None:
        self.settings = settings
        self.data_dir = data_dir
        self.etcd = Etcd(list(settings.endpoints))
        self.node = ClusterNode(self.etcd, name=settings.node, address=settings.advertise,
                                ttl=settings.ttl, prefix=settings.prefix)
        self.members: Sequence[Member] = ()
        self._owners: OrderedDict[str, str] = OrderedDict()
        """Where objects served elsewhere were last found (claim key -> address): a hint,
        never trusted for correctness. A forward that reaches a node no longer holding the
        object is served there (the node claims it) or answered with the real owner."""

    async def run(self, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Join the cluster and keep the member list fresh, until cancelled.

        Raises:
            EtcdError: etcd could not be reached to join.
        """
        # Litestream outlives the node: leaving, the node waits for its objects to close,
        # and each makes a last sync as it closes. So the daemon runs shielded, stopped only
        # once the node has left.
        litestream_scope = trio.CancelScope(shield=True)
        try:
            async with trio.open_nursery() as outer:
                if self.settings.replica is not None:
                    self._lock_data_dir()
                    litestream = Litestream()
                    await outer.start(self._run_litestream, litestream, litestream_scope)
                    self.node.replicas = Replicas(self.node, litestream, self.settings.replica)
                try:
                    async with trio.open_nursery() as nursery:
                        await nursery.start(self.node.run)
                        await self._refresh_members()
                        task_status.started()
                        while True:
                            await trio.sleep(self.settings.ttl / 3)
                            await self._refresh_members()
                finally:
                    litestream_scope.cancel()
        finally:
            with trio.CancelScope(shield=True):
                await self.etcd.aclose()

    async def _run_litestream(self, litestream: Litestream, scope: trio.CancelScope,
                              task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
                              ) -> None:
        with scope:
            try:
                await litestream.run(task_status)
            except ReplicationError as exc:
                # Without its daemon the node would acknowledge writes no replica gets:
                # it owns nothing from now on, and its failure stops the server.
                self.node.lose(f"its Litestream failed: {exc}")
                raise

    def _lock_data_dir(self) -> None:
        """Refuse a data directory that another replicated node uses: each node's Litestream
        keeps its state beside the files, and two would corrupt each other's."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.data_dir / REPLICATED_DIRECTORY_LOCK, os.O_RDWR | os.O_CREAT
                     | os.O_CLOEXEC, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise ReplicationError(
                f"another node replicates the data directory {self.data_dir}: with --replica "
                "every node needs its own data directory") from None
        self._directory_lock = fd  # held until the process exits

    async def _refresh_members(self) -> None:
        try:
            self.members = await self.node.members()
        except Exception as exc:  # keep the last list: the lease logic handles etcd loss
            log.warning("node %s could not list the members: %s", self.node.name, exc)

    def claim_key(self, tenant: str, binding: str, name: str) -> str:
        object_hex = id_from_name(namespace_key(f"{tenant}/{binding}"), name).hex
        return self.node.claim_key(f"{tenant}/{binding}/{object_hex}")

    def known_owner(self, claim_key: str) -> tuple[bool, str | None]:
        """Without asking etcd: ``(True, None)`` if this node holds the object, ``(True,
        address)`` if it was last found at ``address``, ``(False, None)`` if unknown. Runs
        outside trio too (it only reads)."""
        if claim_key in self.node.claims:
            return True, None
        address = self._owners.get(claim_key)
        return (True, address) if address is not None else (False, None)

    def remember(self, claim_key: str, address: str | None) -> None:
        """Note where the object was found (None: forget it)."""
        if address is None:
            self._owners.pop(claim_key, None)
            return
        self._owners[claim_key] = address
        self._owners.move_to_end(claim_key)
        while len(self._owners) > MAX_REMEMBERED:
            self._owners.popitem(last=False)

    async def owner_of(self, claim_key: str) -> str | None:
        """The address of the node that serves the object, asking etcd; None for this
        node (it holds the claim, or nobody does and the hash picks it)."""
        node = self.node
        if claim_key in node.claims:
            return None
        claim = await self.etcd.get(claim_key)
        if claim is not None:
            holder = json.loads(claim.value)
            if holder.get("node") == node.name:
                return None  # a claim of an earlier lease: it expires; activating says so
            address = str(holder.get("address"))
        else:
            # Read after the claim: a member whose lease expired took its claims with it,
            # so a node that was just found not to hold the object is not chosen from an
            # older list (a paused node would hold the request until the relay timed out).
            await self._refresh_members()
            members = [m for m in self.members if m.name != node.name]
            members.append(Member(node.name, node.address))
            winner = place(claim_key, members)
            if winner.name == node.name:
                return None
            address = winner.address
        self.remember(claim_key, address)
        return address


def forwarded_headers(headers: dict[str, str], node: str) -> dict[str, str]:
    """The headers a forwarded request carries: the client's, less hop-by-hop ones, plus
    who forwarded it."""
    kept = {name: value for name, value in headers.items() if name not in HOP_BY_HOP}
    kept[FORWARDED_BY] = node
    return kept


def relayed_headers(headers: list[tuple[bytes, bytes]], length: int
                    ) -> list[tuple[bytes, bytes]]:
    """The headers of a relayed answer: the owner's, less hop-by-hop ones, with the length
    of the body as relayed (whole, not chunked)."""
    kept = [(name, value) for name, value in headers
            if name.decode("latin-1").lower() not in HOP_BY_HOP | SERVERS_OWN]
    kept.append((b"content-length", str(length).encode()))
    return kept
