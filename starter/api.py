"""The HTTP API: events in (Segment's track spec), health out.

    POST /v1/track   a Segment track call; 200 once Temporal has accepted every start and signal
    GET  /healthz    200 only when Temporal and the database answer

Errors say what is wrong: malformed JSON 400, a missing or wrong API key 401, a body over 1 MB
413, a schema error 422 naming the field, Temporal or the database unreachable 503 with
Retry-After (nothing is reported as done unless it was).
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any, Literal, TypeVar

from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator
from temporalio.api.workflowservice.v1 import GetSystemInfoRequest
from temporalio.client import Client

from activities.store import Store
from starter.routing import Router, TemporalUnavailable
from starter.settings import Settings
from workflows import registry
from workflows.journey import Journey
from workflows.models import Event

log = logging.getLogger("journeys.api")

M = TypeVar("M", bound=BaseModel)

MAX_BODY = 1_000_000
RETRY_AFTER = "5"


class TrackCall(BaseModel):
    """A Segment track call (https://segment.com/docs/connections/spec/track/)."""

    model_config = ConfigDict(extra="forbid")

    type: Literal["track"] = "track"
    event: str = Field(min_length=1, max_length=200)
    userId: str | None = Field(default=None, min_length=1, max_length=255)
    anonymousId: str | None = Field(default=None, min_length=1, max_length=255)
    messageId: str | None = Field(default=None, min_length=1, max_length=255)
    timestamp: datetime | None = None
    originalTimestamp: datetime | None = None
    sentAt: datetime | None = None
    receivedAt: datetime | None = None
    properties: dict[str, Any] = Field(default_factory=dict)
    context: dict[str, Any] = Field(default_factory=dict)
    integrations: dict[str, Any] = Field(default_factory=dict)
    channel: str | None = None
    version: int | str | None = None

    @model_validator(mode="after")
    def _needs_an_identity(self) -> TrackCall:
        if not self.userId and not self.anonymousId:
            raise ValueError("userId or anonymousId is required")
        return self

    def to_event(self) -> Event:
        """The event as journeys see it: one user ID, one message ID, one timestamp."""
        when = self.timestamp or self.originalTimestamp or datetime.now(UTC)
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        return Event(
            name=self.event,
            user_id=self.userId or self.anonymousId or "",
            message_id=self.messageId or f"api-{uuid.uuid4()}",
            timestamp=when,
            properties=self.properties,
        )


class Delivered(BaseModel):
    journey: str
    workflowId: str
    action: str


class TrackAccepted(BaseModel):
    """Every start and signal this event caused, accepted by Temporal."""

    messageId: str
    journeys: list[Delivered]


class Unavailable(Exception):
    """Temporal or the database could not be reached; the caller should retry."""


def create_app(
    settings: Settings,
    *,
    client: Client | None = None,
    store: Store | None = None,
    journeys: list[type[Journey]] | None = None,
) -> FastAPI:
    """Build the API; pass `client`, `store` and `journeys` to share them (tests, `dev`)."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        from starter.client import connect

        own_store = store is None
        app.state.store = store or Store(settings.database_url)
        if own_store:
            app.state.store.create_all()
        app.state.client = client or await connect(settings)
        loaded = (
            journeys if journeys is not None else registry.load_modules(settings.journey_modules)
        )
        app.state.router = Router(app.state.client, app.state.store, loaded, settings.task_queue)
        yield
        if own_store:
            app.state.store.dispose()

    app = FastAPI(
        title="journeys",
        summary="Behavior-triggered user journeys on Temporal",
        version="0.1.0",
        lifespan=lifespan,
    )
    api_key = settings.api_key.get_secret_value() if settings.api_key else None

    async def require_key(request: Request) -> None:
        if api_key is None:
            return
        header = request.headers.get("authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(token.encode(), api_key.encode()):
            raise _Unauthorized()

    @app.middleware("http")
    async def limit_body(request: Request, call_next: Any) -> Any:
        length = request.headers.get("content-length")
        if length is not None and length.isdigit() and int(length) > MAX_BODY:
            return JSONResponse({"detail": f"body over {MAX_BODY} bytes"}, status_code=413)
        return await call_next(request)

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
        return JSONResponse(
            {"detail": f"temporarily unavailable: {exc}; nothing was accepted, retry"},
            status_code=503,
            headers={"Retry-After": RETRY_AFTER},
        )

    @app.post(
        "/v1/track",
        dependencies=[Depends(require_key)],
        openapi_extra={
            "requestBody": {
                "required": True,
                "content": {"application/json": {"schema": TrackCall.model_json_schema()}},
            }
        },
    )
    async def track(request: Request) -> TrackAccepted:
        """Record a track call and deliver it to every journey it starts or reaches."""
        call = await _parse(request, TrackCall)
        event = call.to_event()
        store: Store = request.app.state.store
        traits = call.context.get("traits")
        try:
            if isinstance(traits, dict) and traits:
                email = traits.get("email") if isinstance(traits.get("email"), str) else None
                await asyncio.to_thread(
                    store.upsert_profile, event.user_id, email=email, traits=traits
                )
            deliveries = await request.app.state.router.route(event)
        except TemporalUnavailable as err:
            log.warning("event %s not accepted: %s", event.message_id, err)
            raise Unavailable("Temporal") from err
        except Exception as err:
            if _is_database_error(err):
                raise Unavailable("database") from err
            raise
        return TrackAccepted(
            messageId=event.message_id,
            journeys=[
                Delivered(journey=d.journey, workflowId=d.workflow_id, action=d.action)
                for d in deliveries
            ],
        )

    @app.get("/healthz")
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


class _Unauthorized(Exception):
    pass


async def _parse(request: Request, model: type[M]) -> M:
    """Validate the raw body as JSON whatever its Content-Type: 400 if not JSON, 422 if invalid."""
    body = await request.body()
    if len(body) > MAX_BODY:
        raise _TooLarge()
    try:
        json.loads(body)
    except ValueError as err:
        raise _MalformedJSON() from err
    try:
        return model.model_validate_json(body)
    except ValidationError as err:
        raise RequestValidationError(err.errors(include_url=False)) from err


class _MalformedJSON(Exception):
    pass


class _TooLarge(Exception):
    pass


def _is_database_error(err: Exception) -> bool:
    from sqlalchemy.exc import OperationalError

    return isinstance(err, OperationalError)
