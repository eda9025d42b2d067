"""POST /v1/sources/{shopify,stripe,webhook,segment}: authenticated by each sender's signature.

A source answers 404 until its secret is set (JOURNEYS_SHOPIFY_SECRET, JOURNEYS_STRIPE_SECRET,
JOURNEYS_STANDARD_WEBHOOK_SECRET, JOURNEYS_SEGMENT_SECRET), 401 on a bad or stale signature,
408 for a body not received within the deadline, 200 "ignored" for a topic no journey uses, 422
for a signed payload that is not what its topic sends, 503 if anything could not be taken (the
sender retries; dedupe keeps it single).

Anyone can reach these routes, and the signature covers the whole body, so the API's gate
(starter/api.py: IngestGate) reads the body and checks the signature here (`signature_problem`)
before the request may take an ingest slot; the route checks it again, so it stands alone.

Kissmetrics' tracking calls (/v1/sources/kissmetrics/{e,s,a}, GET or form POST, as sites send
them to Kissmetrics) carry the site's key as `_k` instead of a signature (404 until
JOURNEYS_KISSMETRICS_KEY is set, 401 without it), and are answered as Kissmetrics answers
them, with a 1x1 GIF; a call we cannot take is a 400 or 422 naming the parameter.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import JSONResponse, Response
from pydantic import SecretStr, TypeAdapter, ValidationError
from sqlalchemy.exc import DBAPIError, OperationalError

from activities.store import Store, UserAlias
from starter.calls import (
    Call,
    nul_at,
    parse_json,
    read_body,
)
from starter.ingest import Accepted, Ingestor
from starter.sources import (
    SignatureError,
    SourceCall,
    UnsupportedTopic,
    shopify_calls,
    shopify_product,
    standard_webhook_calls,
    stripe_calls,
    verify_segment,
    verify_shopify,
    verify_standard_webhook,
    verify_stripe,
)
from starter.sources import kissmetrics as km
from starter.sources.shopify import PRODUCT_TOPICS

SEGMENT_TYPES = ("track", "identify", "delete")
"""The Segment calls the Segment source takes; a delete is an erasure (starter/erasure.py)."""

router = APIRouter(prefix="/v1/sources", tags=["sources"])
_CALL: TypeAdapter[Any] = TypeAdapter(Call)


@dataclass(frozen=True)
class Source:
    """A sender: the setting holding its secret, and how its signature is checked."""

    secret: str
    verify: Callable[..., None]


KISSMETRICS = Source("kissmetrics_key", km.verify_kissmetrics)
"""Kissmetrics' calls carry the key as `_k`: the gate checks it in a POST's form body."""

SOURCES = {
    "shopify": Source("shopify_secret", verify_shopify),
    "stripe": Source("stripe_secret", verify_stripe),
    "webhook": Source("standard_webhook_secret", verify_standard_webhook),
    "segment": Source("segment_secret", verify_segment),
    **{f"kissmetrics/{kind}": KISSMETRICS for kind in km.KINDS},
}
"""By the last part of the path, /v1/sources/<name>."""


def signature_problem(
    source: Source, headers: Mapping[str, str], body: bytes, secret: str
) -> dict[str, str] | None:
    """The 401 answer's body when the signature over `body` fails, else None. It names the
    failure, never the signature that would have passed."""
    try:
        source.verify(headers, body, secret)
    except SignatureError as err:
        return {"detail": f"signature rejected: {err}"}
    return None


async def _take(
    request: Request,
    source: Source,
    to_calls: Callable[[dict[str, str], Any], list[SourceCall]],
) -> JSONResponse:
    payload = await _verified(request, source)
    if isinstance(payload, JSONResponse):
        return payload
    try:
        source_calls = await asyncio.to_thread(to_calls, dict(request.headers), payload)
        calls = [_CALL.validate_python(call.to_segment()) for call in source_calls]
    except UnsupportedTopic as err:
        return JSONResponse({"status": "ignored", "detail": str(err)})
    except ValidationError as err:  # a call our API's models refuse: by field, not by value
        return _not_understood(err)
    except ValueError as err:  # InvalidPayload: its message names what is missing or wrong
        raise HTTPException(422, f"payload not understood: {err}") from err
    ingestor: Ingestor = request.app.state.ingestor
    results = await ingestor.many(calls)
    if not all(isinstance(r, Accepted) for r in results):
        return JSONResponse(
            {"detail": "temporarily unavailable; retry"},
            status_code=503,
            headers={"Retry-After": "5"},
        )
    return JSONResponse(
        {
            "status": "accepted",
            "calls": [r.model_dump() for r in results if isinstance(r, Accepted)],
        }
    )


async def _verified(request: Request, source: Source) -> Any:
    """The delivery's JSON once its body arrived in time and its signature holds, else the
    answer to give (401); 404, 408, 413, 400 and 422 are raised."""
    secret: SecretStr | None = getattr(request.app.state.settings, source.secret)
    if secret is None:
        raise HTTPException(404, "this source is not configured (set its secret)")
    # Stopped at the limit (a chunked body has no length) and at the deadline: 413 and 408
    # from the app's handlers.
    body = await read_body(request.stream())
    problem = signature_problem(source, request.headers, body, secret.get_secret_value())
    if problem is not None:
        return JSONResponse(problem, status_code=401)
    try:
        payload = parse_json(body)
    except ValueError:
        raise HTTPException(400, "malformed JSON body") from None
    if nul_at(payload) is not None:
        raise HTTPException(422, "payload not understood: a NUL character in a string")
    return payload


def _not_understood(err: ValidationError) -> JSONResponse:
    """422 naming each field the mapped call got wrong (never its value: pydantic's own text
    would echo it)."""
    errors = [
        {"field": ".".join(str(p) for p in e["loc"][1:] or e["loc"]), "error": e["msg"]}
        for e in err.errors(include_url=False)
    ]
    return JSONResponse({"detail": "payload not understood", "errors": errors}, status_code=422)


@router.post("/shopify")
async def shopify(request: Request) -> JSONResponse:
    """Shopify webhooks (checkouts/create, checkouts/update, orders/create; products/create and
    products/update keep the catalog current); a body whose shape is not its topic's is a 422,
    and one body counts once per topic whatever its webhook ID."""
    if (request.headers.get("x-shopify-topic") or "").strip() in PRODUCT_TOPICS:
        payload = await _verified(request, SOURCES["shopify"])
        if isinstance(payload, JSONResponse):
            return payload
        try:
            product = shopify_product(request.headers, payload)
        except ValueError as err:
            raise HTTPException(422, f"payload not understood: {err}") from err
        await asyncio.to_thread(request.app.state.store.upsert_products, [product])
        return JSONResponse({"status": "accepted", "products": [product.product_id]})
    return await _take(request, SOURCES["shopify"], shopify_calls)


@router.post("/stripe")
async def stripe(request: Request) -> JSONResponse:
    """Stripe events: a trial starting, an upgrade, a trial turning paid, a cancellation and a
    first paid invoice (starter/sources/stripe.py); anything else is answered "ignored"."""
    store = request.app.state.store

    def calls(_: dict[str, str], payload: Any) -> list[SourceCall]:
        return [_with_user(call, store) for call in stripe_calls(payload)]

    return await _take(request, SOURCES["stripe"], calls)


def _with_user(call: SourceCall, store: Any) -> SourceCall:
    """Without metadata.user_id: the user an identify linked to the customer, else its ID."""
    if call.user_id is not None:
        return call
    customer = str(call.properties["stripe_customer_id"])
    user = store.resolve_alias("stripe_customer_id", customer) or customer
    return call.model_copy(update={"user_id": user})


@router.post("/webhook")
async def standard_webhook(request: Request) -> JSONResponse:
    """Any sender using Standard Webhooks; the body is a Segment call or a list of them."""
    return await _take(request, SOURCES["webhook"], standard_webhook_calls)


@router.post("/segment")
async def segment(request: Request) -> JSONResponse:
    """Segment's webhook destination, signed with X-Signature: every call type is posted here;
    track and identify are taken, delete erases the user (as DELETE /v1/users/{id} does), the
    rest (page, screen, group, alias) are ignored."""

    def calls(_: dict[str, str], payload: Any) -> list[SourceCall]:
        # The call's own messageId is the dedupe key; without a timestamp, it happened now.
        headers = {"webhook-timestamp": str(int(time.time()))}
        return standard_webhook_calls(headers, payload, SEGMENT_TYPES)

    return await _take(request, SOURCES["segment"], calls)


def _query(name: str, description: str, required: bool = False) -> dict[str, Any]:
    return {"name": name, "in": "query", "required": required, "schema": {"type": "string"},
            "description": description}  # fmt: skip


def _kissmetrics_query(required: bool) -> list[dict[str, Any]]:
    """Kissmetrics' own parameters, for the OpenAPI document; any other one is a property."""
    return [
        _query("_k", "the site's Kissmetrics API key (JOURNEYS_KISSMETRICS_KEY)", required),
        _query("_p", "the person: one of their identities, up to 255 characters", required),
        _query("_n", "/e: the event name; /a: another identity of the person"),
        _query("_t", "when it happened, in Unix seconds (applied with _d=1)"),
        _query("_d", "1: _t is when it happened"),
    ]


KISSMETRICS_ANSWERS: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "taken (or a duplicate): a 1x1 GIF, as Kissmetrics answers",
        "content": {"image/gif": {"schema": {"type": "string", "format": "binary"}}},
    },
    415: {
        "description": "a POST body that is not application/x-www-form-urlencoded",
        "content": {"application/json": {"schema": {"type": "object"}}},
    },
}


@router.get(
    "/kissmetrics/{kind}",
    response_class=Response,
    responses=KISSMETRICS_ANSWERS,
    openapi_extra={"parameters": _kissmetrics_query(required=True)},
)
async def kissmetrics(request: Request, kind: str) -> Response:
    """Kissmetrics' tracking calls as a site sends them to trk.kissmetrics.io, `kind` being
    `e` (record an event: track), `s` (set properties: identify) or `a` (alias two
    identities); every parameter besides `_k`, `_p`, `_n`, `_t` and `_d` is a property
    (starter/sources/kissmetrics.py). Taken: 200 with a 1x1 GIF, as Kissmetrics answers."""
    return await _kissmetrics(request, kind)


@router.post(
    "/kissmetrics/{kind}",
    response_class=Response,
    responses=KISSMETRICS_ANSWERS,
    openapi_extra={
        "parameters": _kissmetrics_query(required=False),
        "requestBody": {
            "content": {"application/x-www-form-urlencoded": {"schema": {"type": "object"}}}
        },
    },
)
async def kissmetrics_form(request: Request, kind: str) -> Response:
    """The same calls as a form-encoded POST (the parameters in the body, the query string,
    or both); a POST's `_k` is checked before it may take an ingest slot."""
    return await _kissmetrics(request, kind)


@router.api_route(
    "/kissmetrics/{kind}",
    methods=["HEAD", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE"],
    include_in_schema=False,
)
async def kissmetrics_other_methods(kind: str) -> JSONResponse:
    """405 naming both methods: GET and POST are two routes, and Starlette's own 405 would
    name the first one's only."""
    return JSONResponse(
        {"detail": "Method Not Allowed"}, status_code=405, headers={"Allow": "GET, POST"}
    )


async def _kissmetrics(request: Request, kind: str) -> Response:
    secret: SecretStr | None = request.app.state.settings.kissmetrics_key
    if secret is None:
        raise HTTPException(404, "this source is not configured (set JOURNEYS_KISSMETRICS_KEY)")
    path = km.kind_of(kind)
    if path is None:
        raise HTTPException(404, "Kissmetrics' calls are /e (record), /s (set) and /a (alias)")
    body = b""
    if request.method == "POST":
        body = await read_body(request.stream())
        media = (request.headers.get("content-type") or "").split(";")[0].strip().lower()
        if body and media != "application/x-www-form-urlencoded":
            raise HTTPException(415, "a POST body must be application/x-www-form-urlencoded")
    received_at = datetime.now(UTC)
    try:
        params = km.parse_params(request.scope.get("query_string", b""), body)
        km.verify_key(params.get("_k"), secret.get_secret_value())
        call = km.read_call(path, params)
    except SignatureError as err:
        return JSONResponse({"detail": f"key rejected: {err}"}, status_code=401)
    except km.BadParameter as err:
        return _bad_parameters([(err.parameter, err.reason)])
    except km.MalformedCall as err:
        raise HTTPException(400, f"call not understood: {err}") from err
    # A GET is no POST to a source, so it holds no admission slot yet: authenticated, it takes one.
    admission = request.app.state.ingestor.admission if request.method == "GET" else None
    if admission is not None and not admission.enter():
        return _retry_later(f"busy: {admission.limit} requests in flight", "1")
    try:
        return await _take_kissmetrics(request, call, received_at)
    finally:
        if admission is not None:
            admission.leave()


async def _take_kissmetrics(
    request: Request, call: km.KissmetricsCall, received_at: datetime
) -> Response:
    try:
        user = await asyncio.to_thread(_kissmetrics_user, request.app.state.store, call)
    except (OperationalError, DBAPIError):
        return _retry_later("temporarily unavailable (database); nothing was taken, retry", "5")
    try:
        mapped = km.kissmetrics_calls(call, user, received_at)
        calls = [_CALL.validate_python(c.to_segment()) for c in mapped]
    except ValidationError as err:  # e.g. an `email` property that is not one address
        found = err.errors(include_url=False)
        return _bad_parameters([(km.parameter_of(e["loc"][1:]), e["msg"]) for e in found])
    ingestor: Ingestor = request.app.state.ingestor
    results = await ingestor.many(calls) if calls else []
    if not all(isinstance(r, Accepted) for r in results):
        return _retry_later("temporarily unavailable; retry", "5")
    return Response(km.PIXEL, media_type="image/gif", headers={"Cache-Control": "no-store"})


def _kissmetrics_user(store: Store, call: km.KissmetricsCall) -> str:
    """The user `_p` names; for an alias, after linking the two identities (once)."""

    def lookup(identity: str) -> str | None:
        return store.resolve_alias(km.ALIAS_KIND, identity)

    if call.kind == "a" and call.name is not None:
        link = km.alias_link(call.person, call.name, lookup)
        if link is not None:  # a concurrent alias may win the insert: the first link stays
            store.insert_once(UserAlias(kind=km.ALIAS_KIND, value=link[0], user_id=link[1]))
    return km.resolve(call.person, lookup)


def _bad_parameters(problems: list[tuple[str, str]]) -> JSONResponse:
    """422 naming each parameter (never its value)."""
    errors = [{"field": name, "error": reason} for name, reason in problems]
    return JSONResponse({"detail": "call not understood", "errors": errors}, status_code=422)


def _retry_later(detail: str, seconds: str) -> JSONResponse:
    return JSONResponse({"detail": detail}, status_code=503, headers={"Retry-After": seconds})
