"""Each object's replica, fenced by its claim.

Every claim of an object replicates to its own path, ``<replica URL>/<key>/<token>``, where
the token is the claim's create revision. A stale owner (cut off, its lease gone) may go on
writing to its own path, but nobody reads that path again: a *pointer* in etcd,
``<prefix>/replicas/<key>``, names the path to restore from, and only the current claim
holder can move it (a transaction compares the claim's create revision).

An activation goes:

1. **Before the file opens**: read the pointer. No pointer: the object was never replicated,
   the local file (if any) is the truth. A pointer to the path this node's local copy was
   last replicated to (the *marker* file beside the object file says which): the local copy
   is that replica's source, as new or newer: keep it. Otherwise restore the pointer's
   replica over the local file.
2. **After it opens**: start a fresh Litestream history for the new path (its first sync is
   a full snapshot), wait for that sync, move the pointer to the new path, write the marker.
   Only then does the object run: a path the pointer names always holds a snapshot.
3. **Each commit**, with ``--replication sync``: wait until Litestream has the commit in the
   replica, within the lease's deadline, before acknowledging it.
4. **After it closes**: a last sync, then stop replicating it; the claim is released after.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import attrs
import trio

from actors import OverloadedError

from ._errors import NotOwnerError
from ._etcd import EtcdError
from ._litestream import Litestream, ReplicationError, meta_path

if TYPE_CHECKING:
    from ._node import ClusterNode

log = logging.getLogger("dobox.cluster")

ReplicationMode = Literal["async", "sync"]

MARKER_SUFFIX = "-replica"
"""Beside an object file: the replica URL the file was last replicated to."""


@attrs.frozen
class ReplicaSettings:
    """``dobox serve --replica URL --replication async|sync``."""

    url: str
    """Where replicas go: ``file:///path`` or any URL Litestream takes (``s3://bucket/x``)."""
    mode: ReplicationMode = "async"

    def __attrs_post_init__(self) -> None:
        if self.mode not in ("async", "sync"):
            raise ValueError(f"replication must be 'async' or 'sync', not {self.mode!r}")
        if "://" not in self.url:
            raise ValueError(f"a replica must be a URL (file:///path, s3://bucket/prefix), "
                             f"not {self.url!r}")


class Replicas:
    """This node's replication of the objects it owns."""

    def __init__(self, node: ClusterNode, litestream: Litestream,
                 settings: ReplicaSettings) -> None:
        self.node = node
        self.litestream = litestream
        self.settings = settings
        self.base = settings.url.rstrip("/")

    @property
    def synchronous(self) -> bool:
        return self.settings.mode == "sync"

    def pointer_key(self, scoped_key: str) -> str:
        return f"{self.node.prefix}/replicas/{scoped_key}"

    async def before_open(self, scoped_key: str, path: Path) -> None:
        """Bring the newest copy of the object to ``path`` (see the module docstring).

        Raises:
            ReplicationError: the replica the pointer names cannot be restored.
            OverloadedError: etcd cannot be reached.
        """
        try:
            pointer = await self.node.etcd.get(self.pointer_key(scoped_key))
        except EtcdError as exc:
            raise OverloadedError(f"the cluster's etcd cannot be reached to find the replica "
                                  f"of {scoped_key}: {exc}") from exc
        if pointer is None:
            return
        url = str(json.loads(pointer.value)["url"])
        if _read_marker(path) == url:
            return
        await self._restore(url, path)

    async def _restore(self, url: str, path: Path) -> None:
        staged = path.with_name(path.name + ".restoring")
        staged.unlink(missing_ok=True)
        path.parent.mkdir(parents=True, exist_ok=True)
        if not await self.litestream.restore(url, staged):
            raise ReplicationError(
                f"the replica {url} that the cluster names as the newest copy of this object "
                "holds nothing: refusing to start it from an older copy")

        def swap() -> None:
            # The old WAL goes first: beside the restored file it would be replayed into it.
            Path(str(path) + MARKER_SUFFIX).unlink(missing_ok=True)
            for suffix in ("-wal", "-shm"):
                Path(str(path) + suffix).unlink(missing_ok=True)
            os.replace(staged, path)
            _fsync_directory(path.parent)

        await trio.to_thread.run_sync(swap)
        log.info("node %s restored %s from %s", self.node.name, path.name, url)

    async def after_open(self, scoped_key: str, token: int, path: Path) -> None:
        """Replicate the open file to this claim's own path, and point the cluster at it.

        Raises:
            ReplicationError: Litestream could not start replicating it.
            NotOwnerError: the claim was lost meanwhile.
            OverloadedError: etcd cannot be reached.
        """
        url = f"{self.base}/{scoped_key}/{token}"
        # A fresh history: the new path's first sync is a whole snapshot, not a sequel to
        # the last owner's (which Litestream would otherwise try to continue).
        await trio.to_thread.run_sync(
            lambda: shutil.rmtree(meta_path(path), ignore_errors=True))
        await self.litestream.register(path, url)
        try:
            await self.litestream.sync(path)
            await self._point_to(scoped_key, token, url)
            await trio.to_thread.run_sync(_write_marker, path, url)
        except BaseException:
            with trio.CancelScope(shield=True):
                await self.after_close(path)
            raise

    async def _point_to(self, scoped_key: str, token: int, url: str) -> None:
        value = json.dumps({"url": url, "node": self.node.name, "token": token}).encode()
        try:
            moved = await self.node.etcd.put_if_created_at(
                self.pointer_key(scoped_key), value, guard=self.node.claim_key(scoped_key),
                create_revision=token)
        except EtcdError as exc:
            raise OverloadedError(f"the cluster's etcd cannot be reached to record the "
                                  f"replica of {scoped_key}: {exc}") from exc
        if not moved:
            raise NotOwnerError(f"node {self.node.name} lost its claim on {scoped_key} while "
                                "starting its replica")

    async def confirm(self, path: Path) -> None:
        """Return once the replica has every commit of ``path`` so far, before the lease's
        deadline.

        Raises:
            ReplicationError: Litestream failed, or the deadline came first.
        """
        with trio.move_on_at(self.node.deadline):
            await self.litestream.sync(path)
            return
        raise ReplicationError("the replica did not confirm the commit before this node's "
                               "lease deadline")

    async def after_close(self, path: Path) -> None:
        """A last sync of the closed file, then stop replicating it. Failures are logged:
        with ``sync`` nothing acknowledged is missing from the replica anyway."""
        try:
            await self.litestream.sync(path)
        except ReplicationError as exc:
            log.warning("node %s: the last sync of %s failed: %s", self.node.name, path, exc)
        try:
            await self.litestream.unregister(path)
        except ReplicationError as exc:
            log.warning("node %s: %s", self.node.name, exc)
        await trio.to_thread.run_sync(
            lambda: shutil.rmtree(meta_path(path), ignore_errors=True))


def _read_marker(path: Path) -> str | None:
    try:
        return Path(str(path) + MARKER_SUFFIX).read_text()
    except FileNotFoundError:
        return None


def _write_marker(path: Path, url: str) -> None:
    # Durable: a marker lost in a crash would make this node restore its own replica over a
    # local copy that may be newer (with async replication).
    marker = Path(str(path) + MARKER_SUFFIX)
    staged = marker.with_name(marker.name + ".tmp")
    with open(staged, "w") as file:
        file.write(url)
        file.flush()
        os.fsync(file.fileno())
    os.replace(staged, marker)
    _fsync_directory(path.parent)


def _fsync_directory(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
