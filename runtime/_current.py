"""``current_actor``: the object whose event the running task serves (a context variable,
so tasks a handler starts inherit it). Stubs and WebSockets read it to hold what an object
sends until its writes are durable (the output gate)."""

from __future__ import annotations

from contextvars import ContextVar
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ._actor import Actor

current_actor: ContextVar[Actor | None] = ContextVar("dobox_current_actor", default=None)
