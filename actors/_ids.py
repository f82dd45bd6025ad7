"""Object ids, as workerd makes them.

An id is 32 bytes shown as 64 lowercase hex digits. The first 16 bytes are random
(``new_unique_id``) or ``HMAC-SHA256(key, name)[:16]`` (``id_from_name``); the last 16 are
``HMAC-SHA256(key, first 16 bytes)[:16]``, a MAC that lets ``id_from_string`` reject ids that
are malformed or were made by another namespace. ``key`` is ``SHA-256`` of the namespace's
unique key (the binding name, plus the tenant when the server hosts several).
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets

import attrs

from ._errors import InvalidObjectId

_HEX_ID = re.compile(r"[0-9a-fA-F]{64}")


def namespace_key(unique_key: str) -> bytes:
    """The secret behind a namespace's ids (stable, so names map to the same ids forever)."""
    return hashlib.sha256(b"dobox namespace\x00" + unique_key.encode()).digest()


def _mac(key: bytes, head: bytes) -> bytes:
    return hmac.digest(key, head, "sha256")[:16]


@attrs.frozen
class ObjectId:
    """An object's id: ``str(id)`` is its 64 hex digits, ``id.name`` the name it was made
    from (``None`` for unique ids, and for ids parsed from strings outside the object)."""

    hex: str
    name: str | None = attrs.field(default=None, eq=False)

    def __str__(self) -> str:
        return self.hex

    def equals(self, other: ObjectId) -> bool:
        """Whether ``other`` names the same object (DO's ``id.equals``)."""
        return self.hex == other.hex


def id_from_name(key: bytes, name: str) -> ObjectId:
    if not isinstance(name, str):
        raise TypeError(f"object names are str, not {type(name).__name__}")
    head = hmac.digest(key, b"name\x00" + name.encode("utf-8", "surrogatepass"), "sha256")[:16]
    return ObjectId((head + _mac(key, head)).hex(), name)


def new_unique_id(key: bytes) -> ObjectId:
    head = secrets.token_bytes(16)
    return ObjectId((head + _mac(key, head)).hex())


def id_from_string(key: bytes, text: str) -> ObjectId:
    """Parse an id made by this namespace.

    Raises:
        InvalidObjectId: not 64 hex digits, or made for a different namespace.
    """
    if not isinstance(text, str) or not _HEX_ID.fullmatch(text):
        raise InvalidObjectId(
            f"Invalid Durable Object ID: must be 64 hex digits, got {text!r:.80}"
        )
    raw = bytes.fromhex(text)
    if not hmac.compare_digest(raw[16:], _mac(key, raw[:16])):
        raise InvalidObjectId(
            f"Durable Object ID is not valid for this namespace: {text.lower()}"
        )
    return ObjectId(text.lower())
