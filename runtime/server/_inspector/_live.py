"""The inspector's live view of the server: rates from the figures ``/metrics`` exports,
sampled when the page asks (about once a second while it is open), and the busiest
objects.

Nothing runs in the background: a sample is taken when the page's script asks for one,
and rates are the change since the previous sample. With nobody looking, the server does
no work for the inspector.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Mapping

import attrs

from runtime._engine import Runtime

HISTORY = 120
"""Samples kept for the charts (two minutes at one a second)."""

MIN_INTERVAL = 0.5
"""Seconds between two samples; a page asking sooner gets the last one again."""

BUSIEST = 10


@attrs.frozen
class Totals:
    """Counters summed over the server's tenants at one moment."""

    at: float
    requests: float
    commits: int
    commit_seconds: float
    overloads: int
    resets: int
    live_objects: int
    websockets: int
    queued_events: int


@attrs.frozen
class Sample:
    """Rates between two samples, and gauges at the second (what the charts plot)."""

    at: float
    requests_per_second: float
    commits_per_second: float
    overloads_per_second: float
    resets_per_second: float
    commit_milliseconds: float | None
    """Mean latency of the commits since the previous sample (None: there were none)."""
    live_objects: int
    websockets: int
    queued_events: int


@attrs.frozen
class Busy:
    tenant: str
    namespace: str
    id: str
    name: str | None
    events_per_second: float
    queued_events: int


class LiveView:
    """Samples for the charts, and the busiest objects, for one server."""

    def __init__(self, open_runtimes: Callable[[], Mapping[str, Runtime]],
                 requests_answered: Callable[[], float]) -> None:
        self._open_runtimes = open_runtimes
        self._requests_answered = requests_answered
        self.samples: deque[Sample] = deque(maxlen=HISTORY)
        self.busiest: list[Busy] = []
        self._last: Totals | None = None
        self._handled: dict[tuple[str, str], int] = {}

    def sample(self) -> None:
        """Take a sample if the last is older than :data:`MIN_INTERVAL`."""
        now = time.monotonic()
        if self._last is not None and now - self._last.at < MIN_INTERVAL:
            return
        runtimes = self._open_runtimes()
        stats = [runtime.statistics() for runtime in runtimes.values()]
        totals = Totals(
            at=now, requests=self._requests_answered(),
            commits=sum(s.commits for s in stats),
            commit_seconds=sum(s.commit_seconds for s in stats),
            overloads=sum(s.overloads for s in stats), resets=sum(s.resets for s in stats),
            live_objects=sum(s.live_objects for s in stats),
            websockets=sum(s.websockets for s in stats),
            queued_events=sum(s.queued_events for s in stats))
        last, self._last = self._last, totals
        self._sample_busiest(runtimes, None if last is None else now - last.at)
        if last is None:
            return
        elapsed = now - last.at
        commits = totals.commits - last.commits
        self.samples.append(Sample(
            at=time.time(),
            requests_per_second=max(0.0, totals.requests - last.requests) / elapsed,
            commits_per_second=max(0, commits) / elapsed,
            overloads_per_second=max(0, totals.overloads - last.overloads) / elapsed,
            resets_per_second=max(0, totals.resets - last.resets) / elapsed,
            commit_milliseconds=((totals.commit_seconds - last.commit_seconds) / commits
                                 * 1000 if commits > 0 else None),
            live_objects=totals.live_objects, websockets=totals.websockets,
            queued_events=totals.queued_events))

    def _sample_busiest(self, runtimes: Mapping[str, Runtime], elapsed: float | None) -> None:
        handled: dict[tuple[str, str], int] = {}
        busy = []
        for tenant, runtime in runtimes.items():
            for live in runtime.live_objects():
                key = (tenant, f"{live.binding}/{live.id}")
                handled[key] = live.handled
                before = self._handled.get(key, live.handled)
                rate = (live.handled - before) / elapsed if elapsed else 0.0
                if rate > 0 or live.queued_events:
                    busy.append(Busy(tenant=tenant, namespace=live.binding, id=live.id,
                                     name=live.name, events_per_second=rate,
                                     queued_events=live.queued_events))
        self._handled = handled
        busy.sort(key=lambda b: (-b.events_per_second, -b.queued_events))
        self.busiest = busy[:BUSIEST]
