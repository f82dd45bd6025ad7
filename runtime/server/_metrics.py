"""``/metrics``: the server's numbers in Prometheus' text format (prometheus-client).

Request and error counts are kept as requests are answered; everything about objects is
read from every tenant's ``rt.statistics()`` when scraped, so nothing is counted twice.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping

from prometheus_client import CollectorRegistry, Counter, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    Metric,
    SummaryMetricFamily,
)
from prometheus_client.registry import Collector

from runtime._engine import Runtime


class ServerMetrics:
    """The registry behind ``/metrics``, for one server."""

    def __init__(self, runtimes: Callable[[], Mapping[str, Runtime]]) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter("dobox_requests", "HTTP requests answered, by route kind and "
                                "status", ["route", "status"], registry=self.registry)
        self.errors = Counter("dobox_errors", "Errors answered, by type", ["type"],
                              registry=self.registry)
        self.forwards = Counter("dobox_forwards", "Requests sent on to the node that serves "
                                "their object (a cluster's one hop)", registry=self.registry)
        self.registry.register(_RuntimeCollector(runtimes))

    def requests_answered(self) -> float:
        """The requests answered so far, every route and status but the inspector's own
        (``dobox_requests``): the inspector's charts show the application's load."""
        return sum(sample.value for metric in self.requests.collect()
                   for sample in metric.samples if sample.name == "dobox_requests_total"
                   and sample.labels.get("route") != "inspector")

    def render(self) -> bytes:
        return generate_latest(self.registry)


class _RuntimeCollector(Collector):
    def __init__(self, runtimes: Callable[[], Mapping[str, Runtime]]) -> None:
        self._runtimes = runtimes

    def collect(self) -> Iterable[Metric]:
        return list(self._metrics())

    def _metrics(self) -> Iterator[Metric]:
        stats = {tenant: runtime.statistics() for tenant, runtime in self._runtimes().items()}
        yield GaugeMetricFamily("dobox_tenants_open", "Tenants whose runtime is open (a "
                                "tenant with nothing live is closed)", value=len(stats))
        gauges = (("dobox_live_objects", "Live objects", "live_objects"),
                  ("dobox_queued_events", "Events admitted and not yet answered",
                   "queued_events"),
                  ("dobox_websockets", "Accepted WebSockets open (their objects live or "
                   "hibernating)", "websockets"))
        for name, documentation, field in gauges:
            gauge = GaugeMetricFamily(name, documentation, labels=["tenant"])
            for tenant, s in stats.items():
                gauge.add_metric([tenant], getattr(s, field))
            yield gauge
        counters = (("dobox_activations", "Object activations", "activations"),
                    ("dobox_evictions", "Objects evicted (idle or least recently used)",
                     "evictions"),
                    ("dobox_resets", "Objects reset", "resets"),
                    ("dobox_overloads", "Calls refused for a full queue", "overloads"),
                    ("dobox_inline_commits", "Durable commits run on the runtime's thread "
                     "(nothing else was ready to run)", "inline_commits"))
        for name, documentation, field in counters:
            counter = CounterMetricFamily(name, documentation, labels=["tenant"])
            for tenant, s in stats.items():
                counter.add_metric([tenant], getattr(s, field))
            yield counter
        commits = SummaryMetricFamily("dobox_commit_seconds", "Commits and their latency",
                                      labels=["tenant"])
        for tenant, s in stats.items():
            commits.add_metric([tenant], count_value=s.commits, sum_value=s.commit_seconds)
        yield commits
