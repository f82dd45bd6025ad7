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

from ._errors import InvalidObjectId, InvalidObjectName

_HEX_ID = re.compile(r"[0-9a-fA-F]{64}")

MAX_NAME_BYTES = 1024
"""The longest object name, in UTF-8 bytes. Names are identifiers, not data: 1 KiB holds any
composed key (a tenant, a room and a user id, say) and keeps a URL naming the object, even
fully percent-encoded, well under the 8 KiB request line that common proxies accept."""


def check_name(name: str) -> bytes:
    """The UTF-8 bytes of a valid object name.

    A name is 1 to ``MAX_NAME_BYTES`` bytes of UTF-8 text (no lone surrogates), and not
    ``.`` or ``..``, which URLs treat as path steps: the same name must mean the same object
    in process, over HTTP and behind any proxy.

    Raises:
        TypeError: ``name`` is not a str.
        InvalidObjectName: the name breaks one of those rules.
    """
    if not isinstance(name, str):
        raise TypeError(f"object names are str, not {type(name).__name__}")
    try:
        encoded = name.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidObjectName(
            f"object name {name!r:.80} is not valid Unicode text (a lone surrogate)") from None
    if not encoded or name in (".", ".."):
        raise InvalidObjectName(f"{name!r} is not an object name: names are not empty, "
                                "'.' or '..'")
    if len(encoded) > MAX_NAME_BYTES:
        raise InvalidObjectName(f"object name {name!r:.40} is {len(encoded):,} bytes long; "
                                f"names are at most {MAX_NAME_BYTES:,} bytes of UTF-8")
    return encoded


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
    """Raises: as ``check_name``."""
    head = hmac.digest(key, b"name\x00" + check_name(name), "sha256")[:16]
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
