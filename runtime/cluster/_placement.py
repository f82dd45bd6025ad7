"""Where a new activation goes: rendezvous (highest random weight) hashing.

Every node computes the same winner for an object from the same member list, with no
coordination; when a member joins or leaves, only the objects whose winner it is (or was)
move, about ``1 / members`` of them. Placement only matters for objects that are not live:
a live object stays with its claim holder whatever the hash says, so nodes joining or
leaving move objects only as they go idle.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

from ._node import Member


def weight(member: str, key: str) -> int:
    digest = hashlib.blake2b(f"{member}\0{key}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big")


def place(key: str, members: Sequence[Member]) -> Member:
    """The member ``key`` belongs to.

    Raises:
        ValueError: there are no members.
    """
    if not members:
        raise ValueError("no live member to place an object on")
    return max(members, key=lambda member: (weight(member.name, key), member.name))
