"""The HTTP API: events in (the Segment spec, and sources' own webhooks), health out.

    POST /v1/track      a Segment track call; 200 once Temporal accepted every start and signal
    POST /v1/identify   a Segment identify call: profile traits (email, timezone, consent, ...)
    POST /v1/batch      up to 500 calls, answered per item
    POST /v1/sources/*  Shopify, Stripe, Standard Webhooks and Segment, by their own signatures
    GET  /v1/users/{id}/messages   the in-app inbox; POST .../{message}/read marks one read
    GET|POST /u/{token} one-click unsubscribe (RFC 8058), signed link, no login
    GET  /outbox        the local outbox as a page (?key= or Bearer)
    GET  /healthz       200 only when Temporal and the database answer
    GET  /metrics       Prometheus counters (Bearer key, like /v1)

Errors say what is wrong: malformed JSON 400, a missing or wrong API key 401, a body over 1 MB
413, a schema error 422 naming the field, Temporal or the database unreachable 503 with
Retry-After (nothing is reported as done unless it was); so is a process at its limit of ingest
requests in flight, or Temporal refusing for load (see starter/backpressure.py).
"""

from __future__ import annotations

import asyncio
import hmac
import logging
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from typing import Annotated, Any, Literal, TypeVar

from fastapi import Depends, FastAPI, Request, Security
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, TypeAdapter, ValidationError
from starlette.types import ASGIApp, Receive, Scope, Send
from temporalio.api.workflowservice.v1 import GetSystemInfoRequest
from temporalio.client import Client

from activities.store import Store
from starter.backpressure import Admission, AdmissionMiddleware, temporal_busy
from starter.calls import BatchCall, Call, IdentifyCall, TrackCall, nul_at, parse_json
from starter.dashboard import router as dashboard_router
from starter.inbox import router as inbox_router
from starter.ingest import Accepted, Delivered, Ingestor, Unavailable
from starter.metrics import ApiMetrics
from starter.outbox_page import router as outbox_router
from starter.routing import Router
from starter.settings import Settings, signing_key
from starter.sources.routes import router as sources_router
from starter.unsubscribe import router as unsubscribe_router
from workflows import registry
from workflows.journey import Journey

log = logging.getLogger("journeys.api")

M = TypeVar("M", bound=BaseModel)

MAX_BODY = 1_000_000
DATABASE_THREADS = 32
RETRY_AFTER = "5"


class Rejected(BaseModel):
    """A batch item that failed validation: nothing of it was taken."""

    field: str
    error: str


class BatchItem(BaseModel):
    """What became of one call in a batch."""

    index: int
    messageId: str | None = None
    status: Literal["accepted", "duplicate", "ignored", "rejected", "unavailable"]
    journeys: list[Delivered] = []
    errors: list[Rejected] = []


class BatchAccepted(BaseModel):
    """Per item, in the order sent. 503 when any item could not be taken now (retry the batch:
    items already taken answer "duplicate")."""

    results: list[BatchItem]


class Problem(BaseModel):
    """Every error answer: what is wrong and, for a 422, which fields."""

    detail: str
    errors: list[Rejected] = []


class Health(BaseModel):
    """/healthz: "ok" or why each dependency is down."""

    temporal: str
    database: str


_RETRY = {"Retry-After": {"description": "seconds to wait", "schema": {"type": "string"}}}
INGEST_ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"model": Problem, "description": "malformed JSON body"},
    401: {"model": Problem, "description": "missing or wrong API key"},
    413: {"model": Problem, "description": "body over 1 MB"},
    422: {"model": Problem, "description": "not a valid call; `errors` names the fields"},
    503: {"model": Problem, "description": "Temporal or the database unreachable; nothing was "
          "accepted, retry", "headers": _RETRY},
}  # fmt: skip
"""What the OpenAPI document promises besides 200, so clients (and the fuzz test) can rely on it."""

INBOX_ERRORS: dict[int | str, dict[str, Any]] = {
    401: INGEST_ERRORS[401],
    404: {"model": Problem, "description": "the user has no such message"},
    422: {"model": Problem, "description": "a path parameter is not valid"},
}
SOURCE_ERRORS: dict[int | str, dict[str, Any]] = {
    400: INGEST_ERRORS[400],
    401: {"model": Problem, "description": "missing, wrong or stale signature"},
    404: {"model": Problem, "description": "this source is not configured (set its secret)"},
    413: INGEST_ERRORS[413],
    422: {"model": Problem, "description": "signed, but not a payload this source sends"},
    503: {"model": Problem, "description": "could not be taken now; retry", "headers": _RETRY},
}

BEARER = HTTPBearer(auto_error=False, description="JOURNEYS_API_KEY")
"""Declares the scheme in the OpenAPI document; `require_key` does the checking."""

IGNORED_TYPES = frozenset({"page", "screen", "group", "alias", "delete"})
"""Segment call types a destination forwards that no journey uses: taken and ignored."""

_CALL = TypeAdapter(Call)


def create_app(
    settings: Settings,
    *,
    client: Client | None = None,
    store: Store | None = None,
    journeys: list[type[Journey]] | None = None,
) -> FastAPI:
    """Build the API; pass `client`, `store` and `journeys` to share them (tests, `dev`)."""
    metrics = ApiMetrics()
    admission = Admission(settings.api_max_in_flight)
    metrics.watch(lambda: admission.in_flight, admission.limit)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        from starter.client import API_RETRY, connect

        # Database calls run in threads and mostly wait (locks, I/O): more than the default six
        # keep fifty requests in flight from queueing behind each other.
        asyncio.get_running_loop().set_default_executor(
            ThreadPoolExecutor(DATABASE_THREADS, thread_name_prefix="journeys-db")
        )
        own_store = store is None
        app.state.store = store or Store(settings.database_url)
        if own_store:
            app.state.store.migrate()
        app.state.client = client or await connect(settings, retry=API_RETRY)
        loaded = (
            journeys if journeys is not None else registry.load_modules(settings.journey_modules)
        )
        app.state.router = Router(app.state.client, app.state.store, loaded, settings.task_queue)
        app.state.ingestor = Ingestor(
            app.state.store, app.state.router, admission=admission, on_taken=metrics.taken
        )
        app.state.settings = settings
        yield
        app.state.ingestor.close()
        if own_store:
            app.state.store.dispose()

    app = FastAPI(
        title="journeys",
        summary="Behavior-triggered user journeys on Temporal",
        version="0.1.0",
        lifespan=lifespan,
    )
    api_key = settings.api_key.get_secret_value() if settings.api_key else None
    signing_key(settings)  # MissingSecretKey now, not on the first unsubscribe click

    async def require_key(
        request: Request,
        _: Annotated[HTTPAuthorizationCredentials | None, Security(BEARER)],  # for the docs
    ) -> None:
        if api_key is None:
            return
        header = request.headers.get("authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(token.encode(), api_key.encode()):
            raise _Unauthorized()

    app.add_middleware(ContentLengthLimit, limit=MAX_BODY)

    # Added last, so outermost: an ingest request over the limit is refused before anything else.
    app.add_middleware(AdmissionMiddleware, admission=admission, metrics=metrics)

    @app.exception_handler(RequestValidationError)
    async def invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        fields = [
            {"field": ".".join(str(p) for p in e.get("loc", ()) if p != "body"), "error": e["msg"]}
            for e in exc.errors()
        ]
        return JSONResponse({"detail": "invalid event", "errors": fields}, status_code=422)

    @app.exception_handler(_MalformedJSON)
    async def malformed(_: Request, __: _MalformedJSON) -> JSONResponse:
        return JSONResponse({"detail": "malformed JSON body"}, status_code=400)

    @app.exception_handler(_TooLarge)
    async def too_large(_: Request, __: _TooLarge) -> JSONResponse:
        return JSONResponse({"detail": f"body over {MAX_BODY} bytes"}, status_code=413)

    @app.exception_handler(_Unauthorized)
    async def unauthorized(_: Request, __: _Unauthorized) -> JSONResponse:
        return JSONResponse(
            {"detail": "missing or wrong API key (Authorization: Bearer <JOURNEYS_API_KEY>)"},
            status_code=401,
            headers={"WWW-Authenticate": "Bearer"},
        )

    @app.exception_handler(Unavailable)
    async def unavailable(_: Request, exc: Unavailable) -> JSONResponse:
        reason = f"temporarily unavailable: {exc}"
        if temporal_busy(exc):
            metrics.refused("temporal_busy")
            reason = "busy: Temporal is refusing for load (RESOURCE_EXHAUSTED)"
        return JSONResponse(
            {"detail": f"{reason}; nothing was accepted, retry"},
            status_code=503,
            headers={"Retry-After": RETRY_AFTER},
        )

    def body_schema(model: type[BaseModel]) -> dict[str, Any]:
        """Document the body we parse ourselves (raw bytes, so malformed JSON is a clear 400)."""
        schema = {"application/json": {"schema": model.model_json_schema()}}
        return {"requestBody": {"required": True, "content": schema}}

    def ingestor(request: Request) -> Ingestor:
        return request.app.state.ingestor  # type: ignore[no-any-return]

    @app.post(
        "/v1/track",
        dependencies=[Depends(require_key)],
        openapi_extra=body_schema(TrackCall),
        responses=INGEST_ERRORS,
    )
    async def track(request: Request) -> Accepted:
        """Record a track call and deliver it to every journey it starts or reaches.

        200 only once Temporal has accepted every start and signal; the same messageId again
        answers "duplicate" and changes nothing.
        """
        return await ingestor(request).track(await _parse(request, TrackCall))

    @app.post(
        "/v1/identify",
        dependencies=[Depends(require_key)],
        openapi_extra=body_schema(IdentifyCall),
        responses=INGEST_ERRORS,
    )
    async def identify(request: Request) -> Accepted:
        """Merge traits into the user's profile: email, name, timezone, consent, any trait."""
        return await ingestor(request).identify(await _parse(request, IdentifyCall))

    @app.post(
        "/v1/batch",
        dependencies=[Depends(require_key)],
        openapi_extra=body_schema(BatchCall),
        response_model=BatchAccepted,
        responses={
            **INGEST_ERRORS,
            503: {
                **INGEST_ERRORS[503],
                "model": BatchAccepted,
                "description": "some items could not be taken now: retry the batch",
            },
        },
    )
    async def batch(request: Request) -> JSONResponse:
        """Several calls at once, answered per item; 503 if any item could not be taken now."""
        call = await _parse(request, BatchCall)
        results = await _take_batch(ingestor(request), call)
        unavailable = any(item.status == "unavailable" for item in results)
        return JSONResponse(
            BatchAccepted(results=results).model_dump(mode="json"),
            status_code=503 if unavailable else 200,
            headers={"Retry-After": RETRY_AFTER} if unavailable else None,
        )

    app.include_router(inbox_router, dependencies=[Depends(require_key)], responses=INBOX_ERRORS)
    app.include_router(unsubscribe_router)  # the signed link is the credential
    # each sender's signature is the credential
    app.include_router(sources_router, responses=SOURCE_ERRORS)
    app.include_router(outbox_router)  # bearer or ?key=, for a browser
    app.include_router(dashboard_router)  # the same

    @app.get("/metrics", dependencies=[Depends(require_key)], include_in_schema=False)
    async def prometheus() -> Response:
        """Prometheus scrape target; give the scrape config the API key as its bearer token."""
        return Response(metrics.render(), media_type=metrics.content_type)

    @app.get(
        "/healthz",
        response_model=Health,
        responses={
            503: {"model": Health, "description": "a dependency is down", "headers": _RETRY}
        },
    )
    async def healthz(request: Request) -> JSONResponse:
        """200 when Temporal and the database both answer, else 503 naming the one that did not."""
        checks = {"temporal": "ok", "database": "ok"}
        try:
            await asyncio.wait_for(
                request.app.state.client.workflow_service.get_system_info(GetSystemInfoRequest()),
                timeout=3,
            )
        except Exception as err:  # any failure to answer counts as down
            checks["temporal"] = f"unreachable: {type(err).__name__}"
        try:
            await asyncio.wait_for(asyncio.to_thread(request.app.state.store.ping), timeout=3)
        except Exception as err:
            checks["database"] = f"unreachable: {type(err).__name__}"
        healthy = all(v == "ok" for v in checks.values())
        headers = {} if healthy else {"Retry-After": RETRY_AFTER}
        return JSONResponse(checks, status_code=200 if healthy else 503, headers=headers)

    return app


class ContentLengthLimit:
    """413 before reading a body whose declared Content-Length is over `limit`, on every route.

    A plain ASGI middleware (Starlette's decorator middleware costs a task and a stream per
    request). Bodies without Content-Length are cut off while streaming, in `_parse`.
    """

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            for name, value in scope["headers"]:
                if name == b"content-length" and value.isdigit() and int(value) > self.limit:
                    too_large = {"detail": f"body over {self.limit} bytes"}
                    await JSONResponse(too_large, status_code=413)(scope, receive, send)
                    return
        await self.app(scope, receive, send)


class _Unauthorized(Exception):
    pass


async def _parse(request: Request, model: type[M]) -> M:
    """Validate the raw body as JSON whatever its Content-Type: 400 if not JSON, 422 if invalid."""
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():  # stop reading at the limit, even without Content-Length
        size += len(chunk)
        if size > MAX_BODY:
            raise _TooLarge()
        chunks.append(chunk)
    body = b"".join(chunks)
    try:
        where = nul_at(parse_json(body))
    except ValueError as err:
        raise _MalformedJSON() from err
    if where is not None:
        error = {"loc": where, "msg": "a NUL character is not allowed", "type": "value_error"}
        raise RequestValidationError([error])
    try:
        return model.model_validate_json(body)
    except ValidationError as err:
        raise RequestValidationError(err.errors(include_url=False)) from err


class _MalformedJSON(Exception):
    pass


class _TooLarge(Exception):
    pass


async def _take_batch(ingestor: Ingestor, call: BatchCall) -> list[BatchItem]:
    """Validate each item on its own (one bad item does not sink the rest), then take them."""
    items: list[BatchItem] = []
    calls: list[TrackCall | IdentifyCall] = []
    positions: list[int] = []
    for index, raw in enumerate(call.batch):
        kind = raw.get("type")
        if kind in IGNORED_TYPES:
            items.append(BatchItem(index=index, messageId=raw.get("messageId"), status="ignored"))
            continue
        merged = {**raw, "context": {**call.context, **(raw.get("context") or {})}}
        try:
            parsed = _CALL.validate_python(merged)
        except ValidationError as err:
            errors = [
                Rejected(field=".".join(str(p) for p in e["loc"][1:] or e["loc"]), error=e["msg"])
                for e in err.errors(include_url=False)
            ]
            items.append(BatchItem(index=index, status="rejected", errors=errors))
            continue
        items.append(BatchItem(index=index, messageId=parsed.message_id, status="accepted"))
        calls.append(parsed)
        positions.append(index)
    for position, outcome in zip(positions, await ingestor.many(calls), strict=True):
        if isinstance(outcome, Accepted):
            items[position].status = outcome.status
            items[position].journeys = outcome.journeys
        else:
            items[position].status = "unavailable"
    return items
