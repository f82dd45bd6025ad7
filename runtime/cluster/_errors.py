"""The cluster's own error for an object that is not this node's to serve."""

from __future__ import annotations

from storage import DoboxError


class NotOwnerError(DoboxError):
    """Another node holds the object (``owner`` says which, and where), or this node has
    lost its lease and may own nothing."""

    def __init__(self, message: str, *, owner: str | None = None,
                 address: str | None = None) -> None:
        super().__init__(message)
        self.owner = owner
        self.address = address
