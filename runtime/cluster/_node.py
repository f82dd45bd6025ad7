"""This process as a member of a dobox cluster: its etcd lease, and its claims on objects.

A node holds one lease (``ttl`` seconds, kept alive every ``ttl / 3``) and, under it, a
membership key ``<prefix>/members/<name>`` naming where other nodes reach it. Activating an
object claims ``<prefix>/objects/<scope><namespace>/<id>`` under the same lease, in one
transaction that succeeds only if nobody holds the claim: the claim's create revision is
the activation's fencing token. The claims vanish with the lease, so a node that dies or is
cut off frees its objects within ``ttl`` seconds.

The node's own view of its lease is a *deadline*: the time it sent its last successful
keep-alive, plus the TTL etcd answered, minus a margin. etcd measures the TTL from when it
received that keep-alive, later than it was sent, so until the deadline the lease certainly
holds, whatever the network does afterwards. Past it (or on a keep-alive answered without a
TTL: the lease expired) the node is *lost*: ``holds_lease()`` is False at once, it refuses
to claim, and ``on_lost`` callbacks drop its activations.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Awaitable, Callable
from pathlib import Path

import attrs
import trio

from actors import OverloadedError
from runtime._engine import Lease

from ._errors import NotOwnerError
from ._etcd import Etcd, EtcdError
from ._replicas import Replicas

log = logging.getLogger("dobox.cluster")


@attrs.frozen
class Member:
    name: str
    address: str


class ClusterNode:
    """One node's lease and membership (see the module docstring). Use :meth:`run` in a
    nursery (``await nursery.start(node.run)``), then :meth:`coordinator` per runtime."""

    def __init__(self, etcd: Etcd, *, name: str, address: str, ttl: int = 5,
                 prefix: str = "dobox", margin: float | None = None) -> None:
        if ttl < 2:
            raise ValueError("a node's lease needs a TTL of at least 2 seconds")
        self.etcd = etcd
        self.name = name
        self.address = address
        self.ttl = ttl
        self.prefix = prefix.rstrip("/")
        self.margin = margin if margin is not None else max(0.5, ttl / 10)
        self.lease = 0
        self.deadline = -float("inf")
        """Trio time until which the lease certainly holds."""
        self.lost: str | None = None
        """Why the node lost its lease, once it has."""
        self.on_lost: list[Callable[[str], None]] = []
        self.claims: dict[str, int] = {}
        """This node's claims: etcd key -> create revision (the fencing token)."""
        self._releases, self._to_release = trio.open_memory_channel[tuple[str, int]](math.inf)
        """Claims to delete in etcd, queued by ``release`` (which cannot wait) for the
        releasing task; those still queued when the node leaves go with its lease."""
        self.joins = 0
        """How many times the node joined: 1, plus one per lost lease."""
        self.replicas: Replicas | None = None
        """Set to replicate the files of the objects this node owns (``--replica``)."""
        self.before_leave: Callable[[], Awaitable[None]] | None = None
        """Awaited before the node leaves (its objects' last writes commit meanwhile)."""

    def holds_lease(self) -> bool:
        return self.lost is None and trio.current_time() < self.deadline

    @property
    def member_key(self) -> str:
        return f"{self.prefix}/members/{self.name}"

    def claim_key(self, scoped_key: str) -> str:
        return f"{self.prefix}/objects/{scoped_key}"

    async def run(self, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Join (grant the lease, write the membership key), then keep the lease alive
        until cancelled. A node that loses its lease joins again with a new one (its
        activations were dropped by ``on_lost``). On cancellation it leaves: it revokes the
        lease, and its claims go with it.

        Raises:
            EtcdError: etcd could not be reached to join the first time.
        """
        await self._join()
        try:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self._release_claims)
                task_status.started()
                while True:
                    await self._keep_alive()
                    await self._rejoin()
        finally:
            if self.before_leave is not None:
                with trio.CancelScope(shield=True):
                    await self.before_leave()
            held = self.lost is None
            # Objects still open past the drain (before_leave waits only so long) must not
            # acknowledge a write once the lease is revoked and another node may claim them.
            self.lose("it left the cluster", expected=True)
            if held:
                with trio.CancelScope(shield=True), trio.move_on_after(self.ttl):
                    try:
                        await self.etcd.revoke(self.lease)
                    except EtcdError as exc:  # it will expire on its own
                        log.warning("node %s could not revoke its lease: %s", self.name, exc)

    async def _join(self) -> None:
        sent = trio.current_time()
        lease = await self.etcd.grant(self.ttl)
        await self.etcd.put(self.member_key, json.dumps({"address": self.address}).encode(),
                            lease=lease)
        self.lease, self.deadline, self.lost = lease, sent + self.ttl - self.margin, None
        self.joins += 1
        log.info("node %s joined the cluster (lease %x, TTL %d s)", self.name, lease, self.ttl)

    async def _rejoin(self) -> None:
        delay = self.ttl / 3
        while True:
            await trio.sleep(delay)
            try:
                await self._join()
                return
            except EtcdError as exc:
                log.warning("node %s cannot rejoin yet: %s", self.name, exc)
                delay = min(delay * 2, 2.0 * self.ttl)

    async def _keep_alive(self) -> None:
        """Renew the lease until it is lost: every TTL/3, and sooner when the last renewal
        was slow or failed (a busy process answers late: what is left of the lease is
        halved, not waited out)."""
        while self.lost is None:
            left = self.deadline - trio.current_time()
            with trio.move_on_at(self.deadline):
                await trio.sleep(max(0.0, min(self.ttl / 3, left / 2)))
            if trio.current_time() >= self.deadline:
                self.lose("its lease deadline passed without a successful keep-alive")
                return
            sent = trio.current_time()
            try:
                with trio.fail_after(max(0.1, self.deadline - sent)):
                    ttl = await self.etcd.keepalive(self.lease)
            except (EtcdError, trio.TooSlowError) as exc:
                log.warning("node %s: keep-alive failed (%s); the lease holds for %.1f s more",
                            self.name, exc, max(0.0, self.deadline - trio.current_time()))
                continue
            if ttl is None:
                self.lose("etcd says its lease expired")
                return
            took = trio.current_time() - sent
            if took > self.ttl / 3:
                log.warning("node %s: a keep-alive took %.2f s (the lease is %d s): the "
                            "process is too busy for its lease; raise --lease-ttl",
                            self.name, took, self.ttl)
            self.deadline = sent + ttl - self.margin

    def lose(self, why: str, *, expected: bool = False) -> None:
        """Own nothing from now on: drop every claim and activation (the claims in etcd go
        with the lease). Called on a lease lost, when the node cannot go on safely, and as
        it leaves (``expected``: not an error)."""
        if self.lost is not None:
            return
        self.lost = why
        self.claims.clear()
        log.log(logging.INFO if expected else logging.ERROR,
                "node %s lost its lease: %s; it stops acknowledging writes and drops its "
                "objects", self.name, why)
        for callback in list(self.on_lost):
            callback(why)

    async def members(self) -> list[Member]:
        """The live members, by name (each holds a lease)."""
        prefix = f"{self.prefix}/members/"
        found = []
        for kv in await self.etcd.get_prefix(prefix):
            address = json.loads(kv.value).get("address", "")
            found.append(Member(kv.key[len(prefix):], str(address)))
        return found

    def coordinator(self, scope: str = "") -> ClusterCoordinator:
        """The coordinator of one runtime; ``scope`` prefixes its keys (the server's
        ``"<tenant>/"``)."""
        return ClusterCoordinator(self, scope)

    def _release_soon(self, claim_key: str, token: int) -> None:
        if self.claims.get(claim_key) == token:
            del self.claims[claim_key]
            self._releases.send_nowait((claim_key, token))

    async def _release_claims(self) -> None:
        async for claim_key, token in self._to_release:
            try:
                await self.etcd.delete_if_created_at(claim_key, token)
            except EtcdError as exc:  # the claim goes with the lease if the node dies
                log.warning("node %s could not release %s: %s", self.name, claim_key, exc)
            else:
                log.debug("node %s released %s (token %d)", self.name, claim_key, token)


class ClusterCoordinator:
    """``Coordinator`` over a :class:`ClusterNode`: an object is owned here while this node
    holds its claim in etcd and its lease."""

    def __init__(self, node: ClusterNode, scope: str) -> None:
        self._node = node
        self._scope = scope

    async def acquire(self, key: str) -> Lease:
        """Claim ``key`` for this node.

        Raises:
            NotOwnerError: another node holds it (``owner``, ``address`` name it), or this
                node has lost its lease.
            OverloadedError: etcd cannot be reached (retry later).
        """
        node = self._node
        claim_key = node.claim_key(self._scope + key)
        if not node.holds_lease():  # may own nothing, but can still say who does
            holder = await self._holder(claim_key)
            if holder is not None:
                raise NotOwnerError(f"{key} is active on node {holder.get('node')}",
                                    owner=holder.get("node"), address=holder.get("address"))
            raise NotOwnerError(f"node {node.name} holds no lease ({node.lost or 'not joined'})")
        value = json.dumps({"node": node.name, "address": node.address}).encode()
        try:
            created, kv = await node.etcd.create(claim_key, value, lease=node.lease)
        except EtcdError as exc:
            raise OverloadedError(f"the cluster's etcd cannot be reached to claim {key}: "
                                  f"{exc}") from exc
        if not created:
            holder = json.loads(kv.value)
            if kv.lease == node.lease:  # ours already: a claim left by an earlier activation
                node.claims[claim_key] = kv.create_revision
                return Lease(key, kv.create_revision)
            if holder.get("node") == node.name:  # restarted, or etcd restored an old lease
                raise NotOwnerError(
                    f"{key} is still claimed by an earlier run of node {node.name}; the claim "
                    f"goes with that run's lease, within {node.ttl} s: retry")
            raise NotOwnerError(f"{key} is active on node {holder.get('node')}",
                                owner=holder.get("node"), address=holder.get("address"))
        if not node.holds_lease():  # lost while the claim was on its way: it is worthless
            raise NotOwnerError(f"node {node.name} lost its lease while claiming {key}")
        node.claims[claim_key] = kv.create_revision
        log.debug("node %s claimed %s (token %d)", node.name, claim_key, kv.create_revision)
        return Lease(key, kv.create_revision)

    async def _holder(self, claim_key: str) -> dict[str, str] | None:
        try:
            kv = await self._node.etcd.get(claim_key)
        except EtcdError:
            return None
        return None if kv is None else dict(json.loads(kv.value))

    def release(self, lease: Lease) -> None:
        self._node._release_soon(self._node.claim_key(self._scope + lease.key),
                                 lease.fencing_token)

    def owns(self, key: str) -> bool:
        node = self._node
        return node.holds_lease() and node.claim_key(self._scope + key) in node.claims

    # -- replicas (when the node has them) ---------------------------------------------------

    @property
    def shares_files(self) -> bool:
        return self._node.replicas is not None

    @property
    def confirms_commits(self) -> bool:
        replicas = self._node.replicas
        return replicas is not None and replicas.synchronous

    async def before_open(self, lease: Lease, path: Path) -> None:
        if self._node.replicas is not None:
            await self._node.replicas.before_open(self._scope + lease.key, path)

    async def after_open(self, lease: Lease, path: Path) -> None:
        if self._node.replicas is not None:
            await self._node.replicas.after_open(self._scope + lease.key, lease.fencing_token,
                                                 path)

    async def confirm(self, lease: Lease, path: Path) -> None:
        if self._node.replicas is not None:
            await self._node.replicas.confirm(path)

    async def after_close(self, lease: Lease, path: Path) -> None:
        if self._node.replicas is not None:
            await self._node.replicas.after_close(path)
