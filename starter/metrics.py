"""The API's Prometheus metrics, served at GET /metrics behind the same Bearer key as /v1.

Counters for what senders see: events taken (by kind and source), duplicates, ingest requests
answered with an error (by status code) and those refused for load (by reason), and a gauge of
ingest requests in flight against JOURNEYS_API_MAX_IN_FLIGHT. Labels hold kinds, sources,
statuses and reasons only, never a user, an address or a message ID: nothing personal reaches
the metrics store, and the number of series stays fixed whatever senders post.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    ProcessCollector,
    generate_latest,
)

SOURCES = frozenset({"shopify", "stripe", "webhook", "segment", "kissmetrics"})
"""The /v1/sources/* senders; everything else posted to /v1 is source "api"."""

REFUSALS = ("in_flight", "temporal_busy")

_source: ContextVar[str] = ContextVar("journeys_event_source", default="api")


def source_of(path: str) -> str:
    """The source label for a request path: a known sender's name, else "api" (never raw input,
    so a made-up path cannot add series)."""
    prefix = "/v1/sources/"
    if path.startswith(prefix):
        name = path[len(prefix) :].strip("/")
        return name if name in SOURCES else "unknown"
    return "api"


@contextmanager
def event_source(path: str) -> Iterator[None]:
    """Label the events taken while this request is served with the source its path names."""
    token = _source.set(source_of(path))
    try:
        yield
    finally:
        _source.reset(token)


class ApiMetrics:
    """One API app's metrics, on a registry of its own (several apps may share a process)."""

    content_type = CONTENT_TYPE_LATEST

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        ProcessCollector(registry=self.registry)
        self._accepted = Counter(
            "journeys_api_events_accepted",
            "Calls taken for good: recorded and accepted by Temporal.",
            ["kind", "source"],
            registry=self.registry,
        )
        self._duplicates = Counter(
            "journeys_api_events_duplicate",
            "Calls whose messageId was already taken: answered, nothing changed.",
            ["kind", "source"],
            registry=self.registry,
        )
        self._rejected = Counter(
            "journeys_api_requests_rejected",
            "Ingest requests answered with an error, by HTTP status (refusals included).",
            ["status"],
            registry=self.registry,
        )
        self._refused = Counter(
            "journeys_api_requests_refused",
            "Ingest requests refused for load with 503 and Retry-After, nothing taken: "
            "in_flight (this process at JOURNEYS_API_MAX_IN_FLIGHT) or temporal_busy "
            "(Temporal answered RESOURCE_EXHAUSTED).",
            ["reason"],
            registry=self.registry,
        )
        for reason in REFUSALS:  # present at zero, so rate() and alerts work from the start
            self._refused.labels(reason)
        self._in_flight = Gauge(
            "journeys_api_in_flight",
            "Ingest work in flight in this process (a request, or a batch's parallel items).",
            registry=self.registry,
        )
        self._limit = Gauge(
            "journeys_api_max_in_flight",
            "JOURNEYS_API_MAX_IN_FLIGHT of this process (0: no limit).",
            registry=self.registry,
        )

    def watch(self, in_flight: Callable[[], float], limit: int) -> None:
        """Report the admission gauges from the live count."""
        self._in_flight.set_function(in_flight)
        self._limit.set(limit)

    def taken(self, kind: str, status: str) -> None:
        """One call taken: `status` "accepted" or "duplicate"."""
        counter = self._duplicates if status == "duplicate" else self._accepted
        counter.labels(kind, _source.get()).inc()

    def answered(self, status: int) -> None:
        """An ingest request was answered with `status`; counted when it is an error."""
        if status >= 400:
            self._rejected.labels(str(status)).inc()

    def refused(self, reason: str) -> None:
        """An ingest request was refused for load (one of REFUSALS)."""
        self._refused.labels(reason).inc()

    def render(self) -> bytes:
        """The text exposition format Prometheus scrapes."""
        return generate_latest(self.registry)
