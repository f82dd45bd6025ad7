"""A small, typed client of etcd's v3 JSON gateway: exactly what dobox's cluster uses.

No maintained Python etcd client works under trio, so this speaks the gateway that every
etcd 3.4+ serves beside gRPC (``POST /v3/<service>/<method>`` with JSON bodies, keys and
values in base64, 64-bit numbers as strings) over httpx, which runs under trio and asyncio
alike. It knows leases (grant, keep alive, revoke), single keys and prefixes (range, put,
delete) and two transactions: create a key only if it does not exist, and delete a key only
if it is still the one created at a given revision.

Facts of the gateway this code relies on (checked against etcd 3.5):

- a keep-alive of an expired or revoked lease answers 200 with no ``TTL``;
- a transaction whose comparison failed answers without ``succeeded`` (false is omitted);
- a range that matched nothing answers without ``kvs``.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping, Sequence

import attrs
import httpx

from storage import DoboxError


class EtcdError(DoboxError):
    """etcd could not be reached on any endpoint, or refused a request."""


@attrs.frozen
class KeyValue:
    key: str
    value: bytes
    create_revision: int
    """The revision that created this incarnation of the key (dobox's fencing token)."""
    mod_revision: int
    lease: int
    """The lease the key lives under (0: none)."""


def _b64(text: str | bytes) -> str:
    raw = text.encode() if isinstance(text, str) else text
    return base64.b64encode(raw).decode()


def prefix_end(prefix: str) -> bytes:
    """The end of the range of every key starting with ``prefix`` (etcd's convention: the
    prefix with its last byte incremented; all keys when there is none to increment)."""
    raw = bytearray(prefix.encode())
    while raw and raw[-1] == 0xFF:
        raw.pop()
    if not raw:
        return b"\0"
    raw[-1] += 1
    return bytes(raw)


def _key_value(data: Mapping[str, object]) -> KeyValue:
    return KeyValue(
        key=base64.b64decode(str(data["key"])).decode(),
        value=base64.b64decode(str(data.get("value", ""))),
        create_revision=int(str(data.get("create_revision", 0))),
        mod_revision=int(str(data.get("mod_revision", 0))),
        lease=int(str(data.get("lease", 0))),
    )


class Etcd:
    """One etcd cluster, by its client endpoints (``http://host:2379``); the first that
    answers is used, the next ones when it stops answering."""

    def __init__(self, endpoints: Sequence[str], *, timeout: float = 2.0,
                 transport: httpx.AsyncBaseTransport | None = None) -> None:
        if not endpoints:
            raise ValueError("etcd needs at least one endpoint")
        self.endpoints = [endpoint.rstrip("/") for endpoint in endpoints]
        self._current = 0
        self._http = httpx.AsyncClient(timeout=timeout, transport=transport)

    async def aclose(self) -> None:
        await self._http.aclose()

    async def _call(self, path: str, body: Mapping[str, object]) -> dict[str, object]:
        """POST ``body`` to ``path`` on the current endpoint, then on the others.

        Raises:
            EtcdError: no endpoint answered, or etcd answered with an error.
        """
        failures: list[str] = []
        for attempt in range(len(self.endpoints)):
            index = (self._current + attempt) % len(self.endpoints)
            endpoint = self.endpoints[index]
            try:
                response = await self._http.post(f"{endpoint}{path}", content=json.dumps(body))
            except httpx.TransportError as exc:
                failures.append(f"{endpoint}: {exc!r}")
                continue
            self._current = index
            try:
                answer = response.json()
            except ValueError as exc:
                raise EtcdError(f"etcd at {endpoint} answered {path} with "
                                f"{response.status_code} and no JSON") from exc
            if response.status_code != 200 or not isinstance(answer, dict):
                message = answer.get("message", answer) if isinstance(answer, dict) else answer
                raise EtcdError(f"etcd at {endpoint} refused {path}: {message}")
            return answer
        raise EtcdError(f"no etcd endpoint answered {path}: {'; '.join(failures)}")

    # -- leases -------------------------------------------------------------------------------

    async def grant(self, ttl: int) -> int:
        """A new lease of ``ttl`` seconds; its id."""
        answer = await self._call("/v3/lease/grant", {"TTL": ttl})
        return int(str(answer["ID"]))

    async def keepalive(self, lease: int) -> int | None:
        """Renew ``lease``; the seconds it now has, or None if it had expired (or was revoked:
        its keys are gone)."""
        answer = await self._call("/v3/lease/keepalive", {"ID": str(lease)})
        result = answer.get("result")
        ttl = result.get("TTL") if isinstance(result, dict) else None
        return None if ttl is None else int(str(ttl))

    async def revoke(self, lease: int) -> None:
        """End ``lease`` now, deleting its keys."""
        try:
            await self._call("/v3/lease/revoke", {"ID": str(lease)})
        except EtcdError as exc:
            if "lease not found" not in str(exc):
                raise

    # -- keys ----------------------------------------------------------------------------------

    async def get(self, key: str) -> KeyValue | None:
        answer = await self._call("/v3/kv/range", {"key": _b64(key)})
        kvs = answer.get("kvs")
        return _key_value(kvs[0]) if isinstance(kvs, list) and kvs else None

    async def get_prefix(self, prefix: str) -> list[KeyValue]:
        """Every key starting with ``prefix``, in key order."""
        answer = await self._call("/v3/kv/range", {
            "key": _b64(prefix), "range_end": _b64(prefix_end(prefix))})
        kvs = answer.get("kvs")
        return [_key_value(kv) for kv in kvs] if isinstance(kvs, list) else []

    async def put(self, key: str, value: bytes, *, lease: int = 0) -> int:
        """Set ``key``; the revision of the write."""
        body: dict[str, object] = {"key": _b64(key), "value": _b64(value)}
        if lease:
            body["lease"] = str(lease)
        answer = await self._call("/v3/kv/put", body)
        header = answer.get("header")
        return int(str(header.get("revision", 0))) if isinstance(header, dict) else 0

    async def create(self, key: str, value: bytes, *, lease: int) -> tuple[bool, KeyValue]:
        """Create ``key`` under ``lease`` unless it exists: ``(True, the new key)`` or
        ``(False, the existing key)``. One transaction: two nodes racing cannot both win."""
        encoded = _b64(key)
        answer = await self._call("/v3/kv/txn", {
            "compare": [{"key": encoded, "target": "CREATE", "create_revision": "0"}],
            "success": [{"request_put": {"key": encoded, "value": _b64(value),
                                         "lease": str(lease)}},
                        {"request_range": {"key": encoded}}],
            "failure": [{"request_range": {"key": encoded}}],
        })
        responses = answer.get("responses")
        assert isinstance(responses, list), "a transaction answers its requests"
        ranged = responses[-1]["response_range"]
        kvs = ranged.get("kvs") if isinstance(ranged, dict) else None
        if not isinstance(kvs, list) or not kvs:
            # Created and gone already (its lease expired in between), or deleted: say so
            # as a lost race, with nothing to point to.
            raise EtcdError(f"{key} vanished during its own creation")
        return bool(answer.get("succeeded")), _key_value(kvs[0])

    async def delete_if_created_at(self, key: str, create_revision: int) -> bool:
        """Delete ``key`` if it is still the incarnation created at ``create_revision`` (a
        claim this node made, not a later one); whether it did."""
        encoded = _b64(key)
        answer = await self._call("/v3/kv/txn", {
            "compare": [{"key": encoded, "target": "CREATE",
                         "create_revision": str(create_revision)}],
            "success": [{"request_delete_range": {"key": encoded}}],
            "failure": [],
        })
        return bool(answer.get("succeeded"))

    async def put_if_created_at(self, key: str, value: bytes, *, guard: str,
                                create_revision: int) -> bool:
        """Set ``key`` (no lease) only while ``guard`` is the incarnation created at
        ``create_revision`` (a claim this node still holds); whether it did."""
        answer = await self._call("/v3/kv/txn", {
            "compare": [{"key": _b64(guard), "target": "CREATE",
                         "create_revision": str(create_revision)}],
            "success": [{"request_put": {"key": _b64(key), "value": _b64(value)}}],
            "failure": [],
        })
        return bool(answer.get("succeeded"))

    async def delete(self, key: str) -> None:
        await self._call("/v3/kv/deleterange", {"key": _b64(key)})
