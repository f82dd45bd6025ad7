"""A runtime's counters, kept in one place, and the snapshot ``rt.statistics()`` gives."""

from __future__ import annotations

import attrs


@attrs.define
class Counters:
    """What happened since the runtime opened; the router and its actors add to it."""

    activations: int = 0
    evictions: int = 0
    resets: int = 0
    overloads: int = 0
    commits: int = 0
    inline_commits: int = 0
    commit_seconds: float = 0.0
    """Wall seconds spent committing (real time, for metrics: not trio's clock)."""


@attrs.frozen
class RuntimeStatistics:
    """A snapshot of a runtime (``rt.statistics()``)."""

    live_objects: int
    """Objects activating, running, or stopping with work left."""
    open_connections: int
    """Live objects holding their SQLite connection open (idle ones let it go)."""
    queued_events: int
    """Events admitted and not yet answered, over all live objects."""
    activations: int
    evictions: int
    """Objects stopped for being idle or least recently used."""
    resets: int
    overloads: int
    """Events refused because their object's queue was full."""
    commits: int
    """Commits of objects' writes; fewer than write events when turns were coalesced."""
    commit_seconds: float
    """Wall-clock seconds spent in those commits (their fsyncs included)."""
    inline_commits: int
    """Durable commits run on the runtime's thread, because nothing else was ready to run
    (the others run in worker threads; see docs/architecture.md)."""
    websockets: int
    """Accepted WebSockets open, their objects live or hibernating."""
