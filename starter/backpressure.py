"""Backpressure: past what it can work on, the API refuses at once rather than queue.

Each API process works on at most JOURNEYS_API_MAX_IN_FLIGHT ingest requests (track, identify,
batch, sources). One more is answered 503 with Retry-After once it is authenticated (for
/v1/* before its body is read; a source's body is read, within a deadline, to check its
signature first, so anonymous senders never hold a slot): nothing of it is taken, so the
sender's retry is safe and dedupe is not even needed. Without the bound a
burst past the peak only queues (on database threads, on Temporal calls) until senders time
out, and a timeout tells a sender nothing about whether the event was taken.

A batch or a source's multi-event payload counts once on arrival, then borrows as many more
slots as are free to take its items in parallel (at least one at a time), so batches cannot
multiply the work in flight past the bound.

Temporal refusing for load (RESOURCE_EXHAUSTED: namespace or frontend rate limits, after the
SDK's own retries) is the same answer: 503 with Retry-After, never a 500.
"""

from __future__ import annotations

from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from temporalio.service import RPCError, RPCStatusCode

from starter.metrics import ApiMetrics, event_source

RETRY_AFTER_BUSY = "1"
"""Seconds: about how long the work in flight takes to drain at the default limit."""

INGEST_PATHS = frozenset({"/v1/track", "/v1/identify", "/v1/batch"})
INGEST_PREFIX = "/v1/sources/"


class Admission:
    """Slots for ingest work in one API process; the event loop is its only user (no lock)."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        """0: no limit (slots are still counted, for the gauge)."""
        self.in_flight = 0

    def enter(self) -> bool:
        """Take a slot for a request; False when all are taken."""
        if self.limit and self.in_flight >= self.limit:
            return False
        self.in_flight += 1
        return True

    def borrow(self, wanted: int) -> int:
        """Up to `wanted` more slots, as many as are free now (never waits); give them back."""
        got = max(0, min(wanted, self.limit - self.in_flight)) if self.limit else max(0, wanted)
        self.in_flight += got
        return got

    def leave(self, slots: int = 1) -> None:
        self.in_flight -= slots


def is_ingest(method: str, path: str) -> bool:
    return method == "POST" and (path in INGEST_PATHS or path.startswith(INGEST_PREFIX))


class AdmissionMiddleware:
    """ASGI middleware: admission for ingest requests, and their answers counted by status."""

    def __init__(self, app: ASGIApp, admission: Admission, metrics: ApiMetrics) -> None:
        self.app = app
        self.admission = admission
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not is_ingest(scope["method"], scope["path"]):
            await self.app(scope, receive, send)
            return
        with event_source(scope["path"]):
            if not self.admission.enter():
                self.metrics.refused("in_flight")
                self.metrics.answered(503)
                await _busy(self.admission.limit)(scope, receive, send)
                return
            status = 500  # what the client gets if the app raises before answering

            async def watch(message: Message) -> None:
                nonlocal status
                if message["type"] == "http.response.start":
                    status = message["status"]
                await send(message)

            try:
                await self.app(scope, receive, watch)
            finally:
                self.admission.leave()
                self.metrics.answered(status)


def _busy(limit: int) -> JSONResponse:
    return JSONResponse(
        {
            "detail": f"busy: {limit} requests in flight in this API process; "
            f"nothing was accepted, retry after {RETRY_AFTER_BUSY} s"
        },
        status_code=503,
        headers={"Retry-After": RETRY_AFTER_BUSY},
    )


def temporal_busy(err: BaseException) -> bool:
    """Whether `err` was caused by Temporal refusing for load (RESOURCE_EXHAUSTED)."""
    seen: BaseException | None = err
    while seen is not None:
        if isinstance(seen, RPCError) and seen.status == RPCStatusCode.RESOURCE_EXHAUSTED:
            return True
        seen = seen.__cause__ or seen.__context__
    return False
