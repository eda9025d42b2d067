"""The HTTP API: events in (the Segment spec, and sources' own webhooks), health out.

    POST /v1/track      a Segment track call; 200 once Temporal accepted every start and signal
    POST /v1/identify   a Segment identify call: profile traits (email, timezone, consent, ...)
    POST /v1/batch      up to 500 calls, answered per item
    POST /v1/sources/*  Shopify, Stripe, Standard Webhooks and Segment, by their own signatures
    GET  /v1/users/{id}/messages   the in-app inbox; POST .../{message}/read marks one read
    GET|POST /u/{token} one-click unsubscribe (RFC 8058), signed link, no login
    GET  /c/{token}, /o/{token}.gif   a tracked link and the open pixel, signed, no login
    POST /v1/feedback/* SendGrid, Postmark and Mandrill bounces, complaints, unsubscribes
    GET  /outbox        the local outbox as a page (signed in at /signin, or Bearer)
    GET|POST /signin    a browser's sign-in: the API key once, then a session cookie
    GET  /healthz       200 only when Temporal and the database answer
    GET  /metrics       Prometheus counters (Bearer key, like /v1)

Errors say what is wrong: malformed JSON 400, a missing or wrong API key 401, a body not
received within 5 s 408, a body over 1 MB 413, a schema error 422 naming the field, Temporal or
the database unreachable 503 with Retry-After (nothing is reported as done unless it was); so is
a process at its limit of ingest requests in flight, or Temporal refusing for load (see
starter/backpressure.py). Only a caller that proved who it is takes one of those ingest slots
(`IngestGate`): the API key is checked first, and a source's signature over its whole body.
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
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from temporalio.api.workflowservice.v1 import GetSystemInfoRequest
from temporalio.client import Client

from activities.store import Store
from starter.backpressure import (
    INGEST_PATHS,
    INGEST_PREFIX,
    Admission,
    AdmissionMiddleware,
    is_ingest,
    temporal_busy,
)
from starter.browser_auth import LoopbackOnly, PageHeaders
from starter.browser_auth import router as browser_router
from starter.calls import (
    BODY_DEADLINE,
    IGNORED_TYPES,
    MAX_BODY,
    AnyCall,
    BatchCall,
    BodyTooLarge,
    BodyTooSlow,
    Call,
    IdentifyCall,
    IgnoredCall,
    TrackCall,
    nul_at,
    parse_json,
    read_body,
)
from starter.catalog import router as catalog_router
from starter.dashboard import router as dashboard_router
from starter.devices import router as devices_router
from starter.erasure import router as erasure_router
from starter.feedback import router as feedback_router
from starter.inbox import router as inbox_router
from starter.ingest import Accepted, Delivered, Ingestor, Unavailable
from starter.journey_users import router as operators_router
from starter.metrics import ApiMetrics, event_source
from starter.outbox_page import router as outbox_router
from starter.routing import Router
from starter.settings import InsecureSettings, Settings, is_loopback, signing_key
from starter.sms import router as sms_router
from starter.sources.routes import SOURCES, signature_problem
from starter.sources.routes import router as sources_router
from starter.subscriptions import router as subscriptions_router
from starter.tracking import router as tracking_router
from starter.unsubscribe import router as unsubscribe_router
from workflows import registry
from workflows.journey import Journey

log = logging.getLogger("journeys.api")

M = TypeVar("M", bound=BaseModel)

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
    408: {"model": Problem, "description": f"body not received within {BODY_DEADLINE:g} s; "
          "the connection is closed"},
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
RECORD_ERRORS: dict[int | str, dict[str, Any]] = {
    400: INGEST_ERRORS[400],
    401: INGEST_ERRORS[401],
    413: INGEST_ERRORS[413],
    422: {"model": Problem, "description": "not valid; `errors` names the fields"},
    503: {"model": Problem, "description": "the database unreachable; nothing was stored, retry",
          "headers": _RETRY},
}  # fmt: skip
"""The catalog and subscription calls: our own records, no Temporal."""
SOURCE_ERRORS: dict[int | str, dict[str, Any]] = {
    400: INGEST_ERRORS[400],
    401: {"model": Problem, "description": "missing, wrong or stale signature"},
    404: {"model": Problem, "description": "this source is not configured (set its secret)"},
    408: INGEST_ERRORS[408],
    413: INGEST_ERRORS[413],
    422: {"model": Problem, "description": "signed, but not a payload this source sends"},
    503: {"model": Problem, "description": "could not be taken now; retry", "headers": _RETRY},
}

BEARER = HTTPBearer(auto_error=False, description="JOURNEYS_API_KEY")
"""Declares the scheme in the OpenAPI document; `require_key` does the checking."""

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
    api_key = settings.api_key.get_secret_value() if settings.api_key is not None else None
    if api_key is not None and not api_key.strip():  # an empty key is refused, never "no key"
        raise InsecureSettings("JOURNEYS_API_KEY is set but empty: set a key, or unset it")
    if api_key is None and not is_loopback(settings.api_host):
        raise InsecureSettings(f"refusing to serve without JOURNEYS_API_KEY on {settings.api_host}")
    signing_key(settings)  # MissingSecretKey now, not on the first unsubscribe click

    async def require_key(
        request: Request,
        _: Annotated[HTTPAuthorizationCredentials | None, Security(BEARER)],  # for the docs
    ) -> None:
        if api_key is None:
            return
        header = request.headers.get("authorization", "")
        scheme, _space, token = header.partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(token.encode(), api_key.encode()):
            raise _Unauthorized()

    docs = {app.docs_url, app.redoc_url, app.swagger_ui_oauth2_redirect_url} - {None}
    app.add_middleware(PageHeaders, docs_paths=docs)  # no-store, no referrer, CSP, no framing
    app.add_middleware(ContentLengthLimit, limit=MAX_BODY)
    app.add_middleware(AdmissionMiddleware, admission=admission, metrics=metrics)

    # Added after those, so outside them: who may take an admission slot is decided before
    # admission.
    app.add_middleware(IngestGate, api_key=api_key, settings=settings, metrics=metrics)
    if api_key is None:  # keyless loopback mode, outermost: Host and content type first
        app.add_middleware(LoopbackOnly)

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

    # Every route that reads its body with read_body answers through these two.
    @app.exception_handler(BodyTooLarge)
    async def too_large(_: Request, exc: BodyTooLarge) -> JSONResponse:
        return _too_large(exc.limit)

    @app.exception_handler(BodyTooSlow)
    async def too_slow(_: Request, __: BodyTooSlow) -> JSONResponse:
        return _too_slow()

    @app.exception_handler(_Unauthorized)
    async def unauthorized(_: Request, __: _Unauthorized) -> JSONResponse:
        return _unauthorized()

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
        schema = {"application/json": {"schema": _inlined(model.model_json_schema())}}
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
    app.include_router(catalog_router, dependencies=[Depends(require_key)], responses=RECORD_ERRORS)
    app.include_router(
        subscriptions_router, dependencies=[Depends(require_key)], responses=RECORD_ERRORS
    )
    app.include_router(operators_router, dependencies=[Depends(require_key)])  # users, remove
    app.include_router(  # push devices
        devices_router, dependencies=[Depends(require_key)], responses=RECORD_ERRORS
    )
    app.include_router(erasure_router, dependencies=[Depends(require_key)])  # GDPR/CCPA
    app.include_router(unsubscribe_router)  # the signed link is the credential
    app.include_router(tracking_router)  # /c/ and /o/: the signed token is the credential
    app.include_router(feedback_router)  # /v1/feedback/*: each ESP's signature or credential
    app.include_router(sms_router)  # /v1/sms/twilio/*: X-Twilio-Signature is the credential
    # each sender's signature is the credential
    app.include_router(sources_router, responses=SOURCE_ERRORS)
    app.include_router(outbox_router)  # Bearer, or the session cookie for a browser
    app.include_router(dashboard_router)  # the same
    app.include_router(browser_router)  # /signin and /signout: that session cookie
    from starter.codec_server import codec_router  # /codec/decode, /encode: Bearer API key

    app.include_router(codec_router(settings))

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


def _inlined(schema: dict[str, Any]) -> dict[str, Any]:
    """`schema` with its `$defs` written in place: in an OpenAPI document "#/$defs/..." would
    point at the document's root, where nothing is (the call models' defs are not recursive)."""
    defs = schema.pop("$defs", {})

    def inline(node: Any) -> Any:
        if isinstance(node, dict):
            ref = node.get("$ref")
            if isinstance(ref, str) and ref.startswith("#/$defs/"):
                return inline(defs[ref.removeprefix("#/$defs/")])
            return {key: inline(value) for key, value in node.items()}
        if isinstance(node, list):
            return [inline(item) for item in node]
        return node

    return inline(schema)  # type: ignore[no-any-return]


class ContentLengthLimit:
    """413 before reading a body whose declared Content-Length is over `limit`, on every route.

    A plain ASGI middleware (Starlette's decorator middleware costs a task and a stream per
    request). Bodies without Content-Length are cut off while streaming, in `_parse`.
    """

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and _declared_over(scope, self.limit):
            await _too_large(self.limit)(scope, receive, send)
            return
        await self.app(scope, receive, send)


class IngestGate:
    """Authentication before admission, so only a caller who proved who it is holds a slot.

    Admission (starter/backpressure.py) bounds the ingest requests one process works on, and
    counted every request from its first byte: 128 anonymous connections trickling a body to a
    source webhook held every slot, and each `/v1/track` was a 503. Here, before a request may
    take a slot: on /v1/track, /identify and /batch the API key (a header, so the body stays
    unread); on a source, its whole body is read, within BODY_DEADLINE and MAX_BODY, and its
    sender's signature over it checked. A refusal is a 401, 408 or 413 that took no slot, and
    a slow body is cut off (408, connection closed) whoever sends it.
    """

    def __init__(
        self, app: ASGIApp, *, api_key: str | None, settings: Settings, metrics: ApiMetrics
    ) -> None:
        self.app = app
        self.api_key = api_key
        self.settings = settings
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not is_ingest(scope["method"], scope["path"]):
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        if path in INGEST_PATHS:
            if self.api_key is not None and not _key_matches(scope, self.api_key):
                await self._refuse(scope, receive, send, _unauthorized())
                return
            await self.app(scope, receive, send)  # read within the deadline by `_parse`
            return
        source = SOURCES.get(path.removeprefix(INGEST_PREFIX))
        secret = getattr(self.settings, source.secret) if source else None
        if source is None or secret is None:  # 404, at once and without reading the body
            await self.app(scope, receive, send)
            return
        if _declared_over(scope, MAX_BODY):
            await self._refuse(scope, receive, send, _too_large())
            return
        try:
            body = await read_body(_chunks(receive))
        except BodyTooLarge:
            await self._refuse(scope, receive, send, _too_large())
            return
        except BodyTooSlow:
            await self._refuse(scope, receive, send, _too_slow())
            return
        except _Disconnected:
            return
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
        problem = signature_problem(source, headers, body, secret.get_secret_value())
        if problem is not None:
            await self._refuse(scope, receive, send, JSONResponse(problem, status_code=401))
            return
        await self.app(scope, _replay(body, receive), send)

    async def _refuse(
        self, scope: Scope, receive: Receive, send: Send, answer: JSONResponse
    ) -> None:
        """Answer, and close the connection: what is left of the body is never read, and a
        refused caller keeps no socket open either."""
        answer.headers["Connection"] = "close"
        with event_source(scope["path"]):
            self.metrics.answered(answer.status_code)
        await answer(scope, receive, send)


def _declared_over(scope: Scope, limit: int) -> bool:
    """Whether the request declares a Content-Length over `limit` (refused before reading)."""
    for name, value in scope["headers"]:
        if name == b"content-length" and value.isdigit() and int(value) > limit:
            return True
    return False


def _key_matches(scope: Scope, api_key: str) -> bool:
    """`Authorization: Bearer <key>`, compared in constant time (as `require_key` does)."""
    for name, value in scope["headers"]:
        if name == b"authorization":
            scheme, _, token = value.partition(b" ")
            return scheme.lower() == b"bearer" and hmac.compare_digest(token, api_key.encode())
    return False


class _Disconnected(Exception):
    pass


async def _chunks(receive: Receive) -> AsyncIterator[bytes]:
    """The request body's chunks as the server receives them."""
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise _Disconnected()
        yield message.get("body", b"")
        if not message.get("more_body", False):
            return


def _replay(body: bytes, receive: Receive) -> Receive:
    """A `receive` that gives the body already read, then the server's own (disconnects)."""
    pending = [body]

    async def replayed() -> Message:
        if pending:
            return {"type": "http.request", "body": pending.pop(), "more_body": False}
        return await receive()

    return replayed


def _unauthorized() -> JSONResponse:
    return JSONResponse(
        {"detail": "missing or wrong API key (Authorization: Bearer <JOURNEYS_API_KEY>)"},
        status_code=401,
        headers={"WWW-Authenticate": "Bearer"},
    )


def _too_large(limit: int = MAX_BODY) -> JSONResponse:
    return JSONResponse({"detail": f"body over {limit} bytes"}, status_code=413)


def _too_slow() -> JSONResponse:
    """408, and the connection closed: the rest of a trickled body is never read."""
    return JSONResponse(
        {"detail": f"body not received within {BODY_DEADLINE:g} s"},
        status_code=408,
        headers={"Connection": "close"},
    )


class _Unauthorized(Exception):
    pass


async def _parse(request: Request, model: type[M]) -> M:
    """Validate the raw body as JSON whatever its Content-Type: 400 if not JSON, 422 if invalid.

    Read within BODY_DEADLINE and MAX_BODY (408, 413), even without a Content-Length."""
    body = await read_body(request.stream())
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


_UNION_TAG_ERRORS = frozenset({"union_tag_invalid", "union_tag_not_found"})


def validate_batch(call: BatchCall) -> tuple[list[BatchItem], list[AnyCall]]:
    """Each item validated on its own, so one bad item does not sink the rest: the answer for
    every item (ignored, rejected naming its fields, or accepted for now) and the calls to take,
    in the order of the accepted items. Never raises for any item a sender can write."""
    items: list[BatchItem] = []
    calls: list[AnyCall] = []
    for index, raw in enumerate(call.batch):
        kind = raw.get("type")
        try:
            if isinstance(kind, str) and kind in IGNORED_TYPES:
                ignored = IgnoredCall.model_validate(raw)
                items.append(BatchItem(index=index, messageId=ignored.messageId, status="ignored"))
                continue
            # The batch's context under the item's own; an item context that is not an object
            # is left as sent, for the model to refuse by name.
            context = raw.get("context", {})
            if isinstance(context, dict):
                raw = {**raw, "context": {**call.context, **context}}
            parsed = _CALL.validate_python(raw)
        except ValidationError as err:
            items.append(BatchItem(index=index, status="rejected", errors=_rejected(err)))
            continue
        items.append(BatchItem(index=index, messageId=parsed.message_id, status="accepted"))
        calls.append(parsed)
    return items, calls


def _rejected(err: ValidationError) -> list[Rejected]:
    """A batch item's errors by field, in the call's own terms: a tagged union puts the member
    ("track") first, which is dropped; an unknown `type` names "type"; an error about the whole
    call (no userId or anonymousId) names the member, as it always has."""
    errors = []
    for error in err.errors(include_url=False):
        loc = error["loc"]
        if error["type"] in _UNION_TAG_ERRORS:
            path: tuple[str | int, ...] = ("type",)
        elif loc and loc[0] in ("track", "identify"):
            path = loc[1:] or loc[:1]
        else:
            path = loc
        errors.append(Rejected(field=".".join(str(p) for p in path), error=error["msg"]))
    return errors


async def _take_batch(ingestor: Ingestor, call: BatchCall) -> list[BatchItem]:
    """Validate the items (`validate_batch`), then take the accepted ones together."""
    items, calls = validate_batch(call)
    positions = [item.index for item in items if item.status == "accepted"]
    for position, outcome in zip(positions, await ingestor.many(calls), strict=True):
        if isinstance(outcome, Accepted):
            items[position].status = outcome.status
            items[position].journeys = outcome.journeys
        else:
            items[position].status = "unavailable"
    return items
